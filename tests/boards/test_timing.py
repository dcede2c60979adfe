"""The SDF timing pass on a hand-written netlist whose slacks are known."""

import pytest
from fireforge.boards.timing import analyze_sdf, format_timing
from fireforge.hw.errors import FireforgeError


def _delay(ps):
    return f"({ps}:{ps}:{ps}) ({ps}:{ps}:{ps})"


def _cell(kind, name, iopaths, checks=""):
    """One SDF cell: its IOPATHs as (from, to, ps), and a TIMINGCHECK block if given."""
    paths = "".join(f"        (IOPATH {a} {b} {_delay(ps)})\n" for a, b, ps in iopaths)
    check = f"    (TIMINGCHECK\n{checks}    )\n" if checks else ""
    return (f"  (CELL\n    (CELLTYPE \"{kind}\")\n    (INSTANCE {name})\n"
            f"    (DELAY\n      (ABSOLUTE\n{paths}      )\n    )\n{check}    )\n")


def _ff(name, clk_q=500, setup=100):
    return _cell("TRELLIS_FF", name, [("CLK", "Q", clk_q)],
                 f"      (SETUPHOLD (posedge DI) (posedge CLK) ({setup}:{setup}:{setup}) "
                 f"(0:0:0))\n")


def _lut(name, delay):
    return _cell("TRELLIS_COMB", name, [("A", "F", delay), ("B", "F", delay)])


def _net(a, b, delay):
    return f"        (INTERCONNECT {a} {b} {_delay(delay)})\n"


SDF = ("(DELAYFILE\n  (SDFVERSION \"3.0\")\n  (TIMESCALE 1ps)\n  (CELL\n    (CELLTYPE \"top\")\n"
       "    (INSTANCE )\n    (DELAY\n      (ABSOLUTE\n"
       # cnt3 -> lut (2 ns route, 0.4 ns) -> sum_TRELLIS_FF_Q (8 ns route): 0.5+2+0.4+8+0.1
       + _net("cnt3_TRELLIS_FF_Q/Q", "x_LUT4_Z/A", 2000)
       + _net("x_LUT4_Z/F", "sum_TRELLIS_FF_Q/DI", 8000)
       # cnt7 -> the same lut (1 ns): a shorter arc into it
       + _net("cnt7_TRELLIS_FF_Q/Q", "x_LUT4_Z/B", 1000)
       # cnt3 -> flag directly (3 ns): meets 10 ns
       + _net("cnt3_TRELLIS_FF_Q/Q", "flag_TRELLIS_FF_Q/DI", 3000)
       + "      )\n    )\n    )\n"
       + _ff("cnt3_TRELLIS_FF_Q") + _ff("cnt7_TRELLIS_FF_Q") + _ff("sum_TRELLIS_FF_Q")
       + _ff("flag_TRELLIS_FF_Q") + _lut("x_LUT4_Z", 400) + ")\n")


def test_slack_of_every_endpoint_and_the_worst_path(tmp_path):
    path = tmp_path / "top.sdf"
    path.write_text(SDF)
    report = analyze_sdf(path, 10.0)
    assert report["endpoints"] == 2 and report["failing_endpoints"] == 1
    assert report["worst_slack_ns"] == pytest.approx(10 - (0.5 + 2 + 0.4 + 8 + 0.1))
    assert report["fmax_mhz"] == pytest.approx(1000 / 11.0, abs=0.01)
    (group,) = report["groups"]
    # the counters fold into one group; the path goes through the slower input
    assert (group["start"], group["end"]) == ("cnt#", "sum")
    assert [p["pin"] for p in group["path"]] == [
        "cnt3_TRELLIS_FF_Q/Q", "x_LUT4_Z/A", "x_LUT4_Z/F", "sum_TRELLIS_FF_Q/DI"]
    assert "1 of 2 endpoints fail at 10 ns" in format_timing(report)
    assert analyze_sdf(path, 12.0)["failing_endpoints"] == 0


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FireforgeError, match="cannot read the SDF"):
        analyze_sdf(tmp_path / "missing.sdf", 10.0)
    (tmp_path / "x.sdf").write_text("not an sdf")
    with pytest.raises(FireforgeError, match="not an SDF file"):
        analyze_sdf(tmp_path / "x.sdf", 10.0)
