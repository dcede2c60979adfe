"""The MAC array against numpy dot products."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from fireforge.hw.array import MACArray, array_latency


@pytest.mark.parametrize(("broadcast", "rows", "registered"),
                         [(1, 1, False), (2, 1, False), (1, 4, False), (2, 2, False),
                          (1, 1, True), (2, 4, True), (1, 8, True)])
def test_mac_array_dot_products(broadcast, rows, registered):
    """Every column's sums, with the shared inputs straight or through per-group copies, one
    row or several (each step then a dot product of ``rows`` channels per column), products
    from plain or registered multipliers; each group's sums come out ``array_latency`` cycles
    after its last step."""
    cols = 4
    rng = np.random.default_rng(1)
    # three groups of different lengths, back to back, no gaps
    groups = [(rng.integers(0, 256, (k, rows)), rng.integers(-128, 128, (k, rows, cols)))
              for k in (1, 5, 9)]
    dut = MACArray(cols, broadcast, rows, registered_multipliers=registered)
    results = []
    last_steps, valid_at = [], []
    cycle = 0

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
                if i == len(acts) - 1:
                    last_steps.append(cycle)
                await tick(ctx)
        ctx.set(dut.valid, 0)
        for _ in range(6):
            await tick(ctx)

    async def tick(ctx):
        nonlocal cycle
        await ctx.tick()
        cycle += 1
        if ctx.get(dut.out_valid):
            results.append([ctx.get(dut.sums[j]) for j in range(cols)])
            valid_at.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [(acts[:, :, None].astype(np.int64) * w).sum((0, 1)).tolist() for acts, w in groups]
    assert results == want
    latency = array_latency(rows, broadcast, registered)
    assert [v - s for v, s in zip(valid_at, last_steps, strict=True)] == [latency] * 3
