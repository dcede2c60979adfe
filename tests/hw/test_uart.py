"""The UART on its own: every byte through the transmitter into the receiver, a framing error
counted and dropped, a divisor too small refused."""

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator
from fireforge.hw.errors import FireforgeError
from fireforge.hw.uart import UARTRx, UARTTx, check_divisor

DIVISOR = 5


def test_uart_loopback_all_bytes():
    """Every byte value through the transmitter into the receiver, back to back."""

    m = Module()
    m.submodules.tx = tx = UARTTx(DIVISOR)
    m.submodules.rx = rx = UARTRx(DIVISOR)
    m.d.comb += rx.rx.eq(tx.tx)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    got = []
    sent = list(range(256))

    async def bench(ctx):
        pending = list(sent)
        for _ in range(256 * 60):
            if pending and ctx.get(tx.stream.ready):
                ctx.set(tx.stream.payload, pending[0])
                ctx.set(tx.stream.valid, 1)
                pending.pop(0)
            else:
                ctx.set(tx.stream.valid, 0)
            if ctx.get(rx.stream.valid):
                got.append(ctx.get(rx.stream.payload))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert got == sent


def test_a_low_stop_bit_is_a_framing_error():
    """A byte whose stop bit is low is dropped and counted; the next byte is received."""
    dut = UARTRx(DIVISOR)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = []

    def frame(byte, stop):
        return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]

    async def bench(ctx):
        for bit in frame(0x5A, 0) + [1] * 3 + frame(0xC3, 1) + [1] * 3:
            ctx.set(dut.rx, bit)
            for _ in range(DIVISOR):
                if ctx.get(dut.stream.valid):
                    got.append(ctx.get(dut.stream.payload))
                await ctx.tick()
        assert ctx.get(dut.errors) == 1

    sim.add_testbench(bench)
    sim.run()
    assert got == [0xC3]


@pytest.mark.parametrize("divisor", [3, 0, 4.5])
def test_divisor_refused(divisor):
    with pytest.raises(FireforgeError, match="UART divisor"):
        check_divisor(divisor)
