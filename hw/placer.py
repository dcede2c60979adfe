"""The pixel placer: raw image bytes in, the loaded model's input placement written on chip.

Where the first layer reads an unfolded input (each output pixel's ``k x k x c`` window as its
channels, :data:`~.protocol.InputPlacement`), the host would send every pixel up to ``k * k``
times. :class:`PixelPlacer` takes each pixel once, from the link's image stage (row after row,
channel innermost, as ``WRITE_PIXELS`` wrote it) when ``RUN`` starts an image, and writes it to
every window position that holds it; the padding
around the image is written with the pad value. The result is byte for byte what
:func:`~.protocol.place_image` writes, except the zero bytes that fill a pixel up to
``pixel_bytes``, which the placer leaves as they are: the compiler's weights for them are 0.

The placer walks the *padded* image, ``(height + 2 pad) x (width + 2 pad)`` pixels of
``channels`` values: a value inside the image is the next input byte, one in the border is the
pad value. Value ``ci`` of padded pixel ``(py, px)`` is tap ``(ky, kx)`` of output pixel
``((py - ky) / s, (px - kx) / s)`` wherever both divisions are exact and the window lies inside
the padded image; it goes to byte ``(ky * k + kx) * c + ci`` of that pixel. One tap a cycle,
the addresses by additions only (the row's byte count is summed once per image), so the
placer costs counters and adders, not multipliers: ``k * k + 3`` cycles a value (the next byte
from the stage arrives meanwhile, in the input register), about 14,000 for a 32x32 gray image
with a 3x3 window, 140 us at 100 MHz before the run, while the image took 5 ms to cross the
link at 2 Mbaud.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import InputPlacement

__all__ = ["PixelPlacer"]


class PixelPlacer(wiring.Component):
    """Members
    -------
    placement : ``In(InputPlacement)``
        The loaded model's placement; held steady while an image is placed.
    start : ``In(1)``
        Begin an image (while ``done`` or waiting for a byte).
    pixels : ``In(stream.Signature(8))``
        The image's bytes in order, into a one-byte input register: ``ready`` while it is
        empty (a register: the source's state reaches no enable inside the placer, which on
        the 85F was a failing path), so the next byte waits there while a pixel is placed.
    waiting : ``Out(1)``
        The placer needs the next byte and none is there: a source that has no more has sent
        too few.
    done : ``Out(1)``
        The whole image is placed (or none was started): no byte is taken until ``start``. A
        byte still in the input register then (``ready`` low) is one byte too many.
    position : ``Out(addr_width + 2)``
        Bytes taken since ``start``.
    addr, data, we : ``Out``
        Activation-memory byte writes.
    """

    def __init__(self, addr_width: int):
        self.addr_width = addr_width
        super().__init__({
            "placement": In(InputPlacement),
            "start": In(1),
            "pixels": In(stream.Signature(8)),
            "waiting": Out(1),
            "done": Out(1),
            "position": Out(addr_width + 2),
            "addr": Out(addr_width),
            "data": Out(8),
            "we": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pl, aw = self.placement, self.addr_width
        off = aw + 1  # byte offsets within the placed tensor (they wrap below 0 unused)
        # the image's geometry, latched at start
        k, s, pad, value = Signal(8), Signal(8), Signal(8), Signal(8)
        c, c_last = Signal(16), Signal(16)
        pb, base, row_bytes = Signal(off), Signal(aw), Signal(off)
        hp, wp_last, y_hi, x_hi = Signal(17), Signal(17), Signal(17), Signal(17)
        ylim, xlim, t = Signal(signed(18)), Signal(signed(18)), Signal(18)
        # the padded pixel and value being placed, its stride phase and placed-row offsets
        py, px, ci = Signal(17), Signal(17), Signal(16)
        py_r, px_r = Signal(8), Signal(8)
        py_row, px_col = Signal(off), Signal(off)
        end, inside = Signal(), Signal()
        # the tap being written: the window row/column start it names, phases, offsets
        ky, kx = Signal(8), Signal(8)
        ry, rx = Signal(signed(18)), Signal(signed(18))
        ry_r, rx_r = Signal(8), Signal(8)
        row, col, tap = Signal(off), Signal(off), Signal(off)
        # the write stage: a registered tap's validity and the two halves of its address
        w_ok, w_a, w_b = Signal(), Signal(off), Signal(off)
        m.d.comb += [self.addr.eq(w_a + w_b), self.data.eq(value), self.we.eq(w_ok)]
        m.d.sync += w_ok.eq(0)
        # the input register
        held, byte = Signal(), Signal(8)
        m.d.comb += self.pixels.ready.eq(~held)
        with m.If(self.pixels.valid & ~held):
            m.d.sync += [held.eq(1), byte.eq(self.pixels.payload)]

        def restart():
            with m.If(self.start):
                m.d.sync += held.eq(0)
                m.next = "LATCH"

        with m.FSM(init="DONE"):
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                restart()
            with m.State("LATCH"):
                windowed = pl.window != 0  # (no window: each pixel is placed as it is)
                m.d.sync += [k.eq(Mux(windowed, pl.window, 1)),
                             s.eq(Mux(windowed, pl.window_stride, 1)),
                             pad.eq(Mux(windowed, pl.window_pad, 0)),
                             c.eq(pl.channels), pb.eq(pl.pixel_bytes), base.eq(pl.addr)]
                m.next = "LIMITS"
            with m.State("LIMITS"):
                h2, w2 = pl.height + 2 * pad, pl.width + 2 * pad
                m.d.sync += [hp.eq(h2), wp_last.eq(w2 - 1), ylim.eq(h2 - k), xlim.eq(w2 - k),
                             y_hi.eq(pad + pl.height), x_hi.eq(pad + pl.width),
                             c_last.eq(c - 1), row_bytes.eq(0), t.eq(k),
                             py.eq(0), px.eq(0), ci.eq(0), py_r.eq(0), px_r.eq(0),
                             py_row.eq(0), px_col.eq(0), self.position.eq(0)]
                m.next = "ROW_BYTES"
            with m.State("ROW_BYTES"):
                # one pixel_bytes per window along a row: out_w * pixel_bytes, no multiplier
                with m.If(t <= wp_last + 1):
                    m.d.sync += [row_bytes.eq(row_bytes + pb), t.eq(t + s)]
                with m.Else():
                    m.next = "CLASSIFY"
            with m.State("CLASSIFY"):
                m.d.sync += [end.eq(py == hp),
                             inside.eq((py >= pad) & (py < y_hi) & (px >= pad) & (px < x_hi))]
                m.next = "NEXT"
            with m.State("NEXT"):
                taps = [ky.eq(0), kx.eq(0), ry.eq(py), ry_r.eq(py_r), row.eq(py_row),
                        rx.eq(px), rx_r.eq(px_r), col.eq(px_col), tap.eq(ci)]
                with m.If(end):
                    m.next = "DONE"
                with m.Elif(~inside):
                    m.d.sync += [value.eq(pl.pad_value), *taps]
                    m.next = "TAPS"
                with m.Elif(held):
                    m.d.sync += [value.eq(byte), held.eq(0),
                                 self.position.eq(self.position + 1), *taps]
                    m.next = "TAPS"
                with m.Else():
                    m.d.comb += self.waiting.eq(1)
                    restart()
            with m.State("TAPS"):
                m.d.sync += [w_ok.eq(~ry[-1] & ~rx[-1] & (ry_r == 0) & (rx_r == 0)
                                     & (ry <= ylim) & (rx <= xlim)),
                             w_a.eq(row + col), w_b.eq(base + tap), tap.eq(tap + c)]
                with m.If(kx == k - 1):
                    # the window row above: back to this pixel's column
                    m.d.sync += [kx.eq(0), rx.eq(px), rx_r.eq(px_r), col.eq(px_col),
                                 ky.eq(ky + 1), ry.eq(ry - 1)]
                    with m.If(ry_r == 0):
                        m.d.sync += [ry_r.eq(s - 1), row.eq(row - row_bytes)]
                    with m.Else():
                        m.d.sync += ry_r.eq(ry_r - 1)
                    with m.If(ky == k - 1):
                        m.next = "ADVANCE"
                with m.Else():
                    m.d.sync += [kx.eq(kx + 1), rx.eq(rx - 1)]
                    with m.If(rx_r == 0):
                        m.d.sync += [rx_r.eq(s - 1), col.eq(col - pb)]
                    with m.Else():
                        m.d.sync += rx_r.eq(rx_r - 1)
            with m.State("ADVANCE"):
                with m.If(ci != c_last):
                    m.d.sync += ci.eq(ci + 1)
                with m.Elif(px != wp_last):
                    m.d.sync += [ci.eq(0), px.eq(px + 1)]
                    with m.If(px_r == s - 1):
                        m.d.sync += [px_r.eq(0), px_col.eq(px_col + pb)]
                    with m.Else():
                        m.d.sync += px_r.eq(px_r + 1)
                with m.Else():
                    m.d.sync += [ci.eq(0), px.eq(0), px_r.eq(0), px_col.eq(0), py.eq(py + 1)]
                    with m.If(py_r == s - 1):
                        m.d.sync += [py_r.eq(0), py_row.eq(py_row + row_bytes)]
                    with m.Else():
                        m.d.sync += py_r.eq(py_r + 1)
                m.next = "CLASSIFY"
        return m
