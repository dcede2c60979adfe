"""``fireforge golden``: the bit-exact integer model of a program on a data set's test images,
against the float network it was compiled from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import Log, Result, quiet

__all__ = ["GoldenReport", "golden"]


@dataclass
class GoldenReport(Result):
    program: str
    model_hash: str
    data: str
    images: int
    #: top-1 accuracies; None where the data set's classes are not the model's (an imported
    #: ImageNet model run on a folder of photos)
    accuracy: float | None
    float_accuracy: float | None
    top1_agreement: float
    logit_mean_abs_error: float
    logit_scale_of_float: float
    weight_bytes: int
    program_bytes: int
    act_bytes: int
    predictions: list


def golden(program: str | Path, *, data: str | None = None, count: int | None = None,
           log: Log = quiet) -> GoldenReport:
    """Run the golden model of ``program`` on the test images of ``data`` (default: the data
    set it was trained on; ``count``: only the first images) beside its float network."""
    import numpy as np

    from ...hw.program import PARAMETER_FILES, load_program
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..golden import run_golden
    from ..train import predict

    prog = load_program(program)
    c, size, _ = prog.input_shape
    name = data or prog.manifest.data
    dataset = load_dataset(name, size, c)
    x, y = dataset.x_test[:count], dataset.y_test[:count]
    result = run_golden(prog, x)
    ckpt = load_checkpoint(prog.path / "float", fix=f"the program {program} is corrupt: "
                           f"compile it again")
    float_scores = predict(ckpt.model, x, ckpt.mean, ckpt.std)
    pred = result.predictions
    float_pred = float_scores.argmax(1)
    err = np.abs(result.logits - float_scores)
    files = prog.manifest.files
    labelled = len(dataset.classes) == result.sums.shape[1]
    report = GoldenReport(
        program=str(program), model_hash=prog.model_hash, data=name, images=int(len(x)),
        accuracy=float((pred == y).mean()) if labelled else None,
        float_accuracy=float((float_pred == y).mean()) if labelled else None,
        top1_agreement=float((pred == float_pred).mean()),
        logit_mean_abs_error=float(err.mean()),
        logit_scale_of_float=float(np.abs(float_scores).mean()),
        weight_bytes=sum(files[f]["bytes"] for f in PARAMETER_FILES),
        program_bytes=files["program.bin"]["bytes"], act_bytes=prog.manifest.act_bytes,
        predictions=pred.tolist())
    accuracy = (f"accuracy {report.accuracy * 100:.2f}% (float "
                f"{report.float_accuracy * 100:.2f}%)" if labelled else
                f"no accuracy ({name} has {len(dataset.classes)} classes, the model "
                f"{result.sums.shape[1]})")
    log(f"golden model of {program} on {len(x)} {name} test images: {accuracy}, top-1 "
        f"agreement {report.top1_agreement * 100:.2f}%; logits off by "
        f"{report.logit_mean_abs_error:.4f} on average (float logits average "
        f"{report.logit_scale_of_float:.3f})")
    log(f"on-chip: weights+codebooks+params {report.weight_bytes:,} B, activations "
        f"{report.act_bytes:,} B, program {report.program_bytes:,} B")
    return report
