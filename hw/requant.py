"""Requantization in gateware: the contract's ``clamp((x * M + 2**(S-1)) >> S, 0, 255)``.

:func:`round_shift_clamp` is the one gateware expression of :func:`fireforge.hw.isa.requantize`
(round half up, arithmetic shift, clamp at 0 and 255), made of :func:`add_rounding`,
:func:`shift_clamp` and :func:`clamp`. The pipelines use those pieces with registers between
them (the convolution's requantizer: rounding, shift, clamp; the bypass add: rounding, then
shift and clamp); the unit tests compare the whole and the requantizer with the isa function.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .isa import ACC_BITS, ACT_BITS, ACT_MAX, MAX_SHIFT, MULT_BITS

__all__ = ["Requantizer", "round_shift_clamp", "add_rounding", "shift_clamp", "clamp",
           "SHIFT_BITS", "REQUANT_LATENCY"]

SHIFT_BITS = MAX_SHIFT.bit_length()


def round_shift_clamp(value: Value, shift: Value) -> Value:
    """``clamp((value + 2**(shift-1)) >> shift, 0, ACT_MAX)``; no rounding term when shift is 0.
    ``value`` is signed. In one cycle; pipelines split it into :func:`add_rounding` and
    :func:`shift_clamp` with a register between."""
    return shift_clamp(add_rounding(value, shift), shift)


def add_rounding(value: Value, shift: Value) -> Value:
    """``value + 2**(shift-1)`` (``value`` when shift is 0), one bit wider, signed."""
    width = len(value) + 1
    rnd = Mux(shift == 0, 0, Const(1, unsigned(width)) << (shift - 1)[:len(shift)])
    return value.as_signed() + rnd.as_signed()


def shift_clamp(rounded: Value, shift: Value) -> Value:
    """``clamp(rounded >> shift, 0, ACT_MAX)`` (arithmetic shift of a signed value)."""
    return clamp(rounded.as_signed() >> shift)


def clamp(value: Value) -> Value:
    """``value`` (signed) clamped to ``0 .. ACT_MAX``."""
    return Mux(value < 0, 0, Mux(value > ACT_MAX, ACT_MAX, value))


#: cycles from an input beat of the :class:`Requantizer` to its output byte
REQUANT_LATENCY = 5


class Requantizer(wiring.Component):
    """Five-stage pipeline: ``acc + bias``, times ``mult``, plus the rounding term, the shift,
    the clamp (each a short path at the ECP5's 100 MHz).

    Each input beat (``i_valid``) gives one output byte ``y`` :data:`REQUANT_LATENCY` cycles
    later with ``o_valid`` and the ``tag`` it came with (the output address). ``busy`` while any
    beat is in flight.
    """

    def __init__(self, tag_bits: int):
        super().__init__({
            "i_valid": In(1),
            "acc": In(signed(ACC_BITS)),
            "bias": In(signed(ACC_BITS)),
            "mult": In(unsigned(MULT_BITS)),
            "shift": In(unsigned(SHIFT_BITS)),
            "tag": In(tag_bits),
            "o_valid": Out(1),
            "y": Out(unsigned(ACT_BITS)),
            "o_tag": Out(tag_bits),
            "busy": Out(1),
        })
        self.tag_bits = tag_bits

    def elaborate(self, platform):
        m = Module()
        total = Signal(signed(ACC_BITS + 1), reset_less=True)
        prod = Signal(signed(ACC_BITS + 1 + MULT_BITS + 1), reset_less=True)
        rounded = Signal(signed(len(prod) + 1), reset_less=True)
        shifted = Signal(signed(len(prod) + 1), reset_less=True)
        v1, v2, v3, v4 = Signal(), Signal(), Signal(), Signal()
        t1, t2, t3, t4 = (Signal(self.tag_bits, name=f"t{k}") for k in range(1, 5))
        s1, s2, s3 = Signal(SHIFT_BITS), Signal(SHIFT_BITS), Signal(SHIFT_BITS)
        mult1 = Signal(signed(MULT_BITS + 1))
        m.d.sync += [
            total.eq(self.acc + self.bias), mult1.eq(self.mult), v1.eq(self.i_valid),
            t1.eq(self.tag), s1.eq(self.shift),
            prod.eq(total * mult1), v2.eq(v1), t2.eq(t1), s2.eq(s1),
            rounded.eq(add_rounding(prod, s2)), v3.eq(v2), t3.eq(t2), s3.eq(s2),
            shifted.eq(rounded >> s3), v4.eq(v3), t4.eq(t3),
            self.y.eq(clamp(shifted)), self.o_valid.eq(v4), self.o_tag.eq(t4),
        ]
        m.d.comb += self.busy.eq(self.i_valid | v1 | v2 | v3 | v4 | self.o_valid)
        return m
