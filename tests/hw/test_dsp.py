"""The registered multiplier: its logic model against Python, its ECP5 block's settings."""

import pytest
from amaranth.hdl import Fragment, Instance, signed, unsigned
from amaranth.sim import Simulator
from fireforge.hw.dsp import MULTIPLIER_LATENCY, RegisteredMultiplier


@pytest.mark.parametrize(("a_shape", "b_shape"), [
    (signed(9), signed(8)), (unsigned(16), unsigned(16)), (signed(17), signed(17))])
def test_products_after_the_latency(a_shape, b_shape):
    """Extremes and a walk of operands back to back, each product exact and
    ``MULTIPLIER_LATENCY`` cycles after its operands."""
    dut = RegisteredMultiplier(a_shape, b_shape)

    def values(shape):
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
        return [lo, hi, 0, 1, lo + 1, hi - 1, -1 if shape.signed else 3]

    pairs = [(a, b) for a in values(a_shape) for b in values(b_shape)]
    got = []

    async def bench(ctx):
        for i in range(len(pairs) + MULTIPLIER_LATENCY):
            if i < len(pairs):
                ctx.set(dut.a, pairs[i][0])
                ctx.set(dut.b, pairs[i][1])
            await ctx.tick()
            if i + 1 >= MULTIPLIER_LATENCY:
                got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(pairs)] == [a * b for a, b in pairs]


class _ECP5:
    family = "ecp5"


def test_ecp5_block_registers_both_operands_and_the_product():
    """On an ECP5 it is one MULT18X18D: operand and output registers on CLK0, no pipeline
    register (so the latency is the logic model's), signed operands sign-extended to 18 bits."""
    dut = RegisteredMultiplier(signed(9), signed(8))
    frag = Fragment.get(dut, _ECP5())
    blocks = [sub for sub, _, _ in frag.subfragments if isinstance(sub, Instance)]
    assert [b.type for b in blocks] == ["MULT18X18D"]
    params = blocks[0].parameters
    for reg in ("INPUTA", "INPUTB", "OUTPUT"):
        assert params[f"REG_{reg}_CLK"] == "CLK0"
    for reg in ("INPUTC", "PIPELINE"):
        assert params[f"REG_{reg}_CLK"] == "NONE"
    ports = blocks[0].ports
    assert {f"A{i}" for i in range(18)} | {f"B{i}" for i in range(18)} <= set(ports)
    assert repr(ports["SIGNEDA"][0]) == "(const 1'd1)"


def test_operands_wider_than_one_block_are_refused():
    with pytest.raises(ValueError, match="at most 18"):
        RegisteredMultiplier(unsigned(18), signed(8))
