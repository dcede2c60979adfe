"""The MAC array against numpy dot products."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from fireforge.hw.array import MACArray


@pytest.mark.parametrize(("broadcast", "rows"), [(1, 1), (2, 1), (1, 4), (2, 2)])
def test_mac_array_dot_products(broadcast, rows):
    """Every column's sums, with the shared inputs straight or through per-group copies, one
    row or several (each step then a dot product of ``rows`` channels per column)."""
    cols = 4
    rng = np.random.default_rng(1)
    # three groups of different lengths, back to back, no gaps
    groups = [(rng.integers(0, 256, (k, rows)), rng.integers(-128, 128, (k, rows, cols)))
              for k in (1, 5, 9)]
    dut = MACArray(cols, broadcast, rows)
    results = []

    async def bench(ctx):
        for acts, weights in groups:
            for i, (a, w) in enumerate(zip(acts, weights, strict=True)):
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, i == 0)
                ctx.set(dut.last, i == len(acts) - 1)
                for r in range(rows):
                    ctx.set(dut.act[r], int(a[r]))
                    for j in range(cols):
                        ctx.set(dut.weights[r * cols + j], int(w[r, j]))
                await ctx.tick()
                if ctx.get(dut.out_valid):
                    results.append([ctx.get(dut.sums[j]) for j in range(cols)])
        ctx.set(dut.valid, 0)
        for _ in range(5):
            await ctx.tick()
            if ctx.get(dut.out_valid):
                results.append([ctx.get(dut.sums[j]) for j in range(cols)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [(acts[:, :, None].astype(np.int64) * w).sum((0, 1)).tolist() for acts, w in groups]
    assert results == want
