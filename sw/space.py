"""A design space for ``fireforge explore``: read from TOML, checked whole before any trial.

::

    [sweep]                      # how every trial is run
    preset = "squeezenet_tiny"   # the base network; the metaparameters replace its Fire modules
    data = "digits"              # digits, mnist5k or a folder of class folders
    seed = 0                     # training seed of every trial
    epochs = 20                  # training epochs (default: the preset's recipe)
    lr = 0.002                   # peak learning rate (default: the preset's recipe)
    compress_epochs = 3          # per prune step and codebook fine-tuning (default: recipe / 4)
    sampler = "grid"             # every point, or "nsga2": Optuna's NSGA-II picks `trials`
    trials = 16                  # nsga2 only
    objectives = ["accuracy", "speed"]   # nsga2 only, on the first board; or "size"
    cpus_per_trial = 1           # what each trial (a Ray task) asks the cluster for

    [network]                    # a value, or a list of values (an axis of the sweep)
    sr = [0.125, 0.25, 0.5, 0.75]        # squeeze ratio (paper section 5.2)
    pct_3x3 = [0.25, 0.75]               # share of 3x3 expand filters (5.3)
    bypass = ["none", "simple"]          # residual connections (6)
    # base_e, incr_e, freq: default to the preset's own

    [compression]
    density = 0.4                # share of weights kept
    bits = 4                     # codebook index bits
    prune_by = "roles"           # or "sensitivity": how the layers share the density (7.1)

    [hardware]
    boards = ["icebreaker", "ulx3s-85f"]
    configs = ["small", "ecp5"]  # array shapes (default: each board's own); a board is
                                 # evaluated with each listed configuration it takes
    fmax = "measured"            # the board's last measured build, or "place": a place-only
                                 # build of every trial (minutes each)

The grid is the product of every list; each point is one :class:`Point` (its values by name).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..hw.errors import FireforgeError

__all__ = ["Space", "Point", "load_space", "parse_space", "NETWORK_AXES", "COMPRESSION_AXES",
           "OBJECTIVES"]

#: metaparameters of the network (section 5) and the bypass mode (section 6)
NETWORK_AXES = ("base_e", "incr_e", "pct_3x3", "freq", "sr", "bypass")
COMPRESSION_AXES = ("density", "bits", "prune_by")
#: what NSGA-II maximizes, on the first board: golden accuracy, inferences/s, -weight bytes
OBJECTIVES = ("accuracy", "speed", "size")
SAMPLERS = ("grid", "nsga2")
FMAX = ("measured", "place")

_SWEEP_KEYS = {"preset": str, "data": str, "seed": int, "epochs": int, "lr": (int, float),
               "compress_epochs": int,
               "sampler": str, "trials": int, "objectives": list, "cpus_per_trial": (int, float)}
_HARDWARE_KEYS = {"boards": list, "configs": list, "fmax": str}
_AXIS_TYPES = {"base_e": int, "incr_e": int, "freq": int, "pct_3x3": (int, float),
               "sr": (int, float), "bypass": str, "density": (int, float), "bits": int,
               "prune_by": str}

#: a point's values by axis name
Point = dict


@dataclass(frozen=True)
class Space:
    """A checked design space: the settings shared by every trial and the axes swept."""

    preset: str
    data: str
    #: axis -> the values it takes (one value: fixed); network and compression axes
    axes: dict
    boards: tuple[str, ...]
    #: (board, accelerator configuration) pairs each trial is compiled and measured for
    targets: tuple[tuple[str, str], ...]
    seed: int = 0
    epochs: int | None = None
    lr: float | None = None
    compress_epochs: int | None = None
    sampler: str = "grid"
    trials: int | None = None
    objectives: tuple[str, ...] = ("accuracy", "speed")
    cpus_per_trial: float = 1
    fmax: str = "measured"
    source: dict = field(default_factory=dict, compare=False)

    @property
    def swept(self) -> list[str]:
        """The axes with more than one value."""
        return [a for a, values in self.axes.items() if len(values) > 1]

    def grid(self) -> list[Point]:
        names = list(self.axes)
        return [dict(zip(names, values, strict=True))
                for values in itertools.product(*self.axes.values())]

    def settings(self) -> dict:
        """What a trial's training and compression depend on beside its point."""
        settings = {"preset": self.preset, "data": self.data, "seed": self.seed,
                    "epochs": self.epochs, "lr": self.lr,
                    "compress_epochs": self.compress_epochs}
        # (a setting left to its default is left out: a trial's name outlives new settings)
        return {k: v for k, v in settings.items() if v is not None}

    def hardware(self) -> dict:
        """What a trial's hardware measurements depend on."""
        return {"targets": [list(t) for t in self.targets], "fmax": self.fmax}

    def trial_id(self, point: Point) -> str:
        """A name for ``point``'s trial that changes with everything its network depends on
        (so a changed space reuses exactly the trials it still holds)."""
        key = json.dumps({"point": point, **self.settings()}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def model_overrides(self, point: Point) -> dict:
        """The :class:`~fireforge.sw.model.SqueezeNetConfig` fields ``point`` sets."""
        from .model import metaparameters, preset_config

        base = preset_config(self.preset)
        meta = {a: point[a] for a in ("base_e", "incr_e", "pct_3x3", "freq", "sr")}
        return {"fires": metaparameters(**meta, num_fires=len(base.fires)),
                "bypass": point["bypass"]}


def load_space(path: str | Path) -> Space:
    """Read and check the space in ``path``; every problem is one :class:`FireforgeError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FireforgeError(f"space file {path} does not exist") from None
    except IsADirectoryError:
        raise FireforgeError(f"space file {path} is a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise FireforgeError(f"space file {path} is not text (a TOML file)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FireforgeError(f"space file {path} is not valid TOML: {e}") from None
    return parse_space(doc, str(path))


def _check_keys(table: dict, known, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise FireforgeError(f"{where}: unknown key {unknown[0]!r}; known keys: "
                             f"{', '.join(known)}")


def _typed(value, kind, where: str):
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise FireforgeError(f"{where} = {value!r}: expected {names}")
    return value


def parse_space(doc: dict, name: str = "space") -> Space:
    """A :class:`Space` from the parsed TOML document ``doc`` (``name`` prefixes errors)."""
    from .commands.compress import PRUNE_BY
    from .model import Bypass, metaparameters_of, preset_config
    from .quant import unsupported

    _check_keys(doc, ("sweep", "network", "compression", "hardware"), name)
    for table in doc:
        if not isinstance(doc[table], dict):
            raise FireforgeError(f"{name}: {table} must be a table ([{table}])")
    sweep, hardware = doc.get("sweep", {}), doc.get("hardware", {})
    _check_keys(sweep, _SWEEP_KEYS, f"{name} [sweep]")
    _check_keys(hardware, _HARDWARE_KEYS, f"{name} [hardware]")
    _check_keys(doc.get("network", {}), NETWORK_AXES, f"{name} [network]")
    _check_keys(doc.get("compression", {}), COMPRESSION_AXES, f"{name} [compression]")
    for key, kind in _SWEEP_KEYS.items():
        if key in sweep:
            _typed(sweep[key], kind, f"{name} [sweep] {key}")
    for key in ("preset", "data"):
        if key not in sweep:
            raise FireforgeError(f"{name} [sweep] needs {key} (e.g. {key} = "
                                 f"{'squeezenet_tiny' if key == 'preset' else 'digits'!r})")
    preset = sweep["preset"]
    base = preset_config(preset)
    defaults = metaparameters_of(base.fires) or {}
    defaults = {**{k: v for k, v in defaults.items() if k in NETWORK_AXES},
                "bypass": base.bypass.value, "density": 0.4, "bits": 4, "prune_by": "roles"}

    axes = {}
    for table, names in (("network", NETWORK_AXES), ("compression", COMPRESSION_AXES)):
        given = doc.get(table, {})
        for axis in names:
            where = f"{name} [{table}] {axis}"
            if axis not in given:
                if axis not in defaults:
                    raise FireforgeError(f"{where}: preset {preset} is not built from the "
                                         f"metaparameters, so the space must give {axis}")
                axes[axis] = [defaults[axis]]
                continue
            values = given[axis] if isinstance(given[axis], list) else [given[axis]]
            if not values:
                raise FireforgeError(f"{where} = []: an empty range; give at least one value")
            for v in values:
                _typed(v, _AXIS_TYPES[axis], where)
            if len(set(values)) != len(values):
                raise FireforgeError(f"{where} = {values}: a value is listed twice")
            axes[axis] = values
    for v in axes["bypass"]:
        if v not in {b.value for b in Bypass}:
            raise FireforgeError(f"{name} [network] bypass = {v!r}: one of "
                                 f"{', '.join(b.value for b in Bypass)}")
    for v in axes["density"]:
        if not 0 < v <= 1:
            raise FireforgeError(f"{name} [compression] density = {v}: in (0, 1]")
    for v in axes["prune_by"]:
        if v not in PRUNE_BY:
            raise FireforgeError(f"{name} [compression] prune_by = {v!r}: one of "
                                 f"{', '.join(PRUNE_BY)}")
    for v in axes["bits"]:
        if not 1 <= v <= 8:
            raise FireforgeError(f"{name} [compression] bits = {v}: 1 to 8")

    sampler = sweep.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise FireforgeError(f"{name} [sweep] sampler = {sampler!r}: one of "
                             f"{', '.join(SAMPLERS)}")
    trials = sweep.get("trials")
    if sampler == "nsga2" and not trials:
        raise FireforgeError(f"{name} [sweep] sampler = 'nsga2' needs trials = N (how many "
                             f"networks to train)")
    if sampler == "grid" and trials is not None:
        raise FireforgeError(f"{name} [sweep] trials is for sampler = 'nsga2'; the grid runs "
                             f"every point")
    if trials is not None and trials < 1:
        raise FireforgeError(f"{name} [sweep] trials = {trials}: at least 1")
    objectives = tuple(sweep.get("objectives", ("accuracy", "speed")))
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or not objectives or len(set(objectives)) != len(objectives):
        raise FireforgeError(f"{name} [sweep] objectives = {list(objectives)}: distinct names "
                             f"from {', '.join(OBJECTIVES)}")
    for key in ("epochs", "compress_epochs"):
        if key in sweep and sweep[key] < 1:
            raise FireforgeError(f"{name} [sweep] {key} = {sweep[key]}: at least 1")
    if "lr" in sweep and not 0 < sweep["lr"] < 1:
        raise FireforgeError(f"{name} [sweep] lr = {sweep['lr']}: a learning rate in (0, 1)")
    cpus = sweep.get("cpus_per_trial", 1)
    if cpus <= 0:
        raise FireforgeError(f"{name} [sweep] cpus_per_trial = {cpus}: more than 0")
    _check_data(sweep["data"], f"{name} [sweep] data")

    boards, targets = _targets(hardware, name)
    fmax = _typed(hardware.get("fmax", "measured"), str, f"{name} [hardware] fmax")
    if fmax not in FMAX:
        raise FireforgeError(f"{name} [hardware] fmax = {fmax!r}: one of {', '.join(FMAX)}")

    space = Space(preset=preset, data=sweep["data"], axes=axes, boards=boards, targets=targets,
                  seed=sweep.get("seed", 0), epochs=sweep.get("epochs"), lr=sweep.get("lr"),
                  compress_epochs=sweep.get("compress_epochs"), sampler=sampler, trials=trials,
                  objectives=objectives, cpus_per_trial=cpus, fmax=fmax, source=doc)
    # every network of the space is built here, so a point that cannot be is refused now,
    # not after the other trials have trained
    for point in space.grid():
        label = ", ".join(f"{a}={point[a]}" for a in space.swept) or "the only point"
        try:
            config = base.replace(**space.model_overrides(point))
        except FireforgeError as e:
            raise FireforgeError(f"{name}: the point {label} is not a network: {e}") from None
        problem = unsupported(config)
        if problem:
            raise FireforgeError(f"{name}: the point {label} cannot run on the accelerator: "
                                 f"{problem}")
    return space


def _check_data(data: str, where: str) -> None:
    from .data import BUILTIN

    if data not in BUILTIN and not Path(data).is_dir():
        raise FireforgeError(f"{where} = {data!r}: neither a built-in data set "
                             f"({', '.join(BUILTIN)}) nor a folder")


def _targets(hardware: dict, name: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    from ..boards.boards import BOARD_SPECS, board_spec
    from ..hw.config import CONFIGS

    boards = hardware.get("boards")
    if not boards:
        raise FireforgeError(f"{name} [hardware] boards: name at least one board (fireforge "
                             f"boards lists them: {', '.join(BOARD_SPECS)})")
    for b in boards:
        _typed(b, str, f"{name} [hardware] boards")
        if b not in BOARD_SPECS:
            raise FireforgeError(f"{name} [hardware] boards: no board {b!r}; the boards are "
                                 f"{', '.join(BOARD_SPECS)}")
    if len(set(boards)) != len(boards):
        raise FireforgeError(f"{name} [hardware] boards = {boards}: a board is listed twice")
    configs = hardware.get("configs")
    if configs is not None:
        if not configs:
            raise FireforgeError(f"{name} [hardware] configs = []: an empty range; leave it out "
                                 f"for each board's own configuration")
        for c in configs:
            _typed(c, str, f"{name} [hardware] configs")
            if c not in CONFIGS:
                raise FireforgeError(f"{name} [hardware] configs: no configuration {c!r}; "
                                     f"known: {', '.join(CONFIGS)}")
    targets = []
    for b in boards:
        spec = board_spec(b)
        taken = [c for c in (configs or [spec.default_config]) if c in spec.configs]
        if not taken:
            raise FireforgeError(f"{name} [hardware]: {b} takes none of the configs {configs} "
                                 f"(it runs {', '.join(spec.configs)})")
        targets += [(b, c) for c in taken]
    return tuple(boards), tuple(targets)
