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

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .isa import ACT_BITS, Descriptor, LayerConstants, Op

__all__ = ["OpSpec", "OPS", "UNITS", "UnitSignature"]

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


class UnitSignature(wiring.Signature):
    """What every unit has (:data:`UNITS`), as the unit sees it: the sequencer starts it with a
    descriptor and its layer constants held for the layer, and it uses the activation memory
    while it runs.

    Members
    -------
    start : ``In(1)``
        Run ``desc``; ``done`` pulses once at the end.
    desc : ``In(Descriptor)``, consts : ``In(LayerConstants)``
        The layer, and the products of its sizes (the sequencer's).
    act_raddr, act_rdata : ``Out``, ``In(ACT_BITS * lanes)``
        The activation word read, its data ``read latency`` cycles later (the memory's, and the
        accelerator's registers where configured).
    act_waddr, act_wdata, act_we : ``Out``
        A write of the word's bytes that ``act_we`` selects.

    ``aw``: bits of a byte address; the ports address words of ``lanes`` bytes. ``extra``:
    the unit's own members (model memories, result memory).
    """

    def __init__(self, aw: int, lanes: int = 1, extra: dict | None = None):
        word_aw = max(1, aw - (lanes.bit_length() - 1))
        super().__init__({
            "start": In(1), "done": Out(1), "desc": In(Descriptor), "consts": In(LayerConstants),
            "act_raddr": Out(word_aw), "act_rdata": In(ACT_BITS * lanes),
            "act_waddr": Out(word_aw), "act_wdata": Out(ACT_BITS * lanes), "act_we": Out(lanes),
            **(extra or {})})
