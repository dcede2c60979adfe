"""``fireforge model``: the per-layer table of a preset (shapes, parameters, MACs, storage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import Log, Result, quiet

if TYPE_CHECKING:
    from ..summary import ModelSummary

__all__ = ["ModelReport", "describe"]


@dataclass
class ModelReport(Result):
    preset: str
    #: the network's configuration (SqueezeNetConfig.to_dict)
    config: dict
    summary: ModelSummary
    #: why the accelerator cannot run this network (None: it can)
    unsupported: str | None

    def to_dict(self) -> dict:
        return {"preset": self.preset, "config": self.config, "unsupported": self.unsupported,
                **self.summary.to_dict()}


def describe(preset: str, *, weights: str | None = None, log: Log = quiet,
             **overrides) -> ModelReport:
    """The layer table of ``preset`` (``overrides``: ``num_classes``, ``in_channels``,
    ``input_size``, ``bypass``; ``None`` keeps the preset's); ``weights`` is a state_dict file
    that must load strictly."""
    from ..model import create_model
    from ..quant import unsupported
    from ..summary import summarize

    overrides = {k: v for k, v in overrides.items() if v is not None}
    model = create_model(preset, weights=weights, **overrides)
    summary = summarize(model)
    c = model.config
    log(f"{preset}: {c.in_channels}x{c.input_size}x{c.input_size} input, {c.num_classes} "
        f"classes, bypass {c.bypass.value}")
    if weights:
        log(f"weights {weights}: loaded (strict)")
    log(summary.format_table())
    problem = unsupported(c)
    log(f"accelerator: cannot run it: {problem}" if problem else
        "accelerator: runs it (compile for a board to check the fit)")
    return ModelReport(preset, c.to_dict(), summary, problem)
