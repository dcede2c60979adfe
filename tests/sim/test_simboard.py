"""The host driver against the simulated board: the whole chip, UART included, in Verilator,
reached through ``socket://`` exactly as a board is reached through ``/dev/ttyUSB*``.

One simulated board serves the module (its tests run on one pytest worker, in file order).
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fireforge.hw.program import load_program
from fireforge.hw.protocol import (
    MAX_DATA,
    Cmd,
    RequestHeader,
    Space,
    WeightArgs,
    layout_bytes,
    slip_encode,
)
from fireforge.sw.commands.compile import compile_program
from fireforge.sw.commands.infer import Port, infer, load
from fireforge.sw.data import load_dataset
from fireforge.sw.driver import Board, BoardError
from fireforge.sw.golden import run_golden

from .fuzz import fuzz

pytestmark = pytest.mark.xdist_group("simboard")

FUZZ_DEFAULT = 300
FUZZ_ALL = 10_000


def _start(program, tmp_path, name, config="small", extra=()):
    ready = tmp_path / f"{name}.url"
    log = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fireforge.sw.cli", "simboard", "--program", str(program),
         "--config", config, "--port", "0", "--ready-file", str(ready), "--build-dir",
         str(tmp_path / "build"), *extra],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / f"{name}.log").read_text()[-3000:])
        time.sleep(0.5)
    return proc, ready.read_text()


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def programs(quick_tiny_program, tmp_path_factory):
    """The quick tiny program, and a second one compiled from the same checkpoint with another
    calibration (other scales, so another model hash)."""
    other = tmp_path_factory.mktemp("other") / "p"
    compile_program(quick_tiny_program.parent / "c", other, config="small", calibration=40)
    a, b = load_program(quick_tiny_program), load_program(other)
    assert a.model_hash != b.model_hash
    return a, b


@pytest.fixture(scope="module")
def simboard(programs, tmp_path_factory):
    proc, url = _start(programs[0].path, tmp_path_factory.mktemp("simboard"), "board")
    yield proc, url
    _stop(proc)


def test_infer_ten_digits_equal_golden(simboard, programs):
    _, url = simboard
    a, _ = programs
    out = infer(Port(url), a.path, data="digits", count=10).to_dict()
    assert len(out["results"]) == 10 and out["golden_agreement"] == 1.0
    assert {"accuracy", "golden_agreement", "results"} <= set(out)
    for r in out["results"]:
        assert r["equals_golden"] and r["class"] == r["golden_class"]
        assert {"image", "class", "top"} <= set(r) and len(r["top"]) == 3


def test_infer_image_files_and_verify(simboard, programs, tmp_path):
    """A PNG (colour, other size: resized and converted) and a .npy, every layer read back."""
    from PIL import Image

    _, url = simboard
    a, _ = programs
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    np.save(tmp_path / "y.npy", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    lines = []
    out = infer(Port(url), a.path, [tmp_path / "x.png", tmp_path / "y.npy"], verify=True,
                log=lines.append)
    assert [r["verify"]["bit_exact"] for r in out.results] == [True, True]
    notes = "\n".join(lines)
    assert "colour converted to gray" in notes and "resized from 50x40" in notes


def test_a_host_written_from_the_protocol_alone(simboard, programs):
    """A host that knows only hw/protocol.py (and docs/protocol.md): no manifest, no driver.
    INFO says where and how to write the image; the sums equal the golden model's."""
    import socket

    from fireforge.hw import protocol as p

    _, url = simboard
    a, _ = programs
    host, port = url.removeprefix("socket://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    received = bytearray()

    def request(cmd, data=b"", tag=7, **args):
        payload = p.layout_bytes(p.RequestHeader, cmd=cmd, tag=tag)
        if cmd in p.ARGUMENTS:
            payload += p.layout_bytes(p.ARGUMENTS[cmd], **args)
        sock.sendall(p.slip_encode(payload + data))
        while True:  # one frame: unescape up to the next END
            while p.SLIP_END not in received[1:]:
                received.extend(sock.recv(4096))
            end = received.index(p.SLIP_END, 1)
            raw, received[:end + 1] = bytes(received[1:end]), b""
            frame = raw.replace(bytes([p.SLIP_ESC, p.SLIP_ESC_END]), bytes([p.SLIP_END])
                                ).replace(bytes([p.SLIP_ESC, p.SLIP_ESC_ESC]),
                                          bytes([p.SLIP_ESC]))
            if frame:
                break
            received[:0] = bytes([p.SLIP_END])  # (an empty frame: END END)
        assert p.crc32(frame[:-4]) == int.from_bytes(frame[-4:], "little")
        head = p.layout_from_bytes(p.ReplyHeader, frame)
        assert (head.status, int(head.tag), head.cmd) == (p.Status.OK, tag, cmd)
        return frame[p.ReplyHeader.size // 8:-4]

    info = p.layout_from_bytes(p.InfoReply, request(p.Cmd.INFO))
    assert int(info.version) == p.PROTOCOL_VERSION and info.state.model_valid
    model_hash, scale, placement = p.parse_model_info(info.info)
    assert model_hash == a.model_hash
    image = load_dataset("digits", placement["height"], placement["channels"]).x_test[3]
    addr, raw = p.place_image(placement, image)
    for off in range(0, len(raw), p.MAX_DATA):
        chunk = raw[off:off + p.MAX_DATA]
        request(p.Cmd.WRITE_IMAGE, chunk, addr=addr + off, length=len(chunk))
    request(p.Cmd.RUN, step=0)
    while True:
        state = p.layout_from_bytes(p.StatusReply, request(p.Cmd.STATUS)).state
        if state.done and not state.busy:
            break
    body = request(p.Cmd.READ_RESULT)
    n = int(p.layout_from_bytes(p.ResultHeader, body).num_classes)
    sums = np.frombuffer(body[p.ResultHeader.size // 8:], "<i4")[:n]
    sock.close()
    assert np.array_equal(sums, run_golden(a, image[None]).sums[0])


def test_load_swaps_model(simboard, programs):
    _, url = simboard
    a, b = programs
    assert load(Port(url), b.path).model_hash == b.model_hash
    with Board.open(url) as board:
        assert board.info().model_hash == b.model_hash
        x = np.random.default_rng(1).integers(0, 256, (3, *b.input_shape), dtype=np.uint8)
        want = run_golden(b, x).sums
        for n in range(3):
            assert np.array_equal(board.classify(b, x[n]).sums, want[n])
        with pytest.raises(BoardError, match="wrong model on the board"):
            board.check_model(a)
        board.load(a)
        assert board.info().model_hash == a.model_hash


def test_fuzz_frames(simboard, programs):
    report = fuzz(simboard[1], FUZZ_DEFAULT)
    assert report.frames == FUZZ_DEFAULT and report.replies > 0
    assert report.valid_answered == report.bursts
    with Board.open(simboard[1]) as board:
        assert board.check_model(programs[0]).model_hash == programs[0].model_hash


def test_an_interrupted_load_leaves_the_old_model_running(simboard, programs):
    """A load cut off halfway, its last WRITE_WEIGHTS frame cut in the middle: the board
    keeps answering, with the previous model, bit-exactly; a new load then succeeds."""
    _, url = simboard
    a, b = programs
    x = load_dataset("digits", 32, 1).x_test[:2]
    with Board.open(url) as board:
        board.load(a)
        word_bytes = board.info().config.model_spaces()[Space.WEIGHTS][1]
        board.request(Cmd.LOAD_BEGIN)
        stream = b.images["weights.bin"]
        half = len(stream) // 2 // MAX_DATA * MAX_DATA
        for off in range(0, half, MAX_DATA):
            board.request(Cmd.WRITE_WEIGHTS, stream[off:off + MAX_DATA], space=Space.WEIGHTS,
                          word=off // word_bytes, lane=off % word_bytes, length=MAX_DATA)
        frame = slip_encode(layout_bytes(RequestHeader, cmd=Cmd.WRITE_WEIGHTS, tag=9)
                            + layout_bytes(WeightArgs, space=Space.WEIGHTS,
                                           word=half // word_bytes, lane=half % word_bytes,
                                           length=MAX_DATA) + stream[half:half + MAX_DATA])
        board.transport.write(frame[:len(frame) // 2])  # and the host goes away
    with Board.open(url) as board:
        info = board.check_model(a)
        assert info.model_hash == a.model_hash and info.state["model_valid"]
        for img, golden in zip(x, run_golden(a, x).sums, strict=True):
            assert np.array_equal(board.classify(a, img).sums, golden)
        assert board.load(b).model_hash == b.model_hash
        assert np.array_equal(board.classify(b, x[0]).sums, run_golden(b, x[:1]).sums[0])
        board.load(a)


@pytest.mark.slow
def test_fuzz_ten_thousand_frames(simboard, programs):
    report = fuzz(simboard[1], FUZZ_ALL, seed=1)
    assert report.frames == FUZZ_ALL and report.valid_answered == report.bursts
    with Board.open(simboard[1]) as board:
        assert board.check_model(programs[0]).model_hash == programs[0].model_hash


def test_killed_board_gives_a_clear_error(simboard, programs):
    """The last test of the module: kill the board in the middle of a model load."""
    proc, url = simboard
    _, b = programs
    errors = []

    def load():
        try:
            with Board.open(url, timeout=1.0, retries=1) as board:
                board.load(b)
        except BoardError as e:
            errors.append(e)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.5)
    _stop(proc)
    t.join(timeout=30)
    assert not t.is_alive(), "the driver hangs after the board died"
    assert errors and ("connection to the board closed" in str(errors[0])
                       or "no valid reply" in str(errors[0])), errors


def test_up5k_board_starts_empty_then_loads_and_infers(quick_tiny_up5k_program, tmp_path):
    """The iCE40 UltraPlus configuration as the board has it (activations in two single-port
    banks, int8 weights in SPRAM, no codebook decoder): it starts with no model, says so, and
    `infer --load` loads the program over the UART and classifies bit-exactly. The UART runs
    at the icebreaker bitstream's divisor (30 MHz / 3 Mbaud)."""
    program = load_program(quick_tiny_up5k_program)
    proc, url = _start(program.path, tmp_path, "up5k", config="up5k",
                       extra=("--board", "icebreaker"))
    assert "UART divisor 10 (icebreaker at 3,000,000 baud)" in (tmp_path / "up5k.log").read_text()
    try:
        with Board.open(url) as board:
            info = board.info()
            assert not info.state["model_valid"] and info.features["spram_weights"]
            assert (info.config.columns, info.config.codebook_bits,
                    info.features["spram_acts"]) == (4, 0, True)
            with pytest.raises(BoardError, match="no model yet.*SPRAM"):
                board.check_model(program)
        out = infer(Port(url), program.path, data="digits", count=3, load_first=True)
        assert out.golden_agreement == 1.0 and len(out.results) == 3
    finally:
        _stop(proc)
