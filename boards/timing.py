"""Static timing over nextpnr's SDF: every endpoint's slack, grouped by register.

nextpnr reports one critical path per clock, and none at all after placement alone. Its SDF
(``--sdf``) holds every cell's delays and every connection's routing delay (routed, or the
placer's estimate when the design is not routed yet), so a longest-path pass over it gives
the slack of every register input and block RAM or DSP pin: which paths fail, how many
endpoints each group of registers has failing, and the worst path of each group. After
placement alone (5 minutes on the 85F instead of 15-30) the estimate is 10-30% pessimistic
and moves by about 10 MHz between placement seeds (docs/measurements.md): compare candidates
over a few seeds, and route the one that matters.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

from ..hw.errors import FireforgeError

__all__ = ["analyze_sdf", "format_timing"]

_TRIPLE = r"\((-?[\d.]+):(-?[\d.]+):(-?[\d.]+)\)"
_INTERCONNECT = re.compile(r"\(INTERCONNECT (\S+) (\S+) " + _TRIPLE)
_IOPATH = re.compile(r"\(IOPATH (\S+) (\S+) " + _TRIPLE)
_SETUP = re.compile(r"\(SETUPHOLD \(posedge (\S+)\) \(posedge (\S+)\) " + _TRIPLE)
#: what technology mapping appends to a register's or net's name
_MAPPED = re.compile(r"(_TRELLIS_FF_Q|_TRELLIS_COMB|_LUT4|_CCU2C|_DI\b|_Z\b|\$).*")


def _unescape(name: str) -> str:
    return name.replace("\\", "")


def _pin(text: str) -> tuple[str, str]:
    cell, _, port = text.rpartition("/")
    return _unescape(cell), port


def _group(cell: str) -> str:
    """The register (or memory, or multiplier) a mapped cell came from: its name without what
    mapping appended, indices folded (``prod3_5`` and ``prod0_1`` are one group)."""
    name = _MAPPED.sub("", cell)
    name = re.sub(r"\.\d+(\.\d+)?$", "", name)
    name = re.sub(r"\[\d+\]", "[]", name)
    return re.sub(r"\d+", "#", name)


def analyze_sdf(path: Path, period_ns: float, groups: int = 30) -> dict:
    """Slack of every timing endpoint at ``period_ns``, and the ``groups`` worst groups of
    failing endpoints (start register -> end register), each with its worst path."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise FireforgeError(f"cannot read the SDF {path}: {e.strerror}; build with "
                             f"--timing-report to write it") from None
    if "(DELAYFILE" not in text[:200]:
        raise FireforgeError(f"{path} is not an SDF file (no DELAYFILE header)")
    arcs: dict = collections.defaultdict(list)
    launch: dict = {}
    setup: dict = {}
    for m in _INTERCONNECT.finditer(text):
        arcs[_pin(m.group(1))].append((_pin(m.group(2)), float(m.group(5)) / 1000))
    for block in text.split("  (CELL\n")[1:]:
        inst = _unescape(re.search(r"\(INSTANCE (.*)\)", block).group(1))
        clocks = {m.group(2) for m in _SETUP.finditer(block)}
        for m in _SETUP.finditer(block):
            setup[(inst, m.group(1))] = float(m.group(5)) / 1000
        multiplier = '"MULT18X18D"' in block
        for m in _IOPATH.finditer(block):
            src, dst, delay = m.group(1), m.group(2), float(m.group(5)) / 1000
            if src in clocks or (multiplier and src.startswith("CLK")):
                launch[(inst, dst)] = max(launch.get((inst, dst), 0.0), delay)
            else:
                arcs[(inst, src)].append(((inst, dst), delay))
    # longest arrival times, in topological order (the netlist has no combinational loop)
    indegree: collections.Counter = collections.Counter()
    for succs in arcs.values():
        for b, _ in succs:
            indegree[b] += 1
    arrival, pred = dict(launch), {}
    queue = collections.deque(n for n in set(arcs) | set(indegree) if indegree[n] == 0)
    while queue:
        n = queue.popleft()
        for b, delay in arcs.get(n, ()):
            if n in arrival and arrival[n] + delay > arrival.get(b, -1.0):
                arrival[b], pred[b] = arrival[n] + delay, n
            indegree[b] -= 1
            if indegree[b] == 0:
                queue.append(b)
    ends = sorted((period_ns - arrival[n] - s, n) for n, s in setup.items() if n in arrival)
    if not ends:
        raise FireforgeError(f"{path}: no timing endpoint reached from a register")

    def origin(n):
        while n in pred:
            n = pred[n]
        return n

    def path_of(n):
        chain = [n]
        while chain[-1] in pred:
            chain.append(pred[chain[-1]])
        return [{"at_ns": round(arrival[c], 2), "pin": f"{c[0]}/{c[1]}"}
                for c in reversed(chain)]

    failing: dict = {}
    for slack, n in ends:
        if slack >= 0:
            break
        key = (_group(origin(n)[0]), _group(n[0]))
        if key not in failing:
            failing[key] = {"start": key[0], "end": key[1], "worst_slack_ns": round(slack, 2),
                            "endpoints": 0, "path": path_of(n)}
        failing[key]["endpoints"] += 1
    worst = ends[0][0]
    return {"period_ns": period_ns, "endpoints": len(ends),
            "failing_endpoints": sum(g["endpoints"] for g in failing.values()),
            "worst_slack_ns": round(worst, 2), "fmax_mhz": round(1000 / (period_ns - worst), 2),
            "groups": list(failing.values())[:groups]}


def format_timing(report: dict, paths: int = 3) -> str:
    """The report as a table of failing groups, and the worst paths of the first ``paths``."""
    lines = [f"{report['failing_endpoints']:,} of {report['endpoints']:,} endpoints fail at "
             f"{report['period_ns']:g} ns; worst slack {report['worst_slack_ns']} ns "
             f"({report['fmax_mhz']} MHz)"]
    if report["groups"]:
        lines.append(f"{'slack':>7} {'count':>6}  start -> end")
        lines += [f"{g['worst_slack_ns']:7.2f} {g['endpoints']:6d}  {g['start']} -> {g['end']}"
                  for g in report["groups"]]
    for g in report["groups"][:paths]:
        lines.append(f"worst path of {g['start']} -> {g['end']}:")
        lines += [f"  {p['at_ns']:7.2f} ns  {p['pin']}" for p in g["path"]]
    return "\n".join(lines)
