"""``fireforge explore``: a design space of SqueezeNet variants trained, compressed, compiled
and measured on boards, trial by trial as Ray tasks; the table, Pareto fronts and plots."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import Log, Result, quiet

__all__ = ["ExploreResult", "explore"]


@dataclass
class ExploreResult(Result):
    out: str
    data: str
    swept: list
    trials: int
    seconds: float
    #: per target: the Pareto fronts (accuracy vs inferences/s, accuracy vs weight bytes)
    pareto: dict
    #: the table's rows (results.csv)
    rows: list


def explore(space_file: str | Path, out: str | Path, *, ray_address: str | None = None,
            log: Log = quiet) -> ExploreResult:
    """Run the space in ``space_file`` (TOML, see :mod:`fireforge.sw.space`) into ``out``;
    trials that finished there before are not run again. The whole space is checked first:
    a bad one is refused before any trial starts."""
    from ..explore import check_explore_out
    from ..explore import explore as run_sweep
    from ..explore_report import results, target_labels
    from ..space import load_space

    space = load_space(space_file)
    out = Path(out)
    check_explore_out(out)  # (before the summary below: a refused --out prints only its line)
    grid = space.grid()
    log(f"space {space_file}: {space.preset} on {space.data}, "
        f"{' x '.join(f'{a} ({len(space.axes[a])})' for a in space.swept) or 'one point'}: "
        f"{len(grid)} point(s), sampler {space.sampler}"
        + (f" ({space.trials} trials)" if space.trials else "")
        + f"; measured on {', '.join(target_labels(space).values())}")
    start = time.perf_counter()
    records = run_sweep(space, out, address=ray_address, log=log)
    # (the sweep wrote the files as its last trial finished; these are what they hold)
    rows, pareto = results(space, list(records.values()))
    for label, front in pareto.items():
        best = front["accuracy_vs_speed"]
        log(f"{label}: {front['trials_that_run']} of {front['trials']} trial(s) run there; "
            f"Pareto front (accuracy vs inferences/s): "
            + ("; ".join(f"{p['golden_accuracy'] * 100:.1f}% at {p['inferences_per_s']:,.0f}/s "
                         f"({', '.join(f'{a}={p[a]}' for a in space.swept)})" for p in best)
               or "empty"))
    log(f"results: {out}/results.csv, {out}/pareto.json, plots in {out}/plots")
    return ExploreResult(out=str(out), data=space.data, swept=space.swept, trials=len(rows),
                         seconds=round(time.perf_counter() - start, 1), pareto=pareto,
                         rows=rows)
