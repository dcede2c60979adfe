"""The accelerator: memories, the engines, and the sequencer that walks the Program.

:class:`Accelerator` is one ``wiring.Component`` built from an :class:`~.config.AcceleratorConfig`
and a compiled :class:`~fireforge.sw.program.Program`, whose images initialise the on-chip
memories (program, weights, codebooks, per-channel params). The sequencer fetches one descriptor
at a time, starts the unit its opcode names, and records the cycles each layer took.

Host interface (the serial link attaches here later):

* ``host_addr``/``host_wdata``/``host_we``: write activation memory (the input image) while idle;
  ``host_rdata``: the byte at ``host_addr`` one cycle later (any tensor, while idle or paused);
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
``commit_n_layers``. The bitstream's own program starts in slot 0.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..sw.errors import FireforgeError
from .config import AcceleratorConfig
from .conv import SUPPORTED_INDEX_BITS, ConvEngine
from .isa import (
    ACC_BITS,
    ACT_BITS,
    CHANNEL_PARAMS_BYTES,
    DESCRIPTOR_BYTES,
    Descriptor,
    Op,
    identity_codebook,
)
from .protocol import Space
from .vector import BypassAdd, GlobalSum, MaxPool

__all__ = ["Accelerator", "check_program"]


def _aw(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def check_program(config: AcceleratorConfig, program) -> None:
    """Refuse, with the reason, a program this configuration cannot run."""
    m = program.manifest
    problems = []
    if m["group"] != config.columns:
        problems.append(f"compiled for {m['group']} output channels per weight word, the "
                        f"array has {config.columns} columns (compile with --config)")
    for name, have, need in (
            ("activation memory", config.act_bytes, m["act_bytes"]),
            ("weight memory", config.weight_bytes, len(program.images["weights.bin"])),
            ("codebook memory", config.codebook_entries, len(program.images["codebooks.bin"])),
            ("parameter memory", config.param_entries,
             len(program.images["params.bin"]) // CHANNEL_PARAMS_BYTES),
            ("program memory", config.program_entries, len(program.layers)),
            ("result memory", config.result_entries, m["num_classes"])):
        if need > have:
            problems.append(f"{name}: needs {need:,}, has {have:,}")
    cb = np.frombuffer(program.images["codebooks.bin"], np.int8)
    for layer, d in zip(program.layers, program.descriptors, strict=True):
        if d.op != Op.CONV:
            continue
        if d.w_bits not in SUPPORTED_INDEX_BITS:
            problems.append(f"layer {layer['name']}: {d.w_bits}-bit codebook indices (the "
                            f"decoder takes {', '.join(map(str, SUPPORTED_INDEX_BITS))})")
        elif d.w_bits > config.codebook_bits and not np.array_equal(
                cb[d.cb_addr:d.cb_addr + (1 << d.w_bits)], identity_codebook()):
            problems.append(f"layer {layer['name']}: a {d.w_bits}-bit codebook; this "
                            f"configuration decodes at most {config.codebook_bits}-bit codebooks"
                            f" (or uncompressed int8)")
        if d.w_addr % config.word_bytes:
            problems.append(f"layer {layer['name']}: weights not aligned to the weight word")
    if problems:
        raise FireforgeError("the program does not fit this accelerator configuration: "
                             + "; ".join(problems[:4]))


class Accelerator(wiring.Component):
    def __init__(self, config: AcceleratorConfig, program):
        check_program(config, program)
        self.config = config
        self.program = program
        self.program_layers = len(program.layers)
        self.act_aw = _aw(config.act_bytes)
        self.res_aw = _aw(config.result_entries)
        self.cnt_aw = _aw(config.program_entries)
        #: word bytes of each model memory (the program memory holds one descriptor a word)
        self.space_words = config.model_spaces()
        super().__init__({
            "start": In(1),
            "step": In(1),
            "busy": Out(1),
            "paused": Out(1),
            "done": Out(1),
            "layer": Out(self.cnt_aw + 1),
            "host_addr": In(self.act_aw),
            "host_wdata": In(ACT_BITS),
            "host_we": In(1),
            "host_rdata": Out(ACT_BITS),
            "res_addr": In(self.res_aw),
            "res_data": Out(signed(ACC_BITS)),
            "cnt_addr": In(self.cnt_aw),
            "cnt_data": Out(32),
            "total_cycles": Out(32),
            "mem_space": In(Space),
            "mem_word": In(32),
            "mem_lane": In(16),
            "mem_wdata": In(8),
            "mem_we": In(1),
            "commit": In(1),
            "commit_n_layers": In(16),
            "n_layers": Out(16, init=self.program_layers),
            "slot": Out(1),
        })

    # -------------------------------------------------------------------- memory images
    def _images(self):
        cfg, images = self.config, self.program.images
        raw = images["program.bin"]
        program = [int.from_bytes(raw[i:i + DESCRIPTOR_BYTES], "little")
                   for i in range(0, len(raw), DESCRIPTOR_BYTES)]
        wb = images["weights.bin"] + bytes(-len(images["weights.bin"]) % cfg.word_bytes)
        weights = [int.from_bytes(wb[i:i + cfg.word_bytes], "little")
                   for i in range(0, len(wb), cfg.word_bytes)]
        codebooks = np.frombuffer(images["codebooks.bin"], np.int8).tolist()
        pr = images["params.bin"]
        params = [int.from_bytes(pr[i:i + CHANNEL_PARAMS_BYTES], "little")
                  for i in range(0, len(pr), CHANNEL_PARAMS_BYTES)]
        return program, weights, codebooks, params

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        program, weights, codebooks, params = self._images()

        slots = cfg.model_slots
        model_mems = {}
        for space, init in ((Space.PROGRAM, program), (Space.WEIGHTS, weights),
                            (Space.CODEBOOKS, codebooks), (Space.PARAMS, params)):
            entries, word_bytes = self.space_words[space]
            model_mems[space] = memory.Memory(shape=word_bytes * 8, depth=entries * slots,
                                              init=[v & ((1 << word_bytes * 8) - 1)
                                                    for v in init])
        m.submodules.prog_mem = prog_mem = model_mems[Space.PROGRAM]
        m.submodules.w_mem = w_mem = model_mems[Space.WEIGHTS]
        m.submodules.cb_mem = cb_mem = model_mems[Space.CODEBOOKS]
        m.submodules.p_mem = p_mem = model_mems[Space.PARAMS]
        m.submodules.act_mem = act_mem = memory.Memory(
            shape=ACT_BITS, depth=cfg.act_bytes, init=[])
        m.submodules.res_mem = res_mem = memory.Memory(
            shape=signed(ACC_BITS), depth=cfg.result_entries, init=[])
        m.submodules.cnt_mem = cnt_mem = memory.Memory(
            shape=32, depth=cfg.program_entries, init=[])
        prog_rd = prog_mem.read_port()
        w_rd, cb_rd, p_rd = w_mem.read_port(), cb_mem.read_port(), p_mem.read_port()

        # Host writes into the load slot, one byte lane at a time; reads from the active slot.
        load_slot = Signal()
        m.d.comb += load_slot.eq(self.slot ^ (slots - 1))
        for space, mem in model_mems.items():
            entries, word_bytes = self.space_words[space]
            wr = mem.write_port(granularity=8)
            m.d.comb += [
                wr.addr.eq(self.mem_word + Mux(load_slot, entries, 0)),
                wr.data.eq(self.mem_wdata.replicate(word_bytes)),
                wr.en.eq(Cat(self.mem_we & (self.mem_space == space) & (self.mem_lane == lane)
                             for lane in range(word_bytes))),
            ]
        with m.If(self.commit):
            m.d.sync += [self.slot.eq(load_slot), self.n_layers.eq(self.commit_n_layers)]
        rd_base = {}
        for space in model_mems:
            rd_base[space] = Signal(_aw(self.space_words[space][0] * slots) + 1)
            m.d.comb += rd_base[space].eq(Mux(self.slot, self.space_words[space][0], 0))
        act_rd, act_wr = act_mem.read_port(), act_mem.write_port()
        res_rd, res_wr = res_mem.read_port(), res_mem.write_port()
        cnt_rd, cnt_wr = cnt_mem.read_port(), cnt_mem.write_port()

        m.submodules.conv = conv = ConvEngine(
            cfg, self.act_aw, *(_aw(self.space_words[s][0])
                                for s in (Space.WEIGHTS, Space.PARAMS, Space.CODEBOOKS)))
        m.submodules.maxpool = pool = MaxPool(self.act_aw)
        m.submodules.gsum = gsum = GlobalSum(self.act_aw, self.res_aw)
        m.submodules.add = add = BypassAdd(self.act_aw)
        units = {Op.CONV: conv, Op.MAXPOOL: pool, Op.AVGPOOL: gsum, Op.ADD: add}

        desc = Signal(Descriptor)
        for u in units.values():
            m.d.comb += [u.desc.eq(desc), u.act_rdata.eq(act_rd.data)]
        m.d.comb += [
            w_rd.addr.eq(conv.w_raddr + rd_base[Space.WEIGHTS]), conv.w_rdata.eq(w_rd.data),
            cb_rd.addr.eq(conv.cb_raddr + rd_base[Space.CODEBOOKS]),
            conv.cb_rdata.eq(cb_rd.data),
            p_rd.addr.eq(conv.p_raddr + rd_base[Space.PARAMS]), conv.p_rdata.eq(p_rd.data),
            res_wr.addr.eq(gsum.res_waddr), res_wr.data.eq(gsum.res_wdata),
            res_wr.en.eq(gsum.res_we),
            res_rd.addr.eq(self.res_addr), self.res_data.eq(res_rd.data),
            cnt_rd.addr.eq(self.cnt_addr), self.cnt_data.eq(cnt_rd.data),
            self.host_rdata.eq(act_rd.data),
        ]

        # Activation memory ports: the running unit, or the host when the sequencer is idle.
        running = Signal()
        with m.If(running):
            with m.Switch(desc.op):
                for op, u in units.items():
                    with m.Case(op):
                        m.d.comb += [act_rd.addr.eq(u.act_raddr), act_wr.addr.eq(u.act_waddr),
                                     act_wr.data.eq(u.act_wdata), act_wr.en.eq(u.act_we)]
        with m.Else():
            m.d.comb += [act_rd.addr.eq(self.host_addr), act_wr.addr.eq(self.host_addr),
                         act_wr.data.eq(self.host_wdata), act_wr.en.eq(self.host_we)]

        # ---------------------------------------------------------------- sequencer
        pc = Signal(range(cfg.program_entries + 1))
        layer_cycles, total = Signal(32), Signal(32)
        unit_done = Signal()
        m.d.comb += [prog_rd.addr.eq(pc + rd_base[Space.PROGRAM]), self.layer.eq(pc),
                     self.total_cycles.eq(total),
                     cnt_wr.addr.eq(pc), cnt_wr.data.eq(layer_cycles + 1), cnt_wr.en.eq(0)]
        with m.Switch(desc.op):
            for op, u in units.items():
                with m.Case(op):
                    m.d.comb += unit_done.eq(u.done)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), total.eq(0), self.done.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += total.eq(total + 1)
                m.next = "LATCH"
            with m.State("LATCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [desc.eq(prog_rd.data[:Descriptor.size]), total.eq(total + 1)]
                m.next = "GO"
            with m.State("GO"):
                m.d.comb += self.busy.eq(1)
                with m.Switch(desc.op):
                    for op, u in units.items():
                        with m.Case(op):
                            m.d.comb += u.start.eq(1)
                m.d.sync += [running.eq(1), layer_cycles.eq(1), total.eq(total + 1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [layer_cycles.eq(layer_cycles + 1), total.eq(total + 1)]
                with m.If(unit_done):
                    m.d.comb += cnt_wr.en.eq(1)
                    m.d.sync += [running.eq(0), pc.eq(pc + 1)]
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
        return m
