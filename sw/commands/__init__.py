"""fireforge's commands as a library: one module per command, one function per module.

Each function takes typed arguments and returns a typed result (a dataclass whose
:meth:`Result.to_dict` is what ``fireforge COMMAND --json`` prints). Human-readable progress and
reports go through the ``log`` callable (one line of text a call; silent by default), so the
command line, ``make demo`` and the tests all run the same code; :mod:`fireforge.sw.cli` only
parses arguments, calls, and prints.

=============== ============================================ ===================================
command         function                                     result
=============== ============================================ ===================================
``model``       :func:`.model.describe`                      :class:`.model.ModelReport`
``train``       :func:`.train.train`                         :class:`.train.TrainResult`
``import``      :func:`.imports.import_model`                :class:`.imports.ImportResult`
``compress``    :func:`.compress.compress`                   :class:`.compress.CompressResult`
``sensitivity`` :func:`.compress.sensitivity`                :class:`.compress.SensitivityResult`
``explore``     :func:`.explore.explore`                     :class:`.explore.ExploreResult`
``compile``     :func:`.compile.compile_program`             :class:`.compile.CompileResult`
``golden``      :func:`.golden.golden`                       :class:`.golden.GoldenReport`
``sim``         :func:`.sim.simulate`                        :class:`.sim.SimReport`
``simboard``    :func:`.simboard.simboard`                   :class:`.simboard.SimboardResult`
``bench``       :func:`.bench.bench`                         :class:`.bench.BenchResult`
``infer``       :func:`.infer.infer`                         :class:`.infer.InferReport`
``load``        :func:`.infer.load`                          :class:`.infer.LoadResult`
``boards``      :func:`.build.list_boards`                   :class:`.build.BoardList`
``build``       :func:`.build.build`                         :class:`.build.BuildResult`
``flash``       :func:`.build.flash`                         :class:`.build.FlashResult`
=============== ============================================ ===================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = ["Log", "quiet", "Result"]

#: where a command writes its human-readable lines
Log = Callable[[str], None]


def quiet(text: str = "") -> None:
    """The default ``log``: library callers get results, not text."""


class Result:
    """Base of every command's result: a dataclass, JSON-ready through :meth:`to_dict`."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)}


def optional(default=None):
    """A field left out of :meth:`Result.to_dict` while it is ``None``."""
    return dataclasses.field(default=default, metadata={"omit_none": True})
