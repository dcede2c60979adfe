"""Deep Compression (Han et al. 2016) for the SqueezeNet family: magnitude pruning with retraining,
trained k-means weight sharing, and the size accounting of :mod:`.huffman`.

Weight sharing is per layer and per-channel normalized: the weights of output channel ``c`` are
divided by ``s_c = max |w[c]|`` and one layer codebook of ``2**bits`` entries is fitted to the
normalized values (entry 0 is the pruned weight 0, the rest come from k-means with linear
initialization). A weight is therefore ``s_c * codebook[index]``. The codebook lies on the int8
grid (``codebook = q / 127 * max|codebook|``, ``q`` int8), so what the hardware decodes (an int8
entry times a per-channel scale folded into the requantization multiplier) is exactly the float
weight of the compressed checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..hw.errors import FireforgeError
from .data import Dataset
from .model import SqueezeNet
from .train import TrainConfig, evaluate, train

__all__ = [
    "SharedLayer",
    "layer_densities",
    "sensitivity_factors",
    "magnitude_masks",
    "apply_masks",
    "prune_and_retrain",
    "share_weights",
    "finetune_codebooks",
    "sensitivity",
    "density_of",
]

#: Relative density per layer role (the paper prunes 3x3 harder than 1x1, spares late layers).
#: The stem is small and sees raw pixels: it stays dense.
_ROLE_FACTOR = {"stem": None, "classifier": 1.5, "squeeze": 1.25, "expand1x1": 1.25,
                "bypass_conv": 1.25, "expand3x3": 1.0}


def _role(name: str, model: SqueezeNet) -> str:
    if hasattr(model, "role"):  # an imported graph knows its own (graph.GraphNet.role)
        return model.role(name)
    if name == "features.0":
        return "stem"
    if name.startswith("classifier"):
        return "classifier"
    return name.rsplit(".", 1)[-1]


#: how much accuracy a layer pruned alone may lose at the density it is given a share of
SENSITIVITY_TOLERANCE = 0.01


def sensitivity_factors(model: SqueezeNet, result: dict,
                        tolerance: float = SENSITIVITY_TOLERANCE) -> dict[str, float | None]:
    """Relative densities from a :func:`sensitivity` ``result`` (section 7.1 of the paper):
    each convolution's factor is the lowest density at which, pruned alone, it stays within
    ``tolerance`` of the dense accuracy (1.0 where none does), so a sensitive layer keeps more
    of its weights; the stem stays dense."""
    base = result["baseline_accuracy"]
    factors = {}
    for name, _ in model.convs():
        if _ROLE_FACTOR[_role(name, model)] is None:
            factors[name] = None
            continue
        row = result["layers"][name]["accuracy"]
        safe = [d for d in result["densities"] if row[str(d)] >= base - tolerance]
        factors[name] = min(safe, default=1.0)
    return factors


def layer_densities(model: SqueezeNet, target: float,
                    factors: dict[str, float | None] | None = None) -> dict[str, float]:
    """Per-convolution densities whose weighted mean is ``target`` (up to rounding), each
    proportional to its layer's factor (default: by role, :data:`_ROLE_FACTOR`; ``None``:
    kept dense), capped at 1."""
    if not 0.0 < target <= 1.0:
        raise FireforgeError(f"density must be in (0, 1], not {target}")
    convs = model.convs()
    if factors is None:
        factors = {n: _ROLE_FACTOR[_role(n, model)] for n, _ in convs}
    sizes = {name: conv.weight.numel() for name, conv in convs}
    total = sum(sizes.values())
    fixed = {n for n, _ in convs if factors[n] is None}
    budget = target * total - sum(sizes[n] for n in fixed)
    if budget <= 0:
        raise FireforgeError(f"density {target} is below what the dense stem alone needs "
                             f"({sum(sizes[n] for n in fixed) / total:.3f})")

    def kept(x):
        return sum(min(1.0, factors[n] * x) * sizes[n] for n in sizes if n not in fixed)

    lo, hi = 0.0, 1.0
    while kept(hi) < budget and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) < budget else (lo, mid)
    return {n: 1.0 if n in fixed else min(1.0, factors[n] * hi) for n in sizes}


def magnitude_masks(model: SqueezeNet, densities: dict[str, float]) -> dict[str, torch.Tensor]:
    """Keep the ``density`` largest-magnitude weights of each convolution."""
    masks = {}
    for name, conv in model.convs():
        w = conv.weight.detach()
        keep = int(round(densities[name] * w.numel()))
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        if keep > 0:
            mask[torch.topk(w.abs().flatten(), keep, sorted=False).indices] = True
        masks[name] = mask.view_as(w)
    return masks


def apply_masks(model: SqueezeNet, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, conv in model.convs():
            if name in masks:
                conv.weight.mul_(masks[name])


def density_of(masks: dict[str, torch.Tensor]) -> float:
    kept = sum(int(m.sum()) for m in masks.values())
    return kept / max(1, sum(m.numel() for m in masks.values()))


def prune_and_retrain(model: SqueezeNet, data: Dataset, mean, std, target: float,
                      steps: int, epochs_per_step: int, base: TrainConfig,
                      progress: bool = True, log=print,
                      factors: dict | None = None) -> dict[str, torch.Tensor]:
    """Iterative pruning to ``target`` density: ``steps`` geometric stages, each pruning by
    magnitude and retraining ``epochs_per_step`` epochs with the masks held applied. Layers
    share the density by ``factors`` (:func:`layer_densities`; default: by role)."""
    final = layer_densities(model, target, factors)
    masks: dict[str, torch.Tensor] = {}
    for step in range(1, steps + 1):
        frac = step / steps
        densities = {n: d ** frac for n, d in final.items()}
        masks = magnitude_masks(model, densities)
        apply_masks(model, masks)
        pruned_acc = evaluate(model, data.x_test, data.y_test, mean, std)
        cfg = replace(base, epochs=epochs_per_step, lr=base.lr / 2, seed=base.seed + step)
        metrics = train(model, data, mean, std, cfg, progress=progress,
                        step_hook=lambda m, masks=masks: apply_masks(m, masks),
                        desc=f"prune {step}/{steps}")
        log(f"prune step {step}/{steps}: density {density_of(masks):.3f}, accuracy "
            f"{pruned_acc * 100:.2f}% pruned -> {metrics['test_accuracy'] * 100:.2f}% retrained")
    return masks


@dataclass
class SharedLayer:
    """One convolution after weight sharing: ``weight = scale[c] * codebook[indices]``."""

    name: str
    bits: int
    indices: np.ndarray  #: uint8, the weight's shape; 0 is the pruned weight
    codebook: np.ndarray  #: float32 (2**bits,), entry 0 is 0, on the int8 grid of ``cb_max``
    scale: np.ndarray  #: float32 per output channel

    def weight(self) -> np.ndarray:
        return (self.scale.reshape(-1, 1, 1, 1) * self.codebook[self.indices]).astype(np.float32)

    def int8_codebook(self) -> tuple[np.ndarray, float]:
        """The codebook as int8 values and the float value of one int8 step."""
        step = _int8_step(self.codebook)
        return np.round(self.codebook / step).astype(np.int8), step


def _int8_step(codebook: np.ndarray) -> float:
    peak = float(np.abs(codebook).max())
    return peak / 127.0 if peak > 0 else 1.0


def _to_int8_grid(codebook: np.ndarray) -> np.ndarray:
    step = _int8_step(codebook)
    out = np.round(codebook / step) * step
    out[0] = 0.0
    return out.astype(np.float32)


def _kmeans_1d(values: np.ndarray, k: int, iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars with linear initialization; returns (centroids, labels)."""
    lo, hi = float(values.min()), float(values.max())
    centroids = np.linspace(lo, hi, k) if k > 1 else np.array([(lo + hi) / 2])
    labels = np.zeros(len(values), dtype=np.int64)
    for _ in range(iterations):
        order = np.argsort(centroids)
        sorted_c = centroids[order]
        mids = (sorted_c[1:] + sorted_c[:-1]) / 2
        labels = order[np.searchsorted(mids, values)]
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(new, centroids):
            break
        centroids = new
    return centroids, labels


def share_weights(model: SqueezeNet, bits: int) -> dict[str, SharedLayer]:
    """k-means weight sharing of every convolution (pruned weights, exactly 0, stay index 0)."""
    if not 1 <= bits <= 8:
        raise FireforgeError(f"codebook bits must be 1..8, not {bits}")
    shared = {}
    for name, conv in model.convs():
        w = conv.weight.detach().numpy().astype(np.float64)
        out_c = w.shape[0]
        flat = w.reshape(out_c, -1)
        scale = np.abs(flat).max(axis=1)
        scale[scale == 0] = 1.0
        norm = flat / scale[:, None]
        nz = norm != 0
        indices = np.zeros(norm.shape, dtype=np.uint8)
        codebook = np.zeros(1 << bits, dtype=np.float32)
        k = (1 << bits) - 1
        if nz.any():
            centroids, labels = _kmeans_1d(norm[nz], min(k, int(nz.sum())))
            codebook[1:1 + len(centroids)] = centroids
            indices[nz] = labels + 1
        shared[name] = SharedLayer(name, bits, indices.reshape(w.shape),
                                   _to_int8_grid(codebook), scale.astype(np.float32))
    _write_weights(model, shared)
    return shared


def _write_weights(model: SqueezeNet, shared: dict[str, SharedLayer]) -> None:
    with torch.no_grad():
        for name, conv in model.convs():
            conv.weight.copy_(torch.from_numpy(shared[name].weight()))


class _SharedModel(nn.Module):
    """``model`` whose convolution weights are ``scale * codebook[indices]`` with trainable
    codebooks: autograd sums each weight's gradient into its centroid (Deep Compression's
    centroid fine-tuning). Entry 0 (the pruned weight) is fixed at 0."""

    def __init__(self, model: SqueezeNet, shared: dict[str, SharedLayer]):
        super().__init__()
        self.base = model
        self.config = model.config
        self.names = list(shared)
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.from_numpy(shared[n].codebook[1:].copy())) for n in self.names])
        for i, n in enumerate(self.names):
            self.register_buffer(f"idx{i}", torch.from_numpy(shared[n].indices.astype(np.int64)))
            self.register_buffer(f"scale{i}", torch.from_numpy(shared[n].scale).view(-1, 1, 1, 1))
            model.get_submodule(n).weight.requires_grad_(False)

    def weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, n in enumerate(self.names):
            full = torch.cat([torch.zeros(1), self.codebooks[i]])
            out[f"{n}.weight"] = getattr(self, f"scale{i}") * full[getattr(self, f"idx{i}")]
        return out

    def forward(self, x):
        return functional_call(self.base, self.weights(), (x,))


def finetune_codebooks(model: SqueezeNet, shared: dict[str, SharedLayer], data: Dataset, mean,
                       std, cfg: TrainConfig, progress: bool = True) -> dict:
    """Train the codebooks (and biases) with the indices fixed; returns training metrics."""
    wrapper = _SharedModel(model, shared)
    metrics = train(wrapper, data, mean, std, cfg, progress=progress, desc="codebooks")
    for i, n in enumerate(wrapper.names):
        cb = np.concatenate([[0.0], wrapper.codebooks[i].detach().numpy()]).astype(np.float32)
        shared[n].codebook = _to_int8_grid(cb)
        model.get_submodule(n).weight.requires_grad_(True)
    _write_weights(model, shared)
    metrics["test_accuracy"] = evaluate(model, data.x_test, data.y_test, mean, std)
    return metrics


def sensitivity(model: SqueezeNet, data: Dataset, mean, std,
                densities=(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1),
                progress: bool = True) -> dict:
    """Prune each convolution alone to each density (no retraining) and measure accuracy."""
    from tqdm import tqdm

    base = evaluate(model, data.x_test, data.y_test, mean, std)
    table = {}
    convs = model.convs()
    for name, conv in tqdm(convs, desc="sensitivity", disable=not progress or None, leave=False):
        original = conv.weight.detach().clone()
        row = {}
        for d in densities:
            masks = magnitude_masks(model, {n: (d if n == name else 1.0) for n, _ in convs})
            with torch.no_grad():
                conv.weight.mul_(masks[name])
            row[str(d)] = evaluate(model, data.x_test, data.y_test, mean, std)
            with torch.no_grad():
                conv.weight.copy_(original)
        table[name] = {"weights": original.numel(), "accuracy": row}
    return {"baseline_accuracy": base, "densities": list(densities), "layers": table}


def plot_sensitivity(result: dict, path) -> None:
    """The paper's Figure-style plot: accuracy against density, one line per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    xs = result["densities"]
    for name, row in result["layers"].items():
        ax.plot([d * 100 for d in xs], [row["accuracy"][str(d)] * 100 for d in xs],
                marker="o", ms=3, label=name)
    ax.axhline(result["baseline_accuracy"] * 100, color="k", ls="--", lw=1, label="dense")
    ax.set_xlabel("density of the one pruned layer (%)")
    ax.set_ylabel("test accuracy without retraining (%)")
    ax.set_title("pruning sensitivity per layer")
    ax.invert_xaxis()
    ax.legend(fontsize=6, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def check_density_bits(density: float, bits: int) -> None:
    if not 0.0 < density <= 1.0 or math.isnan(density):
        raise FireforgeError(f"--density must be in (0, 1], not {density}")
    if not 1 <= bits <= 8:
        raise FireforgeError(f"--bits must be 1..8 (codebook of 2**bits int8 entries), not {bits}")
