"""The convolution engine: runs one CONV descriptor on the MAC array.

Loop nest (output-stationary, ``C = columns`` output channels at a time, ``R = rows`` input
channels a step, read as one activation word)::

    for oy, ox:                      # output pixels, raster order
        for g in range(ceil(out_c / C)):
            for ky, kx, ci in (..., range(0, in_c, R)):   # one reduction step per cycle
                acc[j] += sum(act[iy, ix, ci + r] * w[g*C + j, ci + r, ky, kx] for r < R)
            requantize acc[0..C) -> out[oy, ox, g*C + j]   # Q = requant_lanes a cycle

Stages, one step per cycle with no stall inside a group:

* **address generator**: counters with incremental addresses (no multiplier in the loop), the
  padding test, the weight word and sub-word of the step, and ``first``/``last`` flags;
* **fetch** (1 cycle, synchronous memories) and **decode**: the padded pixel value (in every
  lane) or the activation word of ``R`` channels, and ``R x C`` indices of ``w_bits`` bits out
  of the weight word, turned into int8 through the codebook registers (or taken as int8 when
  the layer is uncompressed 8-bit);
* with ``sparse_weights``, the **sparse decoder** between the two: the step's mask is fetched
  first; each chunk's nonzero count says where its values start (:func:`~.isa.sparse_positions`,
  kept a step a cycle) and which value word it reads, the word after its own; the chunk's
  values are then taken from the two words and spread over its cells by the mask. Dense layers
  read their weight word at the same stage, so every layer has the same pipeline;
* the :class:`~.array.MACArray`;
* a FIFO of finished groups, then ``Q`` :class:`~.requant.Requantizer` lanes that take ``Q``
  consecutive elements per cycle (written as part of one activation word), back to back across
  groups. Credits (one per FIFO entry) hold the address generator back before a group's first
  step, so nothing ever stalls mid-pipeline. A group of fewer steps than ``ceil(channels / Q)``
  therefore waits for requantization: that, output channels that do not fill the last group,
  and input channels that do not fill the last step's lanes, is where utilization goes.

Input channels past ``in_c`` in a step's last word have index 0 (the weight 0) in the weight
stream, so whatever the word holds there adds nothing.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .array import MACArray
from .bram import BANK_LATENCY
from .config import AcceleratorConfig
from .fifo import BlockFIFO
from .isa import (
    ACC_BITS,
    ACT_BITS,
    SPARSE_CHUNK,
    SPARSE_VALUE_BITS,
    SPARSE_WORD_VALUES,
    WEIGHT_BITS,
    ChannelParams,
    WeightEncoding,
    sparse_chunks,
)
from .ops import UnitSignature
from .requant import Requantizer

__all__ = ["ConvEngine", "SUPPORTED_INDEX_BITS", "MEMORY_REGISTER_STAGES", "array_broadcast",
           "weight_parts", "mask_parts", "sparse_stages"]

#: pipeline stages that ``AcceleratorConfig.memory_registers`` adds: read address, the memory
#: banks' output registers, read data, and the decoded indices before the codebook lookup
MEMORY_REGISTER_STAGES = 3 + BANK_LATENCY

#: index widths the weight decoder unpacks: a power of two, so a weight word (8 bits per column)
#: holds a whole number of steps
SUPPORTED_INDEX_BITS = (1, 2, 4, 8)
#: columns that share one register copy of the array's activation and control
BROADCAST_COLUMNS = 8
#: bits of a sparse chunk's cell ``i``'s rank (the set mask bits before it: 0..i)
_RANK_BITS = [max(1, i.bit_length()) for i in range(SPARSE_CHUNK)]


#: bytes of the weight word per weight-memory part (see :func:`weight_parts`): also a sparse
#: chunk's share of a value word
WEIGHT_PART_BYTES = 8
assert SPARSE_WORD_VALUES * SPARSE_VALUE_BITS == WEIGHT_PART_BYTES * 8


def weight_parts(config: AcceleratorConfig) -> int:
    """Parts the weight memory is split into, each a slice of the word with its own register
    copy of the read address: one per ``WEIGHT_PART_BYTES`` bytes where the configuration has
    memory registers and block RAM weights (one address register driving the block RAMs of a
    512-bit word across the 85F was its critical path), and one per sparse chunk where the
    configuration decodes sparse layers (each chunk reads its own value word), else 1."""
    if config.sparse_weights or (config.memory_registers and config.weights_preloaded):
        return max(1, config.word_bytes // WEIGHT_PART_BYTES)
    return 1


#: bits of the mask word per mask-memory part (see :func:`mask_parts`)
MASK_PART_BITS = 32


def mask_parts(config: AcceleratorConfig) -> int:
    """Parts the mask memory is split into where the configuration has memory registers, each
    with its own register copies of the read address and of the host's write: one write
    address register driving the 46 block RAMs of the full squeezenet1_1_cifar's masks across
    the 85F was a failing path. Else 1."""
    if config.sparse_weights and config.memory_registers:
        return max(1, config.macs // MASK_PART_BITS)  # (a mask bit per MAC)
    return 1


def index_place(bits: int, sub: int) -> int:
    """The code of step ``sub``'s place in a weight word of ``bits``-bit indices: steps per word
    plus ``sub`` (1: int8; 2-3: 4-bit; 4-7: 2-bit; 8-15: 1-bit). One 4-bit code for width and
    step makes each index bit one multiplexer of the few places it can come from, selected by
    registers: a chain of width tests after a step select was 6 LUTs deep with the select
    fanned out to every cell, the 85F's critical path."""
    assert bits in SUPPORTED_INDEX_BITS and 0 <= sub < 8 // bits
    return 8 // bits + sub


def sparse_stages(config: AcceleratorConfig) -> int:
    """Pipeline stages that ``AcceleratorConfig.sparse_weights`` adds to a convolution: the
    mask's count register, the weight memory's read behind it, and with ``memory_registers``
    the registers before the value multiplexer and before the expansion."""
    if not config.sparse_weights:
        return 0
    return 1 + _read_latency(config) + 2 * config.memory_registers


def _read_latency(config: AcceleratorConfig) -> int:
    """Cycles from a model memory's read address (the engine's) to its data in the engine:
    the block RAM; with memory_registers also the address register, the banks' output
    registers and the data register."""
    return 1 + (2 + BANK_LATENCY) * config.memory_registers


def _copies(config: AcceleratorConfig, cells: int) -> int:
    """Register copies of something ``cells`` read: one per ``BROADCAST_COLUMNS`` of them where
    the configuration has memory registers (the large devices, whose multipliers spread across
    the die), else 1 (none)."""
    if config.memory_registers and cells > BROADCAST_COLUMNS:
        return cells // BROADCAST_COLUMNS
    return 1


def array_broadcast(config: AcceleratorConfig) -> int:
    """Register copies of the MAC array's shared inputs (one more pipeline stage), one per
    group of columns."""
    return _copies(config, config.columns)


class ConvEngine(wiring.Component):
    """Runs the CONV descriptor ``desc`` after a ``start`` pulse; pulses ``done`` at the end.

    Its signature is the units' (:class:`~.ops.UnitSignature`) with the read ports of the model
    memories (weights, per-channel parameters, codebooks). Memory ports are synchronous-read
    (data one cycle after the address).
    """

    def __init__(self, config: AcceleratorConfig, act_aw: int, w_aw: int, p_aw: int, cb_aw: int,
                 m_aw: int = 1):
        """``act_aw``: bits of a byte address; the activation ports address words of
        ``rows`` bytes. ``p_aw``: bits of a parameter word address (``requant_lanes``
        entries a word). ``m_aw``: bits of a mask word address (with ``sparse_weights``)."""
        self.config = config
        c, R, Q = config.columns, config.rows, config.requant_lanes
        # sizes every stage uses, derived once
        self._C, self._R, self._Q = c, R, Q
        self._N = R * c  # MACs: weights per step
        self._aw = act_aw
        self._saw = act_aw + 2  # signed address arithmetic (padding reaches before the tensor)
        self._lr, self._lq = R.bit_length() - 1, Q.bit_length() - 1
        # the sparse chunks' cells (the array's diagonals)
        self._chunks = sparse_chunks(R, c) if config.sparse_weights else None
        super().__init__(UnitSignature(act_aw, R, {
            # the active model slot's first word in each model memory
            "w_slot": In(w_aw),
            "p_slot": In(p_aw),
            "cb_slot": In(cb_aw),
            # (one copy of the read address per weight-memory part)
            "w_raddr": Out(data.ArrayLayout(w_aw, weight_parts(config))),
            "w_rdata": In(c * R * 8),
            "p_raddr": Out(p_aw),
            "p_rdata": In(data.ArrayLayout(ChannelParams, Q)),
            "cb_raddr": Out(cb_aw),
            "cb_rdata": In(signed(WEIGHT_BITS)),
            **({"m_slot": In(m_aw), "m_raddr": Out(data.ArrayLayout(m_aw, mask_parts(config))),
                "m_rdata": In(c * R)}
               if config.sparse_weights else {}),
        }))

    def elaborate(self, platform):
        m = Module()
        s = SimpleNamespace()  # the signals the stages share
        self._layer_registers(m, s)
        self._address_generator(m, s)
        self._decoder(m, s)
        self._requantization(m, s)
        self._control(m, s)
        return m

    def _layer_registers(self, m: Module, s: SimpleNamespace) -> None:
        """The layer's constants (set from the descriptor by :meth:`_control`), each counter's
        second-to-last value, and the codebook registers."""
        cfg = self.config
        C, Q, N, aw = self._C, self._Q, self._N, self._saw
        s.k3 = Signal()
        s.in_c = Signal(12)
        s.out_c = Signal(12)
        s.H = Signal(10)
        s.W = Signal(10)
        s.OH = Signal(10)
        s.OW = Signal(10)
        s.stride2 = Signal()
        s.pad = Signal()
        s.stride = Signal(signed(aw))
        s.rowstride = Signal(signed(aw))
        s.groups = Signal(12)
        s.single = Signal()  # one group a pixel
        s.tail_last = Signal(range(C // Q))  # a pixel's last group's last chunk
        s.tail_mask = Signal(Q)  # and its lanes that hold channels
        s.spw_log = Signal(2)  # log2(steps per weight word) = log2(8 / bits)
        s.use_cb = Signal()
        s.sparse = Signal()  # the layer's weights are sparse
        # the layer's first word in each model memory (the slot's base added: a layer
        # constant, not an adder after the address registers)
        s.w_base, s.p_base, s.cb_base = (Signal.like(self.w_slot, name="w_base"),
                                         Signal.like(self.p_slot, name="p_base"),
                                         Signal.like(self.cb_slot, name="cb_base"))
        s.out_stride = Signal(12)
        s.shift = Signal(6)
        s.pad_value = Signal(8)
        s.cb_count = Signal(9)
        if cfg.sparse_weights:
            s.m_base = Signal.like(self.m_slot, name="m_base")
        # Each counter's second-to-last value, registered (the layer's sizes are still long
        # before RUN): "the next value is the last" is then an equality of two registers, not
        # an adder and a comparator (which would be the UP5K's critical path).
        s.lim = Signal(data.StructLayout({"in_c": 12, "groups": 12, "OW": 10, "OH": 10}))
        m.d.sync += [s.lim.in_c.eq(s.in_c - 2), s.lim.groups.eq(s.groups - 2),
                     s.lim.OW.eq(s.OW - 2), s.lim.OH.eq(s.OH - 2)]

        # The codebook registers: a copy per broadcast group, like the array's shared inputs
        # (64 columns reading one set of registers would be the 85F's critical path)
        # (one per BROADCAST_COLUMNS cells: with input lanes the cells are rows x columns)
        s.copies = _copies(cfg, N)
        s.cb_sets = [Array(Signal(signed(WEIGHT_BITS),
                                name=f"cb{i}_bcast{k}" if s.copies > 1 else f"cb{i}")
                         for i in range(1 << cfg.codebook_bits)) for k in range(s.copies)]

    def _address_generator(self, m: Module, s: SimpleNamespace) -> None:
        """Counters with incremental addresses issuing one reduction step a cycle (no multiplier
        in the loop), the padding test, the weight word and sub-word of the step, ``first`` and
        ``last`` flags, and the step's control carried to the decode stage."""
        cfg = self.config
        R, N, lr, aw = self._R, self._N, self._lr, self._saw
        # ``ci`` counts steps of R channels (words); addresses are in bytes, words are aligned
        s.oy = Signal(10)
        s.ox = Signal(10)
        s.g = Signal(12)
        s.ky = Signal(2)
        s.kx = Signal(2)
        s.ci = Signal(12)
        s.iy0 = Signal(signed(12))
        s.ix0 = Signal(signed(12))
        s.orow, s.opix, s.krow, s.kaddr = (Signal(signed(aw), name=n) for n in
                                   ("orow", "opix", "krow", "kaddr"))
        s.wpos = Signal(24)
        s.restart = Signal()  # wpos == 0: the step starts the layer's weights again
        s.credits = Signal(range(cfg.fifo_depth + 1))
        #: credits != 0, as a register kept with the count (the comparator in front of the
        #: issue decision was on the 85F's critical path)
        s.has_credit = Signal()
        s.issuing = Signal()

        # Each counter's "at its last value" is a register, kept one step ahead, so that the
        # step's decisions start at flip-flops, not at comparators (the ECP5's critical path).
        s.ends = {n: Signal(name=f"{n}_end") for n in ("ci", "kx", "ky", "g", "ox", "oy")}
        s.first = Signal()  # the step starts a group
        s.last = s.ends["ci"] & s.ends["kx"] & s.ends["ky"]
        iy, ix = s.iy0 + s.ky, s.ix0 + s.kx
        is_pad = (iy < 0) | (iy >= s.H) | (ix < 0) | (ix >= s.W)
        can_issue = ~s.first | s.has_credit
        s.step = Signal()
        m.d.comb += s.step.eq(s.issuing & can_issue)

        # The issue stage's control, carried along to the decode stage, where the memory data
        # arrives: one register (synchronous memories), or three with memory_registers (the
        # read addresses and the read data are registered too: short paths to and from block
        # RAMs spread over a large device). Where each group's outputs go is not carried: the
        # requantization side counts groups in the same order (see there).
        # (``place``: where the step's indices lie in the weight word, see :func:`index_place`;
        # with sparse_weights, ``restart``: the step is its pixel's first, whose weights start
        # the layer's again, and ``waddr``: a dense layer's weight word, read behind the mask)
        sparse = cfg.sparse_weights
        w_aw = len(self.w_raddr[0])
        s.ctl = data.StructLayout({"valid": 1, "first": 1, "last": 1, "pad": 1, "place": 4,
                                   **({"restart": 1, "waddr": w_aw} if sparse else {})})
        issue_ctl = Signal(s.ctl)
        steps_per_word = Const(1, 4) << s.spw_log
        w_addr = s.w_base + (s.wpos >> s.spw_log)
        m.d.comb += [
            issue_ctl.valid.eq(s.step), issue_ctl.first.eq(s.first), issue_ctl.last.eq(s.last),
            issue_ctl.pad.eq(is_pad),
            issue_ctl.place.eq(steps_per_word | (s.wpos & (steps_per_word - 1))),
        ]
        if sparse:
            m.d.comb += [issue_ctl.restart.eq(s.restart), issue_ctl.waddr.eq(w_addr)]
        s.chain = [issue_ctl]
        self._delay(m, s, _read_latency(cfg))
        s.s1 = s.chain[-1]
        act_addr = (s.kaddr + (s.ci << lr))[lr:self._aw]
        # (data registers without reset: the step's control says when they hold data, and the
        # reset would reach hundreds of flip-flops, a failing high-fanout net on the 85F)
        s.act_rdata = Signal(ACT_BITS * R)
        s.w_rdata = Signal(N * 8, reset_less=True)
        # (with memory_registers the accelerator registers the activation read address after
        # its multiplexer of the units, and the read data, for every unit)
        m.d.comb += [self.act_raddr.eq(act_addr), s.act_rdata.eq(self.act_rdata)]
        if sparse:
            # the step's mask now; its weight word once the mask says where (:meth:`_sparse`)
            s.m_rdata = Signal(N, reset_less=True)
            self._read(m, list(self.m_raddr), self.m_rdata, s.m_rdata, s.m_base + s.wpos,
                       "m_addr")
        else:
            self._read(m, list(self.w_raddr), self.w_rdata, s.w_rdata, w_addr, "w_addr")

    def _delay(self, m: Module, s: SimpleNamespace, stages: int, *lines) -> list:
        """``stages`` more registers of the step's control (``s.chain``) and of each of
        ``lines`` beside it; returns each line's delayed copy."""
        lines = list(lines)
        for _ in range(stages):
            reg = Signal(s.ctl, name=f"ctl{len(s.chain)}")
            m.d.sync += reg.eq(s.chain[-1])
            s.chain.append(reg)
            for i, v in enumerate(lines):
                later = Signal(v.shape(), name=f"line{i}_d{len(s.chain) - 1}", reset_less=True)
                m.d.sync += later.eq(v)
                lines[i] = later
        return lines

    def _read(self, m: Module, raddrs: list, rdata, data_reg, addrs, name: str) -> None:
        """A model memory read: ``addrs`` (one per port of ``raddrs``, or one for all) to
        the memory, its data into ``data_reg``; with memory_registers the address is registered
        (a copy per port) and so is the data."""
        addrs = addrs if isinstance(addrs, list) else [addrs] * len(raddrs)
        if self.config.memory_registers:
            regs = [Signal(len(raddrs[0]), name=f"{name}_bcast{k}" if len(raddrs) > 1
                           else f"{name}_r") for k in range(len(raddrs))]
            m.d.sync += [r.eq(a) for r, a in zip(regs, addrs, strict=True)]
            m.d.sync += data_reg.eq(rdata)
            m.d.comb += [p.eq(r) for p, r in zip(raddrs, regs, strict=True)]
        else:
            m.d.comb += [p.eq(a) for p, a in zip(raddrs, addrs, strict=True)]
            m.d.comb += data_reg.eq(rdata)

    def _sparse(self, m: Module, s: SimpleNamespace, act):
        """The sparse decoder's front: each chunk's nonzero count, where its values start (the
        rule of :func:`~.isa.sparse_positions`, a step a cycle), and the weight word read
        (each chunk's own value word in a sparse layer, the step's word in a dense one).
        Returns the activation delayed to the weight data, and each chunk's mask and first
        value slot beside it."""
        cfg = self.config
        N = self._N
        chunks = len(self._chunks)
        w_aw = len(self.w_raddr[0])
        # the count stage: the mask and its chunks' nonzero counts, registered
        mask = Signal(N, name="mask_c", reset_less=True)
        counts = [Signal(range(SPARSE_CHUNK + 1), name=f"nz{p}_c", reset_less=True)
                  for p in range(chunks)]
        m.d.sync += [mask.eq(s.m_rdata)] + [
            c.eq(sum(s.m_rdata[int(cell)] for cell in self._chunks[p]))
            for p, c in enumerate(counts)]
        act, = self._delay(m, s, 1, act)
        sc = s.chain[-1]
        # Per chunk: where the steps so far ended (``end``: a slot of the last step's word,
        # 16 and up in the word after it) and the last step's word + 1 (``nxt``). A step
        # starts at slot ``end mod 16``, in the word after the last step's where ``end`` >= 16
        # (``adv``), and reads the word after its own (its values may run into it); its own
        # word is the last step's, or the one the last step read beside it. A pass's first
        # step (``restart``) reads its own word, the layer's first: its values fit in it.
        # (a cycle without a step reads the word the last step read beside its own, so the words
        # behind it, kept without an enable, stay as they were)
        restart = sc.valid & sc.restart
        addrs, starts = [], []
        for p, n in enumerate(counts):
            end = Signal(5, name=f"end{p}")
            nxt = Signal(w_aw, name=f"vnext{p}")
            adv, off = Signal(name=f"adv{p}"), Signal(4, name=f"off{p}")
            m.d.comb += [adv.eq(sc.valid & ~sc.restart & end[4]),
                         off.eq(Mux(sc.restart, 0, end[:4]))]
            with m.If(sc.valid):
                m.d.sync += [end.eq(off + n), nxt.eq(Mux(sc.restart, s.w_base + 1, nxt + adv))]
            addrs.append(Mux(s.sparse, Mux(restart, s.w_base, nxt + adv), sc.waddr))
            starts.append(Cat(off, adv, restart))
        self._read(m, list(self.w_raddr), self.w_rdata, s.w_rdata, addrs, "w_addr")
        return self._delay(m, s, _read_latency(cfg), act, mask, Cat(starts))

    def _own_words(self, m: Module, s: SimpleNamespace, starts) -> list:
        """Each chunk's own value word of the sparse step whose weight word (the one after its
        own: its values may run into it) has arrived: the word the step before read, or that
        step's own, or at a pass's first step the word just read."""
        out = []
        for p in range(len(self._chunks)):
            part = s.w_rdata[p * WEIGHT_PART_BYTES * 8:(p + 1) * WEIGHT_PART_BYTES * 8]
            adv, restart = starts[p * 6 + 4], starts[p * 6 + 5]
            # (no enable: a cycle without a step has neither flag and reads the same word, and
            # an enable from the step's valid bit would reach a thousand flip-flops on the 85F)
            own = Signal.like(part, name=f"vown{p}", reset_less=True)
            last = Signal.like(part, name=f"vlast{p}", reset_less=True)
            now = Mux(restart, part, Mux(adv, last, own))
            m.d.sync += [own.eq(now), last.eq(part)]
            out.append(now)
        return out

    @staticmethod
    def _values(owns: list, word, starts) -> list:
        """Each chunk's values of a sparse step: the :data:`~.isa.SPARSE_CHUNK` slots from the
        step's first, in its own word (``owns``) and the next (the chunk's part of ``word``)."""
        out = []
        for p, own in enumerate(owns):
            part = word[p * WEIGHT_PART_BYTES * 8:(p + 1) * WEIGHT_PART_BYTES * 8]
            window = Cat(own, part)
            slots = Array(window.word_select(k, SPARSE_VALUE_BITS)
                          for k in range(SPARSE_WORD_VALUES + SPARSE_CHUNK - 1))
            off = starts[p * 6:p * 6 + 4]
            out.append(Cat(slots[off + t] for t in range(SPARSE_CHUNK)))
        return out

    def _ranks(self, mask) -> list:
        """Per cell of each chunk, the set mask bits of the chunk's cells before it: which of
        the chunk's values the cell takes."""
        out = []
        for cells in self._chunks:
            bits = [mask[int(c)] for c in cells]
            out.append(Cat(Value.cast(sum(bits[:i]))[:w] if i else Const(0, 1)
                           for i, w in enumerate(_RANK_BITS)))
        return out

    def _expand(self, vals: list, mask, ranks: list) -> list:
        """A sparse step's indices, by cell: cell ``i`` of a chunk takes the chunk's value
        ``ranks[i]`` where its mask bit is set, else 0."""
        out = [None] * self._N
        for cells, v, r in zip(self._chunks, vals, ranks, strict=True):
            at = 0
            for i, cell in enumerate(cells):
                own = [v.word_select(k, SPARSE_VALUE_BITS) for k in range(i + 1)]
                pick = Array(own)[r[at:at + _RANK_BITS[i]]] if i else own[0]
                at += _RANK_BITS[i]
                out[int(cell)] = Mux(mask[int(cell)], pick, 0)
        return out

    def _decoder(self, m: Module, s: SimpleNamespace) -> None:
        """The padded pixel value or the activation word of ``R`` channels, and ``R x C``
        indices of ``w_bits`` bits out of the weight word (or a sparse layer's masks and
        values), turned into int8 through the codebook registers (or taken as int8 where the
        layer is uncompressed), into the MAC array."""
        cfg = self.config
        C, R, N = self._C, self._R, self._N
        # Index extraction, then the codebook lookup; with memory_registers the indices (and
        # the step's control and activation) are registered between the two.
        broadcast = array_broadcast(cfg)
        m.submodules.array = s.array = MACArray(
            C, broadcast, R, registered_multipliers=cfg.memory_registers,
            late_weights=broadcast > 1)
        act = Mux(s.s1.pad, s.pad_value.replicate(R), s.act_rdata)
        word = s.w_rdata
        if cfg.sparse_weights:
            act, mask, starts = self._sparse(m, s, act)
            owns = self._own_words(m, s, starts)
            if cfg.memory_registers:
                # the own words and the weight word registered before the value multiplexer
                # (the own word's selection, then the slot's, was an 85F failing path)
                regs = [Signal.like(o, name=f"vownr{p}", reset_less=True)
                        for p, o in enumerate(owns)]
                word = Signal.like(s.w_rdata, name="w_rdata_r", reset_less=True)
                m.d.sync += [r.eq(o) for r, o in zip(regs, owns, strict=True)]
                m.d.sync += word.eq(s.w_rdata)
                owns = regs
                act, mask, starts = self._delay(m, s, 1, act, mask, starts)
        # without a codebook decoder (codebook_bits == 0) only uncompressed int8 weights exist
        index_bits = SUPPORTED_INDEX_BITS if cfg.codebook_bits else (WEIGHT_BITS,)
        # The place code in a register copy per BROADCAST_COLUMNS cells (beside the step's
        # control, which it equals): one register driving every cell's multiplexers would be a
        # net across the array.
        place = [s.chain[-1].place] * s.copies
        if s.copies > 1:
            place = [Signal(4, name=f"place_bcast{k}") for k in range(s.copies)]
            m.d.sync += [p.eq(s.chain[-2].place) for p in place]
        idxs = []
        for j in range(N):
            idx = Signal(8, name=f"idx{j}")
            # Cell j's index: the word's bits at each place the code can name, zero-extended.
            # Code 0 does not occur; it repeats code 1, so the 16 entries cover every code
            # (no default case for synthesis to fill; a switch's "else 0" once landed on the
            # registers' reset inputs, a failing path on the 85F).
            places = {index_place(b, sub): word.word_select(sub * N + j, b)
                      for b in index_bits for sub in range(8 // b)}
            places[0] = places[index_place(WEIGHT_BITS, 0)]
            m.d.comb += idx.eq(Array(places[c] for c in sorted(places))[place[j * s.copies // N]]
                               if len(index_bits) > 1 else places[0])
            idxs.append(idx)
        if cfg.sparse_weights:
            vals, ranks = self._values(owns, word, starts), self._ranks(mask)
            if cfg.memory_registers:
                # the chunks' values and ranks and the dense indices registered before the
                # expansion (the value word's slot multiplexer, then the expansion's, then the
                # codebook's would be one long path)
                regs = [Signal(8, name=f"didx{j}", reset_less=True) for j in range(N)]
                vregs = [Signal.like(v, name=f"vals{p}", reset_less=True)
                         for p, v in enumerate(vals)]
                rregs = [Signal.like(r, name=f"ranks{p}", reset_less=True)
                         for p, r in enumerate(ranks)]
                m.d.sync += [r.eq(i) for r, i in zip(regs + vregs + rregs, idxs + vals + ranks,
                                                     strict=True)]
                idxs, vals, ranks = regs, vregs, rregs
                act, mask = self._delay(m, s, 1, act, mask)
            idxs = [Mux(s.sparse, v, i) for v, i in zip(self._expand(vals, mask, ranks), idxs,
                                                          strict=True)]
        s.s2, act2 = s.chain[-1], act
        if cfg.memory_registers:
            # (no reset: the domain's reset into these registers' LSR inputs was the 85F's
            # worst placement group; the abc9 assertion that once needed it no longer occurs)
            regs = [Signal(8, name=f"idx{j}_r", reset_less=True) for j in range(N)]
            m.d.sync += [r.eq(i) for r, i in zip(regs, idxs, strict=True)]
            idxs = regs
            act2, = self._delay(m, s, 1, act)
            s.s2 = s.chain[-1]
        if broadcast > 1:
            # The array's broadcast stage takes the weights a cycle late: the indices go
            # through a second register, which the placer puts beside the codebook multiplexer
            # (from the first, wherever it sat, through the multiplexer to the weight register
            # was an 85F failing path).
            regs = [Signal(8, name=f"idx{j}_d", reset_less=True) for j in range(N)]
            m.d.sync += [r.eq(i) for r, i in zip(regs, idxs, strict=True)]
            idxs = regs
        for j, idx in enumerate(idxs):
            wj = Signal(signed(WEIGHT_BITS), name=f"w{j}")
            cb_regs = s.cb_sets[j * s.copies // N]
            m.d.comb += wj.eq(Mux(s.use_cb, cb_regs[idx[:cfg.codebook_bits]], idx.as_signed())
                              if cfg.codebook_bits else idx.as_signed())
            m.d.sync += s.array.weights[j].eq(wj)
        m.d.sync += [s.array.valid.eq(s.s2.valid), s.array.first.eq(s.s2.first),
                     s.array.last.eq(s.s2.last), s.array.act.eq(act2)]

    def _requantization(self, m: Module, s: SimpleNamespace) -> None:
        """The group FIFO and its credits, and ``Q`` requantizers taking ``Q`` consecutive
        channels of the head group a cycle, written as part of one activation word."""
        cfg = self.config
        C, R, Q, lr, lq = self._C, self._R, self._Q, self._lr, self._lq
        entry = data.StructLayout({"sums": data.ArrayLayout(signed(ACC_BITS), C)})
        m.submodules.fifo = s.q = (BlockFIFO if cfg.fifo_memory == "bram" else fifo.SyncFIFO)(
            width=entry.size, depth=cfg.fifo_depth)
        m.d.comb += [s.q.w_en.eq(s.array.out_valid), s.q.w_data.eq(s.array.sums.as_value())]
        head = data.View(entry, s.q.r_data)
        # Groups leave in the order they were issued (pixels in raster order, groups within a
        # pixel), so their output address, channel count and parameters come from counters here.
        # Every address is a register updated per chunk or group (no multiply, no adder chain
        # behind a memory port: the group counter through two adders to the parameter address
        # would be the 85F's critical path).
        s.o_g = Signal(12)  # the head group's index within its pixel
        s.o_g_end = Signal()  # it is the pixel's last group
        s.o_pix = Signal(self._aw + 1)  # the head group's output pixel address
        s.g_addr = Signal(self._aw + 1)  # its first output byte address: o_pix + o_g * C
        s.g_pptr = Signal(len(self.p_raddr))  # its parameter word address
        s.p_ptr = Signal(len(self.p_raddr))  # the head chunk's parameter word address
        nxt_end = Signal()  # the group after the head group is its pixel's last
        m.d.comb += nxt_end.eq(Mux(s.o_g_end, s.single, s.o_g == s.lim.groups))

        # The head group's last chunk (of Q elements) and which of its lanes hold channels:
        # registers set one group ahead. Every group but a pixel's last is full; the last one
        # ends at channel (out_c - 1) mod C, a layer constant.
        head_last = Signal(range(C // Q))
        head_mask = Signal(Q)  # (with one lane, always 1: no register)

        def set_last(is_tail):
            return [head_last.eq(Mux(is_tail, s.tail_last, C // Q - 1))] + (
                [head_mask.eq(Mux(is_tail, s.tail_mask, (1 << Q) - 1))] if Q > 1 else [])
        s.set_last = set_last

        # ---------------------------------------------------------------- requantization
        # Q elements (a chunk) of the head group per cycle; the group leaves the FIFO with its
        # last chunk, and the next group's first chunk follows in the next cycle.
        # (pipelined with memory_registers: large devices)
        s.lanes = [Requantizer(tag_bits=self._aw + 1, pipelined=cfg.memory_registers)
                 for _ in range(Q)]
        for k, rq in enumerate(s.lanes):
            m.submodules[f"rq{k}" if Q > 1 else "rq"] = rq
        jc = Signal(range(C // Q))  # the chunk
        issue = Signal()
        popped = Signal()
        s.r_valid = Signal()
        r_mask = Signal(Q, init=1)
        r_acc = [Signal(signed(ACC_BITS), name=f"r_acc{k}") for k in range(Q)]
        r_tag = Signal(self._aw + 1)
        m.d.comb += [issue.eq(s.q.r_rdy), popped.eq(issue & (jc == head_last)),
                     self.p_raddr.eq(s.p_ptr), s.q.r_en.eq(popped)]
        m.d.sync += [s.r_valid.eq(issue), r_tag.eq(s.g_addr + (jc << lq))]
        if Q > 1:
            m.d.sync += r_mask.eq(Mux(popped, head_mask, (1 << Q) - 1))
        for k in range(Q):
            m.d.sync += r_acc[k].eq(Array(head.sums[c * Q + k] for c in range(C // Q))[jc])
        with m.If(issue):
            m.d.sync += [jc.eq(Mux(popped, 0, jc + 1)), s.p_ptr.eq(s.p_ptr + 1)]
        with m.If(popped):
            m.d.sync += [*s.set_last(nxt_end), s.o_g_end.eq(nxt_end)]
            with m.If(s.o_g_end):
                nxt_pix = s.o_pix + s.out_stride
                m.d.sync += [s.o_g.eq(0), s.o_pix.eq(nxt_pix), s.g_addr.eq(nxt_pix),
                             s.g_pptr.eq(s.p_base), s.p_ptr.eq(s.p_base)]
            with m.Else():
                nxt_pptr = s.g_pptr + C // Q
                m.d.sync += [s.o_g.eq(s.o_g + 1), s.g_addr.eq(s.g_addr + C), s.g_pptr.eq(nxt_pptr),
                             s.p_ptr.eq(nxt_pptr)]
        for k, rq in enumerate(s.lanes):
            m.d.comb += [
                rq.i_valid.eq(s.r_valid & r_mask[k]),
                rq.acc.eq(r_acc[k]),
                rq.bias.eq(self.p_rdata[k].bias),
                rq.mult.eq(self.p_rdata[k].mult),
                rq.shift.eq(s.shift),
                rq.tag.eq(r_tag),
            ]
        # The chunk's bytes go to their place in one activation word: lane 0's tag is the
        # chunk's first byte address (a multiple of Q), the bytes repeat across the word, and
        # the write enables pick the chunk's place.
        o_tag = s.lanes[0].o_tag
        place = o_tag[lq:lr] if lr > lq else Const(0, 1)
        m.d.comb += [
            self.act_waddr.eq(o_tag[lr:self._aw]),
            self.act_wdata.eq(Cat(rq.y for rq in s.lanes).replicate(R // Q)),
            self.act_we.eq(Cat(rq.o_valid & (place == p) for p in range(R // Q)
                               for rq in s.lanes)),
        ]
        credit_take = s.step & s.first
        credits = Signal.like(s.credits)
        m.d.comb += credits.eq(s.credits - (credit_take & ~popped) + (popped & ~credit_take))
        m.d.sync += [s.credits.eq(credits), s.has_credit.eq(credits != 0)]

    def _control(self, m: Module, s: SimpleNamespace) -> None:
        """The layer constants from the descriptor, the codebook load, and the engine's states:
        SETUP, CODEBOOK, RUN (one step a cycle), DRAIN."""
        cfg = self.config
        C, R, Q, N = self._C, self._R, self._Q, self._N
        clog = C.bit_length() - 1
        lr, lq = self._lr, self._lq
        d = self.desc
        pipe_busy = Signal()
        m.d.comb += pipe_busy.eq(Cat(c.valid for c in s.chain[1:]).any() | s.s2.valid
                                 | s.array.valid
                                 | s.array.out_valid | s.r_valid | s.q.r_rdy
                                 | Cat(rq.busy for rq in s.lanes).any()
                                 | (s.credits != cfg.fifo_depth))
        # With memory_registers the OR of every stage's valid bit is registered: it is done a
        # cycle later (the OR through the sequencer to the cycle counters' block RAM was a
        # failing path). It is busy when the drain begins: the last step is in flight.
        draining = pipe_busy
        if cfg.memory_registers:
            draining = Signal(name="pipe_busy_r")
            m.d.sync += draining.eq(pipe_busy)
        # Layer constants from the descriptor (the sequencer holds it for the layer, and the
        # constants are ready long before GO). With memory_registers they are registers: some
        # fan out to every column (on the 85F the codebook select crossed the die).
        layer_domain = m.d.sync if cfg.memory_registers else m.d.comb
        tail = (d.out_c - 1)[:clog]  # the index of a pixel's last channel within its group
        layer_domain += [
            # (in_c counts steps: words of R channels)
            s.k3.eq(d.kernel == 3), s.in_c.eq((d.in_c + (R - 1)) >> lr), s.out_c.eq(d.out_c),
            s.H.eq(d.in_h),
            s.W.eq(d.in_w), s.OH.eq(d.out_h), s.OW.eq(d.out_w), s.stride2.eq(d.stride == 2),
            s.pad.eq(d.pad != 0), s.stride.eq(d.in_stride), s.rowstride.eq(self.consts.rowstride),
            s.groups.eq((d.out_c + C - 1) >> clog), s.single.eq(d.out_c <= C),
            s.tail_last.eq(tail[lq:]), s.tail_mask.eq((Const(2, Q + 1) << tail[:lq]) - 1),
            s.spw_log.eq(Mux(d.w_bits == 1, 3, Mux(d.w_bits == 2, 2, Mux(d.w_bits == 4, 1, 0)))
                       if cfg.codebook_bits else 0),
            s.use_cb.eq(d.w_bits <= cfg.codebook_bits),
            s.sparse.eq(d.w_encoding == WeightEncoding.SPARSE),
            s.w_base.eq(d.w_addr[N.bit_length() - 1:] + self.w_slot),
            s.p_base.eq(d.param_addr[lq:] + self.p_slot), s.cb_base.eq(d.cb_addr + self.cb_slot),
            s.out_stride.eq(d.out_stride), s.shift.eq(d.shift), s.pad_value.eq(d.pad_value),
            s.cb_count.eq(Mux(d.w_bits <= cfg.codebook_bits, 1 << d.w_bits, 0)),
            *([s.m_base.eq(d.m_addr + self.m_slot)] if cfg.sparse_weights else []),
        ]
        m.d.comb += self.done.eq(0)
        cb_i, cb_d = Signal(9), Signal(9)  # the codebook entry read, and the one arriving
        cb_v = Signal()  # (only ever set in CODEBOOK, which it leaves at 0)
        if cfg.codebook_bits and cfg.memory_registers:
            # The entry arriving from the block RAM is registered, then once per register copy
            # with one write enable per entry, and written: the last one in RUN's first cycle,
            # before RUN's first step reaches the lookup. (The block RAM's 5.8 ns
            # clock-to-output, then a decoder and 128 register enables per bit, would not meet
            # 100 MHz on the 85F.)
            word, word_v = Signal(signed(WEIGHT_BITS), name="cb_word"), Signal()
            word_i = Signal(cfg.codebook_bits)
            m.d.sync += [word.eq(self.cb_rdata), word_v.eq(cb_v), word_i.eq(cb_d)]
            for k, cb_regs in enumerate(s.cb_sets):
                cb_data = Signal(signed(WEIGHT_BITS), name=f"cb_data_bcast{k}", reset_less=True)
                cb_we = Signal(len(cb_regs), name=f"cb_we_bcast{k}", reset_less=True)
                m.d.sync += [cb_data.eq(word),
                             cb_we.eq(Mux(word_v, Const(1, len(cb_regs)) << word_i, 0))]
                for i, reg in enumerate(cb_regs):
                    with m.If(cb_we[i]):
                        m.d.sync += reg.eq(cb_data)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [s.credits.eq(cfg.fifo_depth), s.has_credit.eq(1)]
                    m.next = "SETUP"
            with m.State("SETUP"):
                # Window origin of the first output pixel: (-pad, -pad).
                origin = (d.in_addr + d.in_offset) - Mux(s.pad, s.rowstride + s.stride, 0)
                out_first = d.out_addr + d.out_offset
                m.d.sync += [
                    s.oy.eq(0), s.ox.eq(0), s.g.eq(0), s.ky.eq(0), s.kx.eq(0), s.ci.eq(0),
                    s.wpos.eq(0), s.restart.eq(1),
                    s.iy0.eq(-s.pad), s.ix0.eq(-s.pad), s.orow.eq(origin), s.opix.eq(origin),
                    s.krow.eq(origin), s.kaddr.eq(origin),
                    s.o_pix.eq(out_first), s.g_addr.eq(out_first), s.o_g.eq(0),
                    s.g_pptr.eq(s.p_base), s.p_ptr.eq(s.p_base),
                    s.o_g_end.eq(s.single), *s.set_last(s.single),
                    s.first.eq(1),
                    s.ends["ci"].eq(s.in_c == 1), s.ends["kx"].eq(~s.k3), s.ends["ky"].eq(~s.k3),
                    s.ends["g"].eq(s.groups == 1), s.ends["ox"].eq(s.OW == 1),
                    s.ends["oy"].eq(s.OH == 1),
                ]
                m.next = "CODEBOOK"
            with m.State("CODEBOOK"):
                # One entry per cycle: address in this cycle, data (and write) in the next.
                m.d.comb += self.cb_raddr.eq(s.cb_base + cb_i)
                m.d.sync += [cb_v.eq(cb_i < s.cb_count), cb_d.eq(cb_i)]
                with m.If(cb_i < s.cb_count):
                    m.d.sync += cb_i.eq(cb_i + 1)
                if cfg.codebook_bits and not cfg.memory_registers:
                    with m.If(cb_v):
                        m.d.sync += [cb_regs[cb_d[:cfg.codebook_bits]].eq(self.cb_rdata)
                                     for cb_regs in s.cb_sets]
                with m.If((cb_i >= s.cb_count) & ~cb_v):
                    m.d.sync += [cb_i.eq(0), s.issuing.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(s.step):
                    m.d.sync += s.first.eq(s.last)
                    self._advance(m, s)
                with m.If(~s.issuing):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~draining):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

    def _advance(self, m: Module, s: SimpleNamespace) -> None:
        """Counter and address updates after one issued step. Each counter's end flag is set
        for its next value: "the value after this one is the last"."""
        sstride = Mux(s.stride2, s.stride << 1, s.stride)
        srow = Mux(s.stride2, s.rowstride << 1, s.rowstride)
        m.d.sync += [s.wpos.eq(s.wpos + 1), s.restart.eq(0)]
        with m.If(~s.ends["ci"]):
            m.d.sync += [s.ci.eq(s.ci + 1), s.ends["ci"].eq(s.ci == s.lim.in_c)]
        with m.Else():
            m.d.sync += [s.ci.eq(0), s.ends["ci"].eq(s.in_c == 1)]
            with m.If(~s.ends["kx"]):
                m.d.sync += [s.kx.eq(s.kx + 1), s.kaddr.eq(s.kaddr + s.stride),
                             s.ends["kx"].eq(s.kx == 1)]
            with m.Else():
                m.d.sync += [s.kx.eq(0), s.ends["kx"].eq(~s.k3)]
                with m.If(~s.ends["ky"]):
                    m.d.sync += [s.ky.eq(s.ky + 1), s.krow.eq(s.krow + s.rowstride),
                                 s.kaddr.eq(s.krow + s.rowstride), s.ends["ky"].eq(s.ky == 1)]
                with m.Else():
                    m.d.sync += [s.ky.eq(0), s.krow.eq(s.opix), s.kaddr.eq(s.opix),
                                 s.ends["ky"].eq(~s.k3)]
                    with m.If(~s.ends["g"]):
                        m.d.sync += [s.g.eq(s.g + 1), s.ends["g"].eq(s.g == s.lim.groups)]
                    with m.Else():
                        m.d.sync += [s.g.eq(0), s.wpos.eq(0), s.restart.eq(1),
                                     s.ends["g"].eq(s.groups == 1)]
                        with m.If(~s.ends["ox"]):
                            nxt = s.opix + sstride
                            m.d.sync += [s.ox.eq(s.ox + 1), s.opix.eq(nxt), s.krow.eq(nxt),
                                         s.kaddr.eq(nxt), s.ix0.eq(s.ix0 + Mux(s.stride2, 2, 1)),
                                         s.ends["ox"].eq(s.ox == s.lim.OW)]
                        with m.Else():
                            nxt = s.orow + srow
                            m.d.sync += [s.ox.eq(0), s.oy.eq(s.oy + 1), s.orow.eq(nxt),
                                         s.opix.eq(nxt), s.krow.eq(nxt), s.kaddr.eq(nxt),
                                         s.ix0.eq(-s.pad),
                                         s.iy0.eq(s.iy0 + Mux(s.stride2, 2, 1)),
                                         s.ends["ox"].eq(s.OW == 1),
                                         s.ends["oy"].eq(s.oy == s.lim.OH)]
                            with m.If(s.ends["oy"]):
                                m.d.sync += s.issuing.eq(0)
