"""The host link and UART in Amaranth's simulator, driven by the real driver.

The driver (``fireforge.sw.driver.Board``) talks to ``HostLink`` + ``Accelerator`` through
``LinkTransport``: every frame, CRC, escape and command goes through the gateware as on a board.
"""

import random
import struct
import time

import numpy as np
import pytest
from fireforge.hw.protocol import (
    MAX_DATA,
    PROTOCOL_VERSION,
    SLIP_END,
    SLIP_ESC,
    Cmd,
    ModelInfo,
    ReplyHeader,
    RequestHeader,
    Space,
    Status,
    crc32,
    layout_bytes,
    layout_from_bytes,
    slip_encode,
)
from fireforge.sim.pysim import LinkTransport
from fireforge.sw.driver import Board, BoardError, _Deframer
from fireforge.sw.golden import run_golden
from fireforge.sw.model import FireSpec, SqueezeNetConfig

from ..helpers import LANES_CONFIG, SPARSE_LANES_CONFIG, TEST_CONFIG, compile_random

NET = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3, in_channels=1,
                       input_size=8)
NET2 = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(3, 4, 4),), (), num_classes=4, in_channels=1,
                        input_size=8)


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    a, xa = compile_random(NET, 1, 4, tmp_path_factory.mktemp("a"), images=3)
    b, xb = compile_random(NET2, 2, 2, tmp_path_factory.mktemp("b"), images=3)
    return (a, xa), (b, xb)


@pytest.fixture
def board(programs):
    (a, _), _ = programs
    transport = LinkTransport(TEST_CONFIG, a)
    b = Board(transport, timeout=5.0, retries=1)
    yield b
    b.close()


def _raw_request(board, frame: bytes):
    board.transport.write(frame)
    return board._read_frame(time.monotonic() + board.timeout)


def _status(frame):
    return Status(frame[0])


def test_info_reports_the_program_and_config(board, programs):
    (a, _), _ = programs
    info = board.info()
    assert info.board == "pysim" and info.version == PROTOCOL_VERSION
    assert info.config == TEST_CONFIG  # all the host needs to check a program against
    assert info.model_hash == a.model_hash
    assert info.logit_scale == pytest.approx(a.manifest.logit_scale, rel=1e-6)
    assert (info.n_layers, info.num_classes) == (len(a.layers), a.num_classes)
    assert info.features == {"bypass_add": TEST_CONFIG.bypass_add, "spram_acts": False,
                             "spram_weights": False, "sparse_weights": False}
    assert info.state["model_valid"] and not info.state["busy"]


def test_classify_and_verify_equal_golden(board, programs):
    (a, xa), _ = programs
    golden = run_golden(a, xa, keep_layers=True)
    for n in range(2):
        result = board.classify(a, xa[n])
        assert np.array_equal(result.sums, golden.sums[n])
        assert result.cls == int(golden.predictions[n])
    counters, total = board.read_counters()
    assert len(counters) == len(a.layers) and sum(counters) <= total
    one = run_golden(a, xa[2:3], keep_layers=True)
    assert board.verify(a, xa[2], one) == {"bit_exact": True, "layers": len(a.layers)}
    # a deliberately wrong expectation is caught and named
    one.layers[a.layers[1]["name"]][0, 0, 0, 0] ^= 1
    report = board.verify(a, xa[2], one)
    assert not report["bit_exact"] and report["layer"] == a.layers[1]["name"]


def test_verify_with_memory_registers(programs):
    """With the ECP5's memory registers the activation bytes reach the link a cycle later;
    READ_TENSOR still returns every layer's bytes."""
    (a, xa), _ = programs
    b = Board(LinkTransport(TEST_CONFIG.replace(memory_registers=True), a), timeout=5.0,
              retries=1)
    try:
        one = run_golden(a, xa[:1], keep_layers=True)
        assert b.verify(a, xa[0], one) == {"bit_exact": True, "layers": len(a.layers)}
    finally:
        b.close()


def test_load_swaps_the_model_and_a_bad_crc_keeps_the_old(board, programs):
    (a, xa), (b, xb) = programs
    # A load whose bytes do not match the committed CRC: refused, old model untouched.
    board.request(Cmd.LOAD_BEGIN)
    board.request(Cmd.WRITE_WEIGHTS, b"\x01\x02\x03\x04", space=1, word=0, lane=0, length=4)
    with pytest.raises(BoardError, match="LOAD_FAILED"):
        board.request(Cmd.LOAD_COMMIT, bytes(ModelInfo.size // 8), crc=0x12345678, n_layers=3,
                      num_classes=2)
    assert board.info().model_hash == a.model_hash
    assert np.array_equal(board.classify(a, xa[0]).sums, run_golden(a, xa[:1]).sums[0])
    # A real load: INFO shows the new hash, results equal the new golden model.
    info = board.load(b)
    assert info.model_hash == b.model_hash and info.num_classes == b.num_classes
    for n in range(2):
        assert np.array_equal(board.classify(b, xb[n]).sums, run_golden(b, xb[n:n + 1]).sums[0])
    with pytest.raises(BoardError, match="wrong model on the board"):
        board.check_model(a)


def test_errors_are_answered_and_the_link_resynchronizes(board):
    ok = slip_encode(layout_bytes(RequestHeader, cmd=Cmd.STATUS, tag=7))
    bad_crc = bytearray(ok)
    bad_crc[3] ^= 0x40
    cases = {
        bytes(bad_crc): Status.BAD_CRC,
        bytes([SLIP_END, 0x11, SLIP_ESC, 0x55, 0x22, SLIP_END]): Status.BAD_FRAME,
        bytes([SLIP_END, 0x33, SLIP_END]): Status.BAD_FRAME,
        slip_encode(layout_bytes(RequestHeader, cmd=Cmd.STATUS, tag=9)[:1] + b"\x09\x99"):
            Status.BAD_ARGUMENT,
        slip_encode(bytes([0x7E, 3])): Status.UNKNOWN_COMMAND,
        slip_encode(bytes([SLIP_END]) * 400): Status.TOO_LONG,
        slip_encode(layout_bytes(RequestHeader, cmd=Cmd.READ_TENSOR, tag=4)
                    + struct.pack("<IH", TEST_CONFIG.act_bytes - 2, 8)): Status.BAD_ARGUMENT,
        slip_encode(layout_bytes(RequestHeader, cmd=Cmd.WRITE_WEIGHTS, tag=5) + bytes(9)):
            Status.NOT_LOADING,
    }
    for frame, want in cases.items():
        reply = _raw_request(board, frame)
        assert reply is not None and _status(reply) == want, (frame, reply)
        assert crc32(reply[:-4]) == int.from_bytes(reply[-4:], "little")
    assert board.status()["model_valid"]


def test_fuzz_garbage_then_a_valid_request(board):
    rng = random.Random(1)
    base = slip_encode(layout_bytes(RequestHeader, cmd=Cmd.INFO, tag=1))
    for _ in range(12):
        frames = []
        for _ in range(3):
            kind = rng.randrange(3)
            if kind == 0:
                frames.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
            elif kind == 1:
                frames.append(base[:rng.randrange(1, len(base))])
            else:
                f = bytearray(base)
                f[rng.randrange(1, len(f) - 1)] ^= 1 << rng.randrange(8)
                frames.append(bytes(f))
        board.transport.write(b"".join(frames))
        # whatever comes back is well-formed; then a valid request works
        board.status()
    assert board.info().state["model_valid"]


def test_reply_frames_escape_special_bytes(board, programs):
    """Bytes 0xC0/0xDB in a tensor come back escaped and intact."""
    data = bytes([SLIP_END, SLIP_ESC, 1, SLIP_END, SLIP_ESC, SLIP_ESC])
    board.write_memory(100, data)
    assert board.read_memory(100, len(data)) == data
    frames = list(_Deframer().feed(slip_encode(b"\xc0\xdb")))
    assert frames[0][:2] == b"\xc0\xdb"
    assert layout_from_bytes(ReplyHeader, bytes([0, 1, 2])).tag == 1


def test_out_of_range_arguments_are_refused(board):
    """Addresses, words and lanes past the memories, including values whose high bits alone
    make them too large (the gateware adds only the low bits), are BAD_ARGUMENT."""
    act = TEST_CONFIG.act_bytes
    for addr, length in ((2**32 - 2, 4), (2**31, 1), (act, 1), (act - 2, 3), (2 * act, 1),
                         (0, 300)):
        with pytest.raises(BoardError, match="BAD_ARGUMENT"):
            board.request(Cmd.READ_TENSOR, addr=addr, length=length)
        with pytest.raises(BoardError, match="BAD_ARGUMENT"):
            board.request(Cmd.WRITE_IMAGE, bytes(min(length, 256)), addr=addr, length=length)
    assert len(board.request(Cmd.READ_TENSOR, addr=act - 3, length=3)) == 3
    board.request(Cmd.LOAD_BEGIN)
    entries, wb = TEST_CONFIG.model_spaces()[Space.WEIGHTS]
    assert wb > 1
    for word, lane in ((2**32 - 1, 0), (2**31, 0), (entries, 0), (entries - 1, wb),
                       (0, 2**16 - 1), (0, 2**15)):
        with pytest.raises(BoardError, match="BAD_ARGUMENT"):
            board.request(Cmd.WRITE_WEIGHTS, b"\x05", space=1, word=word, lane=lane, length=1)
    # the last byte of the space is writable, one more is not
    board.request(Cmd.WRITE_WEIGHTS, b"\x05", space=1, word=entries - 1, lane=wb - 1, length=1)
    with pytest.raises(BoardError, match="BAD_ARGUMENT"):
        board.request(Cmd.WRITE_WEIGHTS, b"\x05\x06", space=1, word=entries - 1, lane=wb - 1,
                      length=2)


def test_input_lanes_through_the_link(tmp_path):
    """4 input lanes and 2 requantization lanes: the host writes the (unfolded) image and
    reads every layer back as bytes of the 4-byte activation words, and a load writes the
    parameters as words of two entries, as INFO's ``requant_lanes`` tells the host."""
    a, xa = compile_random(NET, 1, 4, tmp_path / "a", images=2, lanes=4)
    b, xb = compile_random(NET2, 2, 2, tmp_path / "b", images=1, lanes=4)
    assert a.manifest.input.unfold is not None
    board = Board(LinkTransport(LANES_CONFIG, a), timeout=5.0, retries=1)
    try:
        info = board.info()
        assert (info.config.rows, info.config.requant_lanes) == (4, 2)
        one = run_golden(a, xa[:1], keep_layers=True)
        assert board.verify(a, xa[0], one) == {"bit_exact": True, "layers": len(a.layers)}
        assert np.array_equal(board.classify(a, xa[1]).sums, run_golden(a, xa[1:]).sums[0])
        board.load(b)
        assert np.array_equal(board.classify(b, xb[0]).sums, run_golden(b, xb).sums[0])
    finally:
        board.close()


def test_a_sparse_model_loads_and_runs_through_the_link(tmp_path):
    """INFO says the board decodes sparse layers; a load writes the mask image (the MASKS
    space, words of two bytes on 4 x 4 MACs) with the others under the load's CRC, and the
    loaded sparse model, and a dense one after it, equal golden."""
    a, xa = compile_random(NET, 1, 4, tmp_path / "a", images=1, target=SPARSE_LANES_CONFIG,
                           density=0.3)
    b, xb = compile_random(NET2, 2, 4, tmp_path / "b", images=1, target=SPARSE_LANES_CONFIG,
                           density=0.3)
    c, xc = compile_random(NET2, 3, 4, tmp_path / "c", images=1, lanes=4)
    assert a.images["masks.bin"] and b.images["masks.bin"] and not c.images["masks.bin"]
    with Board(LinkTransport(SPARSE_LANES_CONFIG, a), timeout=5.0, retries=1) as board:
        info = board.info()
        assert info.features["sparse_weights"] and info.config == SPARSE_LANES_CONFIG.replace(
            memory_registers=False)
        assert np.array_equal(board.classify(a, xa[0]).sums, run_golden(a, xa).sums[0])
        for program, x in ((b, xb), (c, xc)):
            board.load(program)
            assert np.array_equal(board.classify(program, x[0]).sums,
                                  run_golden(program, x).sums[0])


def test_images_stream_through_the_stage_while_the_board_runs(tmp_path):
    """WRITE_PIXELS writes the image stage at any offset, also while the engine runs; RUN
    places the staged image (a copy with one lane, the pixel placer with four) and starts.
    A stage write past the stage, a staged image shorter or longer than the model's input,
    and WRITE_PIXELS on a board without a stage are refused."""
    a, xa = compile_random(NET, 1, 4, tmp_path / "a", images=4, lanes=4)
    golden = run_golden(a, xa).sums
    raw = [x.transpose(1, 2, 0).tobytes() for x in xa]
    with Board(LinkTransport(LANES_CONFIG, a), timeout=5.0, retries=1) as board:
        stage = board.info().config.stage_bytes
        assert stage == LANES_CONFIG.stage_bytes >= len(raw[0])
        for offset, length in ((stage, 1), (stage - 2, 3), (2**32 - 1, 1), (2**31, 2)):
            with pytest.raises(BoardError, match="BAD_ARGUMENT"):
                board.request(Cmd.WRITE_PIXELS, bytes(length), offset=offset, length=length)
        # in any order, and again: the stage is memory
        board.request(Cmd.WRITE_PIXELS, raw[0][8:], offset=8, length=len(raw[0]) - 8)
        board.request(Cmd.WRITE_PIXELS, raw[0][:8], offset=0, length=8)
        board.request(Cmd.WRITE_PIXELS, raw[0][8:], offset=8, length=len(raw[0]) - 8)
        board.run()
        assert board.status()["busy"]
        board.write_pixels(raw[1])  # while image 0 runs
        board.wait(("done",))
        assert np.array_equal(board.read_result()[0], golden[0])
        board.run()
        board.wait(("done",))
        assert np.array_equal(board.read_result()[0], golden[1])
        for end in (len(raw[0]) - 1, len(raw[0]) + 1):
            data = (raw[2] + bytes(1))[:end]
            board.request(Cmd.WRITE_PIXELS, data, offset=0, length=end)
            with pytest.raises(BoardError, match="BAD_ARGUMENT"):
                board.run()
            assert not board.status()["busy"]
        results = list(board.classify_many(a, xa))
        assert [r.sums.tolist() for r in results] == golden.tolist()
    b, xb = compile_random(NET, 1, 4, tmp_path / "b", images=2)
    for config in (TEST_CONFIG, TEST_CONFIG.replace(stage_bytes=0)):
        with Board(LinkTransport(config, b), timeout=5.0, retries=1) as board:
            results = list(board.classify_many(b, xb))
            assert [r.sums.tolist() for r in results] == run_golden(b, xb).sums.tolist()
            if not config.stage_bytes:
                with pytest.raises(BoardError, match="UNKNOWN_COMMAND"):
                    board.request(Cmd.WRITE_PIXELS, b"\x01", offset=0, length=1)


def test_requests_in_flight_wait_in_the_receive_fifo(programs):
    """With a receive FIFO, requests sent back to back are all answered, in order; without
    one, a request that arrives while the link answers is dropped up to its END. READ_RESULT
    with wait answers when the run ends, without it BUSY while it runs."""
    (a, xa), _ = programs
    frames = [slip_encode(layout_bytes(RequestHeader, cmd=cmd, tag=tag))
              for tag, cmd in ((21, Cmd.STATUS), (22, Cmd.INFO), (23, Cmd.STATUS))]
    for fifo in (0, 512):
        with Board(LinkTransport(TEST_CONFIG.replace(rx_fifo_bytes=fifo), a), timeout=3.0,
                   retries=1) as board:
            assert board.info().config.rx_fifo_bytes == fifo
            board.transport.write(b"".join(frames))
            tags = []
            while (reply := board._read_frame(time.monotonic() + 2.0)) is not None:
                assert _status(reply) == Status.OK
                tags.append(layout_from_bytes(ReplyHeader, reply).tag)
            assert tags == ([21, 22, 23] if fifo else [21])
            board.write_image(a, xa[0])
            board.run()
            with pytest.raises(BoardError, match="BUSY"):
                board.read_result()
            sums, _ = board._parse_result(board.request(Cmd.READ_RESULT, wait=1))
            assert not board.status()["busy"]
            assert sums.tolist() == run_golden(a, xa[:1]).sums[0].tolist()


class _LosesAReply:
    """A transport that corrupts one byte of the ``n``-th reply frame it passes on."""

    def __init__(self, inner, n: int):
        self.inner, self.n, self.ends = inner, n, 0

    def read(self, size: int, timeout: float) -> bytes:
        data = bytearray(self.inner.read(size, timeout))
        for i, b in enumerate(data):
            if b == SLIP_END:
                self.ends += 1
            elif (self.ends + 1) // 2 == self.n and b != SLIP_ESC:
                data[i] ^= 0x01
                self.n = -1
        return bytes(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("lose", [None, 3, 9])
def test_classify_many_keeps_requests_in_flight(tmp_path, lose):
    """A stream of images through the stage with every request of an image in flight, equal to
    golden; a reply damaged on the way (the 3rd: an image's WRITE_PIXELS; the 9th: a
    READ_RESULT, its image's RUN already started) costs a start-over in turn, not a result."""
    a, xa = compile_random(NET, 1, 4, tmp_path / "a", images=4, lanes=4)
    transport = LinkTransport(LANES_CONFIG.replace(rx_fifo_bytes=1024), a)
    if lose:
        transport = _LosesAReply(transport, lose)
    with Board(transport, timeout=2.0, retries=1) as board:
        streams = []  # each stream's batches of commands
        in_flight = board.in_flight

        def spy(batches):
            streams.append([])
            return in_flight(streams[-1].append([c for c, _, _ in b]) or b for b in batches)
        board.in_flight = spy
        results = list(board.classify_many(a, xa))
    assert [r.sums.tolist() for r in results] == run_golden(a, xa).sums.tolist()
    assert all(r.cycles > 0 for r in results)
    # per image its WRITE_PIXELS, READ_RESULT and STATUS for the one before, RUN
    pixels = [Cmd.WRITE_PIXELS] * -(-xa[0].size // MAX_DATA)
    assert streams[0][0] == pixels + [Cmd.RUN]
    if lose is None:
        assert streams == [[pixels + [Cmd.RUN]]
                           + [pixels + [Cmd.READ_RESULT, Cmd.STATUS, Cmd.RUN]] * 3]
    else:  # (the images in flight in turn, then a new stream for the rest)
        assert transport.n == -1 and len(streams) == 2
