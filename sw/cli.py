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


_SETUP = {"model": _setup_model, "train": _setup_train}


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
