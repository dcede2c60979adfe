"""Link soak: 100,000 fuzzed frames against the whole chip in Verilator, bytes fed straight
into the link (``fireforge simboard --byte-cycles``: no bit-level UART, so the soak costs few
cycles), through the real host driver. Every valid request after each burst is answered, and
the model still classifies bit-exactly at the end. The rate goes to the test's output."""

import json

import pytest
from fireforge.hw.program import load_program
from fireforge.sw.data import load_dataset
from fireforge.sw.driver import Board
from fireforge.sw.golden import run_golden

from .fuzz import fuzz
from .test_simboard import _start, _stop

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("soak")]

SOAK_FRAMES = 100_000
BYTE_CYCLES = 4


@pytest.fixture(scope="module")
def byte_board(quick_tiny_program, tmp_path_factory):
    proc, url = _start(quick_tiny_program, tmp_path_factory.mktemp("soak"), "soak",
                       extra=["--byte-cycles", str(BYTE_CYCLES)])
    yield url
    _stop(proc)


def test_link_soak(byte_board, quick_tiny_program):
    program = load_program(quick_tiny_program)
    report = fuzz(byte_board, SOAK_FRAMES, seed=22, burst=100)
    print(json.dumps({"frames": report.frames, "bursts": report.bursts,
                      "replies": report.replies, "retries": report.retries,
                      "seconds": round(report.seconds, 1),
                      "frames_per_second": round(report.frames_per_second)}))
    assert report.frames == SOAK_FRAMES and report.valid_answered == report.bursts
    x = load_dataset("digits", 32, 1).x_test[:2]
    with Board.open(byte_board) as board:
        assert board.check_model(program).model_hash == program.model_hash
        for img, golden in zip(x, run_golden(program, x).sums, strict=True):
            assert (board.classify(program, img).sums == golden).all()
