"""Block RAM with a read port that does not care about a read of the word being written.

An Amaranth synchronous read port returns the old word when the same address is written in the
same cycle. Neither the ECP5's DP16KD nor the iCE40's SB_RAM40_4K promises that across its two
ports, so yosys builds it in logic: the write address and data in registers, an address
comparator, and a multiplexer after the block RAM's output, on every read path (on the 85F the
weight memory's, its critical path). :func:`simple_dual_port` builds the read as an asynchronous
read and a register, which yosys folds into the block RAM's read port, with the memory marked
``no_rw_check``: such a read returns an undefined word instead. Every user in fireforge reads a
word only while nothing writes it:

* the group FIFO (:class:`~.fifo.BlockFIFO`) reads an entry no earlier than the cycle after
  its write;
* the activation memory's writers and readers never overlap: within a layer the compiler keeps
  the output apart from the inputs (disjoint lifetimes), the next layer starts after the last
  write, and the host reads and writes only while the engine is idle;
* the model memories are written by the host into the load slot, which the engine does not
  read when there are two slots; with one, a load replaces the running model in place (what
  a run reads while it is written is undefined either way).

The simulators (Amaranth, Icarus, Verilator) return the old word; the tests check that no
engine read meets a write to its address (``tests/hw/test_accelerator.py``).
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Signal
from amaranth.lib import memory

__all__ = ["simple_dual_port", "BRAM_SHAPES", "BANK_LATENCY", "bram_blocks", "bank_depth"]

#: cycles a banked memory's read takes beyond the block RAM's own: the registers after each bank
#: (:func:`~.memories.dual_port`)
BANK_LATENCY = 2

#: (width, depth) arrangements of one block RAM: ECP5 DP16KD (16Kx1 .. 512x36), iCE40 EBR
#: (2Kx2 .. 256x16)
BRAM_SHAPES = {"ecp5": ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
               "ice40": ((2, 2048), (4, 1024), (8, 512), (16, 256))}


def _blocks(width: int, depth: int, shape: tuple[int, int]) -> int:
    """Blocks of one arrangement ``shape`` (block width, block depth) that the memory takes."""
    return math.ceil(width / shape[0]) * math.ceil(depth / shape[1])


def bram_blocks(width: int, depth: int, family: str) -> int:
    """Block RAMs of ``family`` that a ``width`` x ``depth`` memory takes: the cheapest of the
    block's arrangements, as yosys maps it."""
    return min(_blocks(width, depth, s) for s in BRAM_SHAPES[family])


def bank_depth(width: int, depth: int, family: str = "ecp5") -> int:
    """The depth of one bank of block RAMs side by side (no block below another, so no
    multiplexer of blocks after the read) in the arrangement of fewest blocks: the deepest
    such arrangement, so the fewest banks."""
    best = bram_blocks(width, depth, family)
    return max(s[1] for s in BRAM_SHAPES[family] if _blocks(width, depth, s) == best)


def simple_dual_port(m: Module, name: str, width: int, depth: int, init=(), granularity=None,
                     block: bool = False):
    """A ``width`` x ``depth`` memory ``m.submodules[name]``: returns ``(read, write, data)``,
    ``read`` an asynchronous read port whose ``data`` goes through a register, ``data`` (the
    word at ``read.addr`` one cycle later), ``write`` a write port of ``granularity``-bit lanes
    (default: the whole word). ``block``: block RAM even where yosys would choose logic (a
    shallow memory)."""
    attrs = {"no_rw_check": 1} | ({"ram_style": "block"} if block else {})
    m.submodules[name] = mem = memory.Memory(shape=width, depth=depth, init=list(init),
                                             attrs=attrs)
    rd = mem.read_port(domain="comb")
    wr = mem.write_port(granularity=granularity)
    # (no reset: a block RAM's output register is cleared by its own reset pin, which yosys
    # would have to emulate)
    data = Signal(width, name=f"{name}_q", reset_less=True)
    m.d.sync += data.eq(rd.data)
    return rd, wr, data
