"""Processing elements and the MAC array: the datapath, with no knowledge of layers.

:class:`MACArray` is ``rows x columns`` multiply-accumulate cells. Each cycle a valid step brings
``rows`` activations (unsigned 8-bit: consecutive input channels, each shared by its row) and one
signed 8-bit weight per cell; column ``j`` adds the products of its ``rows`` cells to its
accumulator. ``first`` restarts the accumulators, ``last`` delivers the sums. Pipeline: the
product registers (what a DSP block's pipeline registers absorb), with more than one row the
column sum of the products, then the accumulator; a broadcast stage in front where configured.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .isa import ACC_BITS, ACT_BITS, WEIGHT_BITS

__all__ = ["MACArray", "PRODUCT_BITS", "array_latency"]

#: unsigned 8-bit activation times signed 8-bit weight
PRODUCT_BITS = ACT_BITS + WEIGHT_BITS + 1


def array_latency(rows: int, broadcast: int) -> int:
    """Cycles from a ``last`` step at the inputs to ``out_valid``."""
    return 2 + (rows > 1) + (broadcast > 1)


class MACArray(wiring.Component):
    """``rows x columns`` MAC cells; row ``r`` shares activation ``act[r]``.

    Ports
    -----
    valid, first, last, act, weights : In
        One reduction step. ``act`` is an array of ``rows`` unsigned bytes, ``weights`` of
        ``rows * columns`` signed bytes, row-major (``weights[r * columns + j]`` is row ``r``'s
        weight of column ``j``).
    out_valid, sums : Out
        ``out_valid`` pulses :func:`array_latency` cycles after a ``last`` step; ``sums`` then
        holds every column's accumulator (``ACC_BITS`` signed) until the next step.

    ``broadcast`` > 1 gives each group of ``columns / broadcast`` columns its own register copy
    of the shared inputs (activations and control), one pipeline stage ahead: one register
    driving 64 multipliers across a large device was the ECP5's critical path. The copies are
    named ``*_bcast*``; the board build marks them ``keep``, as yosys would merge identical
    registers.
    """

    def __init__(self, columns: int, broadcast: int = 1, rows: int = 1):
        if broadcast < 1 or columns % broadcast:
            raise ValueError(f"broadcast={broadcast}: a divisor of columns={columns}")
        self.columns = columns
        self.rows = rows
        self.broadcast = broadcast
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "act": In(data.ArrayLayout(unsigned(ACT_BITS), rows)),
            "weights": In(data.ArrayLayout(signed(WEIGHT_BITS), rows * columns)),
            "out_valid": Out(1),
            "sums": Out(data.ArrayLayout(signed(ACC_BITS), columns)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.columns
        groups = self.broadcast
        per = C // groups
        inputs = (self.valid, self.first, self.last, self.act)
        if groups > 1:
            # the broadcast stage: a copy of the shared inputs per group, the weights delayed
            shared = []
            for k in range(groups):
                copy = [Signal.like(x, name=f"{n}_bcast{k}") for n, x in zip(
                    ("valid", "first", "last", "act"), inputs, strict=True)]
                m.d.sync += [c.eq(x) for c, x in zip(copy, inputs, strict=True)]
                shared.append(copy)
            weights = [Signal(signed(WEIGHT_BITS), name=f"w_d{i}") for i in range(R * C)]
            m.d.sync += [w.eq(self.weights[i]) for i, w in enumerate(weights)]
        else:
            shared = [inputs]
            weights = [self.weights[i] for i in range(R * C)]
        sum_bits = PRODUCT_BITS + (R - 1).bit_length()
        for k, (valid, first, last, act_in) in enumerate(shared):
            # control through the product stage (and the column-sum stage with rows > 1)
            c_valid, c_first, c_last = valid, first, last
            for s in range(1 + (R > 1)):
                v, f, la = (Signal(name=f"{n}{s}_{k}") for n in ("p_valid", "p_first", "p_last"))
                m.d.sync += [v.eq(c_valid), f.eq(c_first), la.eq(c_last)]
                c_valid, c_first, c_last = v, f, la
            if k == 0:
                m.d.sync += self.out_valid.eq(c_valid & c_last)
            acts = []
            for r in range(R):
                a = Signal(signed(ACT_BITS + 1), name=f"act{k}_{r}")
                m.d.comb += a.eq(act_in[r])
                acts.append(a)
            for j in range(k * per, (k + 1) * per):
                prods = []
                for r in range(R):
                    prod = Signal(signed(PRODUCT_BITS), name=f"prod{r}_{j}" if R > 1
                                  else f"prod{j}", reset_less=True)
                    m.d.sync += prod.eq(acts[r] * weights[r * C + j])
                    prods.append(prod)
                if R > 1:
                    total = Signal(signed(sum_bits), name=f"colsum{j}", reset_less=True)
                    m.d.sync += total.eq(sum(prods))
                else:
                    total = prods[0]
                acc = Signal(signed(ACC_BITS), name=f"acc{j}", reset_less=True)
                with m.If(c_valid):
                    m.d.sync += acc.eq(Mux(c_first, 0, acc) + total)
                m.d.comb += self.sums[j].eq(acc)
        return m
