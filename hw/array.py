"""Processing elements and the MAC array: the datapath, with no knowledge of layers.

:class:`MACArray` is ``rows x columns`` multiply-accumulate cells. Each cycle a valid step brings
``rows`` activations (unsigned 8-bit: consecutive input channels, each shared by its row) and one
signed 8-bit weight per cell; column ``j`` adds the products of its ``rows`` cells to its
accumulator. ``first`` restarts the accumulators, ``last`` delivers the sums. Pipeline: the
product registers (with ``registered_multipliers`` the multipliers' operand and product
registers before them), with more than one row the column sum of the products (a balanced
adder tree, registered every two levels with ``registered_multipliers``), then the accumulator;
a broadcast stage in front where configured.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .dsp import MULTIPLIER_LATENCY, RegisteredMultiplier
from .isa import ACC_BITS, ACT_BITS, WEIGHT_BITS

__all__ = ["MACArray", "PRODUCT_BITS", "array_latency"]

#: unsigned 8-bit activation times signed 8-bit weight
PRODUCT_BITS = ACT_BITS + WEIGHT_BITS + 1


def _product_stages(registered_multipliers: bool) -> int:
    """Registered multipliers: their two stages and a register in the fabric beside the column
    sum (a multiplier block's output to the adders was 6.5 ns of routing on the 85F)."""
    return MULTIPLIER_LATENCY + 1 if registered_multipliers else 1


def _levels_per_stage(registered_multipliers: bool) -> int:
    """Adder levels of the column sum between registers: two with registered multipliers (the
    large devices; eight products in one stage took 7 ns on the 85F), else all of them."""
    return 2 if registered_multipliers else 1 << 30


def _sum_stages(rows: int, registered_multipliers: bool) -> int:
    levels = (rows - 1).bit_length()
    return -(-levels // _levels_per_stage(registered_multipliers))


def array_latency(rows: int, broadcast: int, registered_multipliers: bool = False) -> int:
    """Cycles from a ``last`` step at the inputs to ``out_valid``."""
    return (1 + _product_stages(registered_multipliers)
            + _sum_stages(rows, registered_multipliers) + (broadcast > 1))


def _column_sum(m: Module, values: list, bits: int, name: str, levels_per_stage: int):
    """The sum of ``values`` by a balanced adder tree, registered after every
    ``levels_per_stage`` levels and at the end."""
    level = stage = 0
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
        level += 1
        if level % levels_per_stage == 0 or len(values) == 1:
            regs = [Signal(signed(bits), name=f"{name}_{stage}_{i}" if len(values) > 1
                           else name, reset_less=True) for i in range(len(values))]
            m.d.sync += [r.eq(v) for r, v in zip(regs, values, strict=True)]
            values = regs
            stage += 1
    return values[0]


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
    driving 64 multipliers across a large device would be the ECP5's critical path. The copies are
    named ``*_bcast*``; the board build marks them ``keep``, as yosys would merge identical
    registers.

    ``late_weights`` (with ``broadcast`` > 1): the weights come a cycle after their step's
    other inputs, in the broadcast stage's cycle, instead of the array delaying them. The caller
    spends that cycle on them: the codebook lookup after a register beside it, not after an
    index register wherever the placer put it.

    ``registered_multipliers``: each product is a :class:`~.dsp.RegisteredMultiplier` (operand
    and product registers inside the ECP5's DSP block), one stage more.
    """

    def __init__(self, columns: int, broadcast: int = 1, rows: int = 1,
                 registered_multipliers: bool = False, late_weights: bool = False):
        if broadcast < 1 or columns % broadcast:
            raise ValueError(f"broadcast={broadcast}: a divisor of columns={columns}")
        if late_weights and broadcast == 1:
            raise ValueError("late_weights: only with a broadcast stage (broadcast > 1)")
        self.columns = columns
        self.rows = rows
        self.broadcast = broadcast
        self.registered_multipliers = registered_multipliers
        self.late_weights = late_weights
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
            # (or arriving late)
            shared = []
            for k in range(groups):
                copy = [Signal.like(x, name=f"{n}_bcast{k}") for n, x in zip(
                    ("valid", "first", "last", "act"), inputs, strict=True)]
                m.d.sync += [c.eq(x) for c, x in zip(copy, inputs, strict=True)]
                shared.append(copy)
            weights = [self.weights[i] for i in range(R * C)]
            if not self.late_weights:
                weights = [Signal(signed(WEIGHT_BITS), name=f"w_d{i}") for i in range(R * C)]
                m.d.sync += [w.eq(self.weights[i]) for i, w in enumerate(weights)]
        else:
            shared = [inputs]
            weights = [self.weights[i] for i in range(R * C)]
        sum_bits = PRODUCT_BITS + (R - 1).bit_length()
        for k, (valid, first, last, act_in) in enumerate(shared):
            # control through the product stage (and the column-sum stage with rows > 1)
            c_valid, c_first, c_last = valid, first, last
            for s in range(_product_stages(self.registered_multipliers)
                           + _sum_stages(R, self.registered_multipliers)):
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
                    name = f"prod{r}_{j}" if R > 1 else f"prod{j}"
                    if self.registered_multipliers:
                        m.submodules[f"mul{r}_{j}"] = mul = RegisteredMultiplier(
                            acts[r].shape(), weights[r * C + j].shape())
                        m.d.comb += [mul.a.eq(acts[r]), mul.b.eq(weights[r * C + j])]
                        product = mul.p
                    else:
                        product = acts[r] * weights[r * C + j]
                    prod = Signal(signed(PRODUCT_BITS), name=name, reset_less=True)
                    m.d.sync += prod.eq(product)
                    prods.append(prod)
                total = _column_sum(m, prods, sum_bits, f"colsum{j}",
                                    _levels_per_stage(self.registered_multipliers))
                acc = Signal(signed(ACC_BITS), name=f"acc{j}", reset_less=True)
                with m.If(c_valid):
                    m.d.sync += acc.eq(Mux(c_first, 0, acc) + total)
                m.d.comb += self.sums[j].eq(acc)
        return m
