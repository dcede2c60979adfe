"""The block-RAM group FIFO against a queue: order, fullness, and when an entry is readable."""

import random

import pytest
from amaranth.sim import Simulator
from fireforge.hw.fifo import BLOCK_FIFO_EXTRA_LATENCY, BlockFIFO


@pytest.mark.parametrize("depth", [2, 4])
def test_block_fifo_matches_a_queue(depth):
    dut = BlockFIFO(width=40, depth=depth)
    rng = random.Random(depth)
    log = {"popped": 0}

    async def bench(ctx):
        queue = []  # (value, cycle written)
        cycle = 0
        for _ in range(3000):
            w_en, r_en = rng.random() < 0.5, rng.random() < 0.6
            value = rng.getrandbits(40)
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_data, value)
            ctx.set(dut.r_en, r_en)
            # readable two cycles after the write (SyncFIFO: one), full at depth entries
            ready = bool(queue) and cycle - queue[0][1] >= 1 + BLOCK_FIFO_EXTRA_LATENCY
            assert ctx.get(dut.r_rdy) == ready, cycle
            assert ctx.get(dut.w_rdy) == (len(queue) < depth), cycle
            if ready:
                assert ctx.get(dut.r_data) == queue[0][0], cycle
            pushed = w_en and len(queue) < depth
            if r_en and ready:
                queue.pop(0)
                log["popped"] += 1
            if pushed:
                queue.append((value, cycle))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert log["popped"] > 1000
