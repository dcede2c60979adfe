"""Requantization in gateware: the contract's ``clamp((x * M + 2**(S-1)) >> S, 0, 255)``.

No rounding adder and no full-width shifter are built. With ``q = x >> S`` (arithmetic) and
``r`` = bit ``S-1`` of ``x`` (0 when ``S`` is 0), ``(x + 2**(S-1)) >> S == q + r``; so the byte
needs only nine bits of ``x`` at a variable place (``r`` and the low byte of ``q``), whether any
bit above them is set, and the sign:

* :func:`select_window`: 16 bits of ``Cat(0, x)`` from bit ``8 * (S // 8)`` (a multiplexer of
  whole bytes), and whether a bit above them is set;
* :func:`window_bits`: the nine bits at ``S % 8`` inside the window and the "above" flag;
* :func:`clamp_byte`: 0 for a negative ``x``, 255 when ``q`` reaches 256, else
  ``min(q + r, 255)``.

:func:`round_shift_clamp` is all three in one cycle; the pipelines put registers between them
(the requantizer below, and the bypass add). The unit tests hold them to
:func:`fireforge.hw.isa.requantize`, the definition.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .dsp import MULTIPLIER_LATENCY, RegisteredMultiplier
from .isa import ACC_BITS, ACT_BITS, ACT_MAX, MAX_SHIFT, MULT_BITS

__all__ = ["Requantizer", "round_shift_clamp", "select_window", "window_bits", "clamp_byte",
           "Window", "Nine", "SHIFT_BITS", "REQUANT_LATENCY", "requant_latency"]

SHIFT_BITS = MAX_SHIFT.bit_length()
#: the shift's low bits, applied inside the window
_FINE_BITS = 3
_FINE = 1 << _FINE_BITS
#: ``r``, the byte of ``q``, and ``_FINE - 1`` places the fine shift may move them
_WINDOW_BITS = ACT_BITS + 1 + _FINE - 1
assert ACT_MAX == (1 << ACT_BITS) - 1

#: the output of :func:`select_window`
Window = data.StructLayout({
    "bits": _WINDOW_BITS,  # Cat(0, x) from bit 8 * (S // 8)
    "above": 1,            # a bit of Cat(0, x) above the window is set
    "negative": 1,         # x < 0
    "fine": _FINE_BITS,    # S % 8
})
#: the output of :func:`window_bits`
Nine = data.StructLayout({
    "r": 1,                # bit S-1 of x (the rounding bit)
    "q": ACT_BITS,         # bits S .. S+7 of x
    "above": 1,            # a bit of x from S+8 up is set
    "negative": 1,
})


def select_window(value: Value, shift: Value) -> Value:
    """The :data:`Window` of the signed ``value`` for ``shift``."""
    value = value.as_signed()
    places = 1 << (len(shift) - _FINE_BITS)
    width = max(len(value) + 1, _FINE * (places - 1) + _WINDOW_BITS)
    # Cat(0, value) (bit S of it is bit S-1 of value), sign-extended past the last window
    ext = Cat(Const(0, 1), value, value[-1].replicate(width - len(value) - 1))
    windows = [ext[_FINE * k:_FINE * k + _WINDOW_BITS] for k in range(places)]
    aboves = [ext[_FINE * k + _WINDOW_BITS:].any() if _FINE * k + _WINDOW_BITS < width
              else Const(0) for k in range(places)]
    coarse = shift[_FINE_BITS:]
    return Cat(Array(windows)[coarse], Array(aboves)[coarse], value[-1], shift[:_FINE_BITS])


def window_bits(window: Value) -> Value:
    """The :data:`Nine` bits of a :data:`Window`: a shift by ``S % 8`` inside it."""
    w = data.View(Window, window)
    moved = w.bits >> w.fine
    return Cat(moved[:ACT_BITS + 1], moved[ACT_BITS + 1:].any() | w.above, w.negative)


def clamp_byte(nine: Value) -> Value:
    """The requantized byte from the :data:`Nine` bits."""
    n = data.View(Nine, nine)
    rounded = n.q + n.r  # ACT_BITS + 1 bits: 256 when q is 255 and rounds up
    return Mux(n.negative, 0, Mux(n.above | rounded[ACT_BITS], ACT_MAX, rounded[:ACT_BITS]))


def round_shift_clamp(value: Value, shift: Value) -> Value:
    """``clamp((value + 2**(shift-1)) >> shift, 0, ACT_MAX)``; no rounding term when shift is 0.
    ``value`` is signed. In one cycle; the pipelines register between the three parts."""
    return clamp_byte(window_bits(select_window(value, shift)))


#: cycles from an input beat of the :class:`Requantizer` to its output byte (more when
#: ``pipelined``: see :func:`requant_latency`)
REQUANT_LATENCY = 5
#: the low part of ``acc + bias`` in the pipelined multiply: unsigned, so each part is one
#: 18 x 18 multiplier
_SPLIT_BITS = 16


def requant_latency(pipelined: bool) -> int:
    """Cycles from an input beat to its byte: pipelined, an input register, the multiplier's
    operand and product registers (instead of one product register) and the partial products'
    sum."""
    return REQUANT_LATENCY + 3 * pipelined


class Requantizer(wiring.Component):
    """Five-stage pipeline: ``acc + bias``, times ``mult``, the byte-wise window, the bit-wise
    shift, the clamp (each a short path at the ECP5's 100 MHz).

    Each input beat (``i_valid``) gives one output byte ``y`` :func:`requant_latency` cycles
    later with ``o_valid`` and the ``tag`` it came with (the output address). ``busy`` while any
    beat is in flight.

    ``pipelined`` (the large devices): the inputs are registered first (the bias and multiplier
    come straight from a block RAM, whose 5.8 ns clock-to-output left no time for the adder),
    and the 33 x 17-bit product is two partial products (the low 16 and the high 17 bits of
    ``acc + bias``), each a :class:`~.dsp.RegisteredMultiplier`, added in the stage after.
    """

    def __init__(self, tag_bits: int, pipelined: bool = False):
        self.pipelined = pipelined
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
        stages = []  # every valid bit but the output's

        def delay(valid, tag, shift, name):  # the beat's side band, one stage on
            v, t, sh = Signal(name=f"v_{name}"), Signal(self.tag_bits, name=f"t_{name}"), \
                Signal(SHIFT_BITS, name=f"s_{name}")
            m.d.sync += [v.eq(valid), t.eq(tag), sh.eq(shift)]
            stages.append(v)
            return v, t, sh

        acc, bias, mult = self.acc, self.bias, self.mult
        side = (self.i_valid, self.tag, self.shift)
        if self.pipelined:
            acc, bias, mult = (Signal(x.shape(), name=f"{n}_in", reset_less=True) for n, x in
                               (("acc", acc), ("bias", bias), ("mult", mult)))
            m.d.sync += [acc.eq(self.acc), bias.eq(self.bias), mult.eq(self.mult)]
            side = delay(*side, "in")
        total = Signal(signed(ACC_BITS + 1), reset_less=True)
        mult1 = Signal(signed(MULT_BITS + 1), reset_less=True)
        m.d.sync += [total.eq(acc + bias), mult1.eq(mult)]
        side = delay(*side, "total")
        prod = Signal(signed(ACC_BITS + 1 + MULT_BITS + 1), reset_less=True)
        if self.pipelined:
            m.submodules.lo = lo = RegisteredMultiplier(unsigned(_SPLIT_BITS), unsigned(MULT_BITS))
            m.submodules.hi = hi = RegisteredMultiplier(signed(len(total) - _SPLIT_BITS),
                                                        signed(MULT_BITS + 1))
            m.d.comb += [lo.a.eq(total[:_SPLIT_BITS]), lo.b.eq(mult1[:MULT_BITS]),
                         hi.a.eq(total[_SPLIT_BITS:].as_signed()), hi.b.eq(mult1)]
            for k in range(MULTIPLIER_LATENCY):
                side = delay(*side, f"mul{k}")
            m.d.sync += prod.eq((hi.p << _SPLIT_BITS) + lo.p)
        else:
            m.d.sync += prod.eq(total * mult1)
        valid, tag, shift = delay(*side, "prod")
        window = Signal(Window, reset_less=True)
        nine = Signal(Nine, reset_less=True)
        m.d.sync += window.eq(select_window(prod, shift))
        valid, tag, _ = delay(valid, tag, shift, "window")
        m.d.sync += nine.eq(window_bits(window))
        valid, tag, _ = delay(valid, tag, shift, "nine")
        m.d.sync += [self.y.eq(clamp_byte(nine)), self.o_valid.eq(valid), self.o_tag.eq(tag)]
        m.d.comb += self.busy.eq(Cat(self.i_valid, *stages, self.o_valid).any())
        return m
