"""Processing elements and the MAC array: the datapath, with no knowledge of layers.

:class:`MACArray` is one row of ``columns`` multiply-accumulate cells. Each cycle a valid step
brings one activation (unsigned 8-bit, shared by the row) and one signed 8-bit weight per column;
``first`` restarts the accumulators, ``last`` delivers the sums. Two pipeline stages: the product
register (what a DSP block's pipeline registers absorb), then the accumulator.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .isa import ACC_BITS, ACT_BITS, WEIGHT_BITS

__all__ = ["MACArray", "PRODUCT_BITS"]

#: unsigned 8-bit activation times signed 8-bit weight
PRODUCT_BITS = ACT_BITS + WEIGHT_BITS + 1


class MACArray(wiring.Component):
    """``columns`` MAC cells sharing one activation.

    Ports
    -----
    valid, first, last, act, weights : In
        One reduction step. ``weights`` is an array of ``columns`` signed bytes.
    out_valid, sums : Out
        ``out_valid`` pulses two cycles after a ``last`` step; ``sums`` then holds every column's
        accumulator (``ACC_BITS`` signed) until the next step.
    """

    def __init__(self, columns: int):
        self.columns = columns
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "act": In(unsigned(ACT_BITS)),
            "weights": In(data.ArrayLayout(signed(WEIGHT_BITS), columns)),
            "out_valid": Out(1),
            "sums": Out(data.ArrayLayout(signed(ACC_BITS), columns)),
        })

    def elaborate(self, platform):
        m = Module()
        p_valid, p_first, p_last = Signal(), Signal(), Signal()
        m.d.sync += [p_valid.eq(self.valid), p_first.eq(self.first), p_last.eq(self.last),
                     self.out_valid.eq(p_valid & p_last)]
        act = Signal(signed(ACT_BITS + 1))
        m.d.comb += act.eq(self.act)
        for j in range(self.columns):
            prod = Signal(signed(PRODUCT_BITS), name=f"prod{j}", reset_less=True)
            acc = Signal(signed(ACC_BITS), name=f"acc{j}", reset_less=True)
            m.d.sync += prod.eq(act * self.weights[j])
            with m.If(p_valid):
                m.d.sync += acc.eq(Mux(p_first, 0, acc) + prod)
            m.d.comb += self.sums[j].eq(acc)
        return m
