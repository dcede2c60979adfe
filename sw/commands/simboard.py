"""``fireforge simboard``: the whole chip (accelerator, host link, UART) in Verilator, its UART
served on a localhost TCP port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...hw.config import DEFAULT_CONFIG
from ...hw.errors import FireforgeError
from . import Log, Result, quiet

__all__ = ["SimboardResult", "simboard", "running"]


@dataclass
class SimboardResult(Result):
    program: str
    stopped: bool


def simboard(program: str | Path, *, port: int = 5550, config: str | None = None,
             board: str | None = None, divisor: int | None = None,
             build_dir: str | Path = "build/simboard",
             ready_file: str | Path | None = None, max_seconds: float | None = None,
             byte_cycles: int | None = None, stats_file: str | Path | None = None,
             log: Log = quiet) -> SimboardResult:
    """Serve ``program`` on the simulated board until stopped (or ``max_seconds``);
    ``ready_file`` receives the URL once the board listens. ``board``: the chip of that
    board's bitstream (its default ``config`` and its UART divisor); otherwise ``config``
    (default :data:`~fireforge.hw.config.DEFAULT_CONFIG`) and ``divisor`` (default a short one,
    fast to simulate). ``byte_cycles``: no UART, a byte into the link every so many cycles
    (faster still). ``stats_file``: the board's working cycles, rewritten at each client's
    disconnect (:func:`~fireforge.sim.simboard.serve`)."""
    from ...hw.config import config_by_name
    from ...hw.program import load_program
    from ...sim.simboard import DEFAULT_DIVISOR, serve

    prog = load_program(program)
    rate = ""
    if board:
        from ...boards.boards import board_spec

        spec = board_spec(board)
        if spec.uart is None:
            raise FireforgeError(f"{board}'s link is {spec.link}, and the simulated board "
                                 f"models UART links only: pick a board with a UART, or none")
        config = config or spec.default_config
        if divisor is None:
            divisor = spec.link_divisor()
            rate = f" ({board} at {spec.baud:,} baud)"
    config = config or DEFAULT_CONFIG
    divisor = divisor or DEFAULT_DIVISOR
    line = (f"bytes straight into the link, one every {byte_cycles} cycles" if byte_cycles
            else f"UART divisor {divisor}{rate}")
    log(f"simulated board: {program} (model {prog.model_hash[:12]}…) on {config}, {line}")
    serve(prog, config_by_name(config), port, divisor, build_dir, ready_file, max_seconds,
          byte_cycles, stats_file, log=log)
    return SimboardResult(program=str(program), stopped=True)


@contextmanager
def running(argv: list[str], ready_file: Path, log_file: Path,
            timeout: float | None = None) -> Iterator[str]:
    """``fireforge ARGV`` (a ``simboard`` command line whose ``--ready-file`` is ``ready_file``)
    in a process group of its own, its output in ``log_file``; yields the board's URL once it
    listens, and stops the group on the way out. Refuses a board that stops, or that is not
    listening after ``timeout`` seconds (None: no limit)."""
    ready_file.unlink(missing_ok=True)
    with open(log_file, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fireforge.sw.cli", *argv], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not ready_file.exists():
            if proc.poll() is not None:
                raise FireforgeError(f"the simulated board stopped; see {log_file}")
            if deadline is not None and time.monotonic() > deadline:
                raise FireforgeError(f"the simulated board was not listening after {timeout:g} "
                                     f"s; see {log_file}")
            time.sleep(0.2)
        yield ready_file.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
