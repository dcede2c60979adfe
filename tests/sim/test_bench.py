"""``fireforge bench`` streams images through the simulated board and accounts its cycles."""

import json

import numpy as np
import pytest
from fireforge.boards.boards import board_spec
from fireforge.hw.program import load_program
from fireforge.sw.commands.bench import bench


@pytest.mark.slow
def test_bench_accounts_the_runs_and_the_link(quick_tiny_program, tmp_path):
    spec = board_spec("ulx3s-25f")  # (the small configuration the quick program is compiled for)
    r = bench(spec.name, quick_tiny_program, images=3, out=tmp_path / "bench",
              build_dir=tmp_path / "build")
    saved = json.loads((tmp_path / "bench" / "bench-ulx3s-25f.json").read_text())
    assert saved == json.loads(json.dumps(r.to_dict()))
    assert r.golden_agreement == 1.0 and r.uart_divisor == spec.link_divisor()
    # The stream holds every run and every image's pixels on the wire (10 bits of the divisor
    # a byte), each image but the first sent during the run before it: at least all runs and
    # one image's pixels, or all pixels and one run. At most it is every byte each way after
    # the other and the runs (the rest is the link's turnarounds).
    one_run = r.cycles_per_inference
    bit = 10 * r.uart_divisor
    one_image = int(np.prod(load_program(quick_tiny_program).input_shape)) * bit
    wire = r.images * (r.bytes_to_board + r.bytes_from_board) * bit
    runs, pixels = r.images * one_run, r.images * one_image
    assert max(runs + one_image, pixels + one_run) < r.stream_cycles < 1.1 * (runs + wire)
    # (requests go one at a time: every byte each way is on the wire in turn)
    assert r.end_to_end_fps < min(r.compute_fps_at_clock, r.link_fps_in_turn) < r.link_fps
