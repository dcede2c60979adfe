"""``fireforge sim``: a compiled program on real test images in the RTL simulation (cocotb on
the generated Verilog), every output integer compared with the golden model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...hw.config import DEFAULT_CONFIG
from ...hw.errors import FireforgeError
from . import Log, Result, optional, quiet

__all__ = ["SimReport", "simulate"]


@dataclass
class SimReport(Result):
    program: str
    model_hash: str
    config: str
    simulator: str
    bit_exact: bool
    #: where the RTL first differs from golden (layer, channel, position, values), or None
    first_mismatch: dict | None
    layers_checked: bool
    images: int
    cycles_per_inference: float
    #: MACs over the array's capacity during the convolutions
    mac_utilization: float | None
    mac_utilization_excluding_pooling: float
    mac_utilization_whole: float
    macs: int
    pes: int
    #: per layer: name, op, cycles (the RTL's counter), and MACs and utilization of convolutions
    layers: list
    predictions: list
    golden_predictions: list
    #: None where the data set's classes are not the model's
    accuracy: float | None
    sim_cycles_per_second: float | None
    seconds: dict
    trace: str | None = optional()


def simulate(program: str | Path, *, images: int = 1, simulator: str = "icarus",
             config: str = DEFAULT_CONFIG, data: str | None = None, check_layers: bool = True,
             trace: str | None = None, build_dir: str | Path = "build/sim",
             log: Log = quiet) -> SimReport:
    """Simulate ``program`` on the first ``images`` test images of ``data`` (default: its own
    data set) in ``simulator`` with the named accelerator ``config``. Raises when any
    integer differs from the golden model's."""
    import numpy as np

    from ...hw.config import config_by_name
    from ...hw.perf import utilization
    from ...hw.program import load_program
    from ...sim.runner import run_rtl
    from ..data import load_dataset

    prog = load_program(program)
    accel = config_by_name(config)
    c, size, _ = prog.input_shape
    name = data or prog.manifest.data
    dataset = load_dataset(name, size, c)
    x, labels = dataset.x_test[:images], dataset.y_test[:images]
    checked = ", every layer checked" if check_layers else ""
    log(f"simulating {program} on {len(x)} {name} test images with {simulator} ({config}: "
        f"{accel.macs} MACs){checked}")
    result = run_rtl(prog, accel, x, simulator, check_layers, trace, Path(build_dir), log=log)
    records = result["images"]
    cycles = np.array([r["layer_cycles"] for r in records], dtype=np.int64).mean(axis=0)
    total = float(np.mean([r["total_cycles"] for r in records]))
    use = utilization(accel, prog, cycles.tolist(), total)
    for row in use["layers"]:  # (the mean over the images, shown to a tenth of a cycle)
        row["cycles"] = round(row["cycles"], 1)
    bit_exact = all(r["bit_exact"] for r in records)
    mismatch = next((r["first_mismatch"] | {"image": r["image"]} for r in records
                     if not r["bit_exact"]), None)
    preds = [r["prediction"] for r in records]
    sim_cycles = sum(r["total_cycles"] for r in records)
    report = SimReport(
        program=str(program), model_hash=prog.model_hash, config=config, simulator=simulator,
        bit_exact=bit_exact, first_mismatch=mismatch, layers_checked=check_layers,
        images=len(records), cycles_per_inference=total,
        mac_utilization=use["mac_utilization"],
        mac_utilization_excluding_pooling=use["mac_utilization_excluding_pooling"],
        mac_utilization_whole=use["mac_utilization_whole"], macs=use["macs"], pes=accel.macs,
        layers=use["layers"], predictions=preds,
        golden_predictions=[r["golden_prediction"] for r in records],
        accuracy=(float((np.array(preds) == labels).mean())
                  if len(dataset.classes) == prog.manifest.num_classes else None),
        sim_cycles_per_second=(sim_cycles / result["sim_seconds"] if result["sim_seconds"]
                               else None),
        seconds={k: result[k] for k in ("generate_seconds", "build_seconds", "run_seconds")},
        trace=result.get("trace"))
    log(f"{'layer':<26} {'op':<8} {'cycles':>9} {'MACs':>10} {'util':>6}")
    for row in report.layers:
        util = f"{row['utilization'] * 100:5.1f}%" if "utilization" in row else ""
        log(f"{row['name']:<26} {row['op']:<8} {row['cycles']:>9,.0f} {row.get('macs', ''):>10}"
            f" {util:>6}")
    log(f"bit-exact: {'yes' if bit_exact else 'NO, first mismatch ' + json.dumps(mismatch)}")
    log(f"cycles per inference {total:,.0f}; MAC utilization "
        f"{report.mac_utilization * 100:.1f}% over convolutions, "
        f"{report.mac_utilization_excluding_pooling * 100:.1f}% excluding pooling, "
        f"{report.mac_utilization_whole * 100:.1f}% of all cycles; simulator "
        f"{report.sim_cycles_per_second or 0:,.0f} cycles/s")
    log(f"predictions {preds} (labels {labels.tolist()}); " + (
        f"accuracy {report.accuracy * 100:.1f}%" if report.accuracy is not None else
        f"no accuracy: {name} has {len(dataset.classes)} classes, the model "
        f"{prog.manifest.num_classes}"))
    if not bit_exact:
        raise FireforgeError(f"the RTL differs from the golden model: {json.dumps(mismatch)}")
    return report
