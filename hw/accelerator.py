"""The accelerator: memories, the engines, and the sequencer that walks the Program.

:class:`Accelerator` is one ``wiring.Component`` built from an :class:`~.config.AcceleratorConfig`
and a compiled :class:`~.program.Program`, whose images initialise the on-chip
memories (program, weights, codebooks, per-channel params). The sequencer fetches one descriptor
at a time (one 32-bit program word a cycle), computes the layer's size products with one
shift-add multiplier, starts the unit its opcode names, and records the cycles each layer took.

Memories are block RAM, except where the configuration puts them in single-port SPRAM (the iCE40
UltraPlus): the activations in two banks (the compiler keeps every layer's inputs and output in
different banks), and the weights, which the bitstream cannot initialise, so such a chip starts
with no model (``n_layers`` 0) until the host loads one.

Host interface (the serial link, :mod:`.link`):

* ``host_addr``/``host_wdata``/``host_we``: write activation memory (the input image) while idle;
  ``host_rdata``: the byte at ``host_addr`` :func:`act_read_latency` cycles later (any tensor,
  while idle or paused);
* ``start``: run the program from layer 0 (or continue after a pause); ``step`` (level): pause
  after every layer, so each layer's output can be read before the next overwrites memory;
* ``busy``, ``paused``, ``done`` (level until the next ``start``), ``layer``: the current index;
* ``res_addr`` -> ``res_data``: the per-class int32 sums; ``cnt_addr`` -> ``cnt_data``: cycles of
  each layer; ``total_cycles``: cycles of the last run.

Model memories (program, weights, codebooks, params) hold ``config.model_slots`` copies. The
sequencer and engines read the active slot; ``mem_*`` writes one byte (``mem_lane`` of word
``mem_word`` of :class:`~.protocol.Space` ``mem_space``) into the load slot, which is the other
slot when there are two (so a load never disturbs the running model) and the only one otherwise.
``commit`` (while idle) makes the load slot active and sets the number of layers to
``commit_n_layers``. The bitstream's own program starts in slot 0. Single-port weights are
written only while the engine is idle (the link answers BUSY otherwise).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .bram import BANK_LATENCY
from .config import AcceleratorConfig
from .conv import SUPPORTED_INDEX_BITS, ConvEngine
from .errors import FireforgeError
from .isa import (
    ACC_BITS,
    ACT_BITS,
    CHANNEL_PARAMS_BYTES,
    DESCRIPTOR_WORDS,
    PROGRAM_WORD_BYTES,
    Descriptor,
    LayerConstants,
    Op,
    identity_codebook,
)
from .memories import (
    activation_memory,
    address_bits,
    load_path,
    memory_images,
    model_memories,
    slot_bases,
)
from .ops import OPS, UNITS
from .protocol import Space
from .vector import BypassAdd, Pool

__all__ = ["Accelerator", "HostPort", "act_read_latency", "capability_problems", "check_program",
           "codebook_bits_needed",
           "fetch_cycles", "CONSTANT_CYCLES"]



def act_read_latency(config: AcceleratorConfig) -> int:
    """Cycles from an activation read address (a unit's, or ``host_addr``) to its data: the
    block RAM's one; with ``memory_registers`` also a register on the address after the
    multiplexer of the units and the host, the banks' output registers and one on the data
    (the units' address adders and the block RAM's output were failing paths across the
    85F)."""
    return 1 + (2 + BANK_LATENCY) * config.memory_registers


def done_cycles(config: AcceleratorConfig) -> int:
    """Cycles from a unit's done to the sequencer's next step: its register, with
    ``memory_registers``."""
    return int(config.memory_registers)


def fetch_cycles(config: AcceleratorConfig) -> int:
    """Cycles to fetch one descriptor: one per program word, and the last word's read latency
    (one more with ``memory_registers``: the word is registered before it is stored)."""
    return DESCRIPTOR_WORDS + 1 + config.memory_registers


#: operand bits of the shift-add multiplier that computes :data:`LayerConstants`
_CONSTANT_OPERAND_BITS = 12
#: cycles to compute the layer constants: per product a load and one step per operand bit
CONSTANT_CYCLES = len(LayerConstants.members) * (_CONSTANT_OPERAND_BITS + 1)


def codebook_bits_needed(program) -> int:
    """Index bits of the widest codebook ``program`` decodes (0: uncompressed int8 only)."""
    cb = np.frombuffer(program.images["codebooks.bin"], np.int8)
    return max((d.w_bits for d in program.descriptors if d.op == Op.CONV and not (
        d.w_bits == 8 and np.array_equal(cb[d.cb_addr:d.cb_addr + 256], identity_codebook()))),
        default=0)


def capability_problems(config: AcceleratorConfig, layers) -> list[str]:
    """What the configuration's units cannot run, one line each. ``layers``: ``(name, op,
    index bits, uncompressed)`` per operation (``uncompressed``: an 8-bit layer whose codebook
    is the identity, int8 weights). The compiler asks this of a checkpoint before it calibrates,
    :func:`check_program` of a compiled program."""
    problems = []
    if not config.bypass_add and any(op == Op.ADD for _, op, _, _ in layers):
        problems.append("the network has bypass adds and this configuration has no add unit "
                        "(bypass_add=False): use a configuration with it, or no bypasses")
    reasons: dict[str, list[str]] = {}  # one line per reason, naming its layers
    for name, op, bits, uncompressed in layers:
        if op != Op.CONV:
            continue
        if bits not in SUPPORTED_INDEX_BITS:
            reasons.setdefault(f"{bits}-bit codebook indices (the decoder takes "
                               f"{', '.join(map(str, SUPPORTED_INDEX_BITS))})", []).append(name)
        elif bits > config.codebook_bits and not uncompressed:
            reasons.setdefault(
                f"{bits}-bit codebooks; this " + (
                    f"configuration decodes at most {config.codebook_bits}-bit codebooks (or "
                    f"uncompressed int8)" if config.codebook_bits else "configuration has no "
                    "codebook decoder: compile the uncompressed checkpoint (int8 weights)"),
                []).append(name)
    for reason, names in reasons.items():
        more = f" and {len(names) - 2} more" if len(names) > 2 else ""
        problems.append(f"layer{'s' if len(names) > 1 else ''} {', '.join(names[:2])}{more}: "
                        f"{reason}")
    return problems


def check_program(config: AcceleratorConfig, program) -> None:
    """Refuse, with the reason, a program this configuration cannot run."""
    m = program.manifest
    problems = []
    if m.group != config.columns:
        problems.append(f"compiled for {m.group} output channels per weight word, the "
                        f"array has {config.columns} columns (compile with --config)")
    if m.lanes != config.rows:
        problems.append(f"compiled for {m.lanes} input lane(s), the array has "
                        f"{config.rows} rows (compile with --config)")
    for name, have, need in (
            ("activation memory", config.act_bytes, m.act_bytes),
            ("weight memory", config.weight_bytes, len(program.images["weights.bin"])),
            ("codebook memory", config.codebook_entries, len(program.images["codebooks.bin"])),
            ("parameter memory", config.param_entries,
             len(program.images["params.bin"]) // CHANNEL_PARAMS_BYTES),
            ("program memory", config.program_entries, len(program.layers)),
            ("result memory", config.result_entries, m.num_classes)):
        if need > have:
            problems.append(f"{name}: needs {need:,}, has {have:,}")
    mask_bytes = len(program.images["masks.bin"])
    if mask_bytes and not config.sparse_weights:
        problems.append("the program has sparse layers and this configuration no sparse "
                        "decoder (sparse_weights=False): compile for it (--config), whose "
                        "compiler stores every layer dense")
    elif mask_bytes:
        entries, word_bytes = config.model_spaces()[Space.MASKS]
        if mask_bytes // word_bytes > entries:
            problems.append(f"mask memory: needs {mask_bytes // word_bytes:,} steps, has "
                            f"{entries:,}")
    banks, bank_bytes = m.act_banks, m.bank_bytes
    if config.act_banks > 1 and (banks, bank_bytes) != (config.act_banks, config.bank_bytes):
        problems.append(f"activations planned for {banks} bank(s) of {bank_bytes:,} B, this "
                        f"configuration has {config.act_banks} single-port banks of "
                        f"{config.bank_bytes:,} B (compile with its --config)")
    cb = np.frombuffer(program.images["codebooks.bin"], np.int8)
    problems += capability_problems(config, [
        (layer["name"], d.op, d.w_bits, d.op == Op.CONV and np.array_equal(
            cb[d.cb_addr:d.cb_addr + (1 << d.w_bits)], identity_codebook()))
        for layer, d in zip(program.layers, program.descriptors, strict=True)])
    for layer, d in zip(program.layers, program.descriptors, strict=True):
        if d.op == Op.CONV and d.w_addr % config.word_bytes:
            problems.append(f"layer {layer['name']}: weights not aligned to the weight word")
    if problems:
        raise FireforgeError("the program does not fit this accelerator configuration: "
                             + "; ".join(problems[:4]))


class HostPort(wiring.Signature):
    """The accelerator's host interface, as the host drives it (the accelerator's own
    signature is this one flipped; see the module's docstring for what each member does).

    ``n_layers``: the layer count the accelerator starts with (0 where its weights start
    empty)."""

    def __init__(self, act_aw: int, res_aw: int, cnt_aw: int, n_layers: int):
        super().__init__({
            # run control
            "start": Out(1),
            "step": Out(1),
            "busy": In(1),
            "paused": In(1),
            "done": In(1),
            "layer": In(cnt_aw + 1),
            # activation memory, results, cycle counters
            "host_addr": Out(act_aw),
            "host_wdata": Out(ACT_BITS),
            "host_we": Out(1),
            "host_rdata": In(ACT_BITS),
            "res_addr": Out(res_aw),
            "res_data": In(signed(ACC_BITS)),
            "cnt_addr": Out(cnt_aw),
            "cnt_data": In(32),
            "total_cycles": In(32),
            # model load
            "mem_space": Out(Space),
            "mem_word": Out(32),
            "mem_lane": Out(16),
            "mem_wdata": Out(8),
            "mem_we": Out(1),
            "commit": Out(1),
            "commit_n_layers": Out(16),
            "n_layers": In(16, init=n_layers),
            "slot": In(1),
        })


class Accelerator(wiring.Component):
    def __init__(self, config: AcceleratorConfig, program):
        check_program(config, program)
        self.config = config
        self.program = program
        self.program_layers = len(program.layers)
        self.act_aw = address_bits(config.act_bytes)
        self.res_aw = address_bits(config.result_entries)
        self.cnt_aw = address_bits(config.program_entries)
        #: word bytes of each model memory (the program memory holds one descriptor a word)
        self.space_words = config.model_spaces()
        #: cycles from an activation read address (a unit's, or ``host_addr``) to its data
        self.act_read_latency = act_read_latency(config)
        #: the dual-port activation memory's address and write-enable signals, set by
        #: ``elaborate`` (None with single-port banks): what a simulation watches for a read of
        #: the word being written, which the block RAM leaves undefined (:mod:`.bram`)
        self.act_port = None
        #: the host interface, as the host (the link) sees it
        self.host_port = HostPort(self.act_aw, self.res_aw, self.cnt_aw,
                                  n_layers=self.program_layers if config.weights_preloaded
                                  else 0)
        super().__init__(self.host_port.flip())

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ports, slices = model_memories(m, cfg, memory_images(cfg, self.program.images))
        m.submodules.res_mem = res_mem = memory.Memory(
            shape=signed(ACC_BITS), depth=cfg.result_entries, init=[])
        m.submodules.cnt_mem = cnt_mem = memory.Memory(
            shape=32, depth=cfg.program_entries, init=[])

        # Host writes into the load slot; the engines read the active slot.
        load_slot = Signal()
        m.d.comb += load_slot.eq(self.slot ^ (cfg.model_slots - 1))
        load_path(m, cfg, ports, slices, self, load_slot)
        with m.If(self.commit):
            m.d.sync += [self.slot.eq(load_slot), self.n_layers.eq(self.commit_n_layers)]
        rd_base = slot_bases(m, cfg, ports, self.slot)
        act = activation_memory(m, cfg)
        if cfg.act_banks == 1:
            self.act_port = act
        res_rd, res_wr = res_mem.read_port(), res_mem.write_port()
        cnt_rd, cnt_wr = cnt_mem.read_port(), cnt_mem.write_port()
        units = self._units(m, rd_base)
        descriptor = self._datapath(m, units, ports, slices, rd_base, act, res_rd, res_wr,
                                    cnt_rd)
        self._sequencer(m, units, *descriptor, ports[Space.PROGRAM], rd_base, cnt_wr)
        return m

    def _units(self, m: Module, rd_base) -> list:
        """The engines, each with the opcodes it runs (:data:`~.ops.OPS`)."""
        cfg = self.config
        m.submodules.conv = conv = ConvEngine(
            cfg, self.act_aw, *(len(rd_base[s]) for s in (
                Space.WEIGHTS, Space.PARAMS, Space.CODEBOOKS,
                *((Space.MASKS,) if cfg.sparse_weights else ()))))
        # with memory_registers the activation read address and data are registered once here,
        # for every unit (see act_read_latency)
        latency = self.act_read_latency
        m.submodules.pool = pool = Pool(self.act_aw, self.res_aw, latency, cfg.rows)
        built = {"conv": conv, "pool": pool}
        if cfg.bypass_add:
            m.submodules.add = built["add"] = BypassAdd(self.act_aw, latency)
        return [(built[name], tuple(op for op in Op if OPS[op].unit == name))
                for name in UNITS if name in built]

    def _datapath(self, m: Module, units, ports, slices, rd_base, act, res_rd, res_wr,
                  cnt_rd):
        """The descriptor and layer constants every unit reads, the memories' read ports
        wired to the units, and the activation memory given to the running unit or, while
        the sequencer is idle, to the host. Returns the descriptor's bits (the sequencer
        writes them), its view, the layer constants and ``running``."""
        cfg = self.config
        conv, pool = units[0][0], units[1][0]
        w_rd, cb_rd, p_rd = ports[Space.WEIGHTS], ports[Space.CODEBOOKS], ports[Space.PARAMS]
        R = cfg.rows
        lr = R.bit_length() - 1
        latency = self.act_read_latency
        # The descriptor arrives one program word at a time (see FETCH).
        desc_bits = Signal(DESCRIPTOR_WORDS * PROGRAM_WORD_BYTES * 8)
        desc = data.View(Descriptor, desc_bits[:Descriptor.size])
        consts = Signal(LayerConstants)
        word_rdata = Signal(ACT_BITS * R)
        if cfg.memory_registers:
            m.d.sync += word_rdata.eq(act.rd_data)
        else:
            m.d.comb += word_rdata.eq(act.rd_data)
        # byte accesses: the byte's place in the word, kept until its data arrives
        byte_raddr = Signal(self.act_aw)
        unit_rdata = Signal(ACT_BITS)
        if R > 1:
            place = byte_raddr[:lr]
            for _ in range(latency):
                later = Signal(lr)
                m.d.sync += later.eq(place)
                place = later
            m.d.comb += unit_rdata.eq(word_rdata.word_select(place, ACT_BITS))
        else:
            m.d.comb += unit_rdata.eq(word_rdata)
        for u, _ in units:
            m.d.comb += [u.desc.eq(desc), u.consts.eq(consts)]
            m.d.comb += (u.act_rdata.eq(word_rdata) if u in (conv, pool) else
                         u.act_rdata.eq(unit_rdata))
        m.d.comb += [
            # (the engine adds the slot's base to its layer's base addresses)
            conv.w_slot.eq(rd_base[Space.WEIGHTS]), conv.p_slot.eq(rd_base[Space.PARAMS]),
            conv.cb_slot.eq(rd_base[Space.CODEBOOKS]),
            *(p.rd_addr.eq(conv.w_raddr[k])
              for k, p in enumerate(slices.get(Space.WEIGHTS, [w_rd]))),
            conv.w_rdata.eq(w_rd.rd_data),
            cb_rd.rd_addr.eq(conv.cb_raddr),
            conv.cb_rdata.eq(cb_rd.rd_data),
            p_rd.rd_addr.eq(conv.p_raddr),
            conv.p_rdata.eq(p_rd.rd_data),
            *((*(p.rd_addr.eq(conv.m_raddr[k]) for k, p in enumerate(slices[Space.MASKS])),
               conv.m_rdata.eq(ports[Space.MASKS].rd_data),
               conv.m_slot.eq(rd_base[Space.MASKS])) if cfg.sparse_weights else ()),
            res_wr.addr.eq(pool.res_waddr), res_wr.data.eq(pool.res_wdata),
            res_wr.en.eq(pool.res_we),
            res_rd.addr.eq(self.res_addr), self.res_data.eq(res_rd.data),
            cnt_rd.addr.eq(self.cnt_addr), self.cnt_data.eq(cnt_rd.data),
            self.host_rdata.eq(unit_rdata),
        ]

        # Activation memory ports: the running unit, or the host when the sequencer is idle.
        # The convolution engine and the pool read and write words; the add and the host bytes.
        def byte_access(raddr, waddr, wdata, we):
            if R == 1:
                return [act_raddr.eq(raddr), act_waddr.eq(waddr), act_wdata.eq(wdata),
                        act_we.eq(we)]
            return [byte_raddr.eq(raddr), act_raddr.eq(raddr[lr:]),
                    act_waddr.eq(waddr[lr:]), act_wdata.eq(wdata.replicate(R)),
                    act_we.eq(Cat(we & (waddr[:lr] == k) for k in range(R)))]

        running = Signal()
        # With memory_registers the read address and the write port are registered: the
        # multiplexer of the units and the host then ends at flip-flops, not at a block RAM's
        # address setup (a read takes act_read_latency; a write lands a cycle later, and
        # nothing reads an address the cycle after writing it)
        act_ports = [act.rd_addr, act.wr_addr, act.wr_data, act.wr_en]
        if cfg.memory_registers:
            act_next = [Signal.like(x, name=f"{x.name}_next") for x in act_ports]
            m.d.sync += [x.eq(n) for x, n in zip(act_ports, act_next, strict=True)]
            act_ports = act_next
        act_raddr, act_waddr, act_wdata, act_we = act_ports

        def word_access(u):
            return [act_raddr.eq(u.act_raddr), act_waddr.eq(u.act_waddr),
                    act_wdata.eq(u.act_wdata), act_we.eq(u.act_we)]

        with m.If(running):
            with m.Switch(desc.op):
                for u, ops in units:
                    with m.Case(*ops):
                        m.d.comb += (word_access(u) if u in (conv, pool) else
                                     byte_access(u.act_raddr, u.act_waddr, u.act_wdata,
                                                 u.act_we))
        with m.Else():
            m.d.comb += byte_access(self.host_addr, self.host_addr, self.host_wdata,
                                    self.host_we)

        return desc_bits, desc, consts, running

    def _sequencer(self, m: Module, units, desc_bits, desc, consts, running, prog_rd, rd_base,
                   cnt_wr) -> None:
        """Fetch each descriptor, compute its layer constants, start its unit, count its
        cycles; pause after each layer in single-step mode."""
        cfg = self.config
        pc = Signal(range(cfg.program_entries + 1))
        pc_word = Signal(range(cfg.program_entries * DESCRIPTOR_WORDS + 1))  # pc * words
        fetch_i = Signal(range(DESCRIPTOR_WORDS + 1))
        fetch_v = Signal()  # the word addressed in the previous cycle is on the read port
        # the word on the read port, its index + 1 and whether it is one; with memory_registers
        # registered first (a block RAM's output to the descriptor's word select was a
        # failing path on the 85F)
        arrived, arrived_v, arrived_i = prog_rd.rd_data, fetch_v, fetch_i
        if cfg.memory_registers:
            arrived, arrived_v, arrived_i = (Signal(len(prog_rd.rd_data), name="prog_word"),
                                             Signal(name="prog_word_v"),
                                             Signal.like(fetch_i, name="prog_word_i"))
            m.d.sync += [arrived.eq(prog_rd.rd_data), arrived_v.eq(fetch_v),
                         arrived_i.eq(fetch_i)]
        layer_cycles, total = Signal(32), Signal(32)
        unit_done = Signal()
        m.d.comb += [prog_rd.rd_addr.eq(pc_word + fetch_i + rd_base[Space.PROGRAM]),
                     self.layer.eq(pc), self.total_cycles.eq(total),
                     cnt_wr.addr.eq(pc), cnt_wr.data.eq(layer_cycles), cnt_wr.en.eq(0)]
        # Only the started unit pulses its done, so their OR is the layer's: no decode of the
        # opcode. With memory_registers it is registered (from a unit's drain through the
        # sequencer's enables was an 85F failing path), a cycle per layer: done_cycles.
        any_done = Cat(u.done for u, _ in units).any()
        if cfg.memory_registers:
            m.d.sync += unit_done.eq(any_done)
        else:
            m.d.comb += unit_done.eq(any_done)

        # Layer constants: one shift-add multiplier, each product in a load cycle and one
        # cycle per operand bit (the operands are at most _CONSTANT_OPERAND_BITS wide).
        products = [(desc.in_w, desc.in_stride, consts.rowstride),
                    (desc.in_h, desc.in_w, consts.in_pixels),
                    (desc.out_h, desc.out_w, consts.out_pixels)]
        assert len(products) == len(LayerConstants.members)
        mul_k = Signal(range(len(products)))
        mul_n = Signal(range(_CONSTANT_OPERAND_BITS + 1))
        mul_a, mul_p = Signal(len(consts.rowstride)), Signal(len(consts.rowstride))
        mul_b = Signal(_CONSTANT_OPERAND_BITS)
        mul_sum = mul_p + Mux(mul_b[0], mul_a, 0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), pc_word.eq(0), fetch_i.eq(0), total.eq(0),
                                 self.done.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [total.eq(total + 1), fetch_v.eq(fetch_i < DESCRIPTOR_WORDS)]
                with m.If(fetch_i < DESCRIPTOR_WORDS):
                    m.d.sync += fetch_i.eq(fetch_i + 1)
                with m.If(arrived_v):
                    # word arrived_i - 1 arrives (written in place, not shifted: the bits of
                    # fields no unit reads then have no register at all)
                    with m.Switch(arrived_i):
                        for i in range(DESCRIPTOR_WORDS):
                            with m.Case(i + 1):
                                m.d.sync += desc_bits.word_select(
                                    i, PROGRAM_WORD_BYTES * 8).eq(arrived)
                    with m.If(arrived_i == DESCRIPTOR_WORDS):
                        m.d.sync += [mul_k.eq(0), mul_n.eq(0)]
                        m.next = "CONSTANTS"
            with m.State("CONSTANTS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += total.eq(total + 1)
                with m.If(mul_n == 0):
                    with m.Switch(mul_k):
                        for k, (x, y, _) in enumerate(products):
                            with m.Case(k):
                                m.d.sync += [mul_a.eq(x), mul_b.eq(y)]
                    m.d.sync += [mul_p.eq(0), mul_n.eq(1)]
                with m.Else():
                    m.d.sync += [mul_p.eq(mul_sum), mul_a.eq(mul_a << 1), mul_b.eq(mul_b >> 1),
                                 mul_n.eq(mul_n + 1)]
                    with m.If(mul_n == _CONSTANT_OPERAND_BITS):
                        with m.Switch(mul_k):
                            for k, (_, _, field) in enumerate(products):
                                with m.Case(k):
                                    m.d.sync += field.eq(mul_sum)
                        m.d.sync += [mul_n.eq(0), mul_k.eq(mul_k + 1)]
                        with m.If(mul_k == len(products) - 1):
                            m.next = "GO"
            with m.State("GO"):
                m.d.comb += self.busy.eq(1)
                with m.Switch(desc.op):
                    for u, ops in units:
                        with m.Case(*ops):
                            m.d.comb += u.start.eq(1)
                # layer_cycles counts this cycle and the unit's done cycle ahead, not the
                # registered done's: the counter write takes it as it is
                m.d.sync += [running.eq(1), layer_cycles.eq(2 - done_cycles(cfg)),
                             total.eq(total + 1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [layer_cycles.eq(layer_cycles + 1), total.eq(total + 1)]
                with m.If(unit_done):
                    m.d.comb += cnt_wr.en.eq(1)
                    m.d.sync += [running.eq(0), pc.eq(pc + 1),
                                 pc_word.eq(pc_word + DESCRIPTOR_WORDS), fetch_i.eq(0)]
                    with m.If(pc + 1 >= self.n_layers):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Elif(self.step):
                        m.next = "PAUSED"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("PAUSED"):
                m.d.comb += self.paused.eq(1)
                with m.If(self.start):
                    m.next = "FETCH"
