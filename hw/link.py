"""The host link: SLIP frames with CRC-32 in, commands on the accelerator, reply frames out.

:class:`HostLink` works on byte streams (the UART is outside, in :class:`~.top.FireforgeSoC`).
Every command, status, argument and reply layout comes from :mod:`.protocol`. The link is a loop
of three phases: *receive* a frame into the frame buffer (:class:`~.frame.FrameRx`: unescaping,
checking CRC as the bytes arrive), *execute* it (argument checks, then byte copies into
activation or model memory), and *reply* (bytes from registers or memories, through
:class:`~.frame.FrameTx`, which escapes and appends the CRC). Bytes that arrive outside *receive*
wait in the receive FIFO where the configuration has one (``rx_fifo_bytes``), so requests
arrive while the link answers; without one they are dropped up to the next ``END``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .errors import FireforgeError
from .fifo import BlockFIFO
from .frame import BUFFER_DEPTH, FrameRx, FrameTx
from .info import info_fields
from .placer import PixelPlacer
from .protocol import (
    ARGUMENTS,
    BOARD_ID_BYTES,
    CRC,
    CRC_BYTES,
    FRAME_ERROR_TAG,
    MAX_DATA,
    PROTOCOL_VERSION,
    Cmd,
    CommitArgs,
    CountersHeader,
    InfoReply,
    InputPlacement,
    MemoryArgs,
    ModelInfo,
    PixelArgs,
    RequestHeader,
    ResultArgs,
    ResultHeader,
    RunArgs,
    StateFlags,
    Status,
    StatusReply,
    WeightArgs,
    layout_from_bytes,
    parse_model_info,
)

__all__ = ["HostLink", "RX_BYTE_CYCLES"]

#: the fewest clock cycles between two received bytes that a link feeder without a UART (the
#: USB bridge, the simulations) keeps: the rate every link test runs at; a UART's bytes are
#: ten bit times apart
RX_BYTE_CYCLES = 3

_HEADER_BYTES = RequestHeader.size // 8
#: argument bytes loaded into registers
_ARG_REG_BYTES = max(a.size for a in ARGUMENTS.values()) // 8
_INFO_BYTES = ModelInfo.size // 8
#: where the placement lies in ModelInfo (LOAD_COMMIT's data)
_PLACEMENT_AT = ModelInfo["input"].offset // 8
# WRITE_PIXELS' offset is read as MemoryArgs.addr (``mem_at``, the span check): the same bits
assert (PixelArgs["offset"].offset, PixelArgs["offset"].width) == \
    (MemoryArgs["addr"].offset, MemoryArgs["addr"].width)


def _board_id(board: str) -> int:
    raw = board.encode("ascii", "replace")[:BOARD_ID_BYTES]
    return int.from_bytes(raw.ljust(BOARD_ID_BYTES, b"\0"), "little")


def _byte_at(view, idx, n: int | None = None):
    """Byte ``idx`` of the first ``n`` bytes of a layout view: a byte multiplexer (a variable
    ``word_select`` would build a shifter as wide as the whole reply)."""
    raw = view.as_value()
    n = len(raw) // 8 if n is None else n
    return Array(raw.word_select(i, 8) for i in range(n))[idx[:max(1, (n - 1).bit_length())]]


class _State:
    """The link's registers and memory ports, shared by its stages: the request being
    executed, the load in progress, the model identity."""

    def __init__(self, cfg):
        #: a load is open
        self.loading = Signal()
        #: the model memories' slot a load writes
        self.load_slot = Signal()
        #: the ModelInfo memory's ports, and the loaded model's class count (set in elaborate)
        self.info_rd = self.info_wr = self.num_classes = None
        #: WRITE_WEIGHTS's space word bytes, and its next byte's word and lane (set in _checks)
        self.space_wb = self.word = self.lane = None
        #: the reply body's byte ``idx`` (set in _reply)
        self.body = None
        self.cmd, self.tag = Signal(8), Signal(8)
        self.args = args = Signal(_ARG_REG_BYTES * 8)
        self.mem = MemoryArgs(args[:MemoryArgs.size])
        self.weights = WeightArgs(args[:WeightArgs.size])
        self.run = RunArgs(args[:RunArgs.size])
        self.result = ResultArgs(args[:ResultArgs.size])
        self.commit = CommitArgs(args[:CommitArgs.size])
        self.pixels = PixelArgs(args[:PixelArgs.size])
        #: the image stage's ports and the pixel placer (set in elaborate where the
        #: configuration has them), the active model's placement and the one a load brings
        self.stage_rd = self.stage_wr = self.placer = None
        self.placement = self.placement_load = None
        #: WRITE_PIXELS wrote the stage since the last RUN, and where its last byte ended
        self.staged = Signal()
        self.stage_end = Signal(range(cfg.stage_bytes + 1))
        #: the memory address of data byte ``idx`` (``MemoryArgs.addr`` or WRITE_PIXELS'
        #: ``offset``, the same argument bytes, plus ``idx``)
        self.mem_at = Signal(32)
        self.status = Signal(Status)
        #: start the engine (a pulse, from a register)
        self.start = Signal()
        #: the byte being read, copied, placed or sent
        self.idx = Signal(range(max(BUFFER_DEPTH, cfg.stage_bytes) + 1))
        #: where the request's data starts in the frame, and how many bytes it has
        self.data_off = Signal(range(_HEADER_BYTES + CommitArgs.size // 8 + 1))
        self.data_len = Signal(range(BUFFER_DEPTH + 1))
        #: the frame ends before its command's arguments
        self.short = Signal()
        assert _HEADER_BYTES + _ARG_REG_BYTES >= 4  # (the time data_off and data_len need)
        self.body_len = Signal(range(InfoReply.size // 8 + 4 * max(
            cfg.result_entries, cfg.program_entries, 64) + MAX_DATA + 1))
        #: the reply's length tests, registered: no body, and idx at the body's last byte
        self.no_body, self.body_last = Signal(), Signal()
        #: the argument checks (:meth:`HostLink._checks`)
        self.args_bad, self.crc_bad, self.commit_bad = Signal(), Signal(), Signal()


class HostLink(wiring.Component):
    """Frames in (``rx``), frames out (``tx``), the accelerator's host port (``acc``).

    ``board`` is the name INFO reports. The model identity (hash, logit scale, class count)
    starts as the bitstream's program and changes with each committed load.

    Members
    -------
    rx : ``In(stream.Signature(8, always_ready=True))``
        Bytes from the UART.
    tx : ``Out(stream.Signature(8))``
        Bytes to the UART.
    acc : ``Out(HostPort)``
        The accelerator's host port (:class:`~.accelerator.HostPort`), for ``wiring.connect``.
    model_valid : ``Out(1)``
        A model is loaded and committed.
    errors : ``Out(16)``
        Error replies so far.
    """

    def __init__(self, accelerator: Accelerator, board: str = "sim"):
        self.config = accelerator.config
        self.space_words = accelerator.space_words
        self.act_read_latency = accelerator.act_read_latency
        self.num_classes = accelerator.program.num_classes
        # SPRAM weights start empty: no model (and a zero identity) until the host loads one
        self.initial_info = (accelerator.program.model_info() if self.config.weights_preloaded
                             else bytes(_INFO_BYTES))
        self.board = board
        if len(board.encode("ascii", "replace")) > BOARD_ID_BYTES:
            raise FireforgeError(f"board name {board!r}: at most {BOARD_ID_BYTES} characters")
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            "model_valid": Out(1, init=int(self.config.weights_preloaded)),
            "errors": Out(16),
            "acc": Out(accelerator.host_port),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        slots = cfg.model_slots

        # ------------------------------------------------------------ framing
        m.submodules.frame_rx = frx = FrameRx()
        m.submodules.frame_tx = ftx = FrameTx()
        if cfg.rx_fifo_bytes:
            self._rx_fifo(m, frx)
        else:
            wiring.connect(m, wiring.flipped(self.rx), frx.rx)
        wiring.connect(m, ftx.tx, wiring.flipped(self.tx))
        # one CRC unit for the frame being received and the reply being sent (one at a time),
        # and one for the model load, which runs over many frames
        m.submodules.frame_crc = frame_crc = CRC.create()
        m.submodules.load_crc = load_crc = CRC.create()
        m.d.comb += ftx.crc_value.eq(frame_crc.crc)
        for feeder in (ftx.crc, frx.crc):  # (the receiver's bytes take the unit first)
            with m.If(feeder.start | feeder.valid):
                m.d.comb += [frame_crc.start.eq(feeder.start), frame_crc.valid.eq(feeder.valid),
                             frame_crc.data.eq(feeder.data)]

        # ------------------------------------------------------------ model identity
        r = _State(cfg)
        # two slots of ModelInfo bytes, following the accelerator's slot
        m.submodules.info = info = memory.Memory(
            shape=8, depth=_INFO_BYTES * slots, init=list(self.initial_info))
        r.info_rd, r.info_wr = info.read_port(), info.write_port()
        r.num_classes = Signal(16, init=self.num_classes if cfg.weights_preloaded else 0)
        m.d.comb += r.load_slot.eq(self.acc.slot ^ (slots - 1))

        m.d.comb += r.mem_at.eq(r.mem.addr + r.idx)
        # (without a stage nothing reads the placement, and synthesis drops it)
        _, _, initial = parse_model_info(layout_from_bytes(ModelInfo, self.initial_info))
        r.placement = Signal(InputPlacement, init=initial)
        r.placement_load = Signal(InputPlacement)
        if cfg.stage_bytes:
            m.submodules.stage = stage = memory.Memory(shape=8, depth=cfg.stage_bytes, init=[])
            r.stage_rd, r.stage_wr = stage.read_port(), stage.write_port()
            m.d.comb += r.stage_rd.addr.eq(r.idx)  # (read in PLACE_WRITE)
        if cfg.pixel_placer:
            m.submodules.placer = r.placer = PixelPlacer(len(self.acc.host_addr))
            m.d.comb += r.placer.placement.eq(r.placement)

        self._checks(m, r, load_crc)
        self._executor(m, r, frx, ftx, frame_crc, load_crc)
        self._reply_body(m, r)
        if r.placer is not None:  # (its writes run while the link waits in PLACE)
            with m.If(r.placer.we):
                m.d.comb += [self.acc.host_addr.eq(r.placer.addr),
                             self.acc.host_wdata.eq(r.placer.data), self.acc.host_we.eq(1)]
        return m

    def _rx_fifo(self, m: Module, frx) -> None:
        """The receive FIFO: every byte in, and out to the frame receiver while the link
        receives, one at most every :data:`RX_BYTE_CYCLES` cycles (the pace the shared CRC
        unit's hand-over from the reply to the next frame allows), from a register (a block
        RAM's output through the SLIP decoder into the CRC would be one long path). A byte
        that finds the FIFO full is lost: its frame's CRC fails, and the host sends again."""
        m.submodules.rx_fifo = q = BlockFIFO(8, self.config.rx_fifo_bytes)
        m.d.comb += [q.w_en.eq(self.rx.valid), q.w_data.eq(self.rx.payload)]
        held, byte = Signal(), Signal(8)  # the next byte, out of the FIFO
        gap = Signal(range(RX_BYTE_CYCLES))  # cycles until the receiver may take a byte
        give = held & frx.receiving & (gap == 0)
        m.d.comb += [q.r_en.eq(~held), frx.rx.valid.eq(give), frx.rx.payload.eq(byte)]
        with m.If(q.r_rdy & ~held):
            m.d.sync += [held.eq(1), byte.eq(q.r_data)]
        with m.If(give):
            m.d.sync += [held.eq(0), gap.eq(RX_BYTE_CYCLES - 1)]
        with m.Elif(gap != 0):
            m.d.sync += gap.eq(gap - 1)

    # ---------------------------------------------------------------------------- checks
    def _checks(self, m: Module, r: _State, load_crc) -> None:
        """Each command's argument check, registered in steps (short paths): the argument
        register is final after HEADER, ``word_end`` and the space's decode in ARGUMENTS, the
        range checks in CHECKS, each command's check in EXECUTE."""
        cfg = self.config
        mem_args, w_args, commit_args = r.mem, r.weights, r.commit
        # Range checks in as few bits as the memories need: a high bit of an address or a word
        # set is out of range by itself, so only the low bits are added (a 32-bit adder and
        # comparator per check would be a tenth of the UP5K's logic).
        data_bits = MAX_DATA.bit_length()

        def out_of_range(value, bits):
            return value[bits:].any() if len(value) > bits else Const(0)

        def span_bad(start, length, size):
            """``length`` data bytes from ``start`` reach past a memory of ``size`` bytes."""
            bits = size.bit_length()
            return ((length > MAX_DATA) | out_of_range(start, bits)
                    | (start[:bits] + length[:data_bits] > size))

        # Word bytes and byte count of each model space, and the byte offset of the word (a
        # shift: the word sizes are powers of two, so no multiplier is spent here). The word
        # bytes, byte count and validity are registers, final in ARGUMENTS like word_end: the
        # space's decode and the comparators behind it in one cycle would be the UP5K's
        # critical path.
        space_bits = max(e * wb for e, wb in self.space_words.values()).bit_length()
        lane_bits = max(wb for _, wb in self.space_words.values()).bit_length()
        r.space_wb = space_wb = Signal(lane_bits)
        space_ok = Signal()
        space_bytes = Signal(space_bits)
        word_offset = Signal(space_bits + lane_bits)
        # WRITE_WEIGHTS's next byte
        r.word, r.lane = Signal(space_bits), Signal(lane_bits)
        m.d.sync += [space_wb.eq(0), space_ok.eq(0), space_bytes.eq(0)]
        with m.Switch(w_args.space):
            for space, (entries, wb) in self.space_words.items():
                assert wb & (wb - 1) == 0, (space, wb)
                with m.Case(space):
                    m.d.sync += [space_wb.eq(wb), space_ok.eq(1), space_bytes.eq(entries * wb)]
                    m.d.comb += word_offset.eq(w_args.word[:space_bits]
                                               << (wb.bit_length() - 1))

        word_end = Signal(space_bits + lane_bits + 1)  # the byte after WRITE_WEIGHTS's last
        word_far = Signal()
        m.d.sync += [word_end.eq(word_offset + w_args.lane[:lane_bits]
                                 + w_args.length[:data_bits]),
                     word_far.eq(out_of_range(w_args.word, space_bits)
                                 | out_of_range(w_args.lane, lane_bits)
                                 | out_of_range(w_args.length, data_bits))]
        image_range_bad, weights_range_bad, stage_range_bad = Signal(), Signal(), Signal()
        layers, classes = commit_args.n_layers, commit_args.num_classes
        m.d.sync += [
            image_range_bad.eq(span_bad(mem_args.addr, mem_args.length, cfg.act_bytes)),
            weights_range_bad.eq(~space_ok | word_far | (w_args.length > MAX_DATA)
                                 | (w_args.lane >= space_wb) | (word_end > space_bytes)),
            r.commit_bad.eq((layers == 0) | (layers > cfg.program_entries)
                            | (classes == 0) | (classes > cfg.result_entries)),
        ]

        # EXECUTE's decisions start at flip-flops (comparators in front of them would be the
        # UP5K's critical path).
        with m.Switch(r.cmd):
            with m.Case(Cmd.WRITE_IMAGE):
                m.d.sync += r.args_bad.eq((r.data_len != mem_args.length) | image_range_bad)
            with m.Case(Cmd.READ_TENSOR):
                m.d.sync += r.args_bad.eq((r.data_len != 0) | image_range_bad)
            with m.Case(Cmd.WRITE_WEIGHTS):
                m.d.sync += r.args_bad.eq((r.data_len != w_args.length) | weights_range_bad)
            with m.Case(Cmd.LOAD_COMMIT):
                m.d.sync += r.args_bad.eq(r.data_len != _INFO_BYTES)
            if cfg.stage_bytes:
                with m.Case(Cmd.WRITE_PIXELS):
                    m.d.sync += r.args_bad.eq((r.data_len != r.pixels.length) | stage_range_bad)
            with m.Default():  # the commands without data
                m.d.sync += r.args_bad.eq(r.data_len != 0)
        m.d.sync += r.crc_bad.eq(load_crc.crc != commit_args.crc)
        if cfg.stage_bytes:
            m.d.sync += stage_range_bad.eq(span_bad(r.pixels.offset, r.pixels.length,
                                                    cfg.stage_bytes))
        m.d.sync += r.body_last.eq(r.idx == r.body_len - 1)

    # ---------------------------------------------------------------------------- executor
    def _executor(self, m: Module, r: _State, frx, ftx, frame_crc, load_crc) -> None:
        """The link's state machine: receive, check, read the header, execute, reply."""
        step = Signal()
        m.d.comb += self.acc.step.eq(step)
        # the engine starts from a register, a cycle after RUN's decision (the decision's
        # logic into the sequencer's state and fetch enables, in one cycle, was the UP5K's
        # critical path)
        m.d.sync += r.start.eq(0)
        m.d.comb += self.acc.start.eq(r.start)
        arg_bytes = {cmd_: layout.size // 8 for cmd_, layout in ARGUMENTS.items()}

        def reply(code, n=0):
            m.d.sync += [r.status.eq(code), r.body_len.eq(n), r.no_body.eq(n == 0),
                         r.idx.eq(0)]
            m.next = "REPLY_HEADER"

        with m.FSM():
            with m.State("RECEIVE"):
                m.d.comb += frx.receiving.eq(1)
                with m.If(frx.end):
                    m.d.sync += [r.cmd.eq(0), r.tag.eq(FRAME_ERROR_TAG), r.idx.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(frx.overflow):
                    reply(Status.TOO_LONG)
                with m.Elif(frx.bad_escape | (frx.length < _HEADER_BYTES + CRC_BYTES)):
                    reply(Status.BAD_FRAME)
                with m.Elif(~frame_crc.match_detected):
                    reply(Status.BAD_CRC)
                with m.Else():
                    m.next = "HEADER"
            with m.State("HEADER"):
                # read header and argument bytes 0 .. _HEADER_BYTES + _ARG_REG_BYTES - 1
                m.d.comb += frx.rd_addr.eq(r.idx)
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.idx == 1):
                    m.d.sync += r.cmd.eq(frx.rd_data)
                with m.If(r.idx == 2):
                    m.d.sync += r.tag.eq(frx.rd_data)
                with m.If(r.idx >= 3):
                    m.d.sync += r.args.eq(Cat(r.args[8:], frx.rd_data))
                # the data's offset and length follow cmd a register apart each (short paths:
                # cmd, its offset, the subtraction and the reply's length in one cycle would be
                # the UP5K's critical path); final two cycles after cmd, long before DISPATCH
                offset = Signal.like(r.data_off)
                with m.Switch(r.cmd):
                    for c in Cmd:
                        with m.Case(c):
                            m.d.comb += offset.eq(_HEADER_BYTES + arg_bytes.get(c, 0))
                m.d.sync += [r.data_off.eq(offset),
                             r.data_len.eq(frx.length - CRC_BYTES - r.data_off),
                             r.short.eq(frx.length < CRC_BYTES + r.data_off)]
                with m.If(r.idx == _HEADER_BYTES + _ARG_REG_BYTES):
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.sync += r.idx.eq(0)
                with m.If(r.short):
                    reply(Status.BAD_FRAME)
                with m.Else():
                    m.next = "ARGUMENTS"
            with m.State("ARGUMENTS"):
                m.next = "CHECKS"
            with m.State("CHECKS"):
                m.next = "EXECUTE"
            with m.State("EXECUTE"):
                self._execute(m, r, reply, step, load_crc)
            self._copies(m, r, reply, frx, load_crc)
            self._reply(m, r, ftx)
            with m.State("FINISH"):
                m.d.comb += frx.clear.eq(1)
                with m.If(r.status != Status.OK):
                    m.d.sync += self.errors.eq(self.errors + 1)
                m.next = "RECEIVE"

    def _execute(self, m: Module, r: _State, reply, step, load_crc) -> None:
        """EXECUTE: refuse the request with its status, or start it."""
        acc, cfg = self.acc, self.config
        args_bad = r.args_bad
        idle = ~acc.busy & ~acc.paused
        # a load into the running slot, or into a single-port memory that the engine reads,
        # waits for the engine to be idle
        single_port = (cfg.model_slots == 1) or not cfg.weights_preloaded
        with m.Switch(r.cmd):
            with m.Case(Cmd.INFO):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Else():
                    reply(Status.OK, InfoReply.size // 8)
            with m.Case(Cmd.STATUS):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Else():
                    reply(Status.OK, StatusReply.size // 8)
            with m.Case(Cmd.WRITE_IMAGE):
                with m.If(~idle):
                    reply(Status.BUSY)
                with m.Elif(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Else():
                    m.next = "COPY_IMAGE"
            if cfg.stage_bytes:
                with m.Case(Cmd.WRITE_PIXELS):  # (the stage is the link's: also while running)
                    with m.If(args_bad):
                        reply(Status.BAD_ARGUMENT)
                    with m.Else():
                        m.next = "COPY_PIXELS"
            with m.Case(Cmd.RUN):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(acc.busy):
                    reply(Status.BUSY)
                with m.Elif(~self.model_valid):
                    reply(Status.NO_MODEL)
                if cfg.stage_bytes:
                    with m.Elif(r.staged & ~acc.paused):
                        # place the staged image first (mem.addr, over RunArgs, is then the
                        # input's address: mem_at is where byte idx of the image goes)
                        m.d.sync += [step.eq(r.run.step), r.staged.eq(0), r.idx.eq(0),
                                     r.mem.addr.eq(r.placement.addr)]
                        if r.placer is not None:
                            m.d.comb += r.placer.start.eq(1)
                        m.next = "PLACE"
                with m.Else():
                    m.d.sync += [r.start.eq(1), step.eq(r.run.step)]
                    reply(Status.OK)
            with m.Case(Cmd.READ_RESULT):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(acc.busy):
                    with m.If(~r.result.wait):  # (with wait, EXECUTE again next cycle)
                        reply(Status.BUSY)
                with m.Else():
                    reply(Status.OK, ResultHeader.size // 8 + (r.num_classes << 2))
            with m.Case(Cmd.READ_COUNTERS):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(acc.busy):
                    reply(Status.BUSY)
                with m.Else():
                    reply(Status.OK, CountersHeader.size // 8 + (acc.n_layers << 2))
            with m.Case(Cmd.READ_TENSOR):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(acc.busy):
                    reply(Status.BUSY)
                with m.Else():
                    reply(Status.OK, r.mem.length)
            with m.Case(Cmd.LOAD_BEGIN):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(single_port & ~idle):
                    reply(Status.BUSY)
                with m.Else():
                    m.d.comb += load_crc.start.eq(1)
                    m.d.sync += r.loading.eq(1)
                    if cfg.model_slots == 1:
                        m.d.sync += self.model_valid.eq(0)
                    reply(Status.OK)
            with m.Case(Cmd.WRITE_WEIGHTS):
                with m.If(~r.loading):
                    reply(Status.NOT_LOADING)
                with m.Elif(single_port & ~idle):
                    reply(Status.BUSY)
                with m.Elif(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Else():
                    m.d.sync += [r.word.eq(r.weights.word), r.lane.eq(r.weights.lane)]
                    m.next = "COPY_WEIGHTS"
            with m.Case(Cmd.LOAD_COMMIT):
                with m.If(args_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(~r.loading):
                    reply(Status.NOT_LOADING)
                with m.Elif(~idle):
                    reply(Status.BUSY)
                with m.Elif(r.commit_bad):
                    reply(Status.BAD_ARGUMENT)
                with m.Elif(r.crc_bad):
                    m.d.sync += r.loading.eq(0)
                    reply(Status.LOAD_FAILED)
                with m.Else():
                    m.next = "COPY_INFO"
            with m.Default():
                reply(Status.UNKNOWN_COMMAND)

    def _copies(self, m: Module, r: _State, reply, frx, load_crc) -> None:
        """The copies out of the frame buffer: the image, the weights, the model identity.

        ``idx`` counts data bytes: read ``buf[data_off + idx]``, register the byte (a block
        RAM's output straight into the load CRC or another memory would be the ECP5's critical
        path), write it. When every byte is written, ``finish`` runs (it sends the reply)."""
        acc, cfg = self.acc, self.config
        copy_byte = Signal(8)  # the byte being copied out of the frame buffer
        word, lane = r.word, r.lane

        def copy_state(name, write, finish=lambda: reply(Status.OK)):
            with m.State(name):
                m.d.comb += frx.rd_addr.eq(r.data_off + r.idx)
                with m.If(r.idx < r.data_len):
                    m.next = name + "_READ"
                with m.Else():
                    finish()
            with m.State(name + "_READ"):
                m.d.sync += copy_byte.eq(frx.rd_data)
                m.next = name + "_WRITE"
            with m.State(name + "_WRITE"):
                write(copy_byte)
                m.d.sync += r.idx.eq(r.idx + 1)
                m.next = name

        def write_image(byte):  # acc.host_addr follows mem_args.addr + idx
            m.d.comb += [acc.host_wdata.eq(byte), acc.host_we.eq(1)]

        def write_weights(byte):
            m.d.comb += [acc.mem_space.eq(r.weights.space), acc.mem_word.eq(word),
                         acc.mem_lane.eq(lane), acc.mem_wdata.eq(byte), acc.mem_we.eq(1),
                         load_crc.valid.eq(1), load_crc.data.eq(byte)]
            with m.If(lane == r.space_wb - 1):
                m.d.sync += [lane.eq(0), word.eq(word + 1)]
            with m.Else():
                m.d.sync += lane.eq(lane + 1)

        def write_info(byte):
            m.d.comb += [r.info_wr.addr.eq(r.idx + Mux(r.load_slot, _INFO_BYTES, 0)),
                         r.info_wr.data.eq(byte), r.info_wr.en.eq(1)]
            if cfg.stage_bytes:
                raw = r.placement_load.as_value()
                with m.Switch(r.idx):
                    for i in range(InputPlacement.size // 8):
                        with m.Case(_PLACEMENT_AT + i):
                            m.d.sync += raw[8 * i:8 * i + 8].eq(byte)

        def commit():
            m.d.comb += [acc.commit.eq(1), acc.commit_n_layers.eq(r.commit.n_layers)]
            if cfg.stage_bytes:
                m.d.sync += r.placement.eq(r.placement_load)
            m.d.sync += [r.loading.eq(0), self.model_valid.eq(1),
                         r.num_classes.eq(r.commit.num_classes)]
            reply(Status.OK)

        copy_state("COPY_IMAGE", write_image)
        copy_state("COPY_WEIGHTS", write_weights)
        copy_state("COPY_INFO", write_info, commit)
        if cfg.stage_bytes:
            self._stage(m, r, reply, copy_state)

    def _stage(self, m: Module, r: _State, reply, copy_state) -> None:
        """The image stage: WRITE_PIXELS copies its bytes in (at any time), and RUN places the
        staged image into activation memory before the engine starts: through the pixel
        placer (:mod:`.placer`), or, with one input lane, as a copy (byte ``idx`` to
        ``mem_at``). A staged image that ends before the placer has placed the whole input,
        or after it, is refused, and the engine does not start."""
        acc, placer = self.acc, r.placer
        stage_rd, stage_wr = r.stage_rd, r.stage_wr

        def write_stage(byte):
            m.d.comb += [stage_wr.addr.eq(r.mem_at), stage_wr.data.eq(byte), stage_wr.en.eq(1)]

        def staged():
            m.d.sync += [r.staged.eq(1), r.stage_end.eq(r.mem_at)]
            reply(Status.OK)

        def start():
            m.d.sync += r.start.eq(1)
            reply(Status.OK)

        copy_state("COPY_PIXELS", write_stage, staged)
        with m.State("PLACE"):
            if placer is None:
                with m.If(r.idx < r.stage_end):
                    m.next = "PLACE_WRITE"
                with m.Else():
                    start()
            else:
                # (a byte left in the placer's input register when it is done is one too
                # many; the placer waiting when the stage has no more, one too few)
                with m.If(placer.done):
                    with m.If((r.idx == r.stage_end) & placer.pixels.ready):
                        start()
                    with m.Else():
                        reply(Status.BAD_ARGUMENT)
                with m.Elif(placer.pixels.ready & (r.idx < r.stage_end)):
                    m.next = "PLACE_WRITE"
                with m.Elif(placer.waiting):
                    reply(Status.BAD_ARGUMENT)
        with m.State("PLACE_WRITE"):  # (the stage's byte idx is read)
            if placer is None:
                m.d.comb += [acc.host_wdata.eq(stage_rd.data), acc.host_we.eq(1)]
            else:
                m.d.comb += [placer.pixels.valid.eq(1), placer.pixels.payload.eq(stage_rd.data)]
            m.d.sync += r.idx.eq(r.idx + 1)
            m.next = "PLACE"

    def _reply(self, m: Module, r: _State, ftx) -> None:
        """The reply's states: its header, then its body a byte at a time (``r.body``)."""
        wait = Signal(range(max(2, self.act_read_latency)))  # REPLY_WAIT's cycles left
        body_r = Signal(8)
        r.body = Signal(8)  # the reply body's byte idx (:meth:`_reply_body`)
        payload = ftx.body.payload
        with m.State("REPLY_HEADER"):
            m.d.comb += [ftx.body.valid.eq(1), payload.last.eq(r.no_body & (r.idx == 2))]
            with m.Switch(r.idx):
                with m.Case(0):
                    m.d.comb += payload.byte.eq(r.status)
                with m.Case(1):
                    m.d.comb += payload.byte.eq(r.tag)
                with m.Default():
                    m.d.comb += payload.byte.eq(r.cmd)
            with m.If(ftx.body.ready):
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.idx == 2):
                    m.d.sync += r.idx.eq(0)
                    with m.If(r.no_body):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "REPLY_SETUP"
        with m.State("REPLY_SETUP"):
            # memory addresses follow idx; their data is there one cycle later (the
            # activations' act_read_latency cycles)
            m.d.sync += wait.eq(max(0, self.act_read_latency - 2))
            m.next = "REPLY_WAIT"
        with m.State("REPLY_WAIT"):
            m.d.sync += wait.eq(wait - 1)
            with m.If(wait == 0):
                m.next = "REPLY_LATCH"
        with m.State("REPLY_LATCH"):
            # the byte is registered before the frame encoder and its CRC: a block RAM's
            # output, the body multiplexer and the CRC in one cycle would be the ECP5's
            # critical path
            m.d.sync += body_r.eq(r.body)
            m.next = "REPLY_BODY"
        with m.State("REPLY_BODY"):
            m.d.comb += [ftx.body.valid.eq(1), payload.last.eq(r.body_last),
                         payload.byte.eq(body_r)]
            with m.If(ftx.body.ready):
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.body_last):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "REPLY_SETUP"

    # ---------------------------------------------------------------------------- replies
    def _reply_body(self, m: Module, r: _State) -> None:
        """Byte ``idx`` of each command's reply body. Memory addresses follow ``idx``, so the
        byte is valid in REPLY_LATCH, at least two cycles after REPLY_SETUP set ``idx`` (the
        activations' ``act_read_latency``), and registered there. Every reply is a view of its
        protocol layout, filled by field name."""
        acc, cfg, idx, body = self.acc, self.config, r.idx, r.body
        # The info memory's address is registered: REPLY_LATCH comes two cycles after idx
        # at the earliest, and from idx through the offset's adder and the memory to its
        # read register was an 85F failing path.
        info_addr, info_data = Signal.like(r.info_rd.addr, name="info_raddr"), r.info_rd.data
        m.d.sync += r.info_rd.addr.eq(info_addr)
        state_flags = Signal(StateFlags)
        m.d.comb += [state_flags.busy.eq(acc.busy), state_flags.paused.eq(acc.paused),
                     state_flags.done.eq(acc.done), state_flags.model_valid.eq(self.model_valid),
                     state_flags.loading.eq(r.loading)]
        info_reply = Signal(InfoReply, init={
            "version": PROTOCOL_VERSION, "board": _board_id(self.board), **info_fields(cfg)})
        m.d.comb += [info_reply.state.eq(state_flags), info_reply.n_layers.eq(acc.n_layers),
                     info_reply.num_classes.eq(r.num_classes)]
        status_reply = Signal(StatusReply)
        m.d.comb += [status_reply.state.eq(state_flags), status_reply.layer.eq(acc.layer),
                     status_reply.total_cycles.eq(acc.total_cycles)]
        counters_head = Signal(CountersHeader)
        m.d.comb += [counters_head.n_layers.eq(acc.n_layers),
                     counters_head.total_cycles.eq(acc.total_cycles)]
        result_head = Signal(ResultHeader)
        m.d.comb += result_head.num_classes.eq(r.num_classes)
        # the ModelInfo ends both INFO and the result header; it comes from the info memory
        ih = InfoReply["info"].offset // 8
        rh = ResultHeader["info"].offset // 8
        assert ih + _INFO_BYTES == InfoReply.size // 8 and rh + _INFO_BYTES == \
            ResultHeader.size // 8
        ch = CountersHeader.size // 8
        info_base = Mux(acc.slot, _INFO_BYTES, 0)  # the active slot's ModelInfo
        m.d.comb += [info_addr.eq(info_base), acc.host_addr.eq(r.mem_at)]
        with m.Switch(r.cmd):
            with m.Case(Cmd.INFO):
                m.d.comb += info_addr.eq(idx - ih + info_base)
                m.d.comb += body.eq(Mux(idx < ih, _byte_at(info_reply, idx, ih), info_data))
            with m.Case(Cmd.STATUS):
                m.d.comb += body.eq(_byte_at(status_reply, idx))
            with m.Case(Cmd.READ_RESULT):
                m.d.comb += [info_addr.eq(idx - rh + info_base),
                             acc.res_addr.eq((idx - ResultHeader.size // 8) >> 2)]
                m.d.comb += body.eq(
                    Mux(idx < rh, _byte_at(result_head, idx, rh),
                        Mux(idx < ResultHeader.size // 8, info_data,
                            acc.res_data.as_unsigned().word_select(
                                (idx - ResultHeader.size // 8)[:2], 8))))
            with m.Case(Cmd.READ_COUNTERS):
                m.d.comb += [acc.cnt_addr.eq((idx - ch) >> 2)]
                m.d.comb += body.eq(Mux(idx < ch, _byte_at(counters_head, idx),
                                        acc.cnt_data.word_select((idx - ch)[:2], 8)))
            with m.Case(Cmd.READ_TENSOR):
                m.d.comb += body.eq(acc.host_rdata)
