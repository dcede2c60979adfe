"""``fireforge build`` / ``make bitstream``: the chip on a board, synthesized and placed by the
YoWASP yosys and nextpnr wheels, with a report of what it used and how fast it runs.

The board top is :class:`~fireforge.hw.top.FireforgeSoC` behind the board's PLL (its family's,
:mod:`.family`: parameters searched within the device's VCO and PFD limits), with the host
link (a USB CDC-ACM device in the gateware where USB goes straight to the FPGA, else the UART of
the board's USB-serial bridge) and its LEDs. The fit is checked before synthesis (:mod:`.fit`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from ..hw.config import AcceleratorConfig
from ..hw.errors import FireforgeError, tool_failed
from ..hw.perf import estimate
from ..hw.top import LEDS, FireforgeSoC
from ..hw.usb import USB_CLOCKS, USB_PINS, USBSerialBridge
from ..sim.runner import environment
from .boards import BoardSpec, uart_divisor
from .family import YOSYS, Family
from .fit import board_config, fit_board, require_fit
from .timing import analyze_sdf, format_timing

__all__ = ["BoardTop", "build_board", "tool_env", "flash", "measured_fmax"]

#: yosys, after reading the design: the MAC array's register copies of its shared inputs
#: (``*_bcast*``, see hw/array.py) are kept, or opt_merge would fold them back into one register
KEEP_COPIES = "setattr -set keep 1 w:*_bcast* %ci1 t:$dff %i"


class BoardTop(Elaboratable):
    """Clock (PLL), reset, the host link's pins (a UART, or USB through
    :class:`~fireforge.hw.usb.USBSerialBridge`) and LEDs around the chip."""

    def __init__(self, spec: BoardSpec, config: AcceleratorConfig, program,
                 f_in_mhz: float, target_mhz: float):
        if spec.uart is None and spec.usb is None:
            raise FireforgeError(f"{spec.name} has no host link ({spec.notes}): it needs a UART "
                                 f"bridge or USB pins")
        self.spec = spec
        self.pll = spec.tech.pll_params(f_in_mhz, target_mhz, USB_CLOCKS if spec.usb else None)
        self.f_mhz = self.pll["f_out"]
        self.divisor = uart_divisor(self.f_mhz, spec.baud, spec.name) if spec.uart else None
        self.soc = FireforgeSoC(config, program, self.divisor, board=spec.name)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd_sync = ClockDomain("sync")
        locked = self.spec.tech.clock(m, platform, self.pll)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(cd_sync.clk, self.f_mhz * 1e6)
        for name, out in self.pll.get("secondary", {}).items():
            m.domains += (cd := ClockDomain(name))
            m.submodules[f"reset_{name}"] = ResetSynchronizer(~locked, domain=name)
            platform.add_clock_constraint(cd.clk, out["f_out"] * 1e6)

        m.submodules.soc = soc = self.soc
        if self.spec.usb:
            # LUNA's PHY drives each line's .i/.o/.oe: an I/O buffer per pin gives it those
            pins = platform.request(*self.spec.usb, dir="-")
            bus = SimpleNamespace(**{name: io.Buffer(kind, getattr(pins, name))
                                     for name, kind in USB_PINS.items()})
            for name, buffer in vars(bus).items():
                m.submodules[f"usb_{name}"] = buffer
            m.submodules.usb = usb = USBSerialBridge(bus, serial=self.spec.name)
            wiring.connect(m, usb.rx, soc.rx)
            wiring.connect(m, soc.tx, usb.tx)
        else:
            uart = platform.request(*self.spec.uart, dir="-")
            m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
            m.d.comb += [soc.rx.eq(rx_buf.i), tx_buf.o.eq(soc.tx)]
        for n in range(len(LEDS)):
            try:
                led = platform.request("led", n, dir="-")
            except Exception:  # noqa: BLE001 - boards with fewer LEDs show fewer
                break
            m.submodules[f"led_buf{n}"] = led_buf = io.Buffer("o", led)
            m.d.comb += led_buf.o.eq(soc.leds[n])
        return m


def tool_env(family: Family) -> dict[str, str]:
    """Tool variables for ``family``'s build: the user's own settings win; otherwise the
    YoWASP commands."""
    env = {}
    # the wheels' commands sit beside this Python even when its venv is not on PATH
    here = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for tool in (YOSYS, *family.tools):
        if tool.var not in os.environ:
            found = shutil.which(tool.command, path=here)
            if found is None:
                raise FireforgeError(f"{tool.command} is not installed: pip install {tool.wheel} "
                                     f"(make setup installs the YoWASP tools), or set {tool.var} "
                                     f"to your own install")
            env[tool.var] = found
    if "OPENFPGALOADER" not in os.environ and shutil.which("openFPGALoader") is None:
        env["OPENFPGALOADER"] = "true"  # some platforms demand it just to build
    return env


def _require_dfu_suffix(spec: BoardSpec) -> None:
    # A board flashed by its DFU bootloader (the OrangeCrab) gets a bitstream with a DFU
    # suffix, which its platform's build appends with dfu-suffix (dfu-util's package).
    if (spec.programmer == "dfu-util" and "DFU_SUFFIX" not in os.environ
            and shutil.which("dfu-suffix") is None):
        raise FireforgeError(f"{spec.name}'s bitstream needs dfu-suffix: apt-get install "
                             f"dfu-util (make setup does), or set DFU_SUFFIX to your own")


def build_board(spec: BoardSpec, program, out_dir: Path, seed: int = 1,
                target_mhz: float | None = None, log=print, timing_report: bool = False,
                place_only: bool = False) -> dict:
    """Fit-check, synthesize, place and route ``program`` for ``spec``; write the bitstream, the
    tool logs and ``report.json`` to ``out_dir``.

    ``timing_report``: nextpnr also writes its SDF, and :func:`~.timing.analyze_sdf` the slack
    of every endpoint to ``timing.json`` (the groups of failing paths, not only the critical
    one). ``place_only``: no routing and no bitstream; Fmax and the timing report are the
    placer's estimates (minutes instead of half an hour on an 85F)."""
    config = board_config(spec, program)
    fit = require_fit(spec, program, config)
    target = target_mhz or spec.target_mhz
    platform = spec.platform_class()()
    f_in = platform.default_clk_frequency / 1e6
    top = BoardTop(spec, config, program, f_in, target)
    divisor = f" (UART divisor {top.divisor})" if top.divisor else ""
    log(f"{spec.name} ({spec.device}): {config.macs} MACs ({config.rows} x {config.columns}), "
        f"{config.model_slots} model slot(s), PLL {f_in:g} -> {top.f_mhz:.2f} MHz, link "
        f"{spec.link}{divisor}; fit: {fit['bram_blocks']}/{fit['bram_available']} block RAMs, "
        f"{fit['dsp']}/{fit['dsp_available']} multipliers")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tech = spec.tech
    env = tool_env(tech)
    _require_dfu_suffix(spec)
    t0 = time.perf_counter()
    # the tools run in out_dir; YoWASP's tools only see paths under their working directory
    router = spec.router or tech.router
    timing_report = timing_report or place_only
    extra = " --sdf top.sdf" * timing_report + " --no-route" * place_only
    opts = {"nextpnr_opts": f"--seed {seed} --report nextpnr.json --router {router} "
                            f"{tech.nextpnr_opts}{extra}".strip(),
            "script_after_read": KEEP_COPIES}
    if tech.synth_opts:
        opts["synth_opts"] = tech.synth_opts
    try:
        log(f"synthesis and place-and-route in {out_dir} (yosys, nextpnr-{spec.family}, seed "
            f"{seed}); logs: {out_dir}/top.rpt, top.tim")
        with environment(env):
            platform.build(top, name="top", build_dir=str(out_dir), do_program=False, **opts)
    except Exception as e:  # noqa: BLE001 - amaranth raises plain errors for tool failures
        # the newest log is the tool that failed (yosys writes top.rpt, nextpnr top.tim)
        logs = [p for p in (out_dir / "top.rpt", out_dir / "top.tim") if p.exists()]
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise tool_failed(f"the {spec.family} build failed ({first})",
                          max(logs, key=lambda p: p.stat().st_mtime) if logs else None) from None
    seconds = time.perf_counter() - t0
    bitstream = out_dir / tech.bitstream
    if place_only:  # (the packer packs an unrouted design without complaint: not a bitstream)
        for name in ("top.bit", "top.svf", "top.bin", "top.config", "top.asc"):
            (out_dir / name).unlink(missing_ok=True)
    res = tech.resources(out_dir, {name: out["f_out"]
                                   for name, out in top.pll.get("secondary", {}).items()})
    perf = estimate(config, program)
    cycles = perf["cycles_per_inference"]
    fmax = res.pop("fmax_mhz")
    other_clocks = res.pop("other_clocks")
    timing = None
    if timing_report:
        timing = analyze_sdf(out_dir / "top.sdf", 1000 / top.f_mhz)
        (out_dir / "timing.json").write_text(json.dumps(timing, indent=1))
        if place_only:  # (nextpnr's report has no Fmax before routing)
            fmax = timing["fmax_mhz"]
    report = {
        "board": spec.name, "device": spec.device, "model_hash": program.model_hash,
        "program": str(program.path), "preset": program.manifest.preset,
        "config": {"columns": config.columns, "rows": config.rows,
                   "requant_lanes": config.requant_lanes, "model_slots": config.model_slots,
                   "act_bytes": config.act_bytes, "weight_bytes": config.weight_bytes},
        "resources": {k: {"used": u, "available": a} for k, (u, a) in res.items()},
        "fmax_mhz": round(fmax, 2) if fmax else None, "target_mhz": round(top.f_mhz, 3),
        "link": spec.link, "baud": spec.baud if spec.uart else None,
        "uart_divisor": top.divisor,
        "timing_met": bool(fmax and fmax >= top.f_mhz) and all(
            c["fmax_mhz"] >= c["target_mhz"] for c in other_clocks.values()),
        "other_clocks": other_clocks,
        "cycles_per_inference": cycles, "cycles_source": "hw.perf cycle model",
        "fps_at_fmax": round(fmax * 1e6 / cycles, 1) if fmax else None,
        "fps_at_target": round(top.f_mhz * 1e6 / cycles, 1),
        "mac_utilization": perf["mac_utilization"], "seed": seed,
        "nextpnr_options": f"--router {router} {tech.nextpnr_opts}",
        "build_seconds": round(seconds, 1),
        "bitstream": None if place_only else str(bitstream),
        "fmax_source": "nextpnr after placement (estimate, not routed)" if place_only
        else "nextpnr after routing",
        "fit": fit_board(spec, config),
    }
    if timing:
        report["timing"] = {k: timing[k] for k in ("endpoints", "failing_endpoints",
                                                    "worst_slack_ns", "fmax_mhz")}
        log(format_timing(timing, paths=1))
    if place_only:  # (an estimate neither meets nor misses the target)
        report["timing_met"] = None
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    if place_only:
        log(f"placement only: Fmax {report['fmax_mhz']} MHz is the placer's estimate; no "
            f"bitstream (see {out_dir}/timing.json)")
    elif not report["timing_met"] and fmax and fmax >= top.f_mhz:
        slow = ", ".join(f"{name} {c['fmax_mhz']} of {c['target_mhz']} MHz"
                         for name, c in other_clocks.items() if c["fmax_mhz"] < c["target_mhz"])
        log(f"TIMING NOT MET: {slow}, so this bitstream is not reliable (see {out_dir}/top.tim "
            f"for the critical path)")
    elif not report["timing_met"]:
        log(f"TIMING NOT MET: Fmax {report['fmax_mhz']} MHz is below the PLL's "
            f"{report['target_mhz']} MHz, so this bitstream is not reliable; rebuild with "
            f"--target-mhz {int(fmax) if fmax else 'LOWER'} (see {out_dir}/top.tim for the "
            f"critical path)")
    return report


#: the committed record of board builds (in a source checkout)
HISTORY = Path(__file__).resolve().parents[1] / "bench" / "history" / "builds.json"


def measured_fmax(spec: BoardSpec, config: str | None = None,
                  build_root: str | Path = "build") -> tuple[float, str]:
    """``spec``'s clock for throughput figures with the accelerator configuration ``config``
    (by name; ``None``: any), and where it comes from: the routed Fmax of the last
    ``fireforge build`` in ``build_root/BOARD`` (the user's own), else the newest row of the
    committed build history, else the board's clock target."""
    from ..hw.config import config_by_name

    shape = None
    if config:
        c = config_by_name(config)
        shape = {"columns": c.columns, "rows": c.rows}
    report = Path(build_root) / spec.name / "report.json"
    try:
        r = json.loads(report.read_text())
        same = shape is None or {k: r["config"][k] for k in shape} == shape
        if r.get("fmax_mhz") and r.get("bitstream") and same:  # (routed, not an estimate)
            return float(r["fmax_mhz"]), f"{report} (seed {r.get('seed')})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        rows = [row for row in json.loads(HISTORY.read_text())["builds"]
                if row["board"] == spec.name and row.get("fmax_mhz")
                and (config is None or str(row.get("program", "")).endswith(f", {config}"))]
        if rows:
            return float(rows[-1]["fmax_mhz"]), f"build history ({rows[-1].get('commit')})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return float(spec.target_mhz), "the clock target (no build measured)"


#: how each programmer is called (the bitstream path is appended)
PROGRAMMERS = {"iceprog": ["iceprog"], "openFPGALoader": ["openFPGALoader", "-b", "{board}"],
               "dfu-util": ["dfu-util", "-a", "0", "-D"]}


def flash(spec: BoardSpec, out_dir: Path) -> list[str]:
    """Program the board with the bitstream in ``out_dir`` using its programmer."""
    import subprocess

    bitstream = Path(out_dir) / spec.tech.bitstream
    if not bitstream.exists():
        raise FireforgeError(f"no bitstream at {bitstream}: make bitstream BOARD={spec.name}")
    cmd = [a.format(board=spec.name.split("-")[0]) for a in PROGRAMMERS[spec.programmer]]
    if shutil.which(cmd[0]) is None:
        raise FireforgeError(f"{cmd[0]} is not installed (apt-get install "
                             f"{cmd[0].lower() if cmd[0] != 'iceprog' else 'fpga-icestorm'}); "
                             f"the bitstream is {bitstream}")
    cmd.append(str(bitstream))
    if subprocess.run(cmd).returncode != 0:
        raise FireforgeError(f"{' '.join(cmd)} failed (is the board connected?)")
    return cmd
