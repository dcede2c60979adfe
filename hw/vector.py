"""The element-wise units: the pool (max pool and global sum) and the bypass add.

They read the activation memory a word a cycle (the max pool and the global sum: a word of
``lanes`` channels; the add: a byte, two reads per element) and need no multiplier in their
address arithmetic: every address moves by a stride, and the
products of layer sizes come from the sequencer (:data:`~.isa.LayerConstants`). They are not
counted in MAC-array utilization.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from .isa import ACC_BITS, ACT_BITS, MULT_BITS, Op
from .ops import UnitSignature
from .requant import Window, clamp_byte, select_window, window_bits

__all__ = ["Pool", "BypassAdd"]


def _read_stage(m: Module, latency: int, pairs: list) -> list[Signal]:
    """``dst`` follows ``src`` by ``latency`` cycles, the activation memory's read latency, so
    it lines up with the data. Returns the first signal of each earlier stage (by convention the
    valid bit), which the drain condition must wait for too."""
    values = [src for _, src in pairs]
    earlier = []
    for k in range(latency - 1):
        regs = [Signal.like(dst, name=f"{dst.name}_s{k}") for dst, _ in pairs]
        m.d.sync += [r.eq(v) for r, v in zip(regs, values, strict=True)]
        earlier.append(regs[0])
        values = regs
    m.d.sync += [dst.eq(v) for (dst, _), v in zip(pairs, values, strict=True)]
    return earlier


def _control(m: Module, unit, running: Signal, drained, load: list, step, setup: bool = True):
    """The element units' control: on ``start``, the ``load`` statements (layer constants and
    counters); ``running`` rises then (``setup=False``) or a cycle later, when constants derived
    in ``load`` are ready; ``step()`` emits one cycle's counter updates while ``running`` (it
    clears ``running`` after the last element); ``done`` pulses once ``drained``."""
    m.d.comb += unit.done.eq(0)
    with m.FSM():
        with m.State("IDLE"):
            with m.If(unit.start):
                m.d.sync += load
                if setup:
                    m.next = "SETUP"
                else:
                    m.d.sync += running.eq(1)
                    m.next = "RUN"
        if setup:
            with m.State("SETUP"):
                m.d.sync += running.eq(1)
                m.next = "RUN"
        with m.State("RUN"):
            with m.If(running):
                step()
            with m.Elif(drained):
                m.d.comb += unit.done.eq(1)
                m.next = "IDLE"


class Pool(wiring.Component):
    """Max pool and global sum: one walker over windows of the input map.

    Per output row and channel, the row's windows left to right, one cycle per window position
    read:

    * ``MAXPOOL``: 3x3 windows at stride 2, ceil mode. Positions past the edge read as 0, which
      cannot win over unsigned values. The maximum goes to the activation memory. With
      ``lanes`` > 1 (activation words of that many bytes) a window covers ``lanes`` channels,
      one maximum per byte, written back as one word (channels past ``in_c`` not written).
      A window's first column is its left neighbour's last: the maximum of that column is
      kept, so every window but a row's first reads 6 positions, not 9.
    * ``AVGPOOL``: one window, the whole map (the descriptor's output is 1x1). The int32 sum of
      each channel goes to the result memory at ``out_addr + c``. With ``lanes`` > 1 a word's
      channels are summed together, one word a cycle; then the walker waits while their sums
      go to the result memory, one a cycle (:func:`~.perf.avgpool_cycles` counts it).
    """

    def __init__(self, aw: int, res_aw: int, read_latency: int = 1, lanes: int = 1):
        self._aw = aw
        self.lanes = lanes
        self.read_latency = read_latency
        super().__init__(UnitSignature(aw, lanes, {
            "res_waddr": Out(res_aw), "res_wdata": Out(signed(ACC_BITS)), "res_we": Out(1)}))

    def elaborate(self, platform):
        m = Module()
        d = self.desc
        aw = self._aw + 2
        R = self.lanes
        lr = R.bit_length() - 1
        # c counts channels of a global sum, or words of R channels of a max pool; the loops,
        # outermost first: oy, c, ox, ky, kx
        oy, ox, c = Signal(10), Signal(10), Signal(12)
        n_c = Signal(12) if R > 1 else d.in_c  # c's count
        last_mask = Signal(R)  # the channels of the last word
        ky, kx = Signal(10), Signal(10)  # the position in the window
        ky_last, kx_last = Signal(10), Signal(10)  # the window's size - 1
        is_sum = Signal()
        # "at its last value" of each counter, registers kept one step ahead (the chain of
        # their comparators in one cycle would be the UP5K's critical path)
        kx_end, ky_end, c_end, ox_end, oy_end = (Signal(name=f"{n}_end")
                                                 for n in ("kx", "ky", "c", "ox", "oy"))
        stride, stride3, rowstride = Signal(aw), Signal(aw), Signal(aw)
        orow, opix, krow, kaddr = (Signal(aw, name=n) for n in ("orow", "opix", "krow", "kaddr"))
        outpix, outrow = Signal(aw), Signal(aw)
        reuse = Signal()  # this window starts at column 1: column 0 was its neighbour's 2
        running = Signal()
        # (lanes > 1) a word's sums are going to the result memory: the walker waits
        draining = Signal()
        issuing = running & ~draining
        # issue stage -> data stage
        v1, first1, last1, inb1 = Signal(), Signal(), Signal(), Signal()
        reuse1, col2_1, row0_1 = Signal(), Signal(), Signal()
        waddr1, mask1 = Signal(aw), Signal(R)
        iy, ix = (oy << 1) + ky, (ox << 1) + kx
        inb = (iy < d.in_h) & (ix < d.in_w)
        first = (ky == 0) & (kx == reuse)
        last = ky_end & kx_end
        c_byte = c << lr  # the first channel of the word
        m.d.comb += self.act_raddr.eq((kaddr + c_byte)[lr:self._aw])
        stage = [(v1, issuing), (first1, first), (last1, last), (inb1, inb),
                 (waddr1, outpix + c_byte), (reuse1, reuse), (col2_1, kx_end),
                 (row0_1, ky == 0)]
        if R > 1:
            stage += [(mask1, Mux(c_end, last_mask, (1 << R) - 1))]
        pending = _read_stage(m, self.read_latency, stage)
        values = [Mux(inb1, self.act_rdata.word_select(r, ACT_BITS), 0) for r in range(R)]
        # the maximum of the window's last column, per lane: the next window's first column
        col2s = [Signal(ACT_BITS, name=f"col2_{r}") for r in range(R)]

        def vmax(a, b):
            return Mux(a > b, a, b)

        with m.If(v1 & col2_1):
            m.d.sync += [k.eq(Mux(row0_1, v, vmax(k, v))) for k, v in zip(col2s, values,
                                                                          strict=True)]
        starts = [Mux(reuse1, vmax(k, v), v) for k, v in zip(col2s, values, strict=True)]
        if R == 1:
            acc = Signal(ACC_BITS)  # the sum so far, or the maximum (8 bits)
            bests = [acc[:ACT_BITS]]
            total = Mux(is_sum, acc + values[0], vmax(bests[0], values[0]))
            with m.If(v1):
                m.d.sync += acc.eq(Mux(first1, starts[0], total))
        else:
            bests = [Signal(ACT_BITS, name=f"best{r}") for r in range(R)]
            with m.If(v1):
                m.d.sync += [b.eq(Mux(first1, start, vmax(b, v)))
                             for b, v, start in zip(bests, values, starts, strict=True)]
            self._word_sums(m, values, v1 & is_sum, first1, last1, mask1, waddr1, draining)
        # The window's result is written a cycle later, from the accumulator: the memory's
        # read data, the comparison or sum, and the write data in one cycle would be the
        # UP5K's critical path.
        write, waddr2, mask2 = Signal(), Signal(aw), Signal(R, init=1)
        m.d.sync += [write.eq(v1 & last1), waddr2.eq(waddr1)]
        if R > 1:
            m.d.sync += mask2.eq(mask1)
        m.d.comb += [self.act_we.eq(Mux(write & ~is_sum, mask2, 0)),
                     self.act_waddr.eq(waddr2[lr:self._aw]),
                     self.act_wdata.eq(Cat(bests))]
        if R == 1:
            m.d.comb += [self.res_we.eq(write & is_sum), self.res_waddr.eq(waddr2),
                         self.res_wdata.eq(acc)]
        base = d.in_addr + d.in_offset
        sums = d.op == Op.AVGPOOL
        n_words = (d.in_c + (R - 1)) >> lr if R > 1 else d.in_c
        # (a window of one pixel: a global sum of a 1x1 map)
        load = [is_sum.eq(sums), kx_last.eq(Mux(sums, d.in_w - 1, 2)),
                ky_last.eq(Mux(sums, d.in_h - 1, 2)), kx_end.eq(sums & (d.in_w == 1)),
                ky_end.eq(sums & (d.in_h == 1)),
                stride.eq(d.in_stride), stride3.eq(d.in_stride + (d.in_stride << 1)),
                rowstride.eq(self.consts.rowstride), oy.eq(0), ox.eq(0),
                c.eq(0), ky.eq(0), kx.eq(0), orow.eq(base), opix.eq(base), krow.eq(base),
                kaddr.eq(base), outpix.eq(d.out_addr + d.out_offset),
                outrow.eq(d.out_addr + d.out_offset), reuse.eq(0), c_end.eq(n_words == 1),
                ox_end.eq(d.out_w == 1), oy_end.eq(d.out_h == 1)]
        if R > 1:
            load += [n_c.eq(n_words), last_mask.eq(Mux(d.in_c[:lr] == 0, (1 << R) - 1,
                                                       (Const(1, R + 1) << d.in_c[:lr]) - 1))]

        def step():
            with m.If(draining):
                pass
            with m.Elif(~kx_end):
                m.d.sync += [kx.eq(kx + 1), kx_end.eq(kx + 1 == kx_last),
                             kaddr.eq(kaddr + stride)]
            with m.Else():
                # (a window row starts at column 1 where the window reuses its column 0;
                # kx_last is 2 there, so the row's end is never its start)
                m.d.sync += [kx.eq(reuse), kx_end.eq(kx_last == 0)]
                with m.If(~ky_end):
                    m.d.sync += [ky.eq(ky + 1), ky_end.eq(ky + 1 == ky_last),
                                 krow.eq(krow + rowstride), kaddr.eq(krow + rowstride)]
                with m.Else():
                    m.d.sync += [ky.eq(0), ky_end.eq(ky_last == 0)]
                    with m.If(~ox_end):  # the row's next window, from its column 1
                        m.d.sync += [ox.eq(ox + 1), ox_end.eq(ox + 2 == d.out_w),
                                     opix.eq(opix + (stride << 1)), krow.eq(opix + stride3),
                                     kaddr.eq(opix + stride3), outpix.eq(outpix + d.out_stride),
                                     reuse.eq(~is_sum), kx.eq(~is_sum)]
                    with m.Else():  # the row's first window, of the next channel word or row
                        m.d.sync += [ox.eq(0), ox_end.eq(d.out_w == 1), reuse.eq(0), kx.eq(0)]
                        with m.If(~c_end):
                            m.d.sync += [c.eq(c + 1), c_end.eq(c + 2 == n_c), opix.eq(orow),
                                         krow.eq(orow), kaddr.eq(orow), outpix.eq(outrow)]
                        with m.Else():
                            nxt = orow + (rowstride << 1)
                            m.d.sync += [c.eq(0), c_end.eq(n_c == 1), oy.eq(oy + 1),
                                         oy_end.eq(oy + 2 == d.out_h), orow.eq(nxt),
                                         opix.eq(nxt), krow.eq(nxt), kaddr.eq(nxt),
                                         outpix.eq(outpix + d.out_stride),
                                         outrow.eq(outpix + d.out_stride)]
                            with m.If(oy_end):
                                m.d.sync += running.eq(0)
                    if R > 1:  # a word's last position: wait for its sums to be written
                        with m.If(is_sum):
                            m.d.sync += draining.eq(1)

        _control(m, self, running, ~Cat(v1, write, draining, *pending).any(), load, step,
                 setup=False)
        return m

    def _word_sums(self, m: Module, values, valid, first, last, mask, waddr, draining):
        """A global sum over words of ``lanes`` channels: each channel's sum accumulates as its
        word is read (``valid``, ``first``, ``last``: the read data's flags); after the last
        position the sums of the word's channels (``mask``) go to the result memory from
        ``waddr`` on, one a cycle, and ``draining`` falls with the last."""
        R = self.lanes
        sums = [Signal(ACC_BITS, name=f"sum{r}") for r in range(R)]
        out = [Signal(ACC_BITS, name=f"out{r}") for r in range(R)]  # shifted out from out[0]
        left = Signal(R)  # the channels still to write, as a mask shifted with ``out``
        addr = Signal.like(waddr)
        with m.If(valid):
            m.d.sync += [s.eq(Mux(first, v, s + v)) for s, v in zip(sums, values, strict=True)]
        with m.If(valid & last):
            m.d.sync += [*(o.eq(s + v) for o, s, v in zip(out, sums, values, strict=True)),
                         left.eq(mask), addr.eq(waddr)]
        with m.Elif(left[0]):
            m.d.sync += [*(a.eq(b) for a, b in zip(out, out[1:], strict=False)),
                         left.eq(left >> 1), addr.eq(addr + 1)]
            with m.If(left[1:] == 0):
                m.d.sync += draining.eq(0)
        m.d.comb += [self.res_we.eq(left[0]), self.res_waddr.eq(addr), self.res_wdata.eq(out[0])]


class BypassAdd(wiring.Component):
    """``clamp((x1 * mult1 + x2 * mult2 + 2**(shift-1)) >> shift, 0, 255)`` per element; two
    reads (one port) per element."""

    def __init__(self, aw: int, read_latency: int = 1):
        self._aw = aw
        self.read_latency = read_latency
        super().__init__(UnitSignature(aw))

    def elaborate(self, platform):
        m = Module()
        d = self.desc
        pix, c = Signal(20), Signal(12)
        a1, a2, ao = Signal(self._aw + 1), Signal(self._aw + 1), Signal(self._aw + 1)
        phase = Signal()  # 0: read x1, 1: read x2
        running = Signal()
        npix = Signal(20)
        v1, ph1 = Signal(), Signal()
        o1, o2 = Signal(self._aw + 1), Signal(self._aw + 1)
        x1 = Signal(ACT_BITS)
        sum_v, sum_o = Signal(), Signal(self._aw + 1)
        total = Signal(signed(ACT_BITS + MULT_BITS + 2))
        rnd_v, rnd_o = Signal(), Signal(self._aw + 1)
        window = Signal(Window)
        m.d.comb += self.act_raddr.eq(Mux(phase, a2 + c, a1 + c)[:self._aw])
        pending = _read_stage(m, self.read_latency, [(v1, running), (ph1, phase), (o1, ao + c)])
        with m.If(v1 & ~ph1):
            m.d.sync += [x1.eq(self.act_rdata), o2.eq(o1)]
        m.d.sync += sum_v.eq(v1 & ph1)
        with m.If(v1 & ph1):
            m.d.sync += [total.eq(x1 * d.mult1 + self.act_rdata * d.mult2), sum_o.eq(o2)]
        # the requantizer's window, then its shift and clamp, a register apart
        m.d.sync += [rnd_v.eq(sum_v), rnd_o.eq(sum_o), window.eq(select_window(total, d.shift))]
        m.d.comb += [self.act_we.eq(rnd_v), self.act_waddr.eq(rnd_o[:self._aw]),
                     self.act_wdata.eq(clamp_byte(window_bits(window)))]
        load = [npix.eq(self.consts.out_pixels), pix.eq(0), c.eq(0), phase.eq(0),
                a1.eq(d.in_addr + d.in_offset), a2.eq(d.in2_addr),
                ao.eq(d.out_addr + d.out_offset)]

        def step():
            m.d.sync += phase.eq(~phase)
            with m.If(phase):
                with m.If(c + 1 < d.out_c):
                    m.d.sync += c.eq(c + 1)
                with m.Else():
                    m.d.sync += [c.eq(0), pix.eq(pix + 1), a1.eq(a1 + d.in_stride),
                                 a2.eq(a2 + d.in2_stride), ao.eq(ao + d.out_stride)]
                    with m.If(pix + 1 == npix):
                        m.d.sync += running.eq(0)

        _control(m, self, running, ~Cat(v1, sum_v, rnd_v, *pending).any(), load, step)
        return m
