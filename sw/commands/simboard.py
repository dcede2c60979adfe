"""``fireforge simboard``: the whole chip (accelerator, host link, UART) in Verilator, its UART
served on a localhost TCP port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...hw.config import DEFAULT_CONFIG
from . import Log, Result, quiet

__all__ = ["SimboardResult", "simboard"]


@dataclass
class SimboardResult(Result):
    program: str
    stopped: bool


def simboard(program: str | Path, *, port: int = 5550, config: str = DEFAULT_CONFIG,
             divisor: int | None = None, build_dir: str | Path = "build/simboard",
             ready_file: str | Path | None = None, max_seconds: float | None = None,
             byte_cycles: int | None = None, log: Log = quiet) -> SimboardResult:
    """Serve ``program`` on the simulated board until stopped (or ``max_seconds``);
    ``ready_file`` receives the URL once the board listens. ``byte_cycles``: no UART, a byte
    into the link every so many cycles (faster to simulate)."""
    from ...hw.config import config_by_name
    from ...hw.program import load_program
    from ...sim.simboard import DEFAULT_DIVISOR, serve

    prog = load_program(program)
    divisor = divisor or DEFAULT_DIVISOR
    line = (f"bytes straight into the link, one every {byte_cycles} cycles" if byte_cycles
            else f"UART divisor {divisor}")
    log(f"simulated board: {program} (model {prog.model_hash[:12]}…) on {config}, {line}")
    serve(prog, config_by_name(config), port, divisor, build_dir, ready_file, max_seconds,
          byte_cycles, log=log)
    return SimboardResult(program=str(program), stopped=True)
