"""``fireforge import``: an ONNX model (or a PyTorch module) to a checkpoint that ``compress``,
``compile``, ``golden``, ``sim`` and the boards accept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import Log, Result, quiet

__all__ = ["ImportResult", "import_model", "import_module"]


@dataclass
class ImportResult(Result):
    source: str
    checkpoint: str
    layers: int
    params: int
    macs: int
    input: list
    num_classes: int
    #: what the import changed (nodes removed, a dense layer moved before the pool)
    notes: list
    #: why the accelerator cannot run it, or None
    unsupported: str | None
    #: float top-1 accuracy on the data set's test images (when its classes are the model's)
    test_accuracy: float | None


def _write(imported, source: str, out: str | Path, data: str, log: Log) -> ImportResult:
    from ..checkpoint import Checkpoint, check_out, replace_folder, save_checkpoint, write_json
    from ..data import load_dataset
    from ..graph import GraphNet
    from ..model import load_state_dict_checked
    from ..quant import unsupported
    from ..summary import summarize
    from ..train import evaluate

    check_out(out, "checkpoint.json", "checkpoint", "give a new or empty folder")
    config = imported.config
    model = GraphNet(config)
    load_state_dict_checked(model, imported.state, source=source)
    model.eval()
    dataset = load_dataset(data, config.input_size, config.in_channels)
    mean, std = dataset.mean_std()
    classes = (dataset.classes if len(dataset.classes) == config.num_classes
               else tuple(str(i) for i in range(config.num_classes)))
    accuracy = (evaluate(model, dataset.x_test, dataset.y_test, mean, std)
                if len(dataset.classes) == config.num_classes else None)
    summary = summarize(config)
    problem = unsupported(config)
    result = ImportResult(
        source=source, checkpoint=str(out), layers=len(config.layers), params=summary.params,
        macs=summary.macs, input=[config.in_channels, config.input_size, config.input_size],
        num_classes=config.num_classes, notes=list(imported.notes), unsupported=problem,
        test_accuracy=accuracy)
    # (an interrupted import leaves the previous checkpoint, or nothing, never a mix)
    with replace_folder(out) as stage:
        save_checkpoint(Checkpoint(model, None, data, classes, mean, std,
                                   {"imported_from": source}), stage)
        write_json(stage / "metrics.json", result.to_dict())
    log(summary.format_table())
    for note in imported.notes:
        log(f"note: {note}")
    if len(dataset.classes) != config.num_classes:
        log(f"note: {data} has {len(dataset.classes)} classes, the model {config.num_classes}: "
            f"classes are named by index, and no accuracy is measured")
    else:
        log(f"float accuracy on {data}'s {len(dataset.x_test)} test images (normalized with "
            f"mean {mean[0]:.4f}, std {std[0]:.4f}): {accuracy * 100:.2f}%")
    log(f"accelerator: cannot run it: {problem}" if problem else
        "accelerator: runs it (compile for a board to check the fit)")
    log(f"imported {source}: {len(config.layers)} layers, {summary.params:,} params, "
        f"{summary.macs / 1e6:.2f} M MACs; checkpoint in {out}")
    return result


def import_model(model: str | Path, out: str | Path, *, data: str,
                 log: Log = quiet) -> ImportResult:
    """Import the ONNX file ``model`` into the checkpoint folder ``out``. ``data`` (a built-in
    data set or an image folder) gives the input normalization (its mean and std: the model
    is assumed to take images normalized that way), the class names and the test images of the
    float accuracy; compile calibrates on it."""
    from ..onnx_import import import_onnx

    return _write(import_onnx(model), str(model), out, data, log)


def import_module(module, out: str | Path, *, data: str, channels: int, size: int,
                  log: Log = quiet) -> ImportResult:
    """Import a ``torch.nn.Module`` taking ``(N, channels, size, size)`` images, exported with
    PyTorch's ONNX exporter, as :func:`import_model` does."""
    from ..onnx_import import from_torch

    return _write(from_torch(module, (channels, size, size)), type(module).__name__, out, data,
                  log)
