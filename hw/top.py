"""The whole chip: accelerator, host link and UART. Boards wrap it with clocks and pins; the
simulated board runs it as it is.

Ports: ``rx``/``tx`` (the UART lines, idle high; or, built without a UART, the link's byte
streams, for a board's USB bridge or a simulation) and ``leds``: bit 0 running, bit 1 result
ready (``done``), bit 2 a model is loaded, bit 3 toggles on every error reply.
"""


from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .config import AcceleratorConfig
from .link import HostLink
from .uart import UARTRx, UARTTx, check_divisor

__all__ = ["FireforgeSoC", "LEDS"]

LEDS = ("busy", "done", "model", "error")


class FireforgeSoC(wiring.Component):
    """``divisor``: clock cycles per UART bit; ``None`` builds the chip without its UART, the
    link's byte streams as ``rx`` and ``tx`` (for :class:`~.usb.USBSerialBridge`, or a
    simulation that feeds whole bytes)."""

    def __init__(self, config: AcceleratorConfig, program, divisor: int | None,
                 board: str = "sim"):
        if divisor is not None:
            check_divisor(divisor)
        self.accelerator = Accelerator(config, program)
        self.link = HostLink(self.accelerator, board)
        self.divisor = divisor
        lines = {"rx": In(1, init=1), "tx": Out(1, init=1)} if divisor is not None else {
            "rx": In(stream.Signature(8, always_ready=True)), "tx": Out(stream.Signature(8))}
        super().__init__({**lines, "leds": Out(len(LEDS))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self.accelerator
        m.submodules.link = link = self.link
        wiring.connect(m, link.acc, acc)
        if self.divisor is None:
            wiring.connect(m, wiring.flipped(self.rx), link.rx)
            wiring.connect(m, link.tx, wiring.flipped(self.tx))
        else:
            m.submodules.uart_rx = urx = UARTRx(self.divisor)
            m.submodules.uart_tx = utx = UARTTx(self.divisor)
            wiring.connect(m, urx.stream, link.rx)
            wiring.connect(m, link.tx, utx.stream)
            m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        error_led = Signal()
        last_errors = Signal.like(link.errors)
        m.d.sync += last_errors.eq(link.errors)
        with m.If(link.errors != last_errors):
            m.d.sync += error_led.eq(~error_led)
        m.d.comb += self.leds.eq(Cat(acc.busy | acc.paused, acc.done, link.model_valid,
                                     error_led))
        return m
