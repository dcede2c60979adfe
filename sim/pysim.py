"""Run the accelerator in Amaranth's own simulator (in-process, no Verilog): the fast harness of
the unit tests. Drives the real host interface: input bytes through ``host_*``, ``start``, then
the sums through ``res_*`` and the per-layer cycle counters through ``cnt_*``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig

__all__ = ["PySimResult", "simulate"]


@dataclass
class PySimResult:
    sums: np.ndarray  #: (N, classes)
    layer_cycles: np.ndarray  #: (N, layers)
    total_cycles: list[int]


def simulate(config: AcceleratorConfig, program, images: np.ndarray,
             max_cycles: int = 2_000_000) -> PySimResult:
    dut = Accelerator(config, program)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    input_addr = program.manifest["tensors"]["input"]["addr"]
    n_layers = len(program.layers)
    out = {"sums": [], "cycles": [], "total": []}

    async def bench(ctx):
        for image in images:
            for i, v in enumerate(image.transpose(1, 2, 0).ravel().tolist()):
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
    sim.run()
    return PySimResult(np.array(out["sums"], np.int64), np.array(out["cycles"], np.int64),
                       out["total"])
