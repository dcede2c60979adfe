"""Processing elements and the MAC array: the datapath, with no knowledge of layers.

:class:`MACArray` is one row of ``columns`` multiply-accumulate cells. Each cycle a valid step
brings one activation (unsigned 8-bit, shared by the row) and one signed 8-bit weight per column;
``first`` restarts the accumulators, ``last`` delivers the sums. Two pipeline stages: the product
register (what a DSP block's pipeline registers absorb), then the accumulator; three with a
broadcast stage in front.
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
        ``out_valid`` pulses two cycles after a ``last`` step (three with ``broadcast``);
        ``sums`` then holds every column's accumulator (``ACC_BITS`` signed) until the next step.

    ``broadcast`` > 1 gives each group of ``columns / broadcast`` columns its own register copy
    of the shared inputs (activation and control), one pipeline stage ahead: one register driving
    64 multipliers across a large device was the ECP5's critical path. The copies are named
    ``*_bcast*``; the board build marks them ``keep``, as yosys would merge identical registers.
    """

    def __init__(self, columns: int, broadcast: int = 1):
        if broadcast < 1 or columns % broadcast:
            raise ValueError(f"broadcast={broadcast}: a divisor of columns={columns}")
        self.columns = columns
        self.broadcast = broadcast
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
        groups = self.broadcast
        per = self.columns // groups
        if groups > 1:
            # the broadcast stage: a copy of the shared inputs per group, the weights delayed
            shared = []
            for k in range(groups):
                copy = [Signal.like(x, name=f"{n}_bcast{k}") for n, x in (
                    ("valid", self.valid), ("first", self.first), ("last", self.last),
                    ("act", self.act))]
                m.d.sync += [c.eq(x) for c, x in zip(
                    copy, (self.valid, self.first, self.last, self.act), strict=True)]
                shared.append(copy)
            weights = [Signal(signed(WEIGHT_BITS), name=f"w_d{j}") for j in range(self.columns)]
            m.d.sync += [w.eq(self.weights[j]) for j, w in enumerate(weights)]
        else:
            shared = [(self.valid, self.first, self.last, self.act)]
            weights = [self.weights[j] for j in range(self.columns)]
        for k, (valid, first, last, act_in) in enumerate(shared):
            p_valid, p_first = Signal(name=f"p_valid{k}"), Signal(name=f"p_first{k}")
            m.d.sync += [p_valid.eq(valid), p_first.eq(first)]
            if k == 0:
                p_last = Signal()
                m.d.sync += [p_last.eq(last), self.out_valid.eq(p_valid & p_last)]
            act = Signal(signed(ACT_BITS + 1), name=f"act{k}")
            m.d.comb += act.eq(act_in)
            for j in range(k * per, (k + 1) * per):
                prod = Signal(signed(PRODUCT_BITS), name=f"prod{j}", reset_less=True)
                acc = Signal(signed(ACC_BITS), name=f"acc{j}", reset_less=True)
                m.d.sync += prod.eq(act * weights[j])
                with m.If(p_valid):
                    m.d.sync += acc.eq(Mux(p_first, 0, acc) + prod)
                m.d.comb += self.sums[j].eq(acc)
        return m
