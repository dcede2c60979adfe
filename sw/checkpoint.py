"""A checkpoint directory: weights plus everything needed to rebuild and feed the model.

Layout::

    DIR/model.pt          state_dict (torchvision key layout)
    DIR/checkpoint.json   {"format", "version", "preset", "config", "data", "classes",
                           "mean", "std", "compression"?}
    DIR/compression.npz   after Deep Compression: per convolution its codebook indices,
                          codebook and per-channel scale (model.pt holds the decoded weights)
    DIR/metrics.json      written by the command that produced the checkpoint

The model config is stored in full, so a checkpoint loads without knowing its preset.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..hw.errors import FireforgeError
from .compress import SharedLayer
from .graph import build_model, config_from_dict
from .model import SqueezeNet, SqueezeNetConfig, load_state_dict_checked, read_state_dict

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "write_json", "check_out",
           "replace_folder"]

FORMAT = "fireforge-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A model with its input preprocessing and provenance."""

    model: SqueezeNet  #: or a :class:`~.graph.GraphNet`
    preset: str | None
    data: str
    classes: tuple[str, ...]
    mean: list[float]
    std: list[float]
    #: extra JSON-serializable facts (compression settings, ...)
    extra: dict = field(default_factory=dict)
    #: weight sharing of every convolution, after Deep Compression
    shared: dict[str, SharedLayer] | None = None

    @property
    def config(self) -> SqueezeNetConfig:  # or a GraphConfig
        return self.model.config


def check_out(out: str | Path, marker: str, what: str, fix: str) -> None:
    """``out`` may take a ``what``: it is new, empty, or an earlier one (it holds ``marker``);
    never a file, the current folder, or a folder of other files (``fix``: what to give
    instead)."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise FireforgeError(f"--out {out} is a file; give a folder for the {what}")
    if out.resolve() == Path.cwd().resolve():
        raise FireforgeError(f"--out {out} is the current folder; give a folder of its own for "
                             f"the {what}")
    if any(out.iterdir()) and not (out / marker).is_file():
        raise FireforgeError(f"--out {out} holds other files and no {what}; {fix}")


@contextmanager
def replace_folder(out: str | Path) -> Iterator[Path]:
    """A folder to write ``out``'s new contents into; when the block ends it replaces ``out``
    whole. It is written beside ``out`` and moved into place, so an interrupted write leaves
    the previous ``out`` (or nothing), never a mix."""
    out = Path(out)
    stage = out.parent / f".{out.name}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    yield stage
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old)
    else:
        stage.rename(out)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def save_checkpoint(ckpt: Checkpoint, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt.model.state_dict(), out / "model.pt")
    write_json(out / "checkpoint.json", {
        "format": FORMAT,
        "version": VERSION,
        "preset": ckpt.preset,
        "config": ckpt.config.to_dict(),
        "data": ckpt.data,
        "classes": list(ckpt.classes),
        "mean": ckpt.mean,
        "std": ckpt.std,
        **ckpt.extra,
    })
    npz = out / "compression.npz"
    if ckpt.shared:
        arrays = {}
        for i, (name, layer) in enumerate(ckpt.shared.items()):
            arrays[f"{i}.name"] = np.array(name)
            arrays[f"{i}.bits"] = np.array(layer.bits)
            arrays[f"{i}.indices"] = layer.indices
            arrays[f"{i}.codebook"] = layer.codebook
            arrays[f"{i}.scale"] = layer.scale
        np.savez_compressed(npz, **arrays)
    elif npz.exists():
        npz.unlink()
    return out


def _load_shared(path: Path, model: SqueezeNet) -> dict[str, SharedLayer]:
    try:
        with np.load(path) as z:
            count = len({k.split(".")[0] for k in z.files})
            shared = {}
            for i in range(count):
                name = str(z[f"{i}.name"])
                shared[name] = SharedLayer(name, int(z[f"{i}.bits"]), z[f"{i}.indices"],
                                           z[f"{i}.codebook"], z[f"{i}.scale"])
    except Exception as e:
        raise FireforgeError(f"cannot read {path}: {e}") from None
    convs = dict(model.convs())
    if set(shared) != set(convs):
        raise FireforgeError(f"{path} does not cover the model's convolutions")
    for name, layer in shared.items():
        w = convs[name].weight.detach().numpy()
        if layer.indices.shape != w.shape or not np.allclose(layer.weight(), w, atol=1e-6):
            raise FireforgeError(f"{path}: layer {name} does not match model.pt (one of the two "
                                 f"files was replaced); recompress")
    return shared


def load_checkpoint(path: str | Path, fix: str = "retrain or recompress it") -> Checkpoint:
    """Load a checkpoint directory written by :func:`save_checkpoint`; ``fix``: what a user
    does when it is corrupt (it ends the error)."""
    path = Path(path)
    meta_path, weights_path = path / "checkpoint.json", path / "model.pt"
    if not path.is_dir():
        raise FireforgeError(f"checkpoint {path} is not a directory (expected the --out folder "
                             f"of `fireforge train` or `fireforge compress`)")
    if not meta_path.is_file() or not weights_path.is_file():
        raise FireforgeError(f"checkpoint {path} lacks checkpoint.json or model.pt")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise FireforgeError(f"{meta_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FireforgeError(f"{meta_path} is not a fireforge checkpoint")
    if meta.get("version") != VERSION:
        raise FireforgeError(f"{meta_path} has format version {meta.get('version')}; this "
                             f"fireforge reads version {VERSION}")
    try:
        config = config_from_dict(meta["config"])
        data, classes, mean, std = meta["data"], meta["classes"], meta["mean"], meta["std"]
    except KeyError as e:
        raise FireforgeError(f"{meta_path} lacks the key {e}") from None
    model = build_model(config)
    state = read_state_dict(weights_path, "checkpoint weights", fix)
    load_state_dict_checked(model, state, source=str(weights_path))
    known = {"format", "version", "preset", "config", "data", "classes", "mean", "std"}
    extra = {k: v for k, v in meta.items() if k not in known}
    npz = path / "compression.npz"
    shared = _load_shared(npz, model) if npz.is_file() else None
    if "compression" in extra and shared is None:
        raise FireforgeError(f"checkpoint {path} is compressed but compression.npz is missing")
    return Checkpoint(model.eval(), meta.get("preset"), data, tuple(classes), mean, std, extra,
                      shared)
