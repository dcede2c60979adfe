"""``fireforge compile``: a checkpoint lowered to the accelerator's Program and memory images,
with its fit report and the cycle model's estimate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...hw.config import DEFAULT_CONFIG
from ...hw.errors import FireforgeError
from . import Log, Result, quiet

__all__ = ["CompileResult", "compile_program", "budget_for"]


@dataclass
class CompileResult(Result):
    program: str
    model_hash: str
    layers: int
    act_bytes: int
    weight_bytes: int
    #: the fit report (:func:`fireforge.sw.compiler.fit_report`)
    fit: dict
    config: str
    cycles_per_inference: int
    mac_utilization: float
    #: zero channels the lanes needed (:mod:`fireforge.sw.padding`), their bytes and cycles;
    #: None when none did
    padding: dict | None = None


def budget_for(board: str | None = None, budget_kib: float | None = None):
    """The memory budget of ``board``'s device, or of ``budget_kib`` KiB, or None."""
    from ..compiler import Budget

    if board and budget_kib:
        raise FireforgeError("give --board or --budget-kib, not both")
    if board:
        from ...boards.boards import board_spec

        dev = board_spec(board).dev
        return Budget(dev.memory_bytes, f"{board} ({dev.name})")
    if budget_kib:
        return Budget(int(budget_kib * 1024), f"a budget of {budget_kib:g} KiB")
    return None


def compile_program(checkpoint: str | Path, out: str | Path, *, config: str | None = None,
                    board: str | None = None, budget_kib: float | None = None,
                    data: str | None = None, calibration: int = 500,
                    log: Log = quiet) -> CompileResult:
    """Calibrate on ``calibration`` training images, quantize, plan memory and pack the
    program for the named accelerator ``config`` (default: the board's, else
    :data:`~fireforge.hw.config.DEFAULT_CONFIG`) into ``out``; check its fit against
    ``board``'s device or ``budget_kib`` when given. Raises, writing nothing, when it does not
    fit or the configuration cannot run the network; both are checked before calibration."""
    from ...hw.config import config_by_name
    from ...hw.perf import estimate
    from ...hw.program import load_program
    from ..checkpoint import load_checkpoint
    from ..compiler import compile_checkpoint, format_fit
    from .compress import checkpoint_data

    budget = budget_for(board, budget_kib)
    if board:
        from ...boards.boards import board_spec

        spec = board_spec(board)
        config = config or spec.default_config
        if config not in spec.configs:
            raise FireforgeError(f"--config {config} does not suit {board} ({spec.device}): "
                                 f"compile with --config {' or '.join(spec.configs)}")
    config = config or DEFAULT_CONFIG
    accel = config_by_name(config)
    ckpt = load_checkpoint(checkpoint)
    manifest = compile_checkpoint(
        ckpt, lambda: checkpoint_data(ckpt, data).x_train[:calibration], out, budget,
        accel.columns, ckpt.shared, source=str(checkpoint), accelerator=config,
        banks=accel.act_banks, bank_bytes=accel.bank_bytes, lanes=accel.rows, target=accel)
    perf = estimate(accel, load_program(out))
    fit = manifest.fit
    layers = manifest.layers
    log(f"{'layer':<26} {'op':<8} {'out':>12} {'bits':>4} {'density':>7} {'storage':>7} "
        f"{'weight B':>9} {'acc bits':>8} {'shift':>5}")
    for layer in layers:
        shape = "x".join(map(str, layer["out_shape"]))
        bits = layer.get("bits", "")
        dens = f"{layer['density'] * 100:.0f}%" if "density" in layer else ""
        size = f"{layer['weight_bytes']:,}" if "weight_bytes" in layer else ""
        log(f"{layer['name']:<26} {layer['op']:<8} {shape:>12} {bits!s:>4} {dens:>7} "
            f"{layer.get('encoding', ''):>7} {size:>9} {layer['acc_bits']:>8} "
            f"{layer['shift']:>5}")
    log(format_fit(fit))
    padding = _padding_cost(accel, load_program(out), perf) if manifest.padding else None
    if padding:
        log(f"channel padding for {accel.rows} input lanes: {padding['zero_channels']} zero "
            f"channels in {len(padding['layers'])} layers cost "
            f"{padding['bytes'].get('total', 0):,} B on chip and {padding['cycles']:,} cycles "
            f"({padding['cycles'] / perf['cycles_per_inference'] * 100:.1f}% of the inference)")
    log(f"cycle model ({config}, {accel.macs} MACs): {perf['cycles_per_inference']:,} cycles "
        f"per inference, MAC utilization {perf['mac_utilization'] * 100:.1f}% over convolutions")
    log(f"model {manifest.model_hash[:16]}: {len(layers)} operations, program in {out}")
    return CompileResult(
        program=str(out), model_hash=manifest.model_hash, layers=len(layers),
        act_bytes=manifest.act_bytes,
        weight_bytes=sum(manifest.files[f]["bytes"] for f in ("weights.bin", "masks.bin")),
        fit=fit, config=config, cycles_per_inference=perf["cycles_per_inference"],
        mac_utilization=perf["mac_utilization"], padding=padding)


def _padding_cost(accel, program, perf: dict) -> dict:
    """The manifest's padding report with its cycles: the cycle model of the program against
    the same layers at their real channel counts."""
    from types import SimpleNamespace

    from ...hw.isa import Descriptor
    from ...hw.perf import layer_cycles

    extra = 0
    for layer, d, row in zip(program.layers, program.descriptors, perf["layers"], strict=True):
        if "real_channels" in layer:
            real = SimpleNamespace(**{name: getattr(d, name) for name, _ in Descriptor})
            real.in_c, real.out_c = layer["real_channels"]
            extra += row["cycles"] - layer_cycles(accel, real)
    return {**program.manifest.padding, "cycles": extra}
