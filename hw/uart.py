"""8N1 UART receiver and transmitter; ``divisor`` is clock cycles per bit (clock / baud rate).

The receiver synchronizes ``rx`` through two flip-flops, finds the start bit's falling edge,
samples every bit in its middle, and drops a byte whose stop bit is low (a framing error, counted
in ``errors``); its output is a byte stream without backpressure (``always_ready``: the link
takes every byte). The transmitter takes a byte from its stream when ``valid & ready``.
"""


from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .errors import FireforgeError

__all__ = ["UARTRx", "UARTTx", "check_divisor"]


def check_divisor(divisor: int) -> None:
    if not isinstance(divisor, int) or divisor < 4:
        raise FireforgeError(f"UART divisor {divisor!r}: clock cycles per bit, at least 4 "
                             f"(pick the clock frequency / the baud rate)")


class UARTRx(wiring.Component):
    """The receiver.

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high).
    stream : ``Out(stream.Signature(8, always_ready=True))``
        The bytes received, each valid for one cycle.
    errors : ``Out(16)``
        Framing errors so far.
    """

    rx: In(1, init=1)
    stream: Out(stream.Signature(8, always_ready=True))
    errors: Out(16)

    def __init__(self, divisor: int):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(4)
        shreg = Signal(8)
        m.d.sync += self.stream.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # first sample point: the middle of data bit 0
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.stream.payload.eq(shreg), self.stream.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.errors.eq(self.errors + 1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                # a framing error: wait for the line to go idle before the next start bit
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """The transmitter.

    Members
    -------
    stream : ``In(stream.Signature(8))``
        The bytes to send.
    tx : ``Out(1)``
        The serial line (idle high).
    """

    stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10)
        bits = Signal(4)
        # ready once the stop bit has lasted its full period
        m.d.comb += self.stream.ready.eq((bits == 0) & (timer == 0))
        with m.If(bits == 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Elif(self.stream.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.stream.payload, Const(1, 1))),
                             bits.eq(10), timer.eq(0)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
        return m
