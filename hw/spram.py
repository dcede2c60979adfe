"""Single-port RAM: the iCE40 UltraPlus SPRAM (``SB_SPRAM256KA``, 16K x 16 bits), or a model of
it everywhere else (simulation, other devices), with the same behaviour at the ports.

One access per cycle: a write (some byte lanes of ``we`` set) or a read, whose data appears on
``rdata`` in the next cycle. During a write ``rdata`` is not defined (the model holds it). The
SPRAM has no initial contents in the bitstream: whatever lives in it is written at run time.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SinglePortRAM", "SPRAM_WIDTH", "SPRAM_DEPTH", "SPRAM_BYTES"]

#: one SB_SPRAM256KA
SPRAM_WIDTH = 16
SPRAM_DEPTH = 16384
SPRAM_BYTES = SPRAM_WIDTH * SPRAM_DEPTH // 8


class SinglePortRAM(wiring.Component):
    """``width`` bits (a multiple of 16: that many SPRAMs side by side) by ``depth`` words (at
    most one SPRAM deep), written by byte lanes."""

    def __init__(self, width: int, depth: int):
        if width % SPRAM_WIDTH or not 0 < depth <= SPRAM_DEPTH:
            raise ValueError(f"a single-port RAM of {width} x {depth}: the width must be a "
                             f"multiple of {SPRAM_WIDTH} and the depth at most {SPRAM_DEPTH}")
        self.width, self.depth = width, depth
        super().__init__({
            "addr": In(range(depth)),
            "wdata": In(width),
            "we": In(width // 8),
            "rdata": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        if str(getattr(platform, "family", "")).lower() == "ice40":  # SiliconBluePlatform
            for i in range(self.width // SPRAM_WIDTH):
                lanes = self.we[2 * i:2 * i + 2]
                m.submodules[f"spram{i}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr, i_DATAIN=self.wdata[16 * i:16 * i + 16],
                    # MASKWREN enables nibbles: two per byte lane
                    i_MASKWREN=Cat(lanes[0], lanes[0], lanes[1], lanes[1]),
                    i_WREN=lanes.any(), i_CHIPSELECT=Const(1), i_CLOCK=ClockSignal(),
                    i_STANDBY=Const(0), i_SLEEP=Const(0), i_POWEROFF=Const(1),
                    o_DATAOUT=self.rdata[16 * i:16 * i + 16])
        else:
            m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
            wr = mem.write_port(granularity=8)
            rd = mem.read_port()
            m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                         rd.addr.eq(self.addr), rd.en.eq(~self.we.any()),
                         self.rdata.eq(rd.data)]
        return m
