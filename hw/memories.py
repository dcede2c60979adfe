"""The accelerator's memories: block RAM and SPRAM ports as the engines drive them, the model
memories (program, weights, codebooks, per-channel parameters) with their load path, and the
activation memory.

Every memory here reads synchronously (the data a cycle after the address, or
:data:`~.bram.BANK_LATENCY` more where banked) and writes byte lanes. Model memories hold
``config.model_slots`` copies: the engines read the active slot, the host's load writes the
other one (or the only one), so a load never disturbs the running model where there are two.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal

from .bram import BANK_LATENCY, bank_depth, simple_dual_port
from .config import AcceleratorConfig
from .conv import mask_parts, weight_parts
from .isa import ACT_BITS, CHANNEL_PARAMS_BYTES, PROGRAM_WORD_BYTES
from .protocol import Space
from .spram import SinglePortRAM

__all__ = ["MemoryPort", "address_bits", "dual_port", "split_dual_port", "single_port",
           "banked_activations", "activation_memory", "memory_images", "model_memories",
           "load_path", "slot_bases"]


def address_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


class MemoryPort:
    """One memory as the accelerator drives it: a read (data the next cycle) and a write of
    byte lanes ``wr_en``."""

    def __init__(self, name: str, width: int, depth: int, lanes: int):
        aw = address_bits(depth)
        self.rd_addr = Signal(aw, name=f"{name}_raddr")
        self.wr_addr = Signal(aw, name=f"{name}_waddr")
        self.rd_data = Signal(width, name=f"{name}_rdata")
        self.wr_data = Signal(width, name=f"{name}_wdata")
        self.wr_en = Signal(lanes, name=f"{name}_we")
        #: some lane is written (without the lane decode: a short path to a single port's
        #: address multiplexer)
        self.wr_any = Signal(name=f"{name}_wany")


def dual_port(m: Module, name: str, width: int, depth: int, init=(),
               banked: bool = False) -> MemoryPort:
    """Block RAM (initialised by the bitstream): a read and a write in the same cycle, a read
    of the word being written undefined (:mod:`.bram`); the data the next cycle.

    ``banked``: the data :data:`BANK_LATENCY` cycles later, from banks of block RAMs side
    by side (:func:`~.bram.bank_depth`), each bank's output through that many registers before
    the multiplexer of the banks. An ECP5 block RAM's output comes 5.8 ns after the clock;
    through the multiplexer yosys puts after blocks stacked in depth, to a register across the
    85F, it was a failing path, and so was one register after it, pulled 50 rows away from its
    block toward the multiplexer: the first register stays beside the block, the second
    travels."""
    lanes = max(1, width // 8)
    port = MemoryPort(name, width, depth, lanes)
    init = list(init)
    bd = bank_depth(width, depth) if banked else depth
    banks = -(-depth // bd)
    ab = address_bits(bd) if banks > 1 else len(port.rd_addr)  # bank address bits
    datas = []
    for b in range(banks):
        rd, wr, rd_data = simple_dual_port(
            m, f"{name}_bank{b}" if banks > 1 else name, width, min(bd, depth - b * bd),
            init[b * bd:(b + 1) * bd], granularity=width // lanes)
        en = (port.wr_en & (port.wr_addr[ab:] == b).replicate(lanes) if banks > 1
              else port.wr_en)
        m.d.comb += [rd.addr.eq(port.rd_addr[:ab]), wr.addr.eq(port.wr_addr[:ab]),
                     wr.data.eq(port.wr_data), wr.en.eq(en)]
        for k in range(BANK_LATENCY if banked else 0):
            q = Signal(width, name=f"{name}_bank{b}_q{k}", reset_less=True)
            m.d.sync += q.eq(rd_data)
            rd_data = q
        datas.append(rd_data)
    if banks > 1:
        sel = port.rd_addr[ab:]
        for _ in range(1 + BANK_LATENCY):  # (the block RAM's cycle and the bank register)
            later = Signal.like(sel)
            m.d.sync += later.eq(sel)
            sel = later
        m.d.comb += port.rd_data.eq(Array(datas)[sel])
    else:
        m.d.comb += port.rd_data.eq(datas[0])
    return port


def split_dual_port(m: Module, name: str, width: int, depth: int, init,
                     parts: int, banked: bool = False) -> tuple[MemoryPort, list[MemoryPort]]:
    """A dual-port memory of ``parts`` side-by-side slices of the word (returned), each with
    its own read address and write port: a register copy each can drive, so no one register
    reaches every block RAM of a wide word. The whole word is read on the first returned port's
    ``rd_data``; the slices take their read addresses and writes themselves."""
    port = MemoryPort(name, width, depth, width // 8)
    pw = width // parts
    slices = [dual_port(m, f"{name}{k}" if parts > 1 else name, pw, depth,
                         [(v >> (k * pw)) & ((1 << pw) - 1) for v in init], banked)
              for k in range(parts)]
    m.d.comb += port.rd_data.eq(Cat(p.rd_data for p in slices))
    return port, slices


def single_port(m: Module, name: str, width: int, depth: int) -> MemoryPort:
    """Single-port RAM (SPRAM on the iCE40 UltraPlus): a write takes the cycle from the read.
    The writer (the host's model load) only writes while the engine is idle."""
    port = MemoryPort(name, width, depth, width // 8)
    m.submodules[name] = ram = SinglePortRAM(width, depth)
    m.d.comb += [ram.addr.eq(Mux(port.wr_any, port.wr_addr, port.rd_addr)),
                 ram.wdata.eq(port.wr_data), ram.we.eq(port.wr_en),
                 port.rd_data.eq(ram.rdata)]
    return port


def banked_activations(m: Module, cfg: AcceleratorConfig) -> MemoryPort:
    """Activations in two single-port banks of 16-bit SPRAM words, read and written by bytes.
    The compiler puts every layer's inputs in one bank and its output in the other, so a read
    and a write in the same cycle never meet in one bank."""
    port = MemoryPort("act", ACT_BITS, cfg.act_bytes, 1)
    bank_aw = address_bits(cfg.bank_bytes)
    rd_bank, wr_bank = port.rd_addr[bank_aw], port.wr_addr[bank_aw]
    rd_lane = Signal(2)  # (bank, byte) of the read, for the data in the next cycle
    m.d.sync += rd_lane.eq(Cat(port.rd_addr[0], rd_bank))
    words = []
    for b in range(cfg.act_banks):
        m.submodules[f"act_bank{b}"] = ram = SinglePortRAM(16, cfg.bank_bytes // 2)
        write = port.wr_en & (wr_bank == b)
        m.d.comb += [ram.addr.eq(Mux(write, port.wr_addr[1:bank_aw], port.rd_addr[1:bank_aw])),
                     ram.wdata.eq(port.wr_data.replicate(2)),
                     ram.we.eq(Mux(write, Cat(~port.wr_addr[0], port.wr_addr[0]), 0))]
        words.append(ram.rdata)
    m.d.comb += port.rd_data.eq(Mux(rd_lane[1], words[1], words[0]).word_select(rd_lane[0], 8))
    return port


def activation_memory(m: Module, cfg: AcceleratorConfig) -> MemoryPort:
    """Activation words of ``rows`` bytes (the array's input lanes), dual-port block RAM
    (banked with ``memory_registers``), or two single-port SPRAM banks of bytes."""
    if cfg.act_banks > 1:
        return banked_activations(m, cfg)
    R = cfg.rows
    return dual_port(m, "act_mem", ACT_BITS * R, cfg.act_bytes // R,
                     banked=cfg.memory_registers)


def memory_images(cfg: AcceleratorConfig, images: dict[str, bytes]) -> dict[Space, list[int]]:
    """The program's images as the words of each model memory (one slot)."""
    def words(name: str, width: int) -> list[int]:
        raw = images[name] + bytes(-len(images[name]) % width)
        return [int.from_bytes(raw[i:i + width], "little") for i in range(0, len(raw), width)]

    out = {Space.PROGRAM: words("program.bin", PROGRAM_WORD_BYTES),
           Space.WEIGHTS: words("weights.bin", cfg.word_bytes),
           Space.CODEBOOKS: np.frombuffer(images["codebooks.bin"], np.int8).tolist(),
           # (a word: one entry per requantization lane)
           Space.PARAMS: words("params.bin", CHANNEL_PARAMS_BYTES * cfg.requant_lanes)}
    if cfg.sparse_weights:
        out[Space.MASKS] = words("masks.bin", cfg.model_spaces()[Space.MASKS][1])
    return out


def model_memories(m: Module, cfg: AcceleratorConfig, images: dict[Space, list[int]]
                   ) -> tuple[dict[Space, MemoryPort], dict[Space, list[MemoryPort]]]:
    """The model memories, initialised with ``images`` in slot 0: each space's port, and the
    weight memory's parts (:func:`~.conv.weight_parts`), each with its own read address and
    write port. SPRAM weights are single-port and start empty."""
    slots = cfg.model_slots
    space_words = cfg.model_spaces()
    ports = {}
    slices = {}
    for space, init in images.items():
        entries, word_bytes = space_words[space]
        if space == Space.WEIGHTS and not cfg.weights_preloaded:
            ports[space] = single_port(m, f"{space.name.lower()}_mem", word_bytes * 8,
                                       entries * slots)
        elif space in (Space.WEIGHTS, Space.MASKS):
            # (the mask memory is read beside the weights, with the same latency)
            parts = weight_parts(cfg) if space == Space.WEIGHTS else mask_parts(cfg)
            ports[space], slices[space] = split_dual_port(
                m, f"{space.name.lower()}_mem", word_bytes * 8, entries * slots,
                [v & ((1 << word_bytes * 8) - 1) for v in init], parts,
                banked=cfg.memory_registers)
        else:
            ports[space] = dual_port(m, f"{space.name.lower()}_mem", word_bytes * 8,
                                     entries * slots,
                                     [v & ((1 << word_bytes * 8) - 1) for v in init])
    return ports, slices


def load_path(m: Module, cfg: AcceleratorConfig, ports: dict[Space, MemoryPort],
              slices: dict[Space, list[MemoryPort]], host, load_slot) -> None:
    """The host's writes (``host``: the accelerator's ``mem_*`` members) into ``load_slot`` of
    every model memory, one byte lane at a time.

    With ``memory_registers`` the write is registered twice: once as it comes from the host
    (the space decoded, the lane, the address with the slot's base added, the byte), then in
    registers of each memory's own (each part of the weight memory): the address, the byte and
    the decoded lane enables. The link's argument registers through the space and lane decoders
    to every weight block RAM's write enable, in one cycle, was the 85F's worst path; nothing
    reads a model memory right after the host writes it. (The second registers are named as
    copies, ``*_bcast*``, which the board build keeps: yosys would merge the memories'
    identical registers back into one.)"""
    space_words = cfg.model_spaces()
    mem_lane, mem_wdata = host.mem_lane, host.mem_wdata
    if cfg.memory_registers:
        mem_lane, mem_wdata = Signal.like(host.mem_lane), Signal.like(host.mem_wdata)
        m.d.sync += [mem_lane.eq(host.mem_lane), mem_wdata.eq(host.mem_wdata)]
    for space, port in ports.items():
        entries, word_bytes = space_words[space]
        parts = slices.get(space, [port])
        lanes = word_bytes // len(parts)
        write = Signal(name=f"{space.name.lower()}_load_we")
        word_addr = Signal(len(port.wr_addr), name=f"{space.name.lower()}_load_addr")
        first = m.d.sync if cfg.memory_registers else m.d.comb
        first += [write.eq(host.mem_we & (host.mem_space == space)),
                  word_addr.eq(host.mem_word + Mux(load_slot, entries, 0))]
        for k, part in enumerate(parts):
            addr, wdata = word_addr, mem_wdata
            en = Cat(write & (mem_lane == k * lanes + j) for j in range(lanes))
            if cfg.memory_registers:
                name = f"{space.name.lower()}{k}_bcast"
                regs = [Signal.like(part.wr_addr, name=f"{name}_waddr"),
                        Signal.like(wdata, name=f"{name}_wbyte"),
                        Signal(lanes, name=f"{name}_we")]
                m.d.sync += [r.eq(v) for r, v in zip(regs, (addr, wdata, en), strict=True)]
                addr, wdata, en = regs
            m.d.comb += [part.wr_addr.eq(addr), part.wr_data.eq(wdata.replicate(lanes)),
                         part.wr_en.eq(en),
                         part.wr_any.eq(en.any() if cfg.memory_registers else write)]


def slot_bases(m: Module, cfg: AcceleratorConfig, ports, slot) -> dict[Space, Signal]:
    """Each model memory's first word of the active ``slot``."""
    space_words = cfg.model_spaces()
    rd_base = {}
    for space in ports:
        rd_base[space] = Signal(address_bits(space_words[space][0] * cfg.model_slots) + 1)
        m.d.comb += rd_base[space].eq(Mux(slot, space_words[space][0], 0))
    return rd_base
