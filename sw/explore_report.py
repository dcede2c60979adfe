"""What a sweep tells a person: the results table (CSV and JSON), the Pareto fronts per board,
and plots in the style of the SqueezeNet paper's figures, all rewritten as trials finish.

Accuracies are test-set accuracies on the space's data set: ``float`` of the trained network,
``golden`` of the integer program a board runs (bit-exact with the gateware). Inferences/s are
the engine's (cycle model at the board's Fmax), not the host link's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from .space import Space

__all__ = ["write_results", "results", "table", "pareto_front", "target_labels",
           "write_atomically"]

#: the per-target columns of the table
TARGET_COLUMNS = ("runs", "golden_accuracy", "cycles", "fmax_mhz", "inferences_per_s",
                  "weight_bytes", "bram_blocks", "dsp", "fmax_source", "reason")


def target_labels(space: Space) -> dict[str, str]:
    """A short name per (board, configuration): the board, or board/config where a board is
    measured with several configurations."""
    boards = [b for b, _ in space.targets]
    return {f"{b}/{c}": b if boards.count(b) == 1 else f"{b}/{c}" for b, c in space.targets}


def _fmax(space: Space) -> dict[str, tuple[float, str]]:
    from ..boards.boards import board_spec
    from ..boards.build import measured_fmax

    return {f"{b}/{c}": measured_fmax(board_spec(b), c) for b, c in space.targets}


def table(space: Space, records: list[dict]) -> list[dict]:
    """One flat row per trial, in grid order: its point, the network, and per target the
    measurements (``TARGET.column``)."""
    fmax = _fmax(space) if space.fmax == "measured" else {}
    order = {space.trial_id(p): n for n, p in enumerate(space.grid())}
    rows = []
    for n, r in enumerate(sorted(records, key=lambda r: order.get(r["id"], len(order))), 1):
        row = {"n": n, "id": r["id"], **r["point"], "params": r["params"], "macs": r["macs"],
               "float_accuracy": r["float_accuracy"],
               "compressed_accuracy": r["compressed_accuracy"], "density_kept": r["density"],
               "compressed_bytes": r["compressed_bytes"], "seconds": r["seconds"],
               "node": r.get("node", "")}
        for key, label in target_labels(space).items():
            t = dict(r["targets"][key])
            if t["runs"]:
                if key in fmax:
                    t["fmax_mhz"], t["fmax_source"] = fmax[key]
                t["inferences_per_s"] = round(t["fmax_mhz"] * 1e6 / t["cycles"], 1)
            for column in TARGET_COLUMNS:
                row[f"{label}.{column}"] = t.get(column, "")
        rows.append(row)
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both maximized)."""
    front = []
    for i, (a, b) in enumerate(points):
        if not any((c >= a and d >= b) and (c > a or d > b) for c, d in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i][1])


def _fronts(space: Space, rows: list[dict]) -> dict:
    fronts = {}
    for label in target_labels(space).values():
        running = [r for r in rows if r[f"{label}.runs"] is True]
        accuracy = [r[f"{label}.golden_accuracy"] for r in running]
        against = {"accuracy_vs_speed": [r[f"{label}.inferences_per_s"] for r in running],
                   "accuracy_vs_size": [-r[f"{label}.weight_bytes"] for r in running]}
        entries = [{"n": r["n"], "id": r["id"], **{a: r[a] for a in space.swept},
                    **{c: r[f"{label}.{c}"] for c in ("golden_accuracy", "inferences_per_s",
                                                      "weight_bytes")}} for r in running]
        fronts[label] = {"trials_that_run": len(running), "trials": len(rows)}
        for name, x in against.items():
            best = pareto_front(list(zip(accuracy, x, strict=True)))
            fronts[label][name] = [entries[i] for i in best]
    return fronts


def write_atomically(path: Path, data: str | bytes) -> None:
    """``path`` replaced whole: a reader (or a rerun after a kill) never sees half a file."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)


def results(space: Space, records: list[dict]) -> tuple[list[dict], dict]:
    """The table's rows and the Pareto fronts per target of ``records``."""
    rows = table(space, records)
    return rows, _fronts(space, rows)


def write_results(space: Space, out: Path, records: list[dict]) -> None:
    """Rewrite ``out``'s table, fronts and plots from ``records``."""
    rows, fronts = results(space, records)
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_atomically(out / "results.csv", text.getvalue())
    write_atomically(out / "results.json", json.dumps(
        {"data": space.data, "preset": space.preset, "swept": space.swept,
         "targets": target_labels(space), "trials": rows}, indent=1) + "\n")
    write_atomically(out / "pareto.json", json.dumps(fronts, indent=1) + "\n")
    if rows:
        _plots(space, out / "plots", rows, fronts)


# ------------------------------------------------------------------------------------ plots
def _caption(space: Space, rows: list[dict]) -> str:
    return f"{space.preset} variants on {space.data}, test accuracy; {len(rows)} trial(s)"


def _plots(space: Space, folder: Path, rows: list[dict], fronts: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    first = next(iter(target_labels(space).values()))
    numeric = [a for a in space.swept if a != "bypass"]
    for axis in numeric:  # the paper's Figure 3: accuracy against SR, against pct_3x3
        others = [a for a in space.swept if a != axis]
        fig, ax = plt.subplots(figsize=(8, 5))
        for key in sorted({tuple(r[a] for a in others) for r in rows}, key=str):
            line = sorted((r for r in rows if tuple(r[a] for a in others) == key),
                          key=lambda r: r[axis])
            label = ", ".join(f"{a}={v}" for a, v in zip(others, key, strict=True))
            xs = [r[axis] for r in line]
            p = ax.plot(xs, [r["float_accuracy"] * 100 for r in line], "o-",
                        label=f"{label or 'float'} (float)")
            golden = [(r[axis], r[f"{first}.golden_accuracy"] * 100) for r in line
                      if r[f"{first}.runs"] is True]
            if golden:
                ax.plot(*zip(*golden, strict=True), "x--", color=p[0].get_color(),
                        label=f"{label or 'golden'} (golden, {first})")
        ax.set_xlabel(_axis_label(axis))
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"Accuracy vs {_axis_label(axis)}\n{_caption(space, rows)}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        _save(fig, folder / f"accuracy_vs_{axis}.png")
    if "bypass" in space.swept:  # the paper's Table 3, as bars
        others = [a for a in space.swept if a != "bypass"]
        groups = sorted({tuple(r[a] for a in others) for r in rows}, key=str)
        modes = space.axes["bypass"]
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) + 2), 5))
        width = 0.8 / len(modes)
        for m, mode in enumerate(modes):
            values = []
            for key in groups:
                match = [r for r in rows if r["bypass"] == mode
                         and tuple(r[a] for a in others) == key]
                values.append(match[0]["float_accuracy"] * 100 if match else math.nan)
            ax.bar([g + (m - (len(modes) - 1) / 2) * width for g in range(len(groups))],
                   values, width, label=f"bypass {mode}")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(["\n".join(f"{a}={v}" for a, v in zip(others, key, strict=True))
                            for key in groups], fontsize=7)
        low = min(r["float_accuracy"] for r in rows) * 100
        ax.set_ylim(max(0, low - 5), 100)
        ax.set_ylabel("top-1 accuracy (%), float")
        ax.set_title(f"Bypass connections\n{_caption(space, rows)}", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        _save(fig, folder / "bypass.png")
    for label, front in fronts.items():
        _pareto_plot(plt, space, folder, rows, label, front)


def _pareto_plot(plt, space: Space, folder: Path, rows: list[dict], label: str,
                 front: dict) -> None:
    """The trials on ``label`` and its two fronts; points are numbered as the table's rows
    (``n``), and the accuracy axis spans the fronts (trials far below sit on its floor)."""
    running = [r for r in rows if r[f"{label}.runs"] is True]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    best_all = front["accuracy_vs_speed"] + front["accuracy_vs_size"]
    floor = max(0.0, min((p["golden_accuracy"] * 100 for p in best_all), default=0) - 3)
    for ax, name, x, xlabel in (
            (axes[0], "accuracy_vs_speed", "inferences_per_s", "inferences/s (engine, at Fmax)"),
            (axes[1], "accuracy_vs_size", "weight_bytes", "on-chip weight bytes")):
        if running:
            acc = [r[f"{label}.golden_accuracy"] * 100 for r in running]
            xs = [r[f"{label}.{x}"] for r in running]
            above = [i for i, a in enumerate(acc) if a >= floor]
            below = [i for i, a in enumerate(acc) if a < floor]
            ax.scatter([xs[i] for i in above], [acc[i] for i in above], color="0.6",
                       label="trials")
            if below:
                ax.scatter([xs[i] for i in below], [floor] * len(below), marker="v",
                           color="0.6", label=f"{len(below)} below {floor:.0f}%")
            best = front[name]
            ax.plot([p[x] for p in best], [p["golden_accuracy"] * 100 for p in best], "o-",
                    color="C3", label="Pareto front")
            for i in range(len(running)):
                ax.annotate(f"{running[i]['n']}", (xs[i], max(acc[i], floor)), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
            ax.set_ylim(floor - 0.5, 100.5)
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.text(0.5, 0.5, f"no trial runs on {label}", ha="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top-1 accuracy (%), golden model")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{label}: {len(running)} of {len(rows)} trial(s) run there (numbers: rows "
                 f"of results.csv)\n{_caption(space, rows)}", fontsize=10)
    fig.tight_layout()
    _save(fig, folder / f"pareto-{label.replace('/', '-')}.png")


def _axis_label(axis: str) -> str:
    return {"sr": "squeeze ratio (SR)", "pct_3x3": "share of 3x3 filters (pct_3x3)",
            "base_e": "base_e", "incr_e": "incr_e", "freq": "freq", "density": "density",
            "bits": "codebook bits"}.get(axis, axis)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomically(path, buf.getvalue())

