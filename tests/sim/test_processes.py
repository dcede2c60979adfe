"""A command that is stopped stops what it started: ``fireforge simboard`` and ``fireforge sim``
sent SIGTERM (to the command alone, not to its process group, as a service manager or ``kill``
does) leave no simulator behind; SIGKILL, which the command cannot handle, too (the simulator
asks the kernel to stop it with its parent)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from fireforge.sim.processes import alive, descendants


def _start(args, tmp_path, until):
    """The CLI started as its own process; waits until ``until()`` holds."""
    log = open(tmp_path / "log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "fireforge.sw.cli", *args], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not until(proc):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "log").read_text()[-3000:])
        time.sleep(0.2)
    return proc


def _simulators(proc) -> list[int]:
    """The simulator processes below ``proc`` (Verilator's model binary or Icarus's vvp)."""
    found = []
    for pid in descendants(proc.pid):
        try:
            exe = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]
        except OSError:
            continue
        if exe.endswith((b"fireforge_simboard_clocked", b"vvp")):
            found.append(pid)
    return found


def _stop_and_check(proc, sig, tmp_path):
    children = descendants(proc.pid)
    assert children
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in children if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left running after {sig.name}: {left}"
    return rc, (tmp_path / "log").read_text()


def test_simboard_stops_its_simulator_on_sigterm_and_sigkill(quick_tiny_program, tmp_path):
    ready = tmp_path / "url"
    args = ["simboard", "--program", str(quick_tiny_program), "--port", "0", "--ready-file",
            str(ready), "--build-dir", str(tmp_path / "build")]
    proc = _start(args, tmp_path, lambda p: ready.exists())
    assert _simulators(proc)
    rc, log = _stop_and_check(proc, signal.SIGTERM, tmp_path)
    assert rc == 128 + signal.SIGTERM and "stopped by SIGTERM" in log
    # SIGKILL: nothing in the command runs; the kernel stops the simulator with it
    ready.unlink()
    proc = _start(args, tmp_path, lambda p: ready.exists())
    rc, _ = _stop_and_check(proc, signal.SIGKILL, tmp_path)
    assert rc == -signal.SIGKILL


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sim_stops_its_simulator(quick_tiny_program, tmp_path, sig):
    proc = _start(["sim", "--program", str(quick_tiny_program), "--simulator", "icarus",
                   "--images", "50", "--build-dir", str(tmp_path / "build")], tmp_path,
                  _simulators)
    rc, log = _stop_and_check(proc, sig, tmp_path)
    assert rc == 128 + sig, log


def _yowasp(proc) -> bool:
    """A YoWASP tool (yosys, nextpnr) runs below ``proc``."""
    for pid in descendants(proc.pid):
        try:
            if b"yowasp" in open(f"/proc/{pid}/cmdline", "rb").read():
                return True
        except OSError:  # gone meanwhile
            continue
    return False


@pytest.mark.slow
def test_a_seed_sweep_stops_ray_and_its_tools_on_sigterm(quick_tiny_up5k_program, tmp_path):
    """Ray runs the seeds; SIGTERM stops Ray's processes and the tools its workers started
    (Ray installs signal handlers of its own: fireforge's stay in charge)."""
    proc = _start(["build", "--board", "icebreaker", "--program", str(quick_tiny_up5k_program),
                   "--seeds", "1-2", "--out", str(tmp_path / "b")], tmp_path, _yowasp)
    rc, log = _stop_and_check(proc, signal.SIGTERM, tmp_path)
    assert rc == 128 + signal.SIGTERM and "stopped by SIGTERM" in log, log


@pytest.mark.slow
def test_a_seed_sweep_keeps_the_best_seed(quick_tiny_up5k_program, tmp_path):
    import json

    out = tmp_path / "b"
    subprocess.run([sys.executable, "-m", "fireforge.sw.cli", "build", "--board", "icebreaker",
                    "--program", str(quick_tiny_up5k_program), "--seeds", "1-2", "--out",
                    str(out)], check=True, capture_output=True)
    report = json.loads((out / "report.json").read_text())
    fmax = {r["seed"]: r["fmax_mhz"] for r in report["seeds"]}
    assert set(fmax) == {1, 2} and report["kept_seed"] == max(fmax, key=fmax.get)
    assert report["fmax_mhz"] == max(fmax.values()) and (out / "top.bin").is_file()
    for s in (1, 2):
        seed_report = json.loads((out / f"seed-{s}" / "report.json").read_text())
        assert seed_report["seed"] == s and seed_report["fmax_mhz"] == fmax[s]
