"""``fireforge train``: a preset trained, seeded, on an offline data set; a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...hw.errors import FireforgeError
from . import Log, Result, quiet

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult(Result):
    preset: str
    data: str
    params: int
    train_images: int
    test_images: int
    test_accuracy: float
    epochs: int
    seconds: float
    #: mean training loss of each epoch
    train_loss: list
    seed: int
    checkpoint: str


def train(preset: str, data: str, out: str | Path, *, epochs: int | None = None,
          batch_size: int | None = None, lr: float | None = None, shift: int | None = None,
          seed: int | None = None, threads: int | None = None, log: Log = quiet,
          **overrides) -> TrainResult:
    """Train ``preset`` on ``data`` (``digits``, ``mnist5k`` or a folder) and write the
    checkpoint and ``metrics.json`` to ``out``. Training settings left ``None`` take the
    preset's measured recipe; ``overrides`` are the model's (``num_classes``, ``in_channels``,
    ``input_size``, ``bypass``)."""
    from ..checkpoint import Checkpoint, save_checkpoint, write_json
    from ..data import load_dataset
    from ..model import create_model, preset_config
    from ..quant import unsupported
    from ..train import recipe, seed_everything
    from ..train import train as run_training

    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = preset_config(preset, **overrides)
    problem = unsupported(base)
    if problem:  # refused before the data and the epochs, not at compile time
        raise FireforgeError(f"{preset} cannot run on the accelerator, so it is not trained: "
                             f"{problem}")
    dataset = load_dataset(data, base.input_size, overrides.get("in_channels"))
    overrides.setdefault("in_channels", dataset.channels)
    overrides.setdefault("num_classes", len(dataset.classes))
    if overrides["num_classes"] < len(dataset.classes):
        raise FireforgeError(f"--num-classes {overrides['num_classes']} is smaller than the "
                             f"{len(dataset.classes)} classes of {data}")
    cfg = recipe(preset, epochs=epochs, batch_size=batch_size, lr=lr, shift=shift, seed=seed,
                 threads=threads)
    seed_everything(cfg.seed, cfg.threads)
    model = create_model(preset, **overrides)
    mean, std = dataset.mean_std()
    params = sum(p.numel() for p in model.parameters())
    log(f"training {preset} ({params:,} params) on {data}: {len(dataset.x_train)} train / "
        f"{len(dataset.x_test)} test images, {dataset.channels}x{dataset.size}x{dataset.size}, "
        f"{cfg.epochs} epochs at lr {cfg.lr:g}")
    metrics = run_training(model, dataset, mean, std, cfg, desc=f"train {preset}")
    ckpt = Checkpoint(model.eval(), preset, data, dataset.classes, mean, std)
    path = save_checkpoint(ckpt, out)
    result = TrainResult(preset=preset, data=data, params=params,
                         train_images=len(dataset.x_train), test_images=len(dataset.x_test),
                         checkpoint=str(path), **metrics)
    write_json(path / "metrics.json", result.to_dict())
    log(f"test accuracy {result.test_accuracy * 100:.2f}% after {cfg.epochs} epochs "
        f"({result.seconds:.1f} s); checkpoint in {path}")
    return result
