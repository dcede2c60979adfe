"""A FIFO whose entries live in block RAM: the convolution engine's group FIFO on the iCE40.

``amaranth.lib.fifo.SyncFIFO`` reads its head combinationally, so yosys builds its storage from
flip-flops: on the UltraPlus, two groups of four int32 sums were 256 of its 5,280 logic cells.
:class:`BlockFIFO` reads synchronously, as a block RAM does, and keeps the head entry on the
read port: the address is the head's, or the next entry's in the cycle the head leaves. An entry
is readable two cycles after its write (one more than ``SyncFIFO``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bram import simple_dual_port

__all__ = ["BlockFIFO", "BLOCK_FIFO_EXTRA_LATENCY"]

#: cycles from write to readable beyond ``SyncFIFO``'s one
BLOCK_FIFO_EXTRA_LATENCY = 1


class BlockFIFO(wiring.Component):
    """The ports of ``amaranth.lib.fifo.SyncFIFO``: ``w_en``/``w_data``/``w_rdy`` write,
    ``r_rdy``/``r_data``/``r_en`` read (``r_data`` is the head while ``r_rdy``)."""

    def __init__(self, width: int, depth: int):
        if depth < 1 or depth & (depth - 1):
            raise ValueError(f"BlockFIFO depth {depth}: a power of two")
        self.width, self.depth = width, depth
        super().__init__({"w_en": In(1), "w_data": In(width), "w_rdy": Out(1),
                          "r_en": In(1), "r_data": Out(width), "r_rdy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        # A read of the entry written in the same cycle is undefined (see .bram): the FIFO
        # never uses that read (the entry is not readable yet); a read that returned the old
        # entry would cost ~130 cells of logic on the UltraPlus.
        rd, wr, r_data = simple_dual_port(m, "storage", self.width, depth, block=True)
        wp, rp, rd_addr = (Signal(range(depth), name=n) for n in ("wp", "rp", "rd_addr"))
        level = Signal(range(depth + 1))  # entries written and not yet read
        readable = Signal(range(depth + 1))  # of them, those on the read port's side
        written = Signal()  # an entry was written in the previous cycle
        push = self.w_en & self.w_rdy
        pop = self.r_en & self.r_rdy
        m.d.comb += [
            self.w_rdy.eq(level != depth), self.r_rdy.eq(readable != 0),
            wr.addr.eq(wp), wr.data.eq(self.w_data), wr.en.eq(push),
            # (wraps: the depth is a power of two)
            rd_addr.eq(rp + pop), rd.addr.eq(rd_addr),
        ]
        m.d.comb += self.r_data.eq(r_data)
        m.d.sync += [wp.eq(wp + push), rp.eq(rd_addr), written.eq(push),
                     level.eq(level + push - pop), readable.eq(readable + written - pop)]
        return m
