"""``fireforge bench``: a board's throughput as JSON: the engine's (cycle model, at the routed
Fmax) and the user's (images streamed through the simulated board's link at its real baud)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ...hw.errors import FireforgeError
from . import Log, Result, quiet

__all__ = ["BenchResult", "bench"]

#: seconds to wait for the simulated board to build and listen, and for its statistics
_START_SECONDS = 900
_STATS_SECONDS = 60
#: seconds to wait for each reply: the simulated board runs about a hundred times slower than
#: the board, and a reply in flight waits behind the requests ahead of it
_REPLY_SECONDS = 60.0


@dataclass
class BenchResult(Result):
    """What ``bench/bench-BOARD.json`` holds."""

    board: str
    program: str
    config: str
    cycles_per_inference: int
    #: MAC-array busy share of all of an inference's cycles (pools and adds included)
    mac_busy_share: float
    fmax_mhz: float
    fmax_source: str
    clock_mhz: float
    #: the engine alone: inferences/s at the routed Fmax and at the board's clock
    compute_fps_at_fmax: float
    compute_fps_at_clock: float
    baud: int
    uart_divisor: int
    #: bytes per inference on the wire, each way, framing included (the driver's count)
    bytes_to_board: float
    bytes_from_board: float
    #: the link alone: inferences/s if it carried nothing but those bytes, both ways at once
    #: (requests in flight: a board with a receive FIFO)
    link_fps: float
    #: the same with each request after the last reply (the bytes both ways one after the
    #: other: a board without a receive FIFO)
    link_fps_in_turn: float
    images: int
    #: cycles the simulated board worked for the stream (requests, replies and runs; not its
    #: waits for the simulated host) and the inferences/s they make at the board's clock
    stream_cycles: int
    end_to_end_fps: float
    #: end_to_end_fps over min(compute_fps_at_clock, link_fps), and over the bound with
    #: link_fps_in_turn
    of_bound: float
    of_bound_in_turn: float
    golden_agreement: float
    seconds: float


class _Counting:
    """A transport that counts the bytes each way."""

    def __init__(self, inner):
        self.inner, self.written, self.read_bytes = inner, 0, 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.inner.write(data)

    def read(self, size: int, timeout: float) -> bytes:
        data = self.inner.read(size, timeout)
        self.read_bytes += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _wait_stats(path: Path, clients: int) -> dict:
    """The simulated board's statistics once ``clients`` clients have disconnected."""
    deadline = time.monotonic() + _STATS_SECONDS
    while time.monotonic() < deadline:
        try:
            stats = json.loads(path.read_text())
            if stats["clients"] >= clients:
                return stats
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise FireforgeError(f"the simulated board wrote no statistics for client {clients} in "
                         f"{_STATS_SECONDS} s (see its log in {path.parent})")


def bench(board: str, program: str | Path | None = None, *, runs: str | Path = "runs",
          images: int = 50, out: str | Path = "bench", build_dir: str | Path = "build/bench",
          log: Log = quiet) -> BenchResult:
    """Measure ``board`` running ``program`` (default: the board's default program, made under
    ``runs``): the cycle model's cycles and MAC-busy share, inferences/s at the Fmax of the
    board's last build (or the build history), and ``images`` test images streamed through the
    simulated board with the board's configuration and UART divisor, every result checked
    against the golden model. Writes ``out/bench-BOARD.json``."""
    import numpy as np

    from ...boards.boards import board_spec
    from ...boards.build import measured_fmax
    from ...hw.config import config_by_name
    from ...hw.perf import estimate
    from ...hw.program import load_program
    from ..data import load_dataset
    from ..driver import Board, BoardError, SerialTransport
    from ..golden import run_golden
    from .build import default_program
    from .simboard import running

    if images < 1:
        raise FireforgeError(f"--images {images}: at least 1")
    spec = board_spec(board)
    if spec.uart is None:
        raise FireforgeError(f"{board}'s link is {spec.link}, and the simulated board models "
                             f"UART links only: bench measures the link on a board with a UART "
                             f"(the USB link is simulated in Amaranth: tests/hw/test_usb.py)")
    prog = load_program(program) if program else default_program(board, runs, log=log)
    name = spec.default_config
    config = config_by_name(name)
    if (prog.manifest.group, prog.lanes) != (config.columns, config.rows):
        raise FireforgeError(f"{prog.path} was compiled for {prog.manifest.group} columns x "
                             f"{prog.lanes} lanes; {board} runs --config {name} "
                             f"({config.columns} x {config.rows}): compile it with that")
    est = estimate(config, prog)
    cycles = est["cycles_per_inference"]
    fmax, source = measured_fmax(spec, name)
    divisor = spec.link_divisor()
    clock = spec.target_mhz
    c, size, _ = prog.input_shape
    data = load_dataset(prog.manifest.data or spec.default_data, size, c)
    x = data.x_test[:images]
    if len(x) < images:
        raise FireforgeError(f"--images {images}: the data set has {len(x)} test images")
    golden = run_golden(prog, x)

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    ready, stats_file = build_dir / "board.url", build_dir / "stats.json"
    stats_file.unlink(missing_ok=True)
    log(f"{board}: {prog.path} on {name}, UART divisor {divisor} ({spec.baud:,} baud at "
        f"{clock:g} MHz); building the simulated board in {build_dir}")
    t0 = time.perf_counter()
    argv = ["simboard", "--program", str(prog.path), "--board", board, "--port", "0",
            "--ready-file", str(ready), "--build-dir", str(build_dir / "simboard"),
            "--stats-file", str(stats_file)]
    with running(argv, ready, build_dir / "simboard.log", _START_SECONDS) as url:
        # first client: the model's check (and load where the bitstream has no weights),
        # not counted
        with Board(SerialTransport(url, spec.baud), timeout=_REPLY_SECONDS) as b:
            if b.info().model_hash != prog.model_hash:
                b.load(prog)
            b.check_model(prog)
        before = _wait_stats(stats_file, 1)
        counting = _Counting(SerialTransport(url, spec.baud))
        agree = 0
        n = 0
        with Board(counting, timeout=_REPLY_SECONDS) as b:
            try:  # (the next image crosses the link while the board runs one, where it can)
                for r in b.classify_many(prog, x):
                    agree += bool(np.array_equal(r.sums, golden.sums[n]))
                    n += 1
                    if n % 10 == 0 or n == images:
                        log(f"  {n}/{images} images")
            except BoardError as e:
                raise type(e)(f"image {n + 1} of {images}, after {n} classified: {e}") \
                    from None
        after = _wait_stats(stats_file, 2)
    stream = after["active_cycles"] - before["active_cycles"]
    to_board, from_board = counting.written / images, counting.read_bytes / images
    link_fps = spec.baud / 10 / max(to_board, from_board)
    in_turn = spec.baud / 10 / (to_board + from_board)
    compute = clock * 1e6 / cycles
    e2e = images * clock * 1e6 / stream
    result = BenchResult(
        board=board, program=str(prog.path), config=name, cycles_per_inference=cycles,
        mac_busy_share=round(est["mac_utilization_whole"], 4), fmax_mhz=fmax,
        fmax_source=source, clock_mhz=clock,
        compute_fps_at_fmax=round(fmax * 1e6 / cycles, 1),
        compute_fps_at_clock=round(compute, 1), baud=spec.baud, uart_divisor=divisor,
        bytes_to_board=round(to_board, 1), bytes_from_board=round(from_board, 1),
        link_fps=round(link_fps, 1), link_fps_in_turn=round(in_turn, 1), images=images,
        stream_cycles=stream, end_to_end_fps=round(e2e, 1),
        of_bound=round(e2e / min(compute, link_fps), 3),
        of_bound_in_turn=round(e2e / min(compute, in_turn), 3),
        golden_agreement=agree / images, seconds=round(time.perf_counter() - t0, 1))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{board}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    tmp.replace(path)
    log(f"{board}: {cycles:,} cycles, MAC-busy {result.mac_busy_share:.1%}; compute "
        f"{result.compute_fps_at_fmax:,} inferences/s at {fmax:g} MHz, "
        f"{result.compute_fps_at_clock:,} at {clock:g} MHz; link {result.link_fps:,}/s, "
        f"{result.link_fps_in_turn:,}/s with requests in turn ({to_board:,.0f} B in, "
        f"{from_board:,.0f} B out per inference at {spec.baud:,} baud); end to end "
        f"{result.end_to_end_fps:,}/s over {images} images ({result.of_bound:.0%} of the lower "
        f"bound, {result.of_bound_in_turn:.0%} with requests in turn); golden agreement "
        f"{result.golden_agreement:.0%}; wrote {path}")
    if agree != images:
        raise FireforgeError(f"{images - agree} of {images} images differ from the golden "
                             f"model")
    return result
