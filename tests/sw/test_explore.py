"""``fireforge explore``: a bad space is one line before any trial; the grid and trial names;
the Pareto front; NSGA-II's loop; a real sweep on Ray that resumes without rerunning."""

import json

import pytest
from fireforge.hw.errors import FireforgeError
from fireforge.sw.explore import TRIAL_FILE, _nsga2, explore, objective_values
from fireforge.sw.explore_report import pareto_front
from fireforge.sw.model import preset_config
from fireforge.sw.space import load_space, parse_space

GOOD = {"sweep": {"preset": "squeezenet_tiny", "data": "digits"},
        "network": {"sr": [0.125, 0.25], "bypass": ["none", "simple"]},
        "hardware": {"boards": ["icebreaker"]}}


def _with(**tables) -> dict:
    doc = {k: dict(v) for k, v in GOOD.items()}
    for table, changes in tables.items():
        doc.setdefault(table, {}).update(changes)
    return doc


@pytest.mark.parametrize("doc, message", [
    ({**GOOD, "extra": {}}, "unknown key 'extra'"),
    (_with(sweep={"epoch": 3}), r"\[sweep\]: unknown key 'epoch'; known keys: preset, data"),
    (_with(network={"squeeze_ratio": [0.5]}), r"\[network\]: unknown key 'squeeze_ratio'"),
    (_with(network={"sr": []}), r"\[network\] sr = \[\]: an empty range"),
    (_with(network={"sr": [0.5, 0.5]}), "listed twice"),
    (_with(network={"sr": ["big"]}), r"sr = 'big': expected int or float"),
    (_with(network={"bypass": "sideways"}), "bypass = 'sideways': one of none, simple, complex"),
    (_with(network={"pct_3x3": 0.01}), "the point sr=0.125, bypass=none is not a network: "
                                       "pct_3x3=0.01 leaves Fire module 0 with 0 of 32"),
    (_with(compression={"density": 0}), r"density = 0: in \(0, 1\]"),
    (_with(compression={"prune_by": "random"}), "prune_by = 'random': one of roles, sens"),
    (_with(hardware={"boards": ["icebraker"]}), "no board 'icebraker'; the boards are "
                                                "icebreaker"),
    (_with(hardware={"boards": []}), "boards: name at least one board"),
    (_with(hardware={"configs": ["ecp5"]}), "icebreaker takes none of the configs"),
    (_with(hardware={"fmax": "guess"}), "fmax = 'guess': one of measured, place"),
    (_with(sweep={"sampler": "nsga2"}), "needs trials = N"),
    (_with(sweep={"trials": 4}), "trials is for sampler = 'nsga2'"),
    (_with(sweep={"objectives": ["accuracy", "beauty"]}), "objectives"),
    (_with(sweep={"data": "no/such/folder"}), "neither a built-in data set"),
    (_with(sweep={"preset": "squeezenet2"}), "unknown preset 'squeezenet2'"),
    (_with(sweep={"preset": "squeezenet1_0"}), "cannot run on the accelerator"),
    ({"sweep": {"data": "digits"}, "hardware": {"boards": ["icebreaker"]}}, "needs preset"),
])
def test_a_bad_space_is_one_line(doc, message):
    with pytest.raises(FireforgeError, match=message) as e:
        parse_space(doc, "s.toml")
    assert "\n" not in str(e.value)


def test_the_grid_and_the_preset_defaults():
    space = parse_space(_with(compression={"bits": [2, 4]}))
    assert space.swept == ["sr", "bypass", "bits"]
    grid = space.grid()
    assert len(grid) == 8 and len({space.trial_id(p) for p in grid}) == 8
    # an axis left out takes the preset's own metaparameter: sr=0.125 is the tiny preset
    tiny = preset_config("squeezenet_tiny")
    assert space.model_overrides(grid[0])["fires"] == tiny.fires
    assert space.targets == (("icebreaker", "up5k"),)
    # the name of a trial changes with what its network depends on, not with the hardware
    again = parse_space(_with(compression={"bits": [2, 4]},
                              hardware={"boards": ["ulx3s-85f"]}))
    assert again.trial_id(grid[0]) == space.trial_id(grid[0])
    assert parse_space(_with(sweep={"epochs": 3})).trial_id(grid[0]) != space.trial_id(grid[0])


def test_the_pareto_front():
    points = [(0.9, 10.0), (0.8, 20.0), (0.85, 5.0), (0.7, 20.0), (0.95, 1.0)]
    assert pareto_front(points) == [4, 0, 1]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]


class _FakePool:
    """Runs a 'trial' at once: accuracy grows with sr, speed falls."""

    def __init__(self):
        self.queue, self.runs = [], []

    def __len__(self):
        return len(self.queue)

    def submit(self, trial_id, point):
        self.queue.append((trial_id, point))
        self.runs.append(trial_id)

    def next(self):
        trial_id, p = self.queue.pop(0)
        return trial_id, {"id": trial_id, "point": p, "targets": {"icebreaker/up5k": {
            "runs": True, "golden_accuracy": p["sr"], "cycles": int(1e6 * p["sr"]),
            "weight_bytes": 1}}}, "node"


def test_nsga2_runs_distinct_points_and_learns_from_finished_ones():
    space = parse_space(_with(sweep={"sampler": "nsga2", "trials": 5},
                              network={"sr": [0.125, 0.25, 0.5, 0.75], "bypass": "none"}))
    grid = {space.trial_id(p): p for p in space.grid()}
    done, pool = {}, _FakePool()

    def report(record, node):
        done[record["id"]] = record

    # five asked of a grid of four: every point once, none twice
    _nsga2(space, grid, done, 4, 2, pool, lambda i: pool.submit(i, grid[i]), report)
    assert sorted(pool.runs) == sorted(grid) and len(done) == 4
    assert objective_values(space, done[pool.runs[0]])[0] == grid[pool.runs[0]]["sr"]
    # resumed with all of them finished: nothing runs again
    pool2 = _FakePool()
    _nsga2(space, grid, done, 4, 2, pool2, lambda i: pool2.submit(i, grid[i]), report)
    assert pool2.runs == []


def test_a_sweep_on_ray_resumes_without_rerunning(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('[sweep]\npreset = "squeezenet_tiny"\ndata = "digits"\nepochs = 1\n'
                     'compress_epochs = 1\n[network]\nbypass = ["none", "simple"]\n'
                     '[hardware]\nboards = ["icebreaker", "ulx3s-12f"]\n')
    out = tmp_path / "sweep"
    lines = []
    records = explore(load_space(space), out, log=lines.append)
    assert len(records) == 2 and any("2 trial(s) to run" in line for line in lines)
    by_bypass = {r["point"]["bypass"]: r for r in records.values()}
    # the UP5K configuration has no bypass adder: a result, with its reason, not an error
    ice = by_bypass["simple"]["targets"]["icebreaker/up5k"]
    assert not ice["runs"] and "add" in ice["reason"]
    assert by_bypass["none"]["targets"]["icebreaker/up5k"]["runs"]
    for r in records.values():
        t = r["targets"]["ulx3s-12f/small"]
        assert t["runs"] and t["cycles"] > 0 and 0 <= t["golden_accuracy"] <= 1
        assert r["node"]
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert [row["bypass"] for row in rows] == ["none", "simple"]
    assert rows[0]["icebreaker.inferences_per_s"] > 0
    assert (out / "results.csv").read_text().count("\n") == 3
    for plot in ("bypass.png", "pareto-icebreaker.png", "pareto-ulx3s-12f.png"):
        assert (out / "plots" / plot).stat().st_size > 1000

    # again: nothing reruns (not even Ray starts)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob(f"trials/*/{TRIAL_FILE}")}
    lines.clear()
    assert explore(load_space(space), out, log=lines.append).keys() == records.keys()
    assert lines == ["2 trial(s) of this space already finished in " + str(out) +
                     ": not run again"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # a trial killed before its record: only it runs again, its finished steps reused
    killed = next(iter(stamps))
    killed.unlink()
    lines.clear()
    assert len(explore(load_space(space), out, log=lines.append)) == 2
    assert any("1 trial(s) to run" in line for line in lines)
    assert "reusing" in (killed.parent / "log.txt").read_text()
    other = next(p for p in stamps if p != killed)
    assert other.stat().st_mtime_ns == stamps[other]


def test_explore_refuses_an_out_of_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(FireforgeError, match="holds other files and no sweep"):
        explore(parse_space(GOOD), tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"
