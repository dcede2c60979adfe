"""Board platforms that amaranth-boards describes without what fireforge needs.

The UPduino v3 has no USB-serial bridge wired to the FPGA (its FTDI chip programs the SPI flash)
and its 12 MHz oscillator reaches the FPGA only through a jumper. fireforge's link runs on a
common 3.3 V USB-serial adapter on two header pins, and its PLL takes the 12 MHz clock on the
PLL's own input pin (package pin 35: the internal 48 MHz oscillator drifts up to 10%, too far
for a UART); :data:`~.boards.UPDUINO_WIRING` says what to wire. The header's silkscreen names
each pin by its package pin (``gpio_2`` is package pin 2).
"""

from amaranth.build import Attrs, Clock, Pins, Resource
from amaranth_boards.resources import UARTResource
from amaranth_boards.upduino_v3 import UpduinoV3Platform

__all__ = ["UpduinoV3SerialPlatform"]


class UpduinoV3SerialPlatform(UpduinoV3Platform):
    default_clk = "clk12_pll"
    resources = [
        *UpduinoV3Platform.resources,
        Resource("clk12_pll", 0, Pins("35", dir="i"), Clock(12e6),
                 Attrs(IO_STANDARD="SB_LVCMOS")),
        UARTResource(0, rx="2", tx="46", attrs=Attrs(IO_STANDARD="SB_LVCMOS", PULLUP=1)),
    ]
