"""The ``fireforge`` command.

Every subcommand returns one JSON-serializable dict. With ``--json`` that dict is the only thing
printed on stdout (progress bars and notes go to stderr); without it the command prints a report
for people. A :class:`FireforgeError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import FireforgeError

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1

_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], dict], str]] = {}


def command(name: str, help: str):
    def register(fn):
        _COMMANDS[name] = (fn, help)
        return fn
    return register


class Reporter:
    """Human output: stdout normally, stderr under ``--json`` (stdout then holds only JSON)."""

    def __init__(self, json_mode: bool):
        self.stream = sys.stderr if json_mode else sys.stdout

    def __call__(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _model_overrides(args) -> dict:
    out = {}
    for key in ("num_classes", "in_channels", "input_size", "bypass"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    return out


def _add_model_options(p: argparse.ArgumentParser, *, classes: bool = True) -> None:
    from .model import Bypass, list_models

    p.add_argument("--preset", required=True, metavar="NAME",
                   help=f"model preset: {', '.join(list_models())}")
    if classes:
        p.add_argument("--num-classes", type=_positive_int, help="override the class count")
    p.add_argument("--in-channels", type=int, choices=(1, 3), help="1 (gray) or 3 (RGB)")
    p.add_argument("--input-size", type=_positive_int, help="override the input side in pixels")
    p.add_argument("--bypass", choices=[b.value for b in Bypass],
                   help="residual connections (paper section 6)")


# --------------------------------------------------------------------------------------------
@command("model", "per-layer table of a preset: shapes, params, MACs, activations, storage")
def _cmd_model(args) -> dict:
    from .model import create_model
    from .summary import summarize

    model = create_model(args.preset, weights=args.weights, **_model_overrides(args))
    summary = summarize(model)
    say = Reporter(args.json)
    say(f"{args.preset}: {model.config.in_channels}x{model.config.input_size}x"
        f"{model.config.input_size} input, {model.config.num_classes} classes, bypass "
        f"{model.config.bypass.value}")
    if args.weights:
        say(f"weights {args.weights}: loaded (strict)")
    say(summary.format_table())
    return {"preset": args.preset, "config": model.config.to_dict(), **summary.to_dict()}


def _setup_model(p):
    _add_model_options(p)
    p.add_argument("--weights", metavar="FILE",
                   help="check that a state_dict (e.g. torchvision's) loads strictly")


# --------------------------------------------------------------------------------------------
@command("train", "train a preset on an offline data set and write a checkpoint")
def _cmd_train(args) -> dict:
    from .checkpoint import Checkpoint, save_checkpoint, write_json
    from .data import load_dataset
    from .model import create_model, preset_config
    from .train import recipe, seed_everything, train

    say = Reporter(args.json)
    overrides = _model_overrides(args)
    base = preset_config(args.preset, **overrides)
    data = load_dataset(args.data, base.input_size, overrides.get("in_channels"))
    overrides.setdefault("in_channels", data.channels)
    overrides.setdefault("num_classes", len(data.classes))
    if overrides["num_classes"] < len(data.classes):
        raise FireforgeError(f"--num-classes {overrides['num_classes']} is smaller than the "
                             f"{len(data.classes)} classes of {args.data}")
    seed_everything(args.seed, args.threads)
    model = create_model(args.preset, **overrides)
    mean, std = data.mean_std()
    cfg = recipe(args.preset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 shift=args.shift, seed=args.seed, threads=args.threads)
    say(f"training {args.preset} ({sum(p.numel() for p in model.parameters()):,} params) on "
        f"{args.data}: {len(data.x_train)} train / {len(data.x_test)} test images, "
        f"{data.channels}x{data.size}x{data.size}, {cfg.epochs} epochs at lr {cfg.lr:g}")
    metrics = train(model, data, mean, std, cfg, desc=f"train {args.preset}")
    ckpt = Checkpoint(model.eval(), args.preset, args.data, data.classes, mean, std)
    out = save_checkpoint(ckpt, args.out)
    metrics = {"preset": args.preset, "data": args.data, "params": sum(
        p.numel() for p in model.parameters()), "train_images": len(data.x_train),
        "test_images": len(data.x_test), **metrics, "checkpoint": str(out)}
    write_json(out / "metrics.json", metrics)
    say(f"test accuracy {metrics['test_accuracy'] * 100:.2f}% after {cfg.epochs} epochs "
        f"({metrics['seconds']:.1f} s); checkpoint in {out}")
    return metrics


def _setup_train(p):
    from .train import TrainConfig

    d = TrainConfig()
    _add_model_options(p)
    p.epilog = "epochs and lr default to the preset's measured recipe"
    p.add_argument("--data", required=True, metavar="NAME|PATH",
                   help="digits, mnist5k, or a folder with one subfolder of images per class")
    p.add_argument("--epochs", type=_positive_int, help="default: the preset's recipe")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--lr", type=float, help="peak learning rate of one-cycle Adam (default: "
                   "the preset's recipe)")
    p.add_argument("--shift", type=int, default=d.shift, help="random shift augmentation, pixels")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=_positive_int, default=d.threads,
                   help="torch threads (1 is fastest on two cores)")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write")


# --------------------------------------------------------------------------------------------
def _load_data_for(ckpt, name: str | None):
    from .data import load_dataset

    return load_dataset(name or ckpt.data, ckpt.config.input_size, ckpt.config.in_channels)


@command("compress", "Deep Compression: prune and retrain, k-means weight sharing, size report")
def _cmd_compress(args) -> dict:
    import time

    from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint, write_json
    from .compress import (
        check_density_bits,
        density_of,
        finetune_codebooks,
        prune_and_retrain,
        share_weights,
    )
    from .huffman import format_size_table, size_report, totals
    from .train import TrainConfig, evaluate, recipe

    check_density_bits(args.density, args.bits)
    say = Reporter(args.json)
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.shared:
        raise FireforgeError(f"checkpoint {args.checkpoint} is already compressed; compress the "
                             f"float checkpoint it came from")
    data = _load_data_for(ckpt, args.data)
    base = recipe(ckpt.preset, seed=args.seed)
    per_step = args.epochs_per_step or max(2, base.epochs // 4)
    ft_epochs = args.finetune_epochs or max(2, base.epochs // 4)
    model = ckpt.model
    start = time.perf_counter()
    acc_before = evaluate(model, data.x_test, data.y_test, ckpt.mean, ckpt.std)
    say(f"compressing {args.checkpoint} ({ckpt.preset}) on {data.name}: float accuracy "
        f"{acc_before * 100:.2f}%; target density {args.density}, {args.bits}-bit codebooks")
    masks = prune_and_retrain(model, data, ckpt.mean, ckpt.std, args.density, args.steps,
                              per_step, base, log=say)
    acc_pruned = evaluate(model, data.x_test, data.y_test, ckpt.mean, ckpt.std)
    shared = share_weights(model, args.bits)
    acc_shared = evaluate(model, data.x_test, data.y_test, ckpt.mean, ckpt.std)
    say(f"weight sharing ({args.bits} bits): {acc_shared * 100:.2f}% before fine-tuning")
    ft = finetune_codebooks(model, shared, data, ckpt.mean, ckpt.std, TrainConfig(
        epochs=ft_epochs, batch_size=base.batch_size, lr=base.lr / 4, shift=base.shift,
        seed=base.seed, threads=base.threads))
    acc_after = ft["test_accuracy"]
    rows = size_report({n: (s.indices, s.bits, s.scale.size) for n, s in shared.items()})
    tot = totals(rows)
    say(format_size_table(rows))
    info = {"density": density_of(masks), "target_density": args.density, "bits": args.bits,
            "source": str(args.checkpoint)}
    out = save_checkpoint(Checkpoint(model, ckpt.preset, ckpt.data, ckpt.classes, ckpt.mean,
                                     ckpt.std, {"compression": info}, shared), args.out)
    metrics = {
        "preset": ckpt.preset, "data": data.name, "accuracy_before": acc_before,
        "accuracy_pruned": acc_pruned, "accuracy_shared": acc_shared,
        "accuracy_after": acc_after, "density": info["density"], "bits": args.bits,
        "layers": [r.to_dict() for r in rows],
        "total_bytes": tot["compressed_bytes"], "dense_index_bytes": tot["dense_bytes"],
        "float_bytes": tot["float_bytes"], "compression_ratio": tot["ratio"],
        "seconds": round(time.perf_counter() - start, 1), "checkpoint": str(out),
    }
    write_json(out / "metrics.json", metrics)
    say(f"accuracy {acc_before * 100:.2f}% -> {acc_after * 100:.2f}% at density "
        f"{info['density']:.3f}, {args.bits} bits: {tot['compressed_bytes'] / 1e3:.1f} KB "
        f"({tot['ratio']:.1f}x smaller); checkpoint in {out}")
    return metrics


def _setup_compress(p):
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--density", type=float, required=True,
                   help="fraction of weights kept, e.g. 0.33")
    p.add_argument("--bits", type=int, required=True, help="codebook index bits (1..8)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH",
                   help="retraining data (default: what the checkpoint was trained on)")
    p.add_argument("--steps", type=_positive_int, default=3, help="prune-and-retrain stages")
    p.add_argument("--epochs-per-step", type=_positive_int,
                   help="retraining epochs per stage (default: a quarter of the recipe)")
    p.add_argument("--finetune-epochs", type=_positive_int,
                   help="codebook fine-tuning epochs (default: a quarter of the recipe)")
    p.add_argument("--seed", type=int, default=0)


@command("sensitivity", "prune each layer alone to several densities and plot the accuracy")
def _cmd_sensitivity(args) -> dict:
    from .checkpoint import load_checkpoint, write_json
    from .compress import plot_sensitivity, sensitivity

    say = Reporter(args.json)
    ckpt = load_checkpoint(args.checkpoint)
    data = _load_data_for(ckpt, args.data)
    result = sensitivity(ckpt.model, data, ckpt.mean, ckpt.std)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sensitivity.json", result)
    plot_sensitivity(result, out / "sensitivity.png")
    ds = result["densities"]
    say(f"{'layer':<26} {'weights':>8} " + " ".join(f"{d * 100:>5.0f}%" for d in ds))
    for name, row in result["layers"].items():
        say(f"{name:<26} {row['weights']:>8,} " + " ".join(
            f"{row['accuracy'][str(d)] * 100:>6.1f}" for d in ds))
    say(f"dense accuracy {result['baseline_accuracy'] * 100:.2f}%; plot: "
        f"{out / 'sensitivity.png'}")
    result["plot"] = str(out / "sensitivity.png")
    return result


def _setup_sensitivity(p):
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH")


def _budget(args):
    from .compiler import Budget

    if args.board and args.budget_kib:
        raise FireforgeError("give --board or --budget-kib, not both")
    if args.board:
        from ..boards.devices import device_for

        dev = device_for(args.board)
        return Budget(dev.memory_bytes, f"{args.board} ({dev.name})")
    if args.budget_kib:
        return Budget(int(args.budget_kib * 1024), f"a budget of {args.budget_kib:g} KiB")
    return None


@command("compile", "lower a checkpoint to the accelerator's Program and memory images")
def _cmd_compile(args) -> dict:
    from .checkpoint import load_checkpoint
    from .compiler import compile_checkpoint, fit_message, format_fit

    say = Reporter(args.json)
    ckpt = load_checkpoint(args.checkpoint)
    data = _load_data_for(ckpt, args.data)
    budget = _budget(args)
    calib = data.x_train[:args.calibration]
    from ..hw.config import config_by_name

    accel = config_by_name(args.config)
    manifest = compile_checkpoint(ckpt, calib, args.out, budget, accel.columns, ckpt.shared,
                                  source=str(args.checkpoint), accelerator=args.config,
                                  banks=accel.act_banks, bank_bytes=accel.bank_bytes,
                                  lanes=accel.rows)
    from ..hw.perf import estimate
    from .program import load_program

    perf = estimate(accel, load_program(args.out))
    fit = manifest["fit"]
    if fit.get("fits") is False:
        raise FireforgeError(fit_message(fit) + f" (program written to {args.out} anyway)")
    layers = manifest["layers"]
    say(f"{'layer':<26} {'op':<8} {'out':>12} {'bits':>4} {'density':>7} {'acc bits':>8} "
        f"{'shift':>5}")
    for layer in layers:
        shape = "x".join(map(str, layer["out_shape"]))
        bits = layer.get("bits", "")
        dens = f"{layer['density'] * 100:.0f}%" if "density" in layer else ""
        say(f"{layer['name']:<26} {layer['op']:<8} {shape:>12} {bits!s:>4} {dens:>7} "
            f"{layer['acc_bits']:>8} {layer['shift']:>5}")
    say(format_fit(fit))
    say(f"cycle model ({args.config}, {accel.macs} MACs): {perf['cycles_per_inference']:,} cycles "
        f"per inference, MAC utilization {perf['mac_utilization'] * 100:.1f}% over convolutions")
    say(f"model {manifest['model_hash'][:16]}: {len(layers)} operations, program in {args.out}")
    return {"program": str(args.out), "model_hash": manifest["model_hash"],
            "layers": len(layers), "act_bytes": manifest["act_bytes"],
            "weight_bytes": manifest["files"]["weights.bin"]["bytes"], "fit": fit,
            "config": args.config, "cycles_per_inference": perf["cycles_per_inference"],
            "mac_utilization": perf["mac_utilization"]}


def _setup_compile(p):
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--board", metavar="NAME", help="check the fit against this board's memory")
    p.add_argument("--budget-kib", type=float, metavar="N", help="or against N KiB")
    p.add_argument("--data", metavar="NAME|PATH", help="calibration data (default: the "
                   "checkpoint's training set)")
    p.add_argument("--calibration", type=_positive_int, default=500,
                   help="calibration images (default 500)")
    from ..hw.config import CONFIGS, DEFAULT_CONFIG

    p.add_argument("--config", choices=list(CONFIGS), default=DEFAULT_CONFIG,
                   help="accelerator configuration the program is laid out for (default "
                   f"{DEFAULT_CONFIG})")


@command("golden", "run the bit-exact integer golden model on a data set's test images")
def _cmd_golden(args) -> dict:
    import numpy as np

    from .checkpoint import load_checkpoint
    from .data import load_dataset
    from .golden import run_golden
    from .program import load_program
    from .train import predict

    say = Reporter(args.json)
    program = load_program(args.program)
    c, size, _ = program.input_shape
    name = args.data or program.manifest["data"]
    data = load_dataset(name, size, c)
    x, y = data.x_test, data.y_test
    if args.count:
        x, y = x[:args.count], y[:args.count]
    result = run_golden(program, x)
    ckpt = load_checkpoint(program.path / "float")
    float_scores = predict(ckpt.model, x, ckpt.mean, ckpt.std)
    pred = result.predictions
    float_pred = float_scores.argmax(1)
    err = np.abs(result.logits - float_scores)
    files = program.manifest["files"]
    weight_bytes = sum(files[f]["bytes"] for f in ("weights.bin", "codebooks.bin",
                                                   "params.bin"))
    out = {
        "program": str(args.program), "model_hash": program.model_hash, "data": name,
        "images": int(len(x)), "accuracy": float((pred == y).mean()),
        "float_accuracy": float((float_pred == y).mean()),
        "top1_agreement": float((pred == float_pred).mean()),
        "logit_mean_abs_error": float(err.mean()),
        "logit_scale_of_float": float(np.abs(float_scores).mean()),
        "weight_bytes": weight_bytes, "program_bytes": files["program.bin"]["bytes"],
        "act_bytes": program.manifest["act_bytes"],
        "predictions": pred.tolist(),
    }
    say(f"golden model of {args.program} on {len(x)} {name} test images: accuracy "
        f"{out['accuracy'] * 100:.2f}% (float {out['float_accuracy'] * 100:.2f}%), top-1 "
        f"agreement {out['top1_agreement'] * 100:.2f}%; logits off by {err.mean():.4f} on "
        f"average (float logits average {out['logit_scale_of_float']:.3f})")
    say(f"on-chip: weights+codebooks+params {weight_bytes:,} B, activations "
        f"{out['act_bytes']:,} B, program {out['program_bytes']:,} B")
    return out


def _setup_golden(p):
    p.add_argument("--program", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the program's data set")
    p.add_argument("--count", type=_positive_int, help="only the first N test images")


@command("sim", "run a compiled program on real images in the RTL simulation (cocotb)")
def _cmd_sim(args) -> dict:
    import numpy as np

    from ..hw.config import config_by_name
    from ..sim.runner import run_rtl
    from .data import load_dataset
    from .program import load_program

    say = Reporter(args.json)
    program = load_program(args.program)
    config = config_by_name(args.config)
    c, size, _ = program.input_shape
    name = args.data or program.manifest["data"]
    data = load_dataset(name, size, c)
    images, labels = data.x_test[:args.images], data.y_test[:args.images]
    checked = "" if args.no_layer_check else ", every layer checked"
    say(f"simulating {args.program} on {len(images)} {name} test images with {args.simulator} "
        f"({args.config}: {config.macs} MACs){checked}")
    result = run_rtl(program, config, images, args.simulator, not args.no_layer_check,
                     args.trace, Path(args.build_dir), log=say)
    records = result["images"]
    cycles = np.array([r["layer_cycles"] for r in records], dtype=np.int64).mean(axis=0)
    layers, conv_macs, conv_cycles = [], 0, 0
    for layer, cyc in zip(program.layers, cycles.tolist(), strict=True):
        row = {"name": layer["name"], "op": layer["op"], "cycles": round(cyc, 1)}
        if layer["op"] == "CONV":
            row["macs"] = layer["macs"]
            row["utilization"] = layer["macs"] / (config.macs * cyc)
            conv_macs += layer["macs"]
            conv_cycles += cyc
        layers.append(row)
    total = float(np.mean([r["total_cycles"] for r in records]))
    pool_cycles = sum(r["cycles"] for r in layers if r["op"] in ("MAXPOOL", "AVGPOOL"))
    bit_exact = all(r["bit_exact"] for r in records)
    mismatch = next((r["first_mismatch"] | {"image": r["image"]} for r in records
                     if not r["bit_exact"]), None)
    preds = [r["prediction"] for r in records]
    sim_cycles = sum(r["total_cycles"] for r in records)
    out = {
        "program": str(args.program), "model_hash": program.model_hash, "config": args.config,
        "simulator": args.simulator, "bit_exact": bit_exact, "first_mismatch": mismatch,
        "layers_checked": not args.no_layer_check, "images": len(records),
        "cycles_per_inference": total,
        "mac_utilization": conv_macs / (config.macs * conv_cycles) if conv_cycles else None,
        "mac_utilization_excluding_pooling": conv_macs / (config.macs * (total - pool_cycles)),
        "mac_utilization_whole": conv_macs / (config.macs * total),
        "macs": conv_macs, "pes": config.macs, "layers": layers, "predictions": preds,
        "golden_predictions": [r["golden_prediction"] for r in records],
        "accuracy": float((np.array(preds) == labels).mean()),
        "sim_cycles_per_second": sim_cycles / result["sim_seconds"]
        if result["sim_seconds"] else None,
        "seconds": {k: result[k] for k in ("generate_seconds", "build_seconds", "run_seconds")},
    }
    if result.get("trace"):
        out["trace"] = result["trace"]
    say(f"{'layer':<26} {'op':<8} {'cycles':>9} {'MACs':>10} {'util':>6}")
    for row in layers:
        util = f"{row['utilization'] * 100:5.1f}%" if "utilization" in row else ""
        say(f"{row['name']:<26} {row['op']:<8} {row['cycles']:>9,.0f} {row.get('macs', ''):>10}"
            f" {util:>6}")
    say(f"bit-exact: {'yes' if bit_exact else 'NO, first mismatch ' + json.dumps(mismatch)}")
    say(f"cycles per inference {total:,.0f}; MAC utilization {out['mac_utilization'] * 100:.1f}% "
        f"over convolutions, {out['mac_utilization_excluding_pooling'] * 100:.1f}% excluding "
        f"pooling, {out['mac_utilization_whole'] * 100:.1f}% of all cycles; simulator "
        f"{out['sim_cycles_per_second'] or 0:,.0f} cycles/s")
    say(f"predictions {preds} (labels {labels.tolist()}); accuracy {out['accuracy'] * 100:.1f}%")
    if not bit_exact:
        raise FireforgeError(f"the RTL differs from the golden model: {json.dumps(mismatch)}")
    return out


def _setup_sim(p):
    from ..hw.config import CONFIGS, DEFAULT_CONFIG
    from ..sim.runner import SIMULATORS

    p.add_argument("--program", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the program's data set")
    p.add_argument("--images", type=_positive_int, default=1, help="test images (default 1)")
    p.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    p.add_argument("--config", choices=list(CONFIGS), default=DEFAULT_CONFIG,
                   help=f"accelerator configuration (default {DEFAULT_CONFIG})")
    p.add_argument("--trace", metavar="FILE.vcd", help="write a waveform (Icarus writes FST: "
                   "the file gets the .fst suffix)")
    p.add_argument("--no-layer-check", action="store_true",
                   help="run freely; compare only the final sums")
    p.add_argument("--build-dir", default="build/sim", metavar="DIR")


@command("simboard", "serve the whole chip (UART included) in Verilator on a localhost TCP port")
def _cmd_simboard(args) -> dict:
    from ..hw.config import config_by_name
    from ..sim.simboard import serve
    from .program import load_program

    say = Reporter(args.json)
    program = load_program(args.program)
    config = config_by_name(args.config)
    say(f"simulated board: {args.program} (model {program.model_hash[:12]}…) on {args.config}, "
        f"UART divisor {args.divisor}")
    serve(program, config, args.port, args.divisor, args.build_dir, args.ready_file,
          args.max_seconds, log=say)
    return {"program": str(args.program), "stopped": True}


def _setup_simboard(p):
    from ..hw.config import CONFIGS, DEFAULT_CONFIG
    from ..sim.simboard import DEFAULT_DIVISOR

    p.add_argument("--program", required=True, metavar="DIR",
                   help="the program the simulated bitstream starts with")
    p.add_argument("--port", type=int, default=5550, help="TCP port on 127.0.0.1 (0: any free "
                   "port; default 5550)")
    p.add_argument("--config", choices=list(CONFIGS), default=DEFAULT_CONFIG)
    p.add_argument("--divisor", type=int, default=DEFAULT_DIVISOR,
                   help=f"clock cycles per UART bit (default {DEFAULT_DIVISOR})")
    p.add_argument("--build-dir", default="build/simboard", metavar="DIR")
    p.add_argument("--ready-file", metavar="FILE", help="write the URL here once listening")
    p.add_argument("--max-seconds", type=float, help="stop after this long (default: never)")


def _open_board(args):
    from .driver import Board

    return Board.open(args.port, baudrate=args.baud, timeout=args.timeout,
                      retries=args.retries)


def _setup_port(p):
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port or pyserial URL: /dev/ttyUSB1, socket://127.0.0.1:5550")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per reply (default 2)")
    p.add_argument("--retries", type=int, default=3, help="tries after a lost or damaged reply")


@command("infer", "classify images on a board (or simulated board) through the host link")
def _cmd_infer(args) -> dict:
    import numpy as np

    from .driver import load_image_file, prepare_image
    from .golden import run_golden
    from .program import load_program

    say = Reporter(args.json)
    program = load_program(args.program)
    classes = program.manifest.get("classes") or [str(i) for i in range(program.num_classes)]
    if bool(args.images) == bool(args.data):
        raise FireforgeError("give image files, or --data NAME [--count N], not both")
    notes: list[str] = []
    if args.images:
        names = [str(p) for p in args.images]
        images = np.stack([prepare_image(load_image_file(p), program, p, notes)
                           for p in args.images])
        labels = None
    else:
        from .data import load_dataset

        c, size, _ = program.input_shape
        data = load_dataset(args.data, size, c)
        images, labels = data.x_test[:args.count], data.y_test[:args.count]
        names = [f"{args.data}:test[{i}]" for i in range(len(images))]
    for note in notes:
        say(f"note: {note}")
    golden = run_golden(program, images, keep_layers=args.verify)
    results = []
    with _open_board(args) as board:
        if args.load and board.info().model_hash != program.model_hash:
            info, seconds = _load_program(board, program)  # (load checks the new model)
            say(f"loaded {program.path} onto {info.board!r} in {seconds:.1f} s")
        else:
            info = board.check_model(program)
        say(f"board {info.board!r}: model {info.model_hash[:12]}… ({info.n_layers} layers), "
            f"{info.rows * info.columns} MACs")
        for n, (name, image) in enumerate(zip(names, images, strict=True)):
            r = board.classify(program, image, top=min(args.top, program.num_classes))
            entry = {"image": name, "class": r.cls, "label": classes[r.cls],
                     "top": [[c, round(score, 4)] for c, score in r.top],
                     "cycles": r.cycles, "seconds": round(r.seconds, 3),
                     "golden_class": int(golden.predictions[n]),
                     "equals_golden": bool(np.array_equal(r.sums, golden.sums[n]))}
            if labels is not None:
                entry["true_class"] = int(labels[n])
            if args.verify:
                entry["verify"] = board.verify(program, image, golden, n)
            results.append(entry)
            top = ", ".join(f"{classes[c]} {score:.2f}" for c, score in r.top)
            check = "" if entry["equals_golden"] else "  SUMS DIFFER FROM GOLDEN"
            if args.verify:
                v = entry["verify"]
                check += ("  every layer bit-exact" if v["bit_exact"] else
                          f"  MISMATCH at {v['layer']} channel {v['channel']} "
                          f"({v['y']}, {v['x']}): got {v['got']}, expected {v['expected']}")
            truth = f" (label {classes[labels[n]]})" if labels is not None else ""
            say(f"{name}: {classes[r.cls]}{truth}  top: {top}  {r.cycles:,} cycles, "
                f"{r.seconds * 1000:.0f} ms{check}")
    out = {"program": str(args.program), "model_hash": program.model_hash, "results": results,
           "golden_agreement": float(np.mean([r["equals_golden"] for r in results]))}
    if labels is not None:
        out["accuracy"] = float(np.mean([r["class"] == r["true_class"] for r in results]))
        say(f"accuracy {out['accuracy'] * 100:.1f}% on {len(results)} images; "
            f"sums equal to the golden model's on {out['golden_agreement'] * 100:.1f}%")
    bad = [r for r in results if not r["equals_golden"]
           or (args.verify and not r["verify"]["bit_exact"])]
    if bad:
        raise FireforgeError(f"{len(bad)} of {len(results)} images differ from the golden model "
                             f"(first: {bad[0]['image']})")
    return out


def _setup_infer(p):
    p.add_argument("images", nargs="*", metavar="IMAGE", help="PNG, JPEG or .npy files")
    _setup_port(p)
    p.add_argument("--program", required=True, metavar="DIR",
                   help="the compiled program the board runs (input format, classes, golden)")
    p.add_argument("--data", metavar="NAME|PATH", help="run a data set's test images instead")
    p.add_argument("--count", type=_positive_int, default=10, help="with --data: how many")
    p.add_argument("--top", type=_positive_int, default=3, help="classes to show per image")
    p.add_argument("--verify", action="store_true",
                   help="also read back every layer and compare it with the golden model")
    p.add_argument("--load", action="store_true",
                   help="first load the program when the board runs another model or none "
                   "(boards with SPRAM weights start empty)")


@command("load", "load a compiled program onto a board over the host link (no new bitstream)")
def _cmd_load(args) -> dict:
    from .program import load_program

    say = Reporter(args.json)
    program = load_program(args.program)
    with _open_board(args) as board:
        info, seconds = _load_program(board, program)
    say(f"board {info.board!r} now runs {info.model_hash[:16]}… ({info.n_layers} layers, "
        f"{info.num_classes} classes), loaded in {seconds:.1f} s")
    return {"program": str(args.program), "model_hash": info.model_hash,
            "board": info.board, "seconds": round(seconds, 2)}


def _load_program(board, program):
    """Load ``program`` onto ``board`` with a progress bar; the new info and the seconds."""
    import time

    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=0, unit="B", unit_scale=True, file=sys.stderr, desc="load",
              disable=None) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        info = board.load(program, progress)
    return info, time.perf_counter() - t0


def _setup_load(p):
    _setup_port(p)
    p.add_argument("--program", required=True, metavar="DIR")


@command("boards", "list the supported boards with their devices, budgets and default presets")
def _cmd_boards(args) -> dict:
    from ..boards.boards import BOARD_SPECS

    say = Reporter(args.json)
    rows = []
    say(f"{'board':<15} {'device':<13} {'LUT4':>6} {'BRAM KiB':>8} {'SPRAM KiB':>9} {'mult':>5} "
        f"{'MHz':>4} {'UART':<5} {'default preset'}")
    for spec in BOARD_SPECS.values():
        d = spec.dev
        row = {"board": spec.name, "family": spec.family, "device": d.name, "lut": d.lut,
               "ff": d.ff, "bram_blocks": d.bram_blocks, "bram_bytes": d.bram_bytes,
               "spram_blocks": d.spram_blocks, "spram_bytes": d.spram_bytes, "dsp": d.dsp,
               "target_mhz": spec.target_mhz, "uart": spec.uart is not None,
               "default_preset": spec.default_preset, "default_data": spec.default_data,
               "programmer": spec.programmer, "notes": spec.notes}
        rows.append(row)
        say(f"{spec.name:<15} {d.name:<13} {d.lut:>6,} {d.bram_bytes / 1024:>8.0f} "
            f"{d.spram_bytes / 1024:>9.0f} {d.dsp:>5} {spec.target_mhz:>4.0f} "
            f"{'yes' if spec.uart else 'no':<5} {spec.default_preset}"
            + (f"  ({spec.notes})" if spec.notes else ""))
    return {"boards": rows}


def _setup_boards(p):
    pass


@command("build", "fit-check, synthesize and place-and-route a program for a board (bitstream)")
def _cmd_build(args) -> dict:
    from ..boards.boards import board_spec
    from ..boards.build import build_board, default_program
    from ..boards.fit import board_config, fit_board, format_board_fit, require_fit
    from .program import load_program

    say = Reporter(args.json)
    spec = board_spec(args.board)
    if args.program:
        program = load_program(args.program)
    else:
        say(f"no --program: the default program of {spec.name} ({spec.default_preset} on "
            f"{spec.default_data})")
        program = default_program(spec, Path(args.runs), log=say)
    config = board_config(spec, program)
    say(format_board_fit(fit_board(spec, config)))
    if args.fit_only:
        return require_fit(spec, program, config)
    report = build_board(spec, program, Path(args.out or f"build/{spec.name}"), args.seed,
                         args.target_mhz, log=say, timing_report=args.timing_report,
                         place_only=args.place_only)
    say(f"{'resource':<8} {'used':>8} {'available':>10}")
    for name, r in report["resources"].items():
        say(f"{name:<8} {r['used']:>8,} {r['available']:>10,}")
    verdict = ("placement estimate" if args.place_only else
               "met" if report["timing_met"] else "NOT MET")
    say(f"Fmax {report['fmax_mhz']} MHz (target {report['target_mhz']} MHz, {verdict}); "
        f"{report['cycles_per_inference']:,} "
        f"cycles per inference: {report['fps_at_fmax']} frames/s at Fmax; built in "
        f"{report['build_seconds']:.0f} s")
    out = Path(args.out or f"build/{spec.name}")
    say(f"bitstream {report['bitstream']}; report {out}/report.json")
    return report


def _setup_build(p):
    p.add_argument("--board", required=True, metavar="NAME", help="fireforge boards lists them")
    p.add_argument("--program", metavar="DIR", help="default: the board's default preset, "
                   "trained, compressed and compiled under --runs")
    p.add_argument("--runs", default="runs", metavar="DIR")
    p.add_argument("--out", metavar="DIR", help="default build/BOARD")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--target-mhz", type=float, help="clock target (default: the board's)")
    p.add_argument("--fit-only", action="store_true",
                   help="only check the fit (no synthesis)")
    p.add_argument("--timing-report", action="store_true",
                   help="also write timing.json: the slack of every endpoint from nextpnr's "
                   "SDF, the failing paths grouped by register")
    p.add_argument("--place-only", action="store_true",
                   help="synthesize and place, no routing and no bitstream: the placer's Fmax "
                   "estimate and timing report in minutes")



@command("flash", "program a board with its built bitstream (iceprog, openFPGALoader, dfu-util)")
def _cmd_flash(args) -> dict:
    from ..boards.boards import board_spec
    from ..boards.build import flash

    cmd = flash(board_spec(args.board), Path(args.out or f"build/{args.board}"))
    return {"board": args.board, "command": cmd}


def _setup_flash(p):
    p.add_argument("--board", required=True, metavar="NAME")
    p.add_argument("--out", metavar="DIR", help="the build directory (default build/BOARD)")


_SETUP = {"model": _setup_model, "sim": _setup_sim, "train": _setup_train,
          "compress": _setup_compress,
          "sensitivity": _setup_sensitivity, "compile": _setup_compile, "golden": _setup_golden,
          "simboard": _setup_simboard, "infer": _setup_infer, "load": _setup_load,
          "boards": _setup_boards, "build": _setup_build, "flash": _setup_flash}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fireforge",
        description="SqueezeNet-style CNNs from PyTorch to FPGA accelerators with open tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (fn, help) in _COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true",
                       help="print one JSON object on stdout (reports go to stderr)")
        _SETUP[name](p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except FireforgeError as e:
        print(f"fireforge {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"fireforge {args.command}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        json.dump(result, sys.stdout, default=_json_default)
        sys.stdout.write("\n")
    return 0


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


if __name__ == "__main__":
    sys.exit(main())
