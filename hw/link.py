"""The host link: SLIP frames with CRC-32 in, commands on the accelerator, reply frames out.

:class:`HostLink` works on bytes (the UART is outside, in :class:`~.top.FireforgeSoC`). Every
command, status, argument and reply layout comes from :mod:`.protocol`. The link is a loop of
three phases: *receive* a frame into the frame buffer (unescaping, checking CRC as the bytes
arrive), *execute* it (byte copies into activation or model memory), and *reply* (bytes from
registers or memories, through :class:`FrameTx`, which escapes and appends the CRC). Bytes that
arrive outside *receive* are dropped up to the next ``END``.
"""


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .errors import FireforgeError
from .info import info_fields
from .protocol import (
    ARGUMENTS,
    BOARD_ID_BYTES,
    CRC,
    CRC_BYTES,
    FRAME_ERROR_TAG,
    MAX_DATA,
    MAX_FRAME,
    PROTOCOL_VERSION,
    SLIP_END,
    SLIP_ESC,
    SLIP_ESC_END,
    SLIP_ESC_ESC,
    Cmd,
    CommitArgs,
    CountersHeader,
    InfoReply,
    MemoryArgs,
    ModelInfo,
    RequestHeader,
    ResultHeader,
    RunArgs,
    StateFlags,
    Status,
    StatusReply,
    WeightArgs,
    model_info_bytes,
)

__all__ = ["HostLink", "FrameTx", "ACCELERATOR_PORTS"]

#: the accelerator ports the link drives (the rest of its host interface it reads)
ACCELERATOR_PORTS = ("start", "step", "host_addr", "host_wdata", "host_we", "res_addr",
                     "cnt_addr", "mem_space", "mem_word", "mem_lane", "mem_wdata", "mem_we",
                     "commit", "commit_n_layers")
_READS = ("busy", "paused", "done", "layer", "host_rdata", "res_data", "cnt_data",
          "total_cycles", "n_layers", "slot")

_HEADER_BYTES = RequestHeader.size // 8
#: argument bytes loaded into registers
_ARG_REG_BYTES = max(a.size for a in ARGUMENTS.values()) // 8
_INFO_BYTES = ModelInfo.size // 8


def _board_id(board: str) -> int:
    raw = board.encode("ascii", "replace")[:BOARD_ID_BYTES]
    return int.from_bytes(raw.ljust(BOARD_ID_BYTES, b"\0"), "little")


def _byte_at(view, idx, n: int | None = None):
    """Byte ``idx`` of the first ``n`` bytes of a layout view: a byte multiplexer (a variable
    ``word_select`` would build a shifter as wide as the whole reply)."""
    raw = view.as_value()
    n = len(raw) // 8 if n is None else n
    return Array(raw.word_select(i, 8) for i in range(n))[idx[:max(1, (n - 1).bit_length())]]


class FrameTx(wiring.Component):
    """Payload bytes (``last`` marks the final one) -> ``END``, escaped payload and CRC, ``END``.

    The CRC unit is outside (``crc_*``): the link shares one between the frames it receives and
    the frames it sends. It is fed from registers (a cycle after the byte is taken), so the
    link's reply multiplexers and the CRC's XOR tree are not one path. The CRC is copied two
    cycles after the payload's last byte (its last update is then in): the link goes back to
    receiving, and to feeding the unit, while the CRC bytes are being sent. The first byte it
    can receive reaches the unit no earlier than the cycle of the copy.
    """

    data: In(8)
    valid: In(1)
    last: In(1)
    ready: Out(1)
    tx_data: Out(8)
    tx_valid: Out(1)
    tx_ready: In(1)
    crc_start: Out(1)
    crc_valid: Out(1)
    crc_data: Out(8)
    crc_value: In(32)

    def elaborate(self, platform):
        m = Module()
        byte = Signal(8)  # the byte being sent (payload or CRC), before escaping
        crc_bytes = Signal(32)  # a copy: the link receives again while the CRC goes out
        count = Signal(range(CRC_BYTES + 1))  # CRC bytes still to send
        in_crc = Signal()
        starting, feeding = Signal(), Signal()  # the CRC unit's start and byte, registered
        m.d.comb += [self.crc_start.eq(starting), self.crc_valid.eq(feeding),
                     self.crc_data.eq(byte)]
        m.d.sync += [starting.eq(0), feeding.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.valid):
                    m.d.comb += [self.tx_data.eq(SLIP_END), self.tx_valid.eq(1)]
                    with m.If(self.tx_ready):
                        m.d.sync += starting.eq(1)
                        m.next = "TAKE"
            with m.State("TAKE"):
                # accept one payload byte (or go on with the CRC)
                with m.If(in_crc):
                    m.d.sync += [byte.eq(crc_bytes[:8]), crc_bytes.eq(crc_bytes >> 8),
                                 count.eq(count - 1)]
                    m.next = "SEND"
                with m.Elif(self.valid):
                    m.d.comb += self.ready.eq(1)
                    m.d.sync += [byte.eq(self.data), feeding.eq(1)]
                    with m.If(self.last):
                        m.next = "FEED"
                    with m.Else():
                        m.next = "SEND"
            with m.State("FEED"):
                # the last payload byte goes into the CRC
                m.next = "LATCH"
            with m.State("LATCH"):
                # the CRC of the whole payload
                m.d.sync += [crc_bytes.eq(self.crc_value), count.eq(CRC_BYTES), in_crc.eq(1)]
                m.next = "SEND"
            with m.State("SEND"):
                special = (byte == SLIP_END) | (byte == SLIP_ESC)
                m.d.comb += [self.tx_data.eq(Mux(special, SLIP_ESC, byte)),
                             self.tx_valid.eq(1)]
                with m.If(self.tx_ready):
                    with m.If(special):
                        m.next = "ESCAPED"
                    with m.Elif(in_crc & (count == 0)):
                        m.next = "END"
                    with m.Else():
                        m.next = "TAKE"
            with m.State("ESCAPED"):
                m.d.comb += [self.tx_data.eq(Mux(byte == SLIP_END, SLIP_ESC_END, SLIP_ESC_ESC)),
                             self.tx_valid.eq(1)]
                with m.If(self.tx_ready):
                    with m.If(in_crc & (count == 0)):
                        m.next = "END"
                    with m.Else():
                        m.next = "TAKE"
            with m.State("END"):
                m.d.comb += [self.tx_data.eq(SLIP_END), self.tx_valid.eq(1)]
                with m.If(self.tx_ready):
                    m.d.sync += in_crc.eq(0)
                    m.next = "IDLE"
        return m


class HostLink(wiring.Component):
    """Frames in (``rx_*``), frames out (``tx_*``), the accelerator's host interface (``acc``).

    ``board`` is the name INFO reports. The model identity (hash, logit scale, class count)
    starts as the bitstream's program and changes with each committed load.
    """

    def __init__(self, accelerator: Accelerator, board: str = "sim"):
        #: the accelerator's host interface, as the accelerator sees it
        self.acc_signature = wiring.Signature({
            name: member for name, member in accelerator.signature.members.items()
            if name in ACCELERATOR_PORTS or name in _READS})
        self.config = accelerator.config
        self.space_words = accelerator.space_words
        self.program_layers = accelerator.program_layers
        self.act_read_latency = accelerator.act_read_latency
        manifest = accelerator.program.manifest
        self.num_classes = manifest["num_classes"]
        # SPRAM weights start empty: no model (and a zero identity) until the host loads one
        self.initial_info = (model_info_bytes(manifest["model_hash"], manifest["logit_scale"])
                             if self.config.weights_preloaded else bytes(_INFO_BYTES))
        self.board = board
        if len(board.encode("ascii", "replace")) > BOARD_ID_BYTES:
            raise FireforgeError(f"board name {board!r}: at most {BOARD_ID_BYTES} characters")
        super().__init__({
            "rx_data": In(8),
            "rx_valid": In(1),
            "tx_data": Out(8),
            "tx_valid": Out(1),
            "tx_ready": In(1),
            "model_valid": Out(1, init=int(self.config.weights_preloaded)),
            "errors": Out(16),
            "acc": In(self.acc_signature),
        })

    def connect(self, m: Module, accelerator: Accelerator) -> None:
        """Wire this link's ``acc`` interface to ``accelerator``'s ports, in module ``m``."""
        for name, member in self.acc_signature.members.items():
            ours, theirs = getattr(accelerator, name), getattr(self.acc, name)
            m.d.comb += ours.eq(theirs) if member.flow == In else theirs.eq(ours)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        acc = self.acc
        slots = cfg.model_slots

        # ------------------------------------------------------------ frame buffer and RX
        buf_depth = 1 << (MAX_FRAME - 1).bit_length()
        m.submodules.buf = buf = memory.Memory(shape=8, depth=buf_depth, init=[])
        buf_wr, buf_rd = buf.write_port(), buf.read_port()
        # one CRC unit for the frame being received and the reply being sent (one at a time),
        # and one for the model load, which runs over many frames
        m.submodules.frame_crc = frame_crc = CRC.create()
        m.submodules.load_crc = load_crc = CRC.create()
        m.submodules.frame_tx = ftx = FrameTx()
        m.d.comb += [self.tx_data.eq(ftx.tx_data), self.tx_valid.eq(ftx.tx_valid),
                     ftx.tx_ready.eq(self.tx_ready), ftx.crc_value.eq(frame_crc.crc)]
        with m.If(ftx.crc_start | ftx.crc_valid):
            m.d.comb += [frame_crc.start.eq(ftx.crc_start), frame_crc.valid.eq(ftx.crc_valid),
                         frame_crc.data.eq(ftx.crc_data)]

        # the model identity: two slots of ModelInfo bytes, following the accelerator's slot
        m.submodules.info = info = memory.Memory(
            shape=8, depth=_INFO_BYTES * slots, init=list(self.initial_info))
        info_rd, info_wr = info.read_port(), info.write_port()
        num_classes = Signal(16, init=self.num_classes if cfg.weights_preloaded else 0)
        load_slot = Signal()
        m.d.comb += load_slot.eq(acc.slot ^ (slots - 1))

        receiving = Signal()
        length = Signal(range(buf_depth + 1))
        esc, bad_escape, overflow, discard = Signal(), Signal(), Signal(), Signal()
        frame_end = Signal()
        rx_byte, rx_store = Signal(8), Signal()
        with m.If(self.rx_valid):
            with m.If(~receiving):
                m.d.sync += discard.eq(1)
            with m.Elif(self.rx_data == SLIP_END):
                with m.If(discard):
                    m.d.sync += [discard.eq(0), length.eq(0), esc.eq(0), bad_escape.eq(0),
                                 overflow.eq(0)]
                with m.Elif((length != 0) | bad_escape | overflow):
                    m.d.comb += frame_end.eq(1)
            with m.Elif(discard):
                pass
            with m.Elif(esc):
                m.d.sync += esc.eq(0)
                with m.If(self.rx_data == SLIP_ESC_END):
                    m.d.comb += [rx_byte.eq(SLIP_END), rx_store.eq(1)]
                with m.Elif(self.rx_data == SLIP_ESC_ESC):
                    m.d.comb += [rx_byte.eq(SLIP_ESC), rx_store.eq(1)]
                with m.Else():
                    m.d.sync += bad_escape.eq(1)
            with m.Elif(self.rx_data == SLIP_ESC):
                m.d.sync += esc.eq(1)
            with m.Else():
                m.d.comb += [rx_byte.eq(self.rx_data), rx_store.eq(1)]
        with m.If(rx_store):
            with m.If(length < MAX_FRAME):
                m.d.comb += [buf_wr.addr.eq(length), buf_wr.data.eq(rx_byte), buf_wr.en.eq(1),
                             frame_crc.valid.eq(1), frame_crc.data.eq(rx_byte),
                             frame_crc.start.eq(length == 0)]
                m.d.sync += length.eq(length + 1)
            with m.Else():
                m.d.sync += overflow.eq(1)

        # ------------------------------------------------------------ request registers
        cmd, tag = Signal(8), Signal(8)
        args = Signal(_ARG_REG_BYTES * 8)
        mem_args = MemoryArgs(args[:MemoryArgs.size])
        w_args = WeightArgs(args[:WeightArgs.size])
        run_args = RunArgs(args[:RunArgs.size])
        commit_args = CommitArgs(args[:CommitArgs.size])
        commit_crc = commit_args.crc
        commit_layers = commit_args.n_layers
        commit_classes = commit_args.num_classes
        status = Signal(Status)
        idx = Signal(range(buf_depth + 1))
        data_off = Signal(range(_HEADER_BYTES + CommitArgs.size // 8 + 1))
        data_len = Signal(range(buf_depth + 1))
        short = Signal()  # the frame ends before its command's arguments
        assert _HEADER_BYTES + _ARG_REG_BYTES >= 4  # (the time data_off and data_len need)
        body_len = Signal(range(InfoReply.size // 8 + 4 * max(cfg.result_entries,
                                                               cfg.program_entries, 64)
                                + MAX_DATA + 1))
        step = Signal()
        loading = Signal()
        body = Signal(8)  # the reply body's byte idx (see the end)
        body_r = Signal(8)
        wait = Signal(range(max(2, self.act_read_latency)))  # REPLY_WAIT's cycles left
        copy_byte = Signal(8)  # the byte being copied out of the frame buffer
        m.d.comb += acc.step.eq(step)

        arg_bytes = {cmd_: layout.size // 8 for cmd_, layout in ARGUMENTS.items()}
        idle = ~acc.busy & ~acc.paused
        # a load into the running slot, or into a single-port memory that the engine reads,
        # waits for the engine to be idle
        single_port = (slots == 1) or not cfg.weights_preloaded

        # Range checks of the arguments, in as few bits as the memories need: a high bit of an
        # address or a word set is out of range by itself, so only the low bits are added (a
        # 32-bit adder and comparator per check were a tenth of the UP5K's logic).
        data_bits = MAX_DATA.bit_length()
        act_bits = cfg.act_bytes.bit_length()

        def out_of_range(value, bits):
            return value[bits:].any() if len(value) > bits else Const(0)

        # Word bytes and byte count of each model space, and the byte offset of the word (a
        # shift: the word sizes are powers of two, so no multiplier is spent here).
        space_bits = max(e * wb for e, wb in self.space_words.values()).bit_length()
        lane_bits = max(wb for _, wb in self.space_words.values()).bit_length()
        space_wb = Signal(lane_bits)
        space_ok = Signal()
        space_bytes = Signal(space_bits)
        word_offset = Signal(space_bits + lane_bits)
        word, lane = Signal(space_bits), Signal(lane_bits)  # WRITE_WEIGHTS's next byte
        with m.Switch(w_args.space):
            for space, (entries, wb) in self.space_words.items():
                assert wb & (wb - 1) == 0, (space, wb)
                with m.Case(space):
                    m.d.comb += [space_wb.eq(wb), space_ok.eq(1),
                                 space_bytes.eq(entries * wb),
                                 word_offset.eq(w_args.word[:space_bits]
                                                << (wb.bit_length() - 1))]

        # Registered in steps (short paths): the argument register is final after HEADER,
        # word_end in ARGUMENTS, the range checks in CHECKS, each command's check (below) in
        # EXECUTE.
        word_end = Signal(space_bits + lane_bits + 1)  # the byte after WRITE_WEIGHTS's last
        word_far = Signal()
        m.d.sync += [word_end.eq(word_offset + w_args.lane[:lane_bits]
                                 + w_args.length[:data_bits]),
                     word_far.eq(out_of_range(w_args.word, space_bits)
                                 | out_of_range(w_args.lane, lane_bits)
                                 | out_of_range(w_args.length, data_bits))]
        image_range_bad, weights_range_bad, commit_bad = Signal(), Signal(), Signal()
        m.d.sync += [
            image_range_bad.eq((mem_args.length > MAX_DATA) | out_of_range(mem_args.addr, act_bits)
                               | (mem_args.addr[:act_bits] + mem_args.length[:data_bits]
                                  > cfg.act_bytes)),
            weights_range_bad.eq(~space_ok | word_far | (w_args.length > MAX_DATA)
                                 | (w_args.lane >= space_wb) | (word_end > space_bytes)),
            commit_bad.eq((commit_layers == 0) | (commit_layers > cfg.program_entries)
                          | (commit_classes == 0) | (commit_classes > cfg.result_entries)),
        ]

        # Each command's argument check, and the load's CRC check, registered: EXECUTE's
        # decisions start at flip-flops (comparators in front of them would be the UP5K's
        # critical path).
        args_bad, crc_bad = Signal(), Signal()
        with m.Switch(cmd):
            with m.Case(Cmd.WRITE_IMAGE):
                m.d.sync += args_bad.eq((data_len != mem_args.length) | image_range_bad)
            with m.Case(Cmd.READ_TENSOR):
                m.d.sync += args_bad.eq((data_len != 0) | image_range_bad)
            with m.Case(Cmd.WRITE_WEIGHTS):
                m.d.sync += args_bad.eq((data_len != w_args.length) | weights_range_bad)
            with m.Case(Cmd.LOAD_COMMIT):
                m.d.sync += args_bad.eq(data_len != _INFO_BYTES)
            with m.Default():  # the commands without data
                m.d.sync += args_bad.eq(data_len != 0)
        m.d.sync += crc_bad.eq(load_crc.crc != commit_crc)

        # The reply's length tests as registers: no body, and idx at the body's last byte
        # (final in REPLY_BODY, two cycles after idx moves)
        no_body, body_last = Signal(), Signal()
        m.d.sync += body_last.eq(idx == body_len - 1)

        def reply(code, n=0):
            m.d.sync += [status.eq(code), body_len.eq(n), no_body.eq(n == 0), idx.eq(0)]
            m.next = "REPLY_HEADER"

        with m.FSM():
            with m.State("RECEIVE"):
                m.d.comb += receiving.eq(1)
                with m.If(frame_end):
                    m.d.sync += [cmd.eq(0), tag.eq(FRAME_ERROR_TAG), idx.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(overflow):
                    reply(Status.TOO_LONG)
                with m.Elif(bad_escape | (length < _HEADER_BYTES + CRC_BYTES)):
                    reply(Status.BAD_FRAME)
                with m.Elif(~frame_crc.match_detected):
                    reply(Status.BAD_CRC)
                with m.Else():
                    m.next = "HEADER"
            with m.State("HEADER"):
                # read header and argument bytes 0 .. _HEADER_BYTES + _ARG_REG_BYTES - 1
                m.d.comb += buf_rd.addr.eq(idx)
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == 1):
                    m.d.sync += cmd.eq(buf_rd.data)
                with m.If(idx == 2):
                    m.d.sync += tag.eq(buf_rd.data)
                with m.If(idx >= 3):
                    m.d.sync += args.eq(Cat(args[8:], buf_rd.data))
                # the data's offset and length follow cmd a register apart each (short paths:
                # cmd, its offset, the subtraction and the reply's length in one cycle would be
                # the UP5K's critical path); final two cycles after cmd, long before DISPATCH
                offset = Signal.like(data_off)
                with m.Switch(cmd):
                    for c in Cmd:
                        with m.Case(c):
                            m.d.comb += offset.eq(_HEADER_BYTES + arg_bytes.get(c, 0))
                m.d.sync += [data_off.eq(offset), data_len.eq(length - CRC_BYTES - data_off),
                             short.eq(length < CRC_BYTES + data_off)]
                with m.If(idx == _HEADER_BYTES + _ARG_REG_BYTES):
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.sync += idx.eq(0)
                with m.If(short):
                    reply(Status.BAD_FRAME)
                with m.Else():
                    m.next = "ARGUMENTS"
            with m.State("ARGUMENTS"):
                m.next = "CHECKS"
            with m.State("CHECKS"):
                m.next = "EXECUTE"
            with m.State("EXECUTE"):
                with m.Switch(cmd):
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
                    with m.Case(Cmd.RUN):
                        with m.If(args_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(acc.busy):
                            reply(Status.BUSY)
                        with m.Elif(~self.model_valid):
                            reply(Status.NO_MODEL)
                        with m.Else():
                            m.d.comb += acc.start.eq(1)
                            m.d.sync += step.eq(run_args.step)
                            reply(Status.OK)
                    with m.Case(Cmd.READ_RESULT):
                        with m.If(args_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(acc.busy):
                            reply(Status.BUSY)
                        with m.Else():
                            reply(Status.OK, ResultHeader.size // 8 + (num_classes << 2))
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
                            reply(Status.OK, mem_args.length)
                    with m.Case(Cmd.LOAD_BEGIN):
                        with m.If(args_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(single_port & ~idle):
                            reply(Status.BUSY)
                        with m.Else():
                            m.d.comb += load_crc.start.eq(1)
                            m.d.sync += loading.eq(1)
                            if slots == 1:
                                m.d.sync += self.model_valid.eq(0)
                            reply(Status.OK)
                    with m.Case(Cmd.WRITE_WEIGHTS):
                        with m.If(~loading):
                            reply(Status.NOT_LOADING)
                        with m.Elif(single_port & ~idle):
                            reply(Status.BUSY)
                        with m.Elif(args_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Else():
                            m.d.sync += [word.eq(w_args.word), lane.eq(w_args.lane)]
                            m.next = "COPY_WEIGHTS"
                    with m.Case(Cmd.LOAD_COMMIT):
                        with m.If(args_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(~loading):
                            reply(Status.NOT_LOADING)
                        with m.Elif(~idle):
                            reply(Status.BUSY)
                        with m.Elif(commit_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(crc_bad):
                            m.d.sync += loading.eq(0)
                            reply(Status.LOAD_FAILED)
                        with m.Else():
                            m.next = "COPY_INFO"
                    with m.Default():
                        reply(Status.UNKNOWN_COMMAND)

            # -------------------------------------------------------- copies out of the buffer
            # idx counts data bytes: read buf[data_off + idx], register the byte (a block
            # RAM's output straight into the load CRC or another memory would be the ECP5's
            # critical path), write it. When every byte is written, finish() runs (it sends
            # the reply).
            def copy_state(name, write, finish=lambda: reply(Status.OK)):
                with m.State(name):
                    m.d.comb += buf_rd.addr.eq(data_off + idx)
                    with m.If(idx < data_len):
                        m.next = name + "_READ"
                    with m.Else():
                        finish()
                with m.State(name + "_READ"):
                    m.d.sync += copy_byte.eq(buf_rd.data)
                    m.next = name + "_WRITE"
                with m.State(name + "_WRITE"):
                    write(copy_byte)
                    m.d.sync += idx.eq(idx + 1)
                    m.next = name

            def write_image(byte):  # acc.host_addr follows mem_args.addr + idx
                m.d.comb += [acc.host_wdata.eq(byte), acc.host_we.eq(1)]

            def write_weights(byte):
                m.d.comb += [acc.mem_space.eq(w_args.space), acc.mem_word.eq(word),
                             acc.mem_lane.eq(lane), acc.mem_wdata.eq(byte), acc.mem_we.eq(1),
                             load_crc.valid.eq(1), load_crc.data.eq(byte)]
                with m.If(lane == space_wb - 1):
                    m.d.sync += [lane.eq(0), word.eq(word + 1)]
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)

            def write_info(byte):
                m.d.comb += [info_wr.addr.eq(idx + Mux(load_slot, _INFO_BYTES, 0)),
                             info_wr.data.eq(byte), info_wr.en.eq(1)]

            copy_state("COPY_IMAGE", write_image)
            copy_state("COPY_WEIGHTS", write_weights)

            def commit():
                m.d.comb += [acc.commit.eq(1), acc.commit_n_layers.eq(commit_layers)]
                m.d.sync += [loading.eq(0), self.model_valid.eq(1),
                             num_classes.eq(commit_classes)]
                reply(Status.OK)

            copy_state("COPY_INFO", write_info, commit)

            # -------------------------------------------------------- reply
            with m.State("REPLY_HEADER"):
                m.d.comb += [ftx.valid.eq(1), ftx.last.eq(no_body & (idx == 2))]
                with m.Switch(idx):
                    with m.Case(0):
                        m.d.comb += ftx.data.eq(status)
                    with m.Case(1):
                        m.d.comb += ftx.data.eq(tag)
                    with m.Default():
                        m.d.comb += ftx.data.eq(cmd)
                with m.If(ftx.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 2):
                        m.d.sync += idx.eq(0)
                        with m.If(no_body):
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
                m.d.sync += body_r.eq(body)
                m.next = "REPLY_BODY"
            with m.State("REPLY_BODY"):
                m.d.comb += [ftx.valid.eq(1), ftx.last.eq(body_last),
                             ftx.data.eq(body_r)]
                with m.If(ftx.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(body_last):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "REPLY_SETUP"
            with m.State("FINISH"):
                m.d.sync += [length.eq(0), esc.eq(0), bad_escape.eq(0), overflow.eq(0)]
                with m.If(status != Status.OK):
                    m.d.sync += self.errors.eq(self.errors + 1)
                m.next = "RECEIVE"

        # ------------------------------------------------------------ reply bodies
        # Byte idx of each command's reply body; memory addresses follow idx, so the byte is
        # valid in REPLY_LATCH, at least two cycles after REPLY_SETUP set idx (the
        # activations' act_read_latency), and registered there.
        # Every reply is a view of its protocol layout, filled by field name.
        state_flags = Signal(StateFlags)
        m.d.comb += [state_flags.busy.eq(acc.busy), state_flags.paused.eq(acc.paused),
                     state_flags.done.eq(acc.done), state_flags.model_valid.eq(self.model_valid),
                     state_flags.loading.eq(loading)]
        info_reply = Signal(InfoReply, init={
            "version": PROTOCOL_VERSION, "board": _board_id(self.board), **info_fields(cfg)})
        m.d.comb += [info_reply.state.eq(state_flags), info_reply.n_layers.eq(acc.n_layers),
                     info_reply.num_classes.eq(num_classes)]
        status_reply = Signal(StatusReply)
        m.d.comb += [status_reply.state.eq(state_flags), status_reply.layer.eq(acc.layer),
                     status_reply.total_cycles.eq(acc.total_cycles)]
        counters_head = Signal(CountersHeader)
        m.d.comb += [counters_head.n_layers.eq(acc.n_layers),
                     counters_head.total_cycles.eq(acc.total_cycles)]
        result_head = Signal(ResultHeader)
        m.d.comb += result_head.num_classes.eq(num_classes)
        # the ModelInfo ends both INFO and the result header; it comes from the info memory
        ih = InfoReply["info"].offset // 8
        rh = ResultHeader["info"].offset // 8
        assert ih + _INFO_BYTES == InfoReply.size // 8 and rh + _INFO_BYTES == \
            ResultHeader.size // 8
        ch = CountersHeader.size // 8
        info_base = Mux(acc.slot, _INFO_BYTES, 0)  # the active slot's ModelInfo
        m.d.comb += [info_rd.addr.eq(info_base),
                     acc.host_addr.eq(mem_args.addr + idx)]
        with m.Switch(cmd):
            with m.Case(Cmd.INFO):
                m.d.comb += info_rd.addr.eq(idx - ih + info_base)
                m.d.comb += body.eq(Mux(idx < ih, _byte_at(info_reply, idx, ih), info_rd.data))
            with m.Case(Cmd.STATUS):
                m.d.comb += body.eq(_byte_at(status_reply, idx))
            with m.Case(Cmd.READ_RESULT):
                m.d.comb += [info_rd.addr.eq(idx - rh + info_base),
                             acc.res_addr.eq((idx - ResultHeader.size // 8) >> 2)]
                m.d.comb += body.eq(
                    Mux(idx < rh, _byte_at(result_head, idx, rh),
                        Mux(idx < ResultHeader.size // 8, info_rd.data,
                            acc.res_data.as_unsigned().word_select(
                                (idx - ResultHeader.size // 8)[:2], 8))))
            with m.Case(Cmd.READ_COUNTERS):
                m.d.comb += [acc.cnt_addr.eq((idx - ch) >> 2)]
                m.d.comb += body.eq(Mux(idx < ch, _byte_at(counters_head, idx),
                                        acc.cnt_data.word_select((idx - ch)[:2], 8)))
            with m.Case(Cmd.READ_TENSOR):
                m.d.comb += body.eq(acc.host_rdata)
        return m
