"""Every operation of the Program (:class:`~.isa.Op`), declared once: which of the
accelerator's units runs it, where its output goes, and what the configuration needs for it.

Each part of fireforge implements every op in a table keyed by :class:`~.isa.Op`, and
``tests/test_ops.py`` fails when one of them lacks an op:

============================ ===============================================================
aspect                       table
============================ ===============================================================
float reference              :data:`fireforge.sw.quant.FLOAT` (calibration runs it)
quantization                 :data:`fireforge.sw.quant.QUANTIZE` (integer parameters)
packing                      :data:`fireforge.sw.compiler.PACK` (descriptor fields, report)
golden execution             :data:`fireforge.sw.golden.EXECUTE`
cycle model                  :data:`fireforge.hw.perf.CYCLES`
gateware unit                :data:`OPS` (``unit``), built by :class:`~.accelerator.Accelerator`
============================ ===============================================================

A new op is a member of :class:`~.isa.Op`, a row here, and a row in each table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .isa import Op

__all__ = ["OpSpec", "OPS", "UNITS"]

#: the accelerator's units, in the order it builds them
UNITS = ("conv", "pool", "add")


@dataclass(frozen=True)
class OpSpec:
    #: the unit that runs it (one of :data:`UNITS`)
    unit: str
    #: it writes the per-class sums to the result memory, not an activation tensor
    to_result: bool = False
    #: the :class:`~.config.AcceleratorConfig` switch its unit needs, where the unit is optional
    feature: str | None = None


OPS: dict[Op, OpSpec] = {
    Op.CONV: OpSpec("conv"),
    Op.MAXPOOL: OpSpec("pool"),
    Op.AVGPOOL: OpSpec("pool", to_result=True),
    Op.ADD: OpSpec("add", feature="bypass_add"),
}
assert set(OPS) == set(Op) and {s.unit for s in OPS.values()} <= set(UNITS)
