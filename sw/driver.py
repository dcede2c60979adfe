"""The host driver: a :class:`Board` speaks the link protocol (:mod:`fireforge.hw.protocol`) over a
:class:`Transport`. The serial transport opens anything pyserial's ``serial_for_url`` opens, so a
board's ``/dev/ttyUSB1`` and the simulated board's ``socket://127.0.0.1:PORT`` differ only in the
URL.

Every request waits for its reply within ``timeout`` seconds. Lost or corrupted replies (and
requests the board answers with ``BAD_CRC``/``BAD_FRAME``) are retried up to ``retries`` times;
after that the error names what kept failing. On a board with a receive FIFO,
:meth:`Board.classify_many` keeps the images' requests in flight (:meth:`Board.in_flight`),
and starts over one request at a time where a reply is lost. A model mismatch, an image of the
wrong size or a model too large for the board are refused before anything is sent.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from ..hw.accelerator import check_program
from ..hw.config import AcceleratorConfig
from ..hw.errors import FireforgeError
from ..hw.info import config_from_info
from ..hw.isa import ACC_BITS, Op
from ..hw.program import Program
from ..hw.protocol import (
    ARGUMENTS,
    BOARD_ID_BYTES,
    CRC_BYTES,
    FRAME_ERROR_TAG,
    LOAD_ORDER,
    MAX_DATA,
    PROTOCOL_VERSION,
    SLIP_END,
    SLIP_ESC,
    SLIP_ESC_END,
    SLIP_ESC_ESC,
    STATUS_MEANING,
    Cmd,
    CountersHeader,
    InfoReply,
    ReplyHeader,
    RequestHeader,
    ResultHeader,
    Status,
    StatusReply,
    Transport,
    crc32,
    layout_bytes,
    layout_from_bytes,
    parse_model_info,
    slip_encode,
)

__all__ = ["Board", "BoardInfo", "BoardError", "BoardTimeout", "InFlightBroken", "Transport",
           "SerialTransport",
           "Classification", "prepare_image", "load_image_file", "stages"]

#: replies that say the frame was damaged on the way: worth sending again
_RETRYABLE = (Status.BAD_CRC, Status.BAD_FRAME, Status.TOO_LONG)


def stages(stage_bytes: int, image: np.ndarray) -> bool:
    """Whether ``image`` goes through a board's image stage of ``stage_bytes`` (WRITE_PIXELS,
    sent during the previous run), or placed with WRITE_IMAGE after it."""
    return image.size <= stage_bytes


class BoardError(FireforgeError):
    """The board refused a request or the link failed."""


class InFlightBroken(BoardError):
    """A reply to a request in flight did not come or came damaged (:meth:`Board.in_flight`)."""


class BoardTimeout(BoardError):
    """No (valid) reply within the timeout."""


class SerialTransport(Transport):
    def __init__(self, url: str, baudrate: int = 115200):
        import serial

        self.url = url
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            hint = (" (is `fireforge simboard` running on that port?)" if url.startswith(
                "socket://") else " (is the board plugged in? which /dev/tty* is its link: ttyUSB* "
                "behind a USB-serial bridge, ttyACM* on an OrangeCrab?)")
            raise BoardError(f"cannot open {url}: {e}{hint}") from None

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            self.closed = True
            raise BoardError(f"writing to {self.url} failed: {e}") from None

    def read(self, size: int, timeout: float) -> bytes:
        import serial

        # block for the first byte only, then take whatever else has arrived
        self.port.timeout = max(0.001, timeout)
        try:
            data = self.port.read(1)
            if data:
                waiting = self.port.in_waiting
                if waiting:
                    data += self.port.read(min(waiting, size - 1))
            elif self._peer_gone():
                self.closed = True
        except (serial.SerialException, OSError):
            self.closed = True
            return b""
        return data

    def _peer_gone(self) -> bool:
        """A TCP peer that closed the connection reads as ready with no data."""
        sock = getattr(self.port, "_socket", None)
        if sock is None:
            return False
        import select

        try:
            ready, _, _ = select.select([sock], [], [], 0)
            return bool(ready) and sock.recv(1, 0x2) == b""  # MSG_PEEK
        except OSError:
            return True

    def reset_input(self) -> None:
        try:
            self.port.reset_input_buffer()
        except Exception:  # noqa: BLE001 - a closed socket has nothing to reset
            pass

    def close(self) -> None:
        self.port.close()


@dataclass
class BoardInfo:
    """What INFO says: the board, its accelerator's configuration, its model and state."""

    version: int
    board: str
    #: the board's accelerator configuration, as far as a program's fit depends on it
    config: AcceleratorConfig
    #: the configuration's features as INFO states them (``bypass_add``, ``spram_acts``,
    #: ``spram_weights``)
    features: dict
    n_layers: int
    num_classes: int
    model_hash: str
    logit_scale: float
    #: where and how to write an image for the loaded model (:data:`InputPlacement` as a
    #: dict; :func:`~fireforge.hw.protocol.place_image` places one with it)
    placement: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)


@dataclass
class Classification:
    cls: int
    top: list[tuple[int, float]]
    sums: np.ndarray
    cycles: int
    seconds: float


def _flags(view) -> dict[str, bool]:
    """The named one-bit fields of a flags layout (``reserved`` left out)."""
    return {name: bool(getattr(view, name)) for name, _ in view.shape() if name != "reserved"}


class _Deframer:
    """SLIP bytes in, complete frames out (a frame with a bad escape comes out as ``None``)."""

    def __init__(self):
        self.frame, self.esc, self.bad = bytearray(), False, False

    def feed(self, data: bytes):
        for b in data:
            if b == SLIP_END:
                if self.frame or self.bad:
                    yield None if self.bad else bytes(self.frame)
                self.frame, self.esc, self.bad = bytearray(), False, False
            elif self.esc:
                self.esc = False
                if b == SLIP_ESC_END:
                    self.frame.append(SLIP_END)
                elif b == SLIP_ESC_ESC:
                    self.frame.append(SLIP_ESC)
                else:
                    self.bad = True
            elif b == SLIP_ESC:
                self.esc = True
            else:
                self.frame.append(b)


class Board:
    """One board (or simulated board) behind a :class:`Transport`.

    ``timeout``: seconds to wait for a reply before sending the request again (``retries``
    times); ``resync``: how long after a frame-error reply (line noise before the request)
    the request's own reply may still come before it is sent again."""

    def __init__(self, transport: Transport, timeout: float = 2.0, retries: int = 3,
                 run_timeout: float = 60.0, resync: float = 0.25):
        self.transport = transport
        self.timeout = timeout
        self.resync = resync
        self.retries = retries
        self.run_timeout = run_timeout
        self._tag = 0
        self._deframer = _Deframer()
        self._pending: list = []
        #: the board's image stage (WRITE_PIXELS) and receive FIFO in bytes, 0 for none;
        #: known after INFO
        self._stage_bytes: int | None = None
        self._rx_fifo_bytes: int | None = None

    @classmethod
    def open(cls, url: str, baudrate: int = 115200, **kwargs) -> Board:
        return cls(SerialTransport(url, baudrate), **kwargs)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ frames
    def _read_frame(self, deadline: float):
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(4096, min(left, 0.2))
            if not data and self.transport.closed:
                raise BoardError("the connection to the board closed (did the board or "
                                 "`fireforge simboard` stop?)")
            self._pending.extend(self._deframer.feed(data))
        return self._pending.pop(0)

    def _encode(self, cmd: Cmd, data: bytes, args: dict) -> tuple[int, bytes]:
        """A new tag, and the request's SLIP frame."""
        layout = ARGUMENTS.get(cmd)
        arg_bytes = layout_bytes(layout, **args) if layout is not None else b""
        self._tag = self._tag % 255 + 1  # never FRAME_ERROR_TAG
        return self._tag, slip_encode(layout_bytes(RequestHeader, cmd=cmd, tag=self._tag)
                                      + arg_bytes + data)

    @staticmethod
    def _parse_reply(frame: bytes) -> tuple[int, Status, bytes] | str:
        """A reply frame's tag, status and body, or what is wrong with it."""
        head_bytes = ReplyHeader.size // 8
        if len(frame) < head_bytes + CRC_BYTES or crc32(frame[:-CRC_BYTES]) != \
                int.from_bytes(frame[-CRC_BYTES:], "little"):
            return "a corrupted reply"
        try:
            status = Status(frame[0])
        except ValueError:
            return f"an unknown status {frame[0]:#04x}"
        return int(layout_from_bytes(ReplyHeader, frame).tag), status, \
            frame[head_bytes:-CRC_BYTES]

    @staticmethod
    def _refused(cmd: Cmd, status: Status) -> BoardError:
        return BoardError(f"{cmd.name} refused by the board: {status.name} "
                          f"({STATUS_MEANING[status]}{_STATUS_HINTS.get(status, '')})")

    def request(self, cmd: Cmd, data: bytes = b"", **args) -> bytes:
        """Send ``cmd`` with its argument fields and data; return the OK reply's body."""
        problems = []
        for _ in range(self.retries + 1):
            tag, frame = self._encode(cmd, data, args)
            self._pending.clear()
            self.transport.reset_input()
            self.transport.write(frame)
            deadline = time.monotonic() + self.timeout
            while True:
                frame = self._read_frame(deadline)
                if frame is None:
                    problems.append("no reply")
                    break
                reply = self._parse_reply(frame)
                if isinstance(reply, str):
                    problems.append(reply)
                    continue
                got, status, body = reply
                if got != FRAME_ERROR_TAG and got != tag:
                    continue  # a late reply to an earlier request
                if got == FRAME_ERROR_TAG or status in _RETRYABLE:
                    # A damaged frame: ours, or line noise before it (our END closed it). A
                    # board without a receive FIFO drops bytes while it answers, so our
                    # request was most likely lost with it: our reply has a short while to
                    # come, then we send again.
                    problems.append(f"the board saw {status.name}")
                    deadline = min(deadline, time.monotonic() + self.resync)
                    continue
                if status != Status.OK:
                    raise self._refused(cmd, status)
                return body
        raise BoardTimeout(f"{cmd.name}: no valid reply after {self.retries + 1} tries "
                           f"({', '.join(problems)}); timeout {self.timeout} s. Is the board "
                           f"connected, configured with a fireforge bitstream, and at the same "
                           f"baud rate (fireforge boards lists each board's; --board NAME "
                           f"picks it)?")

    def in_flight(self, batches):
        """Send the requests of ``batches`` (each a list of ``(cmd, data, args)``) in order
        without waiting for each reply, keeping at most as many request bytes unanswered as
        the board's receive FIFO holds (one request at a time where it has none), and yield
        each batch's replies (status and body, in order) once all have come. A batch is taken
        from ``batches`` only when the one before has been sent, so the next batch's requests
        cross the link while the replies to the last one come back.

        ``OK`` and ``BUSY`` are yielded, another refusal raises :class:`BoardError`. A reply
        that does not come, or comes damaged, raises :class:`InFlightBroken`. Either way, and
        where the caller stops early, what the board executed of the requests in flight is
        unknown: their late replies are ignored by tag, and the caller starts over one request
        at a time."""
        if self._rx_fifo_bytes is None:
            self.info()
        self._pending.clear()
        self.transport.reset_input()
        unanswered: deque = deque()  # (batch, cmd, tag, frame) of each request sent
        try:
            yield from self._send_in_flight(iter(batches), unanswered)
        finally:  # (an error, or a caller that stops early)
            self._drain(unanswered)

    def _send_in_flight(self, batches, unanswered: deque):
        window = self._rx_fifo_bytes
        unsent: deque = deque()  # (batch, cmd, tag, frame) of each request encoded, in order
        sizes: list[int] = []  # requests per batch
        replies: list[tuple[Status, bytes]] = []  # the oldest unfinished batch's so far
        held = 0  # request bytes unanswered
        more = True
        while True:
            if not unsent and more:
                batch = next(batches, None)
                if batch is None:
                    more = False
                else:
                    sizes.append(len(batch))
                    unsent.extend((len(sizes) - 1, cmd, *self._encode(cmd, data, args))
                                  for cmd, data, args in batch)
                    continue
            if unsent and (not unanswered or held + len(unsent[0][3]) <= window):
                request = unsent.popleft()
                self.transport.write(request[3])
                unanswered.append(request)
                held += len(request[3])
                continue
            if not unanswered:
                return
            k, cmd, tag, frame = unanswered.popleft()
            held -= len(frame)
            reply = self._read_frame(time.monotonic() + self.timeout)
            reply = "no reply" if reply is None else self._parse_reply(reply)
            if isinstance(reply, str):
                raise InFlightBroken(f"{cmd.name}: {reply}")
            got, status, body = reply
            if got != tag:
                raise InFlightBroken(f"{cmd.name}: the reply to tag {got} ({status.name}), "
                                     f"not {tag}")
            if status not in (Status.OK, Status.BUSY):
                raise self._refused(cmd, status)
            replies.append((status, body))
            if len(replies) == sizes[k]:
                yield replies
                replies = []

    def _drain(self, unanswered) -> None:
        """Wait out the replies to the requests still in flight (``(batch, cmd, tag, frame)``
        each), ignoring them, so that the next request is the next one answered; stop where
        one does not come within the timeout."""
        tags = {tag for _, _, tag, _ in unanswered}
        unanswered.clear()
        while tags:
            frame = self._read_frame(time.monotonic() + self.timeout)
            if frame is None:
                return
            reply = self._parse_reply(frame)
            if not isinstance(reply, str):
                tags.discard(reply[0])

    # ------------------------------------------------------------------ commands
    def info(self) -> BoardInfo:
        raw = self.request(Cmd.INFO)
        if raw[:1] != bytes([PROTOCOL_VERSION]):  # (the version is INFO's first byte)
            raise BoardError(f"the board speaks protocol version {raw[0] if raw else '?'}, this "
                             f"fireforge version {PROTOCOL_VERSION}: build and flash its "
                             f"bitstream with this fireforge (fireforge build, fireforge flash)")
        r = layout_from_bytes(InfoReply, raw)
        model_hash, scale, placement = parse_model_info(r.info)
        board = int(r.board).to_bytes(BOARD_ID_BYTES, "little").rstrip(b"\0")
        self._stage_bytes = int(r.stage_bytes)
        self._rx_fifo_bytes = int(r.rx_fifo_bytes)
        return BoardInfo(
            version=int(r.version), board=board.decode("ascii", "replace"),
            config=config_from_info(r), features=_flags(r.features), n_layers=int(r.n_layers),
            num_classes=int(r.num_classes), model_hash=model_hash, logit_scale=scale,
            placement=placement, state=_flags(r.state))

    def status(self) -> dict:
        r = layout_from_bytes(StatusReply, self.request(Cmd.STATUS))
        return {**_flags(r.state), "layer": int(r.layer), "total_cycles": int(r.total_cycles)}

    def check_model(self, program: Program) -> BoardInfo:
        info = self.info()
        if not info.state.get("model_valid"):
            why = (" (its weights live in SPRAM, empty at power-up)"
                   if info.features["spram_weights"] else "")
            raise BoardError(f"the board has no model yet{why}: load it with `fireforge load "
                             f"--port URL --program {program.path}` (or `fireforge infer "
                             f"--load`)")
        if info.model_hash != program.model_hash:
            raise BoardError(f"wrong model on the board: it runs {info.model_hash[:12]}…, the "
                             f"program {program.path} is {program.model_hash[:12]}…; load it "
                             f"with `fireforge load --port URL --program {program.path}`")
        return info

    @staticmethod
    def _chunks(cmd: Cmd, data: bytes, at: str, start: int = 0) -> list:
        """``data`` as ``(cmd, data, args)`` requests of at most MAX_DATA bytes, each at
        ``start`` plus its offset in argument ``at``."""
        return [(cmd, data[off:off + MAX_DATA],
                 {at: start + off, "length": len(data[off:off + MAX_DATA])})
                for off in range(0, len(data), MAX_DATA)]

    def _write(self, cmd: Cmd, data: bytes, at: str, start: int = 0) -> None:
        for cmd_, chunk, args in self._chunks(cmd, data, at, start):
            self.request(cmd_, chunk, **args)

    def write_memory(self, addr: int, data: bytes) -> None:
        self._write(Cmd.WRITE_IMAGE, data, "addr", addr)

    def read_memory(self, addr: int, length: int) -> bytes:
        out = bytearray()
        for off in range(0, length, MAX_DATA):
            n = min(MAX_DATA, length - off)
            out += self.request(Cmd.READ_TENSOR, addr=addr + off, length=n)
        return bytes(out)

    def write_image(self, program: Program, image: np.ndarray) -> None:
        """``image``: uint8 ``(C, H, W)`` exactly the program's input shape."""
        self._check_image(program, image)
        if self._stages(image):
            self.write_pixels(self._pixels(image))
        else:
            self.write_memory(*program.input_bytes(image))

    @staticmethod
    def _pixels(image: np.ndarray) -> bytes:
        """The raw image the stage takes: ``H x W x C`` bytes."""
        return image.transpose(1, 2, 0).tobytes()

    @staticmethod
    def _check_image(program: Program, image: np.ndarray) -> None:
        want = program.input_shape
        if image.dtype != np.uint8 or tuple(image.shape) != want:
            raise BoardError(f"image of shape {tuple(image.shape)} ({image.dtype}); the model "
                             f"takes uint8 {want} (C, H, W): use prepare_image()")

    def _stages(self, image: np.ndarray) -> bool:
        if self._stage_bytes is None:
            self.info()
        return stages(self._stage_bytes, image)

    def write_pixels(self, raw: bytes) -> None:
        """The raw image (``H x W x C`` bytes) into the board's image stage (WRITE_PIXELS),
        also while it runs; the next RUN places it."""
        self._write(Cmd.WRITE_PIXELS, raw, "offset")

    def run(self, step: bool = False) -> None:
        self.request(Cmd.RUN, step=int(step))

    def wait(self, until=("done", "paused")) -> dict:
        """STATUS until the board is idle with one of the flags ``until`` set (none: idle)."""
        deadline = time.monotonic() + self.run_timeout
        while True:
            s = self.status()
            if not s["busy"] and (not until or any(s[k] for k in until)):
                return s
            if time.monotonic() > deadline:
                raise BoardTimeout(f"the board was still busy after {self.run_timeout} s "
                                   f"(layer {s['layer']}, {s['total_cycles']:,} cycles)")
            time.sleep(0.002)

    def read_result(self) -> tuple[np.ndarray, float]:
        return self._parse_result(self.request(Cmd.READ_RESULT))

    @staticmethod
    def _parse_result(raw: bytes) -> tuple[np.ndarray, float]:
        head = layout_from_bytes(ResultHeader, raw)
        n = int(head.num_classes)
        _, scale, _ = parse_model_info(head.info)
        body = raw[ResultHeader.size // 8:]
        assert ACC_BITS == 32  # (one little-endian int32 a class)
        sums = np.frombuffer(body[:4 * n], dtype="<i4").astype(np.int64)
        return sums, scale

    def read_counters(self) -> tuple[list[int], int]:
        raw = self.request(Cmd.READ_COUNTERS)
        head = layout_from_bytes(CountersHeader, raw)
        n = int(head.n_layers)
        body = raw[CountersHeader.size // 8:]
        return list(struct.unpack(f"<{n}I", body[:4 * n])), int(head.total_cycles)

    def classify(self, program: Program, image: np.ndarray, top: int = 3) -> Classification:
        t0 = time.perf_counter()
        self.write_image(program, image)
        self.run()
        return self._result(program, top, t0)

    def classify_many(self, program: Program, images, top: int = 3):
        """Classify each of ``images`` in turn, yielding a :class:`Classification` for each.
        Where the board stages images, the next one crosses the link while the board runs
        the current one (``seconds`` is then the time from one result to the next); where it
        also has a receive FIFO, every request of an image is in flight at once
        (:meth:`_classify_in_flight`)."""
        images = iter(images)
        first = next(images, None)
        if first is None:
            return
        if not self._stages(first):
            for image in chain([first], images):
                yield self.classify(program, image, top)
            return
        if self._rx_fifo_bytes:
            yield from self._classify_in_flight(program, chain([first], images), top)
            return
        t0 = time.perf_counter()
        self.write_image(program, first)
        self.run()
        for image in images:
            self.write_image(program, image)  # (into the stage, during the run)
            yield self._result(program, top, t0)
            t0 = time.perf_counter()
            self.run()
        yield self._result(program, top, t0)

    def _classify_in_flight(self, program: Program, images, top: int):
        """Per image, its WRITE_PIXELS requests, then READ_RESULT (``wait``: its reply waits
        for the image before to finish) and STATUS for the image before, then RUN: a batch of
        requests, all in flight (:meth:`in_flight`), the next image's batch behind it. The
        link executes them in order, so an image's WRITE_PIXELS reach the stage after the RUN
        before them has placed the image there, and each RUN finds the engine idle and the
        result before it read. A RUN answered BUSY (the stream's first, behind a run this
        driver did not start) or a lost reply leaves the stream behind: every image sent and
        not yet classified runs again one request at a time, and the stream starts over after
        them."""
        sent = []  # the images whose batches were taken, from the first unclassified one

        def batches():
            for image in images:
                self._check_image(program, image)
                requests = self._chunks(Cmd.WRITE_PIXELS, self._pixels(image), "offset")
                if sent:
                    requests += [(Cmd.READ_RESULT, b"", {"wait": 1}), (Cmd.STATUS, b"", {})]
                sent.append(image)
                yield requests + [(Cmd.RUN, b"", {})]

        t0 = time.perf_counter()
        stream = self.in_flight(batches())
        first = True  # (every batch but the stream's first reads the image before's result)
        try:
            for replies in stream:
                if not first:
                    (result, raw_result), (_, raw_status) = replies[-3:-1]
                    if result != Status.OK:
                        break  # (not with wait; kept: a BUSY result is no result)
                    cycles = int(layout_from_bytes(StatusReply, raw_status).total_cycles)
                    yield self._classification(program, top, *self._parse_result(raw_result),
                                               cycles, t0)
                    t0 = time.perf_counter()
                    del sent[0]
                first = False
                if replies[-1][0] == Status.BUSY:
                    break  # (a run this stream did not start: its image is not running)
            else:
                if sent:
                    yield self._result(program, top, t0)
                return
        except InFlightBroken:
            pass
        stream.close()
        self.wait(())
        for image in sent:
            yield self.classify(program, image, top)
        yield from self._classify_in_flight(program, images, top)

    def _result(self, program: Program, top: int, t0: float) -> Classification:
        """The running image's classification, once the board is done."""
        s = self.wait(("done",))
        return self._classification(program, top, *self.read_result(), s["total_cycles"], t0)

    @staticmethod
    def _classification(program: Program, top: int, sums: np.ndarray, scale: float,
                        cycles: int, t0: float) -> Classification:
        order = np.argsort(-sums, kind="stable")[:top]
        zero = program.manifest.logit_offset  # (the board reports sums; the program knows 0)
        return Classification(int(order[0]),
                              [(int(c), float((sums[c] - zero) * scale)) for c in order],
                              sums, cycles, time.perf_counter() - t0)

    def verify(self, program: Program, image: np.ndarray, golden, index: int = 0) -> dict:
        """Run ``image`` a layer at a time, reading back every layer's output tensor and the
        sums, compared integer for integer with image ``index`` of ``golden`` (a
        ``run_golden(..., keep_layers=True)`` result)."""
        from .golden import first_mismatch, read_tensor

        self.write_image(program, image)
        self.run(step=True)
        layers = program.layers
        for n, (layer, d) in enumerate(zip(layers, program.descriptors, strict=True)):
            self.wait()
            if d.op != Op.AVGPOOL:
                span = int(d.out_h) * int(d.out_w) * int(d.out_stride)
                raw = np.frombuffer(self.read_memory(int(d.out_addr), span), np.uint8)
                got = read_tensor(raw[None].astype(np.int64), 0, int(d.out_stride),
                                  int(d.out_offset), int(d.out_c), int(d.out_h),
                                  int(d.out_w))[0].transpose(2, 0, 1)
                want = golden.layers[layer["name"]][index]
                if not np.array_equal(got, want):
                    return {"bit_exact": False, "layer": layer["name"], "index": n,
                            **first_mismatch(got, want)}
            if n < len(layers) - 1:
                self.run(step=True)  # resume
        sums, _ = self.read_result()
        if not np.array_equal(sums, golden.sums[index]):
            return {"bit_exact": False, "layer": layers[-1]["name"], "index": len(layers) - 1,
                    **first_mismatch(sums, golden.sums[index])}
        return {"bit_exact": True, "layers": len(layers)}

    def load(self, program: Program, progress=None) -> BoardInfo:
        """Write ``program``'s images into the board's load slot and commit them."""
        info = self.info()
        try:
            check_program(info.config, program)
        except FireforgeError as e:
            raise BoardError(f"{program.path} cannot run on this board ({info.board}): "
                             f"{str(e).split(': ', 1)[-1]}") from None
        spaces = info.config.model_spaces()
        self.request(Cmd.LOAD_BEGIN)
        stream = b""
        total = sum(len(program.images[name]) for _, name in LOAD_ORDER)
        done = 0
        for space, name in LOAD_ORDER:
            image = program.images[name]
            stream += image
            for off in range(0, len(image), MAX_DATA):
                chunk = image[off:off + MAX_DATA]
                self.request(Cmd.WRITE_WEIGHTS, chunk, space=space,
                             word=off // spaces[space][1], lane=off % spaces[space][1],
                             length=len(chunk))
                done += len(chunk)
                if progress:
                    progress(done, total)
        self.request(Cmd.LOAD_COMMIT, program.model_info(),
                     crc=crc32(stream), n_layers=len(program.layers),
                     num_classes=program.num_classes)
        return self.check_model(program)


#: what a user does about a refusal, beyond what the status means
_STATUS_HINTS = {
    Status.NO_MODEL: "; load one: fireforge load --port URL --program DIR",
}


def load_image_file(path: str | Path) -> np.ndarray:
    """A PNG/JPEG (Pillow) as uint8 ``(C, H, W)``, or a ``.npy`` array as stored."""
    path = Path(path)
    if not path.is_file():
        raise FireforgeError(f"image file {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise FireforgeError(f"{path} is not a readable .npy array: {e}") from None
        return arr
    from PIL import Image, UnidentifiedImageError

    from .data import image_to_array

    try:
        with Image.open(path) as img:
            img.load()
            return image_to_array(img, None, str(path))  # gray stays gray, colour is RGB
    except (UnidentifiedImageError, OSError) as e:
        raise FireforgeError(f"{path} is not an image Pillow can read ({e}); use PNG, JPEG or "
                             f".npy") from None


def prepare_image(image: np.ndarray, program: Program, what: str = "image",
                  notes: list | None = None) -> np.ndarray:
    """Any uint8/float image (``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``) to the program's
    input: resized (bilinear) to its size, gray or RGB as it takes. A colour image for a gray
    model becomes luminance (noted in ``notes``)."""
    from .data import fit_images, match_channels

    c, h, w = program.input_shape
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0 \
                and arr.min() >= 0.0:
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[0] not in (1, 3) and arr.shape[2] in (1, 3, 4):
        arr = arr.transpose(2, 0, 1)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3, 4):
        raise FireforgeError(f"{what}: shape {np.asarray(image).shape} is not an image (H, W), "
                             f"(H, W, C) or (C, H, W) with 1, 3 or 4 channels")
    arr = arr[:3]
    if arr.shape[0] != c:
        if c == 1:
            lum = 0.299 * arr[0] + 0.587 * arr[1] + 0.114 * arr[2]
            arr = np.clip(np.round(lum), 0, 255).astype(np.uint8)[None]
            if notes is not None:
                notes.append(f"{what}: colour converted to gray for a 1-channel model")
        else:
            arr = match_channels(arr[None], c, what)[0]
    if arr.shape[1:] != (h, w):
        if notes is not None:
            notes.append(f"{what}: resized from {arr.shape[2]}x{arr.shape[1]} to {w}x{h}")
        arr = fit_images(arr[None], h, "resize")[0]
    return np.ascontiguousarray(arr)
