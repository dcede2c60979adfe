"""``fireforge simboard``: the whole chip (accelerator, host link, UART) in Verilator, serving its
UART on a localhost TCP port, so the driver reaches it as ``socket://127.0.0.1:PORT``.

The simulated top is :class:`SimBoard`: the real :class:`~fireforge.hw.top.FireforgeSoC` with its
``rx``/``tx`` lines wired to a host-side UART (the same :mod:`~fireforge.hw.uart` modules) and two
byte FIFOs. The cocotb side (:mod:`.tb_simboard`) moves bytes between the TCP socket and those
FIFOs, so Python touches the simulation once per byte, never per bit, and lets the design run
freely in between.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..hw.config import AcceleratorConfig
from ..hw.errors import FireforgeError
from ..hw.program import Program
from ..hw.top import FireforgeSoC
from ..hw.uart import UARTRx, UARTTx
from .runner import build_model, environment

__all__ = ["SimBoard", "serve", "SIMBOARD_TOP", "DEFAULT_DIVISOR", "FIFO_DEPTH"]

SIMBOARD_TOP = "fireforge_simboard"
#: the Verilog wrapper that makes the clock inside the simulator (Verilator --timing): a clock
#: driven from Python costs a callback per edge, about 5x slower
CLOCKED_TOP = "fireforge_simboard_clocked"
CLOCK_NS = 10
#: clock cycles per UART bit in simulation (a board uses clock / baud rate)
DEFAULT_DIVISOR = 4
FIFO_DEPTH = 512


class SimBoard(wiring.Component):
    """The chip plus the host's end of the serial line, with byte FIFOs for the testbench.

    ``byte_cycles`` set: no UART; the bytes go straight into the link, one every
    ``byte_cycles`` cycles (a UART delivers one every ``10 * divisor``), so a long soak takes
    far fewer cycles."""

    def __init__(self, config: AcceleratorConfig, program: Program, divisor: int,
                 byte_cycles: int | None = None):
        if byte_cycles is not None and not 1 <= byte_cycles <= 1024:
            raise FireforgeError(f"--byte-cycles {byte_cycles}: 1..1024 clock cycles a byte")
        self.byte_cycles = byte_cycles
        self.soc = FireforgeSoC(config, program, None if byte_cycles else divisor,
                                board="simboard")
        self.divisor = divisor
        super().__init__({
            "h2d_data": In(8), "h2d_valid": In(1), "h2d_ready": Out(1),
            "d2h_data": Out(8), "d2h_valid": Out(1), "d2h_ready": In(1),
            "d2h_level": Out(range(FIFO_DEPTH + 1)),
            "leds": Out(len(self.soc.leds)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.soc = soc = self.soc
        m.submodules.h2d = h2d = fifo.SyncFIFOBuffered(width=8, depth=FIFO_DEPTH)
        m.submodules.d2h = d2h = fifo.SyncFIFOBuffered(width=8, depth=FIFO_DEPTH)
        m.d.comb += [
            h2d.w_data.eq(self.h2d_data), h2d.w_en.eq(self.h2d_valid),
            self.h2d_ready.eq(h2d.w_rdy),
            self.d2h_data.eq(d2h.r_data), self.d2h_valid.eq(d2h.r_rdy),
            d2h.r_en.eq(self.d2h_ready), self.d2h_level.eq(d2h.r_level),
            self.leds.eq(soc.leds),
        ]
        if self.byte_cycles:  # the link's streams, the host's bytes paced
            wait = Signal(range(self.byte_cycles))
            go = h2d.r_rdy & (wait == 0)
            m.d.comb += [soc.rx.payload.eq(h2d.r_data), soc.rx.valid.eq(go), h2d.r_en.eq(go),
                         d2h.w_data.eq(soc.tx.payload), d2h.w_en.eq(soc.tx.valid),
                         soc.tx.ready.eq(d2h.w_rdy)]
            with m.If(go):
                m.d.sync += wait.eq(self.byte_cycles - 1)
            with m.Elif(wait != 0):
                m.d.sync += wait.eq(wait - 1)
            return m
        m.submodules.host_tx = htx = UARTTx(self.divisor)
        m.submodules.host_rx = hrx = UARTRx(self.divisor)
        m.d.comb += [
            htx.stream.payload.eq(h2d.r_data), htx.stream.valid.eq(h2d.r_rdy),
            h2d.r_en.eq(htx.stream.ready),
            soc.rx.eq(htx.tx), hrx.rx.eq(soc.tx),
            d2h.w_data.eq(hrx.stream.payload), d2h.w_en.eq(hrx.stream.valid),
        ]
        return m


def clocked_wrapper(board: SimBoard) -> str:
    """Verilog of :data:`CLOCKED_TOP`: the board's inputs as registers the testbench writes, its
    outputs as wires it reads, and a free-running clock."""
    decls, conns = [], [".clk(clk)", ".rst(rst)"]
    for name, member in board.signature.members.items():
        width = member.shape.width if hasattr(member.shape, "width") else len(
            getattr(board, name))
        kind = "reg" if member.flow == In else "wire"
        init = " = 0" if kind == "reg" else ""
        decls.append(f"  {kind} [{width - 1}:0] {name}{init};")
        conns.append(f".{name}({name})")
    return "\n".join([
        "`timescale 1ns/1ps",
        f"module {CLOCKED_TOP};",
        "  reg clk = 0;",
        "  reg rst = 1;",
        *decls,
        f"  always #{CLOCK_NS // 2} clk = ~clk;",
        f"  {SIMBOARD_TOP} board({', '.join(conns)});",
        "endmodule",
        ""])


def serve(program: Program, config: AcceleratorConfig, port: int, divisor: int = DEFAULT_DIVISOR,
          build_dir: str | Path = "build/simboard", ready_file: str | None = None,
          max_seconds: float | None = None, byte_cycles: int | None = None,
          stats_file: str | Path | None = None, log=print) -> None:
    """Build the simulated board and serve it on ``port`` (0: any free port) until killed or
    ``max_seconds`` have passed. ``ready_file`` receives ``socket://127.0.0.1:PORT`` once it
    listens. ``byte_cycles``: no UART, bytes straight into the link (:class:`SimBoard`).
    ``stats_file``: JSON rewritten at each client's disconnect: ``active_cycles``, the cycles
    the board has worked for its clients (requests, replies, runs; not the waits for the
    host), and ``clients``, the disconnects so far."""
    if not 0 <= port < 65536:
        raise FireforgeError(f"--port {port}: a TCP port 1..65535 (0 picks a free one)")
    build_dir = Path(build_dir).resolve()
    top = SimBoard(config, program, divisor, byte_cycles)
    runner, sim_build, env, _ = build_model(top, SIMBOARD_TOP, build_dir, "verilator", log=log,
                                            wrapper=(CLOCKED_TOP, clocked_wrapper(top)))
    job = {"port": port, "ready_file": str(Path(ready_file).resolve()) if ready_file else None,
           "max_seconds": max_seconds, "divisor": divisor, "fifo_depth": FIFO_DEPTH,
           "stats_file": str(Path(stats_file).resolve()) if stats_file else None}
    job_path = build_dir / "simboard-job.json"
    job_path.write_text(json.dumps(job))
    with environment(env):
        try:
            runner.test(test_module="fireforge.sim.tb_simboard", hdl_toplevel=CLOCKED_TOP,
                        build_dir=sim_build, test_dir=build_dir,
                        extra_env={"FIREFORGE_SIMBOARD": str(job_path),
                                   "PYTHONPATH": os.pathsep.join(sys.path)},
                        timescale=("1ns", "1ps"))
        except SystemExit:
            pass
