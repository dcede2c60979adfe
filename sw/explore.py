"""``fireforge explore``'s engine: the trials of a design space as Ray tasks, each written to the
output folder the moment it finishes, so an interrupted sweep resumes where it stopped.

A trial is one network of the space: trained (seeded), compressed (pruned, weights shared),
then compiled for each (board, configuration) of the space and measured there: whether it fits
and runs, the golden model's accuracy on the test images, cycles (the cycle model), weight
bytes, and inferences/s at the board's Fmax. Its steps reuse what a killed run left: the float
and compressed checkpoints count as done once their ``metrics.json`` exists.

The output folder::

    DIR/space.toml            the space as last run
    DIR/trials/ID/            one network: float/, compressed/, program-BOARD-CONFIG/, log.txt
    DIR/trials/ID/trial.json  written last, at once: the trial is done
    DIR/results.csv|json, DIR/pareto.json, DIR/plots/*.png   refreshed as trials finish
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..hw.errors import FireforgeError
from .checkpoint import check_out
from .explore_report import target_labels, write_atomically, write_results
from .space import Point, Space

__all__ = ["run_trial", "explore", "finished_trials", "check_explore_out", "TRIAL_FILE"]

TRIAL_FILE = "trial.json"


def check_explore_out(out: Path) -> None:
    """Refuse an ``out`` that is a file or a folder holding something other than a sweep (its
    trials are written beside whatever is there, and its results replaced)."""
    check_out(out, "space.toml", "sweep", "give an empty or new folder (or the folder of an "
              "earlier sweep to resume it)")


def finished_trials(out: Path) -> dict[str, dict]:
    """The trials of ``out`` that finished, by id (a damaged record counts as unfinished)."""
    done = {}
    for path in sorted((out / "trials").glob(f"*/{TRIAL_FILE}")):
        try:
            record = json.loads(path.read_text())
            done[record["id"]] = record
        except (ValueError, KeyError, TypeError):
            continue
    return done


# ------------------------------------------------------------------------- one trial (a task)
def run_trial(space: Space, point: Point, trial_dir: str) -> dict:
    """Train, compress, compile and measure ``point`` in ``trial_dir``; the trial's record
    (also written to ``trial_dir/trial.json``). Runs as a Ray task: it imports what it needs."""
    from .checkpoint import load_checkpoint
    from .commands.compress import compress
    from .commands.train import train
    from .data import load_dataset
    from .summary import summarize

    start = time.perf_counter()
    d = Path(trial_dir)
    d.mkdir(parents=True, exist_ok=True)
    log_file = (d / "log.txt").open("a")

    def log(text: str = "") -> None:
        log_file.write(text + "\n")
        log_file.flush()

    threads = max(1, int(space.cpus_per_trial))
    float_dir, comp_dir = d / "float", d / "compressed"
    try:
        trained = _step(float_dir, log, lambda: train(
            space.preset, space.data, float_dir, epochs=space.epochs, lr=space.lr,
            seed=space.seed,
            threads=threads, log=log, **space.model_overrides(point)))
        compressed = _step(comp_dir, log, lambda: compress(
            float_dir, point["density"], point["bits"], comp_dir,
            epochs_per_step=space.compress_epochs, finetune_epochs=space.compress_epochs,
            seed=space.seed, lr=space.lr, prune_by=point["prune_by"], log=log))
        config = load_checkpoint(float_dir).config
        summary = summarize(config)
        data = load_dataset(space.data, config.input_size, config.in_channels)
        targets = {f"{b}/{c}": _measure(space, b, c, float_dir, comp_dir, d, data, log)
                   for b, c in space.targets}
    finally:
        log_file.close()
    record = {"id": d.name, "point": point, "settings": space.settings(),
              "hardware": space.hardware(), "params": summary.params, "macs": summary.macs,
              "float_accuracy": trained["test_accuracy"],
              "compressed_accuracy": compressed["accuracy_after"],
              "density": compressed["density"], "compressed_bytes": compressed["total_bytes"],
              "targets": targets, "seconds": round(time.perf_counter() - start, 1)}
    write_atomically(d / TRIAL_FILE, json.dumps(record, indent=1) + "\n")
    return record


def _step(out: Path, log, run: Callable) -> dict:
    """A step's metrics: those a finished run left in ``out``, or ``run()``'s."""
    metrics = out / "metrics.json"
    if metrics.is_file():
        log(f"reusing {out}")
        return json.loads(metrics.read_text())
    if out.exists():  # (a step a killed run left half-written)
        shutil.rmtree(out)
    return run().to_dict()


def _measure(space: Space, board: str, config: str, float_dir: Path, comp_dir: Path, d: Path,
             data, log) -> dict:
    """Compile for ``board`` with ``config`` and measure; a network that does not fit or
    cannot run there is a result (``runs`` false, with the reason), not an error."""
    from ..boards.boards import board_spec
    from ..boards.fit import board_config, require_fit
    from ..hw.config import config_by_name
    from ..hw.perf import estimate
    from ..hw.program import PARAMETER_FILES, load_program
    from .commands.compile import compile_program
    from .golden import run_golden

    accel = config_by_name(config)
    # (a configuration without a codebook decoder runs the trained network as int8)
    source = comp_dir if accel.codebook_bits else float_dir
    row = {"board": board, "config": config,
           "weights": "shared" if accel.codebook_bits else "int8", "runs": False}
    program = d / f"program-{board}-{config}"
    spec = board_spec(board)
    try:
        compile_program(source, program, config=config, board=board, log=log)
        prog = load_program(program)
        chip = board_config(spec, prog)
        fit = require_fit(spec, prog, chip)
    except FireforgeError as e:
        row["reason"] = str(e)
        log(f"{board} ({config}): {e}")
        return row
    golden = run_golden(prog, data.x_test)
    files = prog.manifest.files
    row.update(runs=True, golden_accuracy=float((golden.predictions == data.y_test).mean()),
               cycles=estimate(chip, prog)["cycles_per_inference"],
               weight_bytes=sum(files[f]["bytes"] for f in PARAMETER_FILES),
               bram_blocks=fit["bram_blocks"], dsp=fit["dsp"])
    if space.fmax == "place":
        from ..boards.build import build_board

        report = build_board(spec, prog, d / f"place-{board}-{config}", 1, None, log=log,
                             place_only=True)
        row.update(fmax_mhz=report["fmax_mhz"], fmax_source="place-only build of this trial")
    return row


# ------------------------------------------------------------------------------- the sweep
def explore(space: Space, out: str | Path, *, address: str | None = None,
            log: Callable[[str], None] = lambda text="": None) -> dict[str, dict]:
    """Run ``space``'s trials not already finished in ``out`` as Ray tasks (a local Ray on
    this machine's cores, or the cluster at ``address``); every finished trial is written at
    once and the results refreshed. Returns the space's finished trials by id."""
    from .cluster import TaskPool, ray_session

    out = Path(out)
    check_explore_out(out)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    write_atomically(out / "space.toml", _toml(space.source))
    grid = {space.trial_id(p): p for p in space.grid()}
    done = {i: r for i, r in finished_trials(out).items()
            if i in grid and r.get("hardware") == space.hardware()}
    if done:
        log(f"{len(done)} trial(s) of this space already finished in {out}: not run again")

    todo_grid = [i for i in grid if i not in done]
    wanted = len(grid) if space.sampler == "grid" else min(space.trials, len(grid))
    if len(done) >= wanted or not todo_grid:
        write_results(space, out, list(done.values()))
        return done
    with ray_session(address) as ray:
        cpus = ray.cluster_resources().get("CPU", 1)
        parallel = max(1, int(cpus // space.cpus_per_trial))
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        log(f"{wanted - len(done)} trial(s) to run, {parallel} at a time on {cpus:g} CPU(s) "
            f"of {nodes} Ray node(s); each writes to {out}/trials/ID")
        pool = TaskPool(ray, run_trial, space.cpus_per_trial)
        started = time.perf_counter()

        def submit(trial_id: str) -> None:
            pool.submit(trial_id, space, grid[trial_id], str(out / "trials" / trial_id))

        def report(record: dict, node: str) -> None:
            # (the trial wrote its record where it ran; the node is known here)
            record["node"] = node
            write_atomically(out / "trials" / record["id"] / TRIAL_FILE,
                              json.dumps(record, indent=1) + "\n")
            done[record["id"]] = record
            write_results(space, out, list(done.values()))
            log(f"[{len(done)}/{wanted}] {_describe(space, record)} ({record['seconds']:.0f} s, "
                f"node {node[:8]}, {time.perf_counter() - started:.0f} s into the sweep)")

        if space.sampler == "grid":
            for trial_id in todo_grid:
                submit(trial_id)
            while pool:
                _, record, node = pool.next()
                report(record, node)
        else:
            _nsga2(space, grid, done, wanted, parallel, pool, submit, report)
    return done


def _describe(space: Space, record: dict) -> str:
    point = ", ".join(f"{a}={record['point'][a]}" for a in space.swept) or "the network"
    parts = [f"float {record['float_accuracy'] * 100:.1f}%"]
    for key, name in target_labels(space).items():
        t = record["targets"][key]
        parts.append(f"{name} {t['golden_accuracy'] * 100:.1f}% {t['cycles']:,} cycles"
                     if t["runs"] else f"{name} does not run")
    return f"{point}: " + ", ".join(parts)


def objective_values(space: Space, record: dict) -> list[float]:
    """The values NSGA-II maximizes for ``record``, on the space's first (board,
    configuration): golden accuracy, inferences/s at the target clock, minus weight bytes (a
    network that does not run there scores worst)."""
    board, config = space.targets[0]
    t = record["targets"][f"{board}/{config}"]
    if not t["runs"]:
        return [0.0 if o != "size" else -float(2 ** 40) for o in space.objectives]
    from ..boards.boards import board_spec

    mhz = t.get("fmax_mhz") or board_spec(board).target_mhz
    value = {"accuracy": t["golden_accuracy"], "speed": mhz * 1e6 / t["cycles"],
             "size": -float(t["weight_bytes"])}
    return [value[o] for o in space.objectives]


def _nsga2(space: Space, grid: dict, done: dict, wanted: int, parallel: int, pool, submit,
           report) -> None:
    """Optuna's NSGA-II chooses the points: it learns from every finished trial (those of an
    earlier run included) and asks for the next while ``parallel`` run."""
    try:
        import optuna
    except ImportError:
        raise FireforgeError("sampler = 'nsga2' needs Optuna: pip install 'optuna>=4,<6' "
                             "(make setup does)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    swept = space.swept
    dists = {a: optuna.distributions.CategoricalDistribution(space.axes[a]) for a in swept}
    study = optuna.create_study(
        directions=["maximize"] * len(space.objectives),
        sampler=optuna.samplers.NSGAIISampler(population_size=max(2, min(wanted, 8)),
                                              seed=space.seed))
    id_of = {json.dumps([p[a] for a in swept]): i for i, p in grid.items()}
    for record in done.values():
        study.add_trial(optuna.trial.create_trial(
            params={a: record["point"][a] for a in swept}, distributions=dists,
            values=objective_values(space, record)))
    waiting: dict[str, list] = {}  # trial id -> the Optuna trials that asked for it
    asked = 0
    while True:
        while (len(pool) < parallel and len(done) + len(pool) < wanted
               and asked < 20 * wanted and len(done) + len(pool) < len(grid)):
            trial = study.ask(dists)
            asked += 1
            trial_id = id_of[json.dumps([trial.params[a] for a in swept])]
            if trial_id in done:  # (a point already measured: its values at once)
                study.tell(trial, objective_values(space, done[trial_id]))
            elif trial_id in waiting:
                waiting[trial_id].append(trial)
            else:
                waiting[trial_id] = [trial]
                submit(trial_id)
        if not pool:
            return
        trial_id, record, node = pool.next()
        report(record, node)
        for trial in waiting.pop(trial_id):
            study.tell(trial, objective_values(space, record))


def _toml(doc: dict) -> str:
    """``doc`` (a parsed space) as TOML again: tables of scalars and lists."""
    lines = []
    for table, values in doc.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)
