"""The whole chip: accelerator, host link and UART. Boards wrap it with clocks and pins; the
simulated board runs it as it is.

Ports: ``rx``/``tx`` (the UART lines, idle high) and ``leds``: bit 0 running, bit 1 result ready
(``done``), bit 2 a model is loaded, bit 3 toggles on every error reply.
"""


from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .config import AcceleratorConfig
from .link import HostLink
from .uart import UARTRx, UARTTx, check_divisor

__all__ = ["FireforgeSoC", "LEDS"]

LEDS = ("busy", "done", "model", "error")


class FireforgeSoC(wiring.Component):
    rx: In(1, init=1)
    tx: Out(1, init=1)
    leds: Out(len(LEDS))

    def __init__(self, config: AcceleratorConfig, program, divisor: int, board: str = "sim"):
        check_divisor(divisor)
        self.accelerator = Accelerator(config, program)
        self.link = HostLink(self.accelerator, board)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self.accelerator
        m.submodules.link = link = self.link
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        wiring.connect(m, link.acc, acc)
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
