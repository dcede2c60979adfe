"""Run the accelerator in Amaranth's own simulator (in-process, no Verilog): the fast harness of
the unit tests. Drives the real host interface: input bytes through ``host_*``, ``start``, then
the sums through ``res_*`` and the per-layer cycle counters through ``cnt_*``."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig
from ..hw.link import RX_BYTE_CYCLES, HostLink
from ..hw.protocol import LOAD_ORDER, Transport

__all__ = ["PySimResult", "simulate", "SimTransport", "LinkTransport"]


@dataclass
class PySimResult:
    sums: np.ndarray  #: (N, classes)
    layer_cycles: np.ndarray  #: (N, layers)
    total_cycles: list[int]
    #: cycles of a run in which the engine read the activation word it was writing (the
    #: block RAM's read is then undefined; counted with ``check_collisions``)
    collisions: int = 0


def simulate(config: AcceleratorConfig, program, images: np.ndarray,
             max_cycles: int = 2_000_000, check_collisions: bool = False) -> PySimResult:
    """Run ``images`` through the accelerator; ``check_collisions`` also counts the cycles of
    a run in which the activation memory is read and written at the same address (slower)."""
    dut = Accelerator(config, program)
    sim = Simulator(dut)  # (elaborates: ``dut.act_port`` is set)
    sim.add_clock(1e-8)
    n_layers = len(program.layers)
    out = {"sums": [], "cycles": [], "total": [], "collisions": 0}

    async def watch(ctx):
        port = dut.act_port
        sampled = ctx.tick().sample(dut.busy, port.wr_en, port.rd_addr, port.wr_addr)
        async for _clk, _rst, busy, we, rd, wr in sampled:
            out["collisions"] += bool(busy and we and rd == wr)

    async def bench(ctx):
        if not config.weights_preloaded:
            await load_model(ctx, dut, program)
        for image in images:
            input_addr, raw = program.input_bytes(image)
            for i, v in enumerate(raw):
                ctx.set(dut.host_addr, input_addr + i)
                ctx.set(dut.host_wdata, v)
                ctx.set(dut.host_we, 1)
                await ctx.tick()
            ctx.set(dut.host_we, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            waited = 0
            while not ctx.get(dut.done):
                await ctx.tick()
                waited += 1
                if waited > max_cycles:
                    raise TimeoutError(f"no done after {max_cycles} cycles")
            sums, cycles = [], []
            for c in range(program.num_classes):
                ctx.set(dut.res_addr, c)
                await ctx.tick()
                sums.append(ctx.get(dut.res_data))
            for layer in range(n_layers):
                ctx.set(dut.cnt_addr, layer)
                await ctx.tick()
                cycles.append(ctx.get(dut.cnt_data))
            out["sums"].append(sums)
            out["cycles"].append(cycles)
            out["total"].append(ctx.get(dut.total_cycles))

    sim.add_testbench(bench)
    if check_collisions and dut.act_port is not None:
        sim.add_process(watch)
    sim.run()
    return PySimResult(np.array(out["sums"], np.int64), np.array(out["cycles"], np.int64),
                       out["total"], out["collisions"])


async def load_model(ctx, dut: Accelerator, program) -> None:
    """Write ``program``'s images through the accelerator's model-load port and commit them
    (what the link's WRITE_WEIGHTS and LOAD_COMMIT do): the way a model gets into SPRAM."""
    spaces = dut.config.model_spaces()
    for space, name in LOAD_ORDER:
        if not program.images[name]:  # (an empty mask image on a board without masks)
            continue
        word_bytes = spaces[space][1]
        ctx.set(dut.mem_space, space)
        for i, v in enumerate(program.images[name]):
            ctx.set(dut.mem_word, i // word_bytes)
            ctx.set(dut.mem_lane, i % word_bytes)
            ctx.set(dut.mem_wdata, v)
            ctx.set(dut.mem_we, 1)
            await ctx.tick()
    ctx.set(dut.mem_we, 0)
    ctx.set(dut.commit_n_layers, len(program.layers))
    ctx.set(dut.commit, 1)
    await ctx.tick()
    ctx.set(dut.commit, 0)


class SimTransport(Transport):
    """A :class:`~fireforge.hw.protocol.Transport` into a design running in Amaranth's simulator
    on a thread: the driver's bytes go into ``_in`` and the design's into ``_out``, both
    moved by the subclass's testbench; an exception there reaches the next ``read``."""

    def __init__(self):
        self._in: queue.Queue[int] = queue.Queue()
        self._out: queue.Queue[int] = queue.Queue()
        self._stop = threading.Event()
        self.error: BaseException | None = None

    def _start(self, sim: Simulator) -> None:
        """Run ``sim`` on a thread until :meth:`close`."""

        def run():
            try:
                sim.run()
            except BaseException as e:  # noqa: BLE001 - handed to the reader
                self.error = e
                self._failed()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def _failed(self) -> None:
        """Called on the simulation's thread when it ends with ``self.error``."""

    def write(self, data: bytes) -> None:
        for b in data:
            self._in.put(b)

    def read(self, size: int, timeout: float) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < size:
            try:
                out.append(self._out.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        if self.error is not None:
            raise self.error
        return bytes(out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class LinkTransport(SimTransport):
    """A :class:`~fireforge.hw.protocol.Transport` into :class:`~fireforge.hw.link.HostLink` +
    :class:`~fireforge.hw.accelerator.Accelerator` running in Amaranth's simulator on a thread:
    the driver's whole protocol, byte for byte, without Verilog (the UART is tested on its own).
    """

    def __init__(self, config: AcceleratorConfig, program, board: str = "pysim",
                 byte_gap: int = RX_BYTE_CYCLES - 1):
        from amaranth.hdl import Module
        from amaranth.lib import wiring

        acc = Accelerator(config, program)
        self.link = link = HostLink(acc, board)
        top = Module()
        top.submodules.acc, top.submodules.link = acc, link
        wiring.connect(top, link.acc, acc)
        super().__init__()
        sim = Simulator(top)
        sim.add_clock(1e-8)

        async def bench(ctx):
            ctx.set(link.tx.ready, 1)
            gap = 0
            while not self._stop.is_set():
                if gap == 0 and not self._in.empty():
                    ctx.set(link.rx.payload, self._in.get())
                    ctx.set(link.rx.valid, 1)
                    gap = byte_gap
                else:
                    ctx.set(link.rx.valid, 0)
                    gap = max(0, gap - 1)
                if ctx.get(link.tx.valid):
                    self._out.put(ctx.get(link.tx.payload))
                await ctx.tick()

        sim.add_testbench(bench)
        self._start(sim)
