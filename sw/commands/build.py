"""``fireforge boards``, ``fireforge build`` and ``fireforge flash``: the supported boards, a
program synthesized and placed for one of them (the bitstream and ``report.json``), and the
board programmed with it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...hw.errors import FireforgeError
from . import Log, Result, quiet

__all__ = ["BoardList", "list_boards", "BuildResult", "build", "default_program",
           "FlashResult", "flash"]


@dataclass
class BoardList(Result):
    #: per board: family, device, its budgets, clock target, UART, default preset, programmer
    boards: list


def list_boards(*, log: Log = quiet) -> BoardList:
    """The supported boards with their devices, budgets and default presets."""
    from ...boards.boards import BOARD_SPECS

    rows = []
    log(f"{'board':<15} {'device':<13} {'LUT4':>6} {'BRAM KiB':>8} {'SPRAM KiB':>9} {'mult':>5} "
        f"{'MHz':>4} {'link':<27} {'default preset'}")
    for spec in BOARD_SPECS.values():
        d = spec.dev
        rows.append({"board": spec.name, "family": spec.family, "device": d.name, "lut": d.lut,
                     "ff": d.ff, "bram_blocks": d.bram_blocks, "bram_bytes": d.bram_bytes,
                     "spram_blocks": d.spram_blocks, "spram_bytes": d.spram_bytes,
                     "dsp": d.dsp, "target_mhz": spec.target_mhz,
                     "uart": spec.uart is not None, "usb": spec.usb is not None,
                     "bridge": spec.bridge, "link": spec.link,
                     "baud": spec.baud if spec.uart else None,
                     "default_preset": spec.default_preset,
                     "default_data": spec.default_data,
                     "default_config": spec.default_config, "programmer": spec.programmer,
                     "notes": spec.notes})
        log(f"{spec.name:<15} {d.name:<13} {d.lut:>6,} {d.bram_bytes / 1024:>8.0f} "
            f"{d.spram_bytes / 1024:>9.0f} {d.dsp:>5} {spec.target_mhz:>4.0f} "
            f"{spec.link:<27} "
            f"{spec.default_preset}"
            + (f"  ({spec.notes})" if spec.notes else ""))
    return BoardList(boards=rows)


def default_program(board: str, runs: str | Path = "runs", *, log: Log = quiet):
    """``board``'s default preset, trained, compressed (40%, 4 bits) and compiled for its
    default configuration under ``runs``; steps whose output exists are reused. A
    configuration without a codebook decoder (the iCE40 UltraPlus: logic is what it lacks)
    gets the trained network uncompressed, int8."""
    import shutil

    from ...boards.boards import board_spec
    from ...hw.config import config_by_name
    from ...hw.program import load_program
    from .compile import compile_program
    from .compress import compress
    from .train import train

    spec = board_spec(board)
    runs = Path(runs)
    config = spec.default_config
    accel = config_by_name(config)
    int8 = not accel.codebook_bits
    base = runs / f"{spec.default_preset}-{spec.default_data}"
    # (named by its weights too, so an older compressed program is not taken for it)
    program = runs / f"{spec.default_preset}-{config}{'-int8' if int8 else ''}-program"
    source = base if int8 else Path(f"{base}-d0.4-b4")
    manifest = program / "manifest.json"
    if manifest.exists():
        m = load_program(program).manifest
        if (m.group, m.lanes) != (accel.columns, accel.rows):
            log(f"{program} was compiled for another array shape: compiling it again")
            shutil.rmtree(program)
    steps = [(base / "metrics.json", f"train {spec.default_preset} on {spec.default_data}",
              lambda: train(spec.default_preset, spec.default_data, base, log=log))]
    if not int8:
        steps.append((source / "compression.npz", "compress to density 0.4, 4 bits",
                      lambda: compress(base, 0.4, 4, source, log=log)))
    steps.append((manifest, f"compile for {config}",
                  lambda: compile_program(source, program, config=config, log=log)))
    for done, what, step in steps:
        if done.exists():
            log(f"reusing {done.parent}")
        else:
            log(f"default program of {spec.name}: {what}")
            step()
    return load_program(program)


@dataclass
class BuildResult(Result):
    """``report.json`` of a build, or the fit report of ``--fit-only``."""

    report: dict

    def to_dict(self) -> dict:
        return self.report


def build(board: str, program: str | Path | None = None, *, runs: str | Path = "runs",
          out: str | Path | None = None, seed: int = 1, target_mhz: float | None = None,
          fit_only: bool = False, timing_report: bool = False, place_only: bool = False,
          seeds: list[int] | None = None, ray_address: str | None = None,
          log: Log = quiet) -> BuildResult:
    """Fit-check ``program`` (default: the board's default program, made under ``runs``) on
    ``board``; unless ``fit_only``, synthesize, place and route it into ``out`` (default
    ``build/BOARD``) with yosys and nextpnr.

    ``seeds``: one build per placement seed, as Ray tasks (on this machine's cores, or the
    cluster at ``ray_address``), each in ``out/seed-N``; the one with the highest Fmax is copied
    to ``out`` and its report lists every seed's."""
    from ...boards.boards import board_spec
    from ...boards.build import build_board
    from ...boards.fit import board_config, fit_board, format_board_fit, require_fit
    from ...hw.program import load_program

    spec = board_spec(board)
    if program:
        prog = load_program(program)
    else:
        log(f"no --program: the default program of {spec.name} ({spec.default_preset} on "
            f"{spec.default_data})")
        prog = default_program(board, runs, log=log)
    config = board_config(spec, prog)
    log(format_board_fit(fit_board(spec, config)))
    if fit_only:
        return BuildResult(require_fit(spec, prog, config))
    out = Path(out or f"build/{spec.name}")
    if seeds:
        report = _build_seeds(spec, prog, out, seeds, target_mhz, timing_report, place_only,
                              ray_address, log)
    else:
        report = build_board(spec, prog, out, seed, target_mhz, log=log,
                             timing_report=timing_report, place_only=place_only)
    log(f"{'resource':<8} {'used':>8} {'available':>10}")
    for name, r in report["resources"].items():
        log(f"{name:<8} {r['used']:>8,} {r['available']:>10,}")
    verdict = ("placement estimate" if place_only else
               "met" if report["timing_met"] else "NOT MET")
    log(f"Fmax {report['fmax_mhz']} MHz (target {report['target_mhz']} MHz, {verdict}); "
        f"{report['cycles_per_inference']:,} cycles per inference: {report['fps_at_fmax']} "
        f"frames/s at Fmax; built in {report['build_seconds']:.0f} s")
    log(f"bitstream {report['bitstream']}; report {out}/report.json")
    return BuildResult(report)


def _build_seed(board: str, program: str, out: str, seed: int, target_mhz: float | None,
                timing_report: bool, place_only: bool) -> dict:
    """One seed's build (a Ray task: it loads what it needs itself)."""
    from ...boards.boards import board_spec
    from ...boards.build import build_board
    from ...hw.program import load_program

    return build_board(board_spec(board), load_program(program), Path(out), seed, target_mhz,
                       log=quiet, timing_report=timing_report, place_only=place_only)


def _build_seeds(spec, prog, out: Path, seeds: list[int], target_mhz, timing_report: bool,
                 place_only: bool, address: str | None, log: Log) -> dict:
    import shutil

    from ..cluster import ray_session, run_tasks

    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise FireforgeError(f"--seeds {seeds}: distinct seeds, 0 or more")
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    with ray_session(address) as ray:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        log(f"{len(seeds)} builds (seeds {', '.join(map(str, seeds))}) as Ray tasks on "
            f"{cpus} CPU(s), each in {out}/seed-N")
        args = [(spec.name, str(prog.path), str(out / f"seed-{s}"), s, target_mhz,
                 timing_report, place_only) for s in seeds]
        for i, report, node in run_tasks(ray, _build_seed, args):
            runs[seeds[i]] = {"seed": seeds[i], "fmax_mhz": report["fmax_mhz"],
                              "timing_met": report["timing_met"],
                              "build_seconds": report["build_seconds"], "node": node}
            log(f"seed {seeds[i]}: Fmax {report['fmax_mhz']} MHz ("
                f"{'met' if report['timing_met'] else 'NOT MET'}), "
                f"{report['build_seconds']:.0f} s, node {node[:12]}")
    kept = max(seeds, key=lambda s: runs[s]["fmax_mhz"])
    shutil.copytree(out / f"seed-{kept}", out, dirs_exist_ok=True)
    report = json.loads((out / "report.json").read_text())
    report.update(seeds=[runs[s] for s in seeds], kept_seed=kept,
                  bitstream=str(out / Path(report["bitstream"]).name))
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"kept seed {kept} (the highest Fmax of {len(seeds)}); its files are in {out}")
    return report


@dataclass
class FlashResult(Result):
    board: str
    command: list


def flash(board: str, out: str | Path | None = None, *, log: Log = quiet) -> FlashResult:
    """Program ``board`` with the bitstream built in ``out`` (default ``build/BOARD``)."""
    from ...boards.boards import board_spec
    from ...boards.build import flash as run_programmer

    cmd = run_programmer(board_spec(board), Path(out or f"build/{board}"))
    return FlashResult(board=board, command=cmd)
