"""The supported boards: platform, clock, UART, LEDs, device budget, default preset.

One :class:`BoardSpec` per board, grouped by family (iCE40 UltraPlus, ECP5). The amaranth-boards
platform classes are named here and imported only when a build needs them, so the compiler's fit
check does not import them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..hw.config import CONFIGS
from ..hw.errors import FireforgeError
from .devices import DEVICES, Device
from .ecp5 import ECP5
from .family import Family
from .ice40 import ICE40

__all__ = ["BoardSpec", "BOARD_SPECS", "board_spec", "FAMILIES", "BRIDGE_MAX_BAUD", "LINK_RATES",
           "uart_divisor"]

#: every FPGA family fireforge builds for, by the name devices and boards use
FAMILIES: dict[str, Family] = {f.name: f for f in (ICE40, ECP5)}


@dataclass(frozen=True)
class BoardSpec:
    name: str
    family: str
    device: str
    #: amaranth-boards "module:Class", or "package.module:Class" (:mod:`.platforms`)
    platform: str
    target_mhz: float
    #: (resource name, number) of the USB-serial bridge's UART, None when the board has none
    uart: tuple[str, int] | None
    default_preset: str
    #: the data set the default preset is trained on
    default_data: str
    #: the named accelerator configuration (:data:`fireforge.hw.config.CONFIGS`) the default
    #: program is compiled for
    default_config: str
    programmer: str  #: openFPGALoader | iceprog | dfu-util
    #: what carries the host link to the FPGA's UART pins (empty: nothing does yet)
    bridge: str = ""
    notes: str = ""
    #: nextpnr's router where the family's (Family.router) does not finish on this board
    router: str | None = None
    #: the host link's rate in bits/s: the fastest of :data:`LINK_RATES` the bridge reaches
    #: (:data:`BRIDGE_MAX_BAUD`) that the board's clock divides exactly (:func:`uart_divisor`)
    baud: int = 115_200
    #: (resource name, number) of USB pins wired straight to the FPGA: the link is a CDC-ACM
    #: device in the gateware (:mod:`fireforge.hw.usb`) instead of a UART
    usb: tuple[str, int] | None = None

    def __post_init__(self):
        if self.uart is not None and self.usb is not None:
            raise ValueError(f"{self.name}: a UART link or a USB link, not both")
        if self.family not in FAMILIES or DEVICES[self.device].family != self.family:
            raise ValueError(f"{self.name}: family {self.family!r} with device {self.device}")
        if self.uart is not None and self.baud > BRIDGE_MAX_BAUD.get(self.bridge, 0):
            raise ValueError(f"{self.name}: {self.baud} baud is past what its bridge "
                             f"{self.bridge!r} does ({BRIDGE_MAX_BAUD.get(self.bridge)})")
        if self.default_config not in CONFIGS:
            raise ValueError(f"{self.name}: default_config {self.default_config!r} is not one "
                             f"of {', '.join(CONFIGS)}")

    @property
    def dev(self) -> Device:
        return DEVICES[self.device]

    @property
    def configs(self) -> list[str]:
        """The named configurations this board builds: activations in SPRAM banks on a device
        with SPRAM (the iCE40 UltraPlus), in block RAM elsewhere."""
        return [name for name, c in CONFIGS.items()
                if (c.act_memory == "spram") == bool(self.dev.spram_blocks)]

    @property
    def tech(self) -> Family:
        """The FPGA family: clocking, tools, options, blocks."""
        return FAMILIES[self.family]

    @property
    def link(self) -> str:
        """What carries the host link, for people: the bridge and its rate, or "none"."""
        if self.usb:
            return f"{self.bridge}, 12 Mbit/s"
        return f"{self.bridge}, {self.baud:,} baud" if self.uart else "none"

    def link_divisor(self) -> int:
        """Clock cycles per UART bit in this board's bitstream: its PLL's clock (from the
        board's oscillator to ``target_mhz``) over ``baud``."""
        if self.uart is None:
            raise FireforgeError(f"{self.name} has no UART ({self.link}): no UART divisor")
        f_in = self.platform_class()().default_clk_frequency / 1e6
        return uart_divisor(self.tech.pll_params(f_in, self.target_mhz)["f_out"], self.baud,
                            self.name)

    def platform_class(self):
        module, cls = self.platform.split(":")
        try:  # (an amaranth-boards module, or a full module path of fireforge's own)
            mod = importlib.import_module(module if "." in module else f"amaranth_boards.{module}")
        except ImportError:
            raise FireforgeError("amaranth-boards is not installed: pip install "
                                 "'amaranth-boards==0.0.21' (make setup does)") from None
        return getattr(mod, cls)


#: the fastest rate each USB-serial bridge's datasheet gives, bits/s: FTDI's FT2232H (Hi-Speed,
#: 12 Mbaud) and FT231X (Full-Speed, 3 Mbaud); a user's own 3.3 V adapter is not known, so
#: it gets the rate every adapter does
BRIDGE_MAX_BAUD = {"FT2232H": 12_000_000, "FT231X": 3_000_000, "3.3 V adapter": 115_200}
#: the rates a board's link may run at (ones every bridge driver and pyserial set)
LINK_RATES = (3_000_000, 2_000_000, 1_000_000, 921_600, 460_800, 230_400, 115_200)
#: how far the board's bit time may be from the host's: the receiver samples each bit in its
#: middle, so the error over a 10-bit frame must stay well inside half a bit; exact divisors
#: are chosen wherever a rate allows them
BAUD_TOLERANCE = 0.005


def uart_divisor(f_mhz: float, baud: int, board: str = "") -> int:
    """Clock cycles per UART bit at ``f_mhz`` for ``baud``; refuses a rate the clock does not
    divide within :data:`BAUD_TOLERANCE`."""
    divisor = round(f_mhz * 1e6 / baud)
    error = abs(f_mhz * 1e6 / divisor - baud) / baud if divisor else 1.0
    if divisor < 4 or error > BAUD_TOLERANCE:
        raise FireforgeError(f"{board + ': ' if board else ''}a {f_mhz:g} MHz clock cannot "
                             f"make {baud:,} baud (divisor {f_mhz * 1e6 / baud:.2f}, "
                             f"{error * 100:.1f}% off; at most {BAUD_TOLERANCE * 100:g}%): pick "
                             f"a rate of {', '.join(f'{r:,}' for r in LINK_RATES)} it divides")
    return divisor


_ULX3S = "ulx3s:ULX3S_{}F_Platform"
#: what a UPduino v3 user wires (:class:`.platforms.UpduinoV3SerialPlatform` uses these pins)
UPDUINO_WIRING = ("wire the header's 12 MHz pin to gpio_35 (the PLL's input); a 3.3 V USB-serial "
                  "adapter's TXD to gpio_2, RXD to gpio_46, GND to GND")
BOARD_SPECS: dict[str, BoardSpec] = {b.name: b for b in (
    BoardSpec("icebreaker", "ice40", "iCE40UP5K", "icebreaker:ICEBreakerPlatform", 30.0,
              ("uart", 0), "squeezenet_tiny", "digits", "up5k", "iceprog", bridge="FT2232H",
              baud=3_000_000),
    BoardSpec("upduino_v3", "ice40", "iCE40UP5K",
              "fireforge.boards.platforms:UpduinoV3SerialPlatform", 30.0, ("uart", 0),
              "squeezenet_tiny", "digits", "up5k", "iceprog", bridge="3.3 V adapter",
              notes=UPDUINO_WIRING),
    # The 45F and the 85F hold the 64-MAC array of the CIFAR presets. nextpnr's router2 did
    # not converge on either (45F: overused wires between 4 and 133 for 370 iterations; 85F
    # with the lanes array: overuse rising from 9,212 to 11,991 over iterations 21-25);
    # router1 routes them in about 12 and 25 minutes. The 12F and 25F run the 8-MAC small
    # configuration, which routes at 90-92 MHz there (seed 1): they are clocked at 85 MHz, so
    # the default bitstream meets timing. The FT231X does 3 Mbaud; 85 MHz divides 1 Mbaud
    # exactly (3 and 2 Mbaud are 1.2% off), 100 MHz 2 Mbaud (3 Mbaud is 1% off).
    *(BoardSpec(f"ulx3s-{n}f", "ecp5", f"LFE5U-{n}F", _ULX3S.format(n),
                85.0 if n in (12, 25) else 100.0, ("uart", 0),
                "squeezenet_tiny" if n in (12, 25) else "squeezenet1_1_cifar_w50",
                "digits" if n in (12, 25) else "mnist5k",
                "small" if n in (12, 25) else "ecp5", "openFPGALoader", bridge="FT231X",
                router="router1" if n in (45, 85) else None,
                baud=1_000_000 if n in (12, 25) else 2_000_000)
      for n in (12, 25, 45, 85)),
    # The OrangeCrab's USB connector goes straight to the FPGA: the link is a CDC-ACM device
    # in the gateware (LUNA's). Its 48 and 12 MHz clocks come from the PLL that makes sync, so
    # sync runs at what that VCO also divides to: 96 MHz (VCO 576) on the 85F, 84 (672) on
    # the 25F.
    *(BoardSpec(f"orangecrab-{n}f", "ecp5", f"LFE5U-{n}F",
                f"orangecrab_r0_2:OrangeCrabR0_2_{n}FPlatform", mhz, None, preset, data, config,
                "dfu-util", bridge="USB CDC-ACM", usb=("usb", 0),
                router="router1" if n == 85 else None,
                notes="the host sees a USB serial port (/dev/ttyACM*); flash with the "
                      "OrangeCrab's DFU bootloader (hold the button while plugging in)")
      for n, mhz, preset, data, config in (
          (25, 84.0, "squeezenet_tiny", "digits", "small"),
          (85, 96.0, "squeezenet1_1_cifar_w50", "mnist5k", "ecp5"))),
    BoardSpec("ecpix5-85f", "ecp5", "LFE5UM5G-85F", "ecpix5:ECPIX585Platform", 100.0,
              ("uart", 0), "squeezenet1_1_cifar_w50", "mnist5k", "ecp5", "openFPGALoader",
              bridge="FT2232H", router="router1", baud=2_000_000),
)}


def board_spec(name: str) -> BoardSpec:
    try:
        return BOARD_SPECS[name]
    except KeyError:
        raise FireforgeError(f"unknown board {name!r}; known boards: "
                             f"{', '.join(BOARD_SPECS)} (fireforge boards lists them)") from None
