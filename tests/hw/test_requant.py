"""The gateware requantizer and bypass rounding against the contract's definition (hw.isa)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from fireforge.hw.isa import requantize
from fireforge.hw.requant import Requantizer, requant_latency, round_shift_clamp

EDGE_ACC = [0, 1, -1, 7, 8, -8, -9, 2**31 - 1, -(2**31), 1000, -1000, 4080, 4088]


def _cases(n=300, seed=0):
    rng = np.random.default_rng(seed)
    acc = np.concatenate([EDGE_ACC, rng.integers(-(2**31), 2**31 - 1, n)])
    bias = rng.integers(-(2**20), 2**20, len(acc))
    bias[: len(EDGE_ACC)] = 0
    mult = rng.integers(0, 2**16, len(acc))
    mult[: len(EDGE_ACC)] = 1
    shift = rng.integers(0, 64, len(acc))
    shift[: len(EDGE_ACC)] = 4
    # Products near every boundary the gateware decides, for every shift: round down / up, the
    # clamp at 0 and at 255, and a bit just above the selected byte (mult 1, acc = product).
    near = []
    for s in range(64):
        for y in (0, 1, 127, 254, 255, 256, 511):
            for d in (-1, 0, 1):
                v = (y << s) + (((1 << s) >> 1) + d if s else d)
                for x in (v, -v):
                    if -(2**31) <= x < 2**31:
                        near.append((x, s))
    near = [(x, 1, s) for x, s in near]
    near.extend((int(rng.integers(-(2**31), 2**31)), 1, int(rng.integers(0, 32)))
                for _ in range(200))
    # the same boundaries for the shifts of products wider than int32: mult 2**15
    for s in range(16, 64):
        for y in (0, 1, 127, 254, 255, 256):
            for d in (-(2**15), 0, 2**15):
                x = ((y << s) + (1 << (s - 1)) + d) >> 15
                for a in (x, -x):
                    if -(2**31) <= a < 2**31:
                        near.append((a, 2**15, s))
    acc = np.concatenate([acc, [x for x, _, _ in near]])
    bias = np.concatenate([bias, np.zeros(len(near), np.int64)])
    mult = np.concatenate([mult, [k for _, k, _ in near]])
    shift = np.concatenate([shift, [s for _, _, s in near]])
    # keep acc + bias inside int32, as the compiler proves
    total = np.clip(acc + bias, -(2**31), 2**31 - 1)
    return total - bias, bias, mult, shift


@pytest.mark.parametrize("pipelined", [False, True])
def test_requantizer_matches_contract(pipelined):
    """Every case, with the product in one stage or pipelined as two partial products; every
    byte comes out ``requant_latency`` cycles after its beat."""
    dut = Requantizer(tag_bits=16, pipelined=pipelined)
    acc, bias, mult, shift = _cases()
    got = {}

    async def bench(ctx):
        for i in range(len(acc) + requant_latency(pipelined)):
            if i < len(acc):
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.acc, int(acc[i]))
                ctx.set(dut.bias, int(bias[i]))
                ctx.set(dut.mult, int(mult[i]))
                ctx.set(dut.shift, int(shift[i]))
                ctx.set(dut.tag, i)
            else:
                ctx.set(dut.i_valid, 0)
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got[ctx.get(dut.o_tag)] = ctx.get(dut.y)
                assert ctx.get(dut.o_tag) == i + 1 - requant_latency(pipelined)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [int(requantize(np.array([a + b]), int(m), int(s))[0])
            for a, b, m, s in zip(acc, bias, mult, shift, strict=True)]
    assert [got[i] for i in range(len(acc))] == want


def test_round_shift_clamp_combinational():
    m = Module()
    value, shift = Signal(signed(40)), Signal(unsigned(6))
    y = Signal(8)
    m.d.comb += y.eq(round_shift_clamp(value, shift))
    cases = [(5, 1), (-5, 1), (3, 1), (-3, 1), (255 * 16 + 8, 4), (256 * 16 - 9, 4), (-1, 0),
             (300, 0), (2**39 - 1, 31), (-(2**39), 39), (2**38, 39), (2**39 - 1, 63),
             (2**39 - 1, 32), (255 * 2**31 + 2**30, 31), (255 * 2**31 + 2**30 - 1, 31),
             (254 * 2**31 + 2**30, 31), (2**38 + 2**37, 30), (-(2**30), 30), (1, 1), (1, 2)]

    async def bench(ctx):
        for v, s in cases:
            ctx.set(value, v)
            ctx.set(shift, s)
            assert ctx.get(y) == int(requantize(np.array([v]), 1, s)[0]), (v, s)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
