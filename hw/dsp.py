"""A multiplier with registered operands and a registered product, for the large devices.

On an ECP5 it is one ``MULT18X18D`` with its own input and output registers, so neither the
multiplier's 3.9 ns nor the routing to and from a DSP column shares a cycle with other logic:
with the registers in the fabric, a path through the combinational block (operand register ->
far multiplier -> product register) takes about 16 ns on the 85F. Yosys does
not pack registers into ECP5 DSP blocks, so the block is instantiated here. Anywhere else
(simulation, other families) the same two register stages are built in logic, so the cycle
behaviour, and every cycle model that counts on it, is one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisteredMultiplier", "MULTIPLIER_LATENCY", "DSP_OPERAND_BITS"]

#: cycles from operands to product: the operand registers, then the product register
MULTIPLIER_LATENCY = 2
#: signed operand bits of one ECP5 MULT18X18D
DSP_OPERAND_BITS = 18


def _signed(value, shape: Shape):
    """``value`` as a signed value that holds every value of ``shape``."""
    return value.as_signed() if shape.signed else Cat(value, Const(0, 1)).as_signed()


class RegisteredMultiplier(wiring.Component):
    """``p`` = ``a * b`` of the operands :data:`MULTIPLIER_LATENCY` cycles earlier (exact:
    ``p`` is as wide as the full product)."""

    def __init__(self, a_shape, b_shape):
        self.a_shape, self.b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        sa, sb = (len(_signed(Signal(s), s)) for s in (self.a_shape, self.b_shape))
        if max(sa, sb) > DSP_OPERAND_BITS:
            raise ValueError(f"operands of {sa} and {sb} signed bits: at most "
                             f"{DSP_OPERAND_BITS} (one MULT18X18D)")
        self.p_bits = sa + sb
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape),
                          "p": Out(signed(self.p_bits))})

    def elaborate(self, platform):
        m = Module()
        a, b = _signed(self.a, self.a_shape), _signed(self.b, self.b_shape)
        if getattr(platform, "family", None) == "ecp5":
            ext = [x.as_signed() for x in (a, b)]
            pa, pb = (Cat(x, x[-1].replicate(DSP_OPERAND_BITS - len(x))) for x in ext)
            product = Signal(2 * DSP_OPERAND_BITS)
            regs = {f"p_REG_{r}_{k}": v for r in ("INPUTA", "INPUTB", "OUTPUT")
                    for k, v in (("CLK", "CLK0"), ("CE", "CE0"), ("RST", "RST0"))}
            none = {f"p_REG_{r}_{k}": v for r in ("INPUTC", "PIPELINE")
                    for k, v in (("CLK", "NONE"), ("CE", "CE0"), ("RST", "RST0"))}
            m.submodules.mult = Instance(
                "MULT18X18D", **regs, **none,
                p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
                p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
                p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
                p_CLK3_DIV="ENABLED",
                **{f"i_A{i}": pa[i] for i in range(DSP_OPERAND_BITS)},
                **{f"i_B{i}": pb[i] for i in range(DSP_OPERAND_BITS)},
                **{f"i_C{i}": Const(0) for i in range(DSP_OPERAND_BITS)},
                i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0),
                i_SOURCEB=Const(0), i_CLK0=ClockSignal(), i_CE0=Const(1), i_RST0=Const(0),
                **{f"o_P{i}": product[i] for i in range(2 * DSP_OPERAND_BITS)},
            )
            m.d.comb += self.p.eq(product[:self.p_bits])
        else:
            ra = Signal(a.shape(), name="a_r", reset_less=True)
            rb = Signal(b.shape(), name="b_r", reset_less=True)
            m.d.sync += [ra.eq(a), rb.eq(b), self.p.eq(ra * rb)]
        return m
