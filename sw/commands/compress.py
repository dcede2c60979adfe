"""``fireforge compress`` (Deep Compression of a checkpoint), ``fireforge dsd`` (Dense-Sparse-Dense
training) and ``fireforge sensitivity`` (each layer pruned alone, the paper's per-layer
analysis)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...hw.errors import FireforgeError
from . import Log, Result, quiet

if TYPE_CHECKING:
    from ..checkpoint import Checkpoint
    from ..data import Dataset
    from ..train import TrainConfig

__all__ = ["CompressResult", "compress", "DsdResult", "dsd", "SensitivityResult", "sensitivity",
           "checkpoint_data"]


def checkpoint_data(ckpt, name: str | None):
    """The data set ``name`` (default: the one ``ckpt`` was trained on), at its input shape."""
    from ..data import load_dataset

    return load_dataset(name or ckpt.data, ckpt.config.input_size, ckpt.config.in_channels)


@dataclass
class _Retraining:
    """A float checkpoint about to be retrained in place (compression, DSD): its data set and
    its preset's recipe."""

    ckpt: Checkpoint
    dataset: Dataset
    base: TrainConfig  #: the preset's recipe, with the seed asked for

    def accuracy(self) -> float:
        """Test accuracy of the model as it is now."""
        from ..train import evaluate

        d = self.dataset
        return evaluate(self.ckpt.model, d.x_test, d.y_test, self.ckpt.mean, self.ckpt.std)

    def epochs(self, given: int | None) -> int:
        """``given``, or by default a quarter of the preset's recipe (at least 2)."""
        return given or max(2, self.base.epochs // 4)


def _retraining(checkpoint: str | Path, data: str | None, seed: int, refusal: str,
                lr: float | None = None) -> _Retraining:
    """Load a float ``checkpoint`` and its data set; a compressed one is refused with
    ``refusal`` (what to do instead). ``lr``: the peak learning rate the retraining rates
    derive from (default: the preset's recipe)."""
    from ..checkpoint import load_checkpoint
    from ..train import recipe

    ckpt = load_checkpoint(checkpoint)
    if ckpt.shared:
        raise FireforgeError(f"checkpoint {checkpoint} {refusal}")
    return _Retraining(ckpt, checkpoint_data(ckpt, data), recipe(ckpt.preset, seed=seed,
                                                                  lr=lr))


#: how the layers share a density (:func:`compress`'s ``prune_by``)
PRUNE_BY = ("roles", "sensitivity")


@dataclass
class CompressResult(Result):
    preset: str
    data: str
    accuracy_before: float
    accuracy_pruned: float
    accuracy_shared: float
    accuracy_after: float
    density: float
    bits: int
    #: the size report per layer (Deep Compression's Table 2 columns)
    layers: list
    total_bytes: int
    dense_index_bytes: int
    float_bytes: int
    compression_ratio: float
    seconds: float
    checkpoint: str


def compress(checkpoint: str | Path, density: float, bits: int, out: str | Path, *,
             data: str | None = None, steps: int = 3, epochs_per_step: int | None = None,
             finetune_epochs: int | None = None, seed: int = 0, lr: float | None = None,
             prune_by: str = "roles", log: Log = quiet) -> CompressResult:
    """Prune ``checkpoint`` to ``density`` in ``steps`` prune-and-retrain stages, share its
    weights through ``bits``-bit k-means codebooks, fine-tune the codebooks, and write the
    compressed checkpoint and ``metrics.json`` to ``out``. Retraining epochs default to a
    quarter of the preset's recipe; ``lr``, the peak learning rate the retraining rates
    derive from, is the recipe's unless given. ``prune_by``: how the layers share the
    density, ``roles`` (3x3 expands pruned hardest, the stem dense) or ``sensitivity`` (each
    layer pruned alone first, on the test images, without retraining: a layer that loses
    accuracy sooner keeps more weights; the paper's section 7.1)."""
    from ..checkpoint import Checkpoint, save_checkpoint, write_json
    from ..compress import (
        check_density_bits,
        density_of,
        finetune_codebooks,
        prune_and_retrain,
        sensitivity_factors,
        share_weights,
    )
    from ..compress import sensitivity as sensitivity_of
    from ..huffman import format_size_table, size_report, totals

    check_density_bits(density, bits)
    if prune_by not in PRUNE_BY:
        raise FireforgeError(f"--prune-by {prune_by!r}: one of {', '.join(PRUNE_BY)}")
    run = _retraining(checkpoint, data, seed, "is already compressed; compress the float "
                      "checkpoint it came from", lr)
    ckpt, dataset, base, accuracy = run.ckpt, run.dataset, run.base, run.accuracy
    per_step = run.epochs(epochs_per_step)
    ft_epochs = run.epochs(finetune_epochs)
    model = ckpt.model
    start = time.perf_counter()
    acc_before = accuracy()
    log(f"compressing {checkpoint} ({ckpt.preset}) on {dataset.name}: float accuracy "
        f"{acc_before * 100:.2f}%; target density {density}, {bits}-bit codebooks")
    factors = None
    if prune_by == "sensitivity":
        factors = sensitivity_factors(model, sensitivity_of(model, dataset, ckpt.mean, ckpt.std,
                                                            progress=False))
        log("pruning guided by sensitivity: relative densities "
            + ", ".join(f"{n} {f:g}" for n, f in factors.items() if f is not None))
    masks = prune_and_retrain(model, dataset, ckpt.mean, ckpt.std, density, steps, per_step,
                              base, log=log, factors=factors)
    acc_pruned = accuracy()
    shared = share_weights(model, bits)
    acc_shared = accuracy()
    log(f"weight sharing ({bits} bits): {acc_shared * 100:.2f}% before fine-tuning")
    ft = finetune_codebooks(model, shared, dataset, ckpt.mean, ckpt.std,
                            replace(base, epochs=ft_epochs, lr=base.lr / 4))
    rows = size_report({n: (s.indices, s.bits, s.scale.size) for n, s in shared.items()})
    tot = totals(rows)
    log(format_size_table(rows))
    info = {"density": density_of(masks), "target_density": density, "bits": bits,
            "prune_by": prune_by, "source": str(checkpoint)}
    path = save_checkpoint(Checkpoint(model, ckpt.preset, ckpt.data, ckpt.classes, ckpt.mean,
                                      ckpt.std, {"compression": info}, shared), out)
    result = CompressResult(
        preset=ckpt.preset, data=dataset.name, accuracy_before=acc_before,
        accuracy_pruned=acc_pruned, accuracy_shared=acc_shared,
        accuracy_after=ft["test_accuracy"], density=info["density"], bits=bits,
        layers=[r.to_dict() for r in rows], total_bytes=tot["compressed_bytes"],
        dense_index_bytes=tot["dense_bytes"], float_bytes=tot["float_bytes"],
        compression_ratio=tot["ratio"], seconds=round(time.perf_counter() - start, 1),
        checkpoint=str(path))
    write_json(path / "metrics.json", result.to_dict())
    log(f"accuracy {acc_before * 100:.2f}% -> {result.accuracy_after * 100:.2f}% at density "
        f"{result.density:.3f}, {bits} bits: {result.total_bytes / 1e3:.1f} KB "
        f"({result.compression_ratio:.1f}x smaller); checkpoint in {path}")
    return result


@dataclass
class DsdResult(Result):
    preset: str
    data: str
    #: test accuracy of the dense input, after the sparse phase, after the final dense phase
    accuracy_dense: float
    accuracy_sparse: float
    accuracy_redense: float
    density: float
    sparse_epochs: int
    redense_epochs: int
    seconds: float
    checkpoint: str


def dsd(checkpoint: str | Path, out: str | Path, *, density: float = 0.5,
        data: str | None = None, steps: int = 1, sparse_epochs: int | None = None,
        redense_epochs: int | None = None, seed: int = 0, log: Log = quiet) -> DsdResult:
    """Dense-Sparse-Dense training (the SqueezeNet paper's section 7.2, after Han et al.): prune
    ``checkpoint`` to ``density`` and retrain with the masks held (the sparse phase), then
    release the masks, the pruned weights restarting at zero, and retrain every weight at a
    tenth of the learning rate (the final dense phase). Writes a dense float checkpoint (to
    compress and compile like any other) and ``metrics.json`` to ``out``. Epochs default to a
    quarter of the preset's recipe each."""
    from ..checkpoint import Checkpoint, save_checkpoint, write_json
    from ..compress import check_density_bits, density_of, prune_and_retrain
    from ..train import train

    check_density_bits(density, 8)
    run = _retraining(checkpoint, data, seed, "is compressed; DSD trains the float checkpoint "
                      "it came from")
    ckpt, dataset, base, accuracy = run.ckpt, run.dataset, run.base, run.accuracy
    sparse_epochs = run.epochs(sparse_epochs)
    redense_epochs = run.epochs(redense_epochs)
    model = ckpt.model
    start = time.perf_counter()
    acc_dense = accuracy()
    log(f"DSD of {checkpoint} ({ckpt.preset}) on {dataset.name}: dense {acc_dense * 100:.2f}%; "
        f"sparse phase at density {density}, {sparse_epochs} epochs")
    masks = prune_and_retrain(model, dataset, ckpt.mean, ckpt.std, density, steps,
                              max(1, sparse_epochs // steps), base, log=log)
    acc_sparse = accuracy()
    kept = density_of(masks)
    log(f"sparse: {acc_sparse * 100:.2f}% at density {kept:.3f}; final dense phase, "
        f"{redense_epochs} epochs at learning rate {base.lr / 10:g}")
    metrics = train(model, dataset, ckpt.mean, ckpt.std,
                    replace(base, epochs=redense_epochs, lr=base.lr / 10, seed=base.seed + 100),
                    desc="re-dense")
    info = {"density": kept, "sparse_epochs": sparse_epochs, "redense_epochs": redense_epochs,
            "source": str(checkpoint)}
    path = save_checkpoint(Checkpoint(model, ckpt.preset, ckpt.data, ckpt.classes, ckpt.mean,
                                      ckpt.std, {"dsd": info}), out)
    result = DsdResult(
        preset=ckpt.preset, data=dataset.name, accuracy_dense=acc_dense,
        accuracy_sparse=acc_sparse, accuracy_redense=metrics["test_accuracy"], density=kept,
        sparse_epochs=sparse_epochs, redense_epochs=redense_epochs,
        seconds=round(time.perf_counter() - start, 1), checkpoint=str(path))
    write_json(path / "metrics.json", result.to_dict())
    log(f"accuracy {acc_dense * 100:.2f}% dense -> {acc_sparse * 100:.2f}% sparse -> "
        f"{result.accuracy_redense * 100:.2f}% dense again; checkpoint in {path}")
    return result


@dataclass
class SensitivityResult(Result):
    baseline_accuracy: float
    densities: list
    #: per layer: its weight count and the accuracy at each density
    layers: dict
    plot: str


def sensitivity(checkpoint: str | Path, out: str | Path, *, data: str | None = None,
                log: Log = quiet) -> SensitivityResult:
    """Prune each layer of ``checkpoint`` alone to 90..10% density (no retraining); write the
    table (``sensitivity.json``) and the plot (``sensitivity.png``) to ``out``."""
    from ..checkpoint import load_checkpoint, write_json
    from ..compress import plot_sensitivity
    from ..compress import sensitivity as analyze

    ckpt = load_checkpoint(checkpoint)
    dataset = checkpoint_data(ckpt, data)
    table = analyze(ckpt.model, dataset, ckpt.mean, ckpt.std)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sensitivity.json", table)
    plot_sensitivity(table, out / "sensitivity.png")
    ds = table["densities"]
    log(f"{'layer':<26} {'weights':>8} " + " ".join(f"{d * 100:>5.0f}%" for d in ds))
    for name, row in table["layers"].items():
        log(f"{name:<26} {row['weights']:>8,} " + " ".join(
            f"{row['accuracy'][str(d)] * 100:>6.1f}" for d in ds))
    log(f"dense accuracy {table['baseline_accuracy'] * 100:.2f}%; plot: "
        f"{out / 'sensitivity.png'}")
    return SensitivityResult(plot=str(out / "sensitivity.png"), **table)
