"""``fireforge simboard``: the whole chip (accelerator, host link, UART) in Verilator, its UART
served on a localhost TCP port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...hw.config import DEFAULT_CONFIG
from ...hw.errors import FireforgeError
from . import Log, Result, quiet

__all__ = ["SimboardResult", "simboard"]


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
            raise FireforgeError(f"{board} has no UART link to simulate ({spec.notes})")
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
