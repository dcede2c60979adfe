"""The ``fireforge`` command: it parses arguments, calls :mod:`fireforge.sw.commands`, prints.

Every subcommand is one function of :mod:`fireforge.sw.commands` and returns a typed result.
With ``--json`` the result's dict is the only thing printed on stdout (progress bars and
reports go to stderr); without it the command's report goes to stdout. A
:class:`~fireforge.hw.errors.FireforgeError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ..hw.config import CONFIGS, DEFAULT_CONFIG
from ..hw.errors import FireforgeError
from ..sim import processes
from ..sim.processes import Terminated, run_supervised

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


# ------------------------------------------------------------------------------------ options
def _model_options(p: argparse.ArgumentParser) -> None:
    from .model import Bypass, list_models

    p.add_argument("--preset", required=True, metavar="NAME",
                   help=f"model preset: {', '.join(list_models())}")
    p.add_argument("--num-classes", type=_positive_int, help="override the class count")
    p.add_argument("--in-channels", type=int, choices=(1, 3), help="1 (gray) or 3 (RGB)")
    p.add_argument("--input-size", type=_positive_int, help="override the input side in pixels")
    p.add_argument("--bypass", choices=[b.value for b in Bypass],
                   help="residual connections (paper section 6)")


def _overrides(a) -> dict:
    return {"num_classes": a.num_classes, "in_channels": a.in_channels,
            "input_size": a.input_size, "bypass": a.bypass}


def _config_option(p: argparse.ArgumentParser, what: str, default: str | None = DEFAULT_CONFIG,
                   default_help: str = DEFAULT_CONFIG) -> None:
    p.add_argument("--config", choices=list(CONFIGS), default=default,
                   help=f"accelerator configuration {what} (default {default_help})")


def _port_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port or pyserial URL: /dev/ttyUSB1, socket://127.0.0.1:5550")
    p.add_argument("--board", metavar="NAME", help="the board: its link's baud rate "
                   "(fireforge boards lists them)")
    p.add_argument("--baud", type=int, help="the link's baud rate (default: the --board's, "
                   "else 115200)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per reply (default 2)")
    p.add_argument("--retries", type=int, default=3, help="tries after a lost or damaged reply")


def _port(a):
    from .commands.infer import Port

    baud = a.baud
    if baud is None:
        from ..boards.boards import board_spec

        baud = board_spec(a.board).baud if a.board else 115_200
    return Port(a.port, baud, a.timeout, a.retries)


# ----------------------------------------------------------------------------------- commands
def _setup_model(p):
    _model_options(p)
    p.add_argument("--weights", metavar="FILE",
                   help="check that a state_dict (e.g. torchvision's) loads strictly")


def _setup_train(p):
    from .train import TrainConfig

    d = TrainConfig()
    _model_options(p)
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


def _setup_compress(p):
    from .commands.compress import PRUNE_BY

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
    p.add_argument("--prune-by", choices=PRUNE_BY, default="roles",
                   help="how the layers share the density: by role (3x3 expands hardest; "
                        "default) or by each layer's pruning sensitivity (paper section 7.1)")


def _setup_sensitivity(p):
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH")


def _setup_dsd(p):
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a trained float checkpoint")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--density", type=float, default=0.5,
                   help="weights kept in the sparse phase (default 0.5)")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the checkpoint's")
    p.add_argument("--sparse-epochs", type=_positive_int, metavar="N",
                   help="default: a quarter of the preset's recipe")
    p.add_argument("--redense-epochs", type=_positive_int, metavar="N",
                   help="default: a quarter of the preset's recipe")


def _setup_explore(p):
    p.add_argument("space", metavar="SPACE.toml", help="the design space (see docs/explore.md)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where the trials and results go; an earlier sweep's folder resumes it")
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="run the trials on this Ray cluster (default: a local Ray on this "
                        "machine's cores)")


def _setup_compile(p):
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--board", metavar="NAME", help="check the fit against this board's memory")
    p.add_argument("--budget-kib", type=float, metavar="N", help="or against N KiB")
    p.add_argument("--data", metavar="NAME|PATH", help="calibration data (default: the "
                   "checkpoint's training set)")
    p.add_argument("--calibration", type=_positive_int, default=500,
                   help="calibration images (default 500)")
    _config_option(p, "the program is laid out for", None,
                   f"the board's, else {DEFAULT_CONFIG}")


def _setup_import(p):
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument("--out", required=True, metavar="DIR", help="the checkpoint folder")
    p.add_argument("--data", required=True, metavar="NAME|PATH",
                   help="digits, mnist5k or an image folder: the input normalization the model "
                        "expects, class names, test and calibration images")


def _setup_golden(p):
    p.add_argument("--program", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the program's data set")
    p.add_argument("--count", type=_positive_int, help="only the first N test images")


def _setup_sim(p):
    from ..sim.runner import SIMULATORS

    p.add_argument("--program", required=True, metavar="DIR")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the program's data set")
    p.add_argument("--images", type=_positive_int, default=1, help="test images (default 1)")
    p.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    _config_option(p, "to simulate")
    p.add_argument("--trace", metavar="FILE.vcd", help="write a waveform (Icarus writes FST: "
                   "the file gets the .fst suffix)")
    p.add_argument("--no-layer-check", action="store_true",
                   help="run freely; compare only the final sums")
    p.add_argument("--build-dir", default="build/sim", metavar="DIR")


def _setup_simboard(p):
    from ..sim.simboard import DEFAULT_DIVISOR

    p.add_argument("--program", required=True, metavar="DIR",
                   help="the program the simulated bitstream starts with")
    p.add_argument("--port", type=int, default=5550, help="TCP port on 127.0.0.1 (0: any free "
                   "port; default 5550)")
    _config_option(p, "of the simulated chip", None, f"the --board's, else {DEFAULT_CONFIG}")
    p.add_argument("--board", metavar="NAME", help="simulate this board's chip: its default "
                   "configuration and its UART divisor (its clock / its baud rate)")
    p.add_argument("--divisor", type=int,
                   help=f"clock cycles per UART bit (default: the --board's, else "
                        f"{DEFAULT_DIVISOR}, fast to simulate)")
    p.add_argument("--byte-cycles", type=int, metavar="N",
                   help="no UART: feed the link a byte every N cycles (a faster simulation of "
                        "the same link; default: the UART)")
    p.add_argument("--build-dir", default="build/simboard", metavar="DIR")
    p.add_argument("--ready-file", metavar="FILE", help="write the URL here once listening")
    p.add_argument("--max-seconds", type=float, help="stop after this long (default: never)")
    p.add_argument("--stats-file", metavar="FILE", help="rewrite this JSON at each client's "
                   "disconnect: the cycles the board worked for its clients (requests, replies, "
                   "runs; not the waits for the host) and the disconnects so far")


def _setup_bench(p):
    p.add_argument("--board", required=True, metavar="NAME",
                   help="the board whose configuration, clock and link are measured")
    p.add_argument("--program", metavar="DIR",
                   help="the program (default: the board's default program, made under --runs)")
    p.add_argument("--runs", default="runs", metavar="DIR",
                   help="where the default program is trained and compiled (default runs)")
    p.add_argument("--images", type=_positive_int, default=50,
                   help="test images streamed through the simulated board (default 50)")
    p.add_argument("--out", default="bench", metavar="DIR",
                   help="where bench-BOARD.json goes (default bench)")
    p.add_argument("--build-dir", default="build/bench", metavar="DIR")


def _setup_infer(p):
    p.add_argument("images", nargs="*", metavar="IMAGE", help="PNG, JPEG or .npy files")
    _port_options(p)
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


def _setup_load(p):
    _port_options(p)
    p.add_argument("--program", required=True, metavar="DIR")


def _setup_boards(p):
    pass


def _setup_build(p):
    p.add_argument("--board", required=True, metavar="NAME", help="fireforge boards lists them")
    p.add_argument("--program", metavar="DIR", help="default: the board's default preset, "
                   "trained, compressed and compiled under --runs")
    p.add_argument("--runs", default="runs", metavar="DIR")
    p.add_argument("--out", metavar="DIR", help="default build/BOARD")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    seed.add_argument("--seeds", type=_seed_list, metavar="LIST",
                      help="build with each of these seeds (1-8, or 1,3,5) as Ray tasks and keep "
                           "the highest Fmax; every seed's Fmax goes to report.json")
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="run --seeds on this Ray cluster (default: a local Ray on this "
                        "machine's cores)")
    p.add_argument("--target-mhz", type=float, help="clock target (default: the board's)")
    p.add_argument("--fit-only", action="store_true",
                   help="only check the fit (no synthesis)")
    p.add_argument("--timing-report", action="store_true",
                   help="also write timing.json: the slack of every endpoint from nextpnr's "
                   "SDF, the failing paths grouped by register")
    p.add_argument("--place-only", action="store_true",
                   help="synthesize and place, no routing and no bitstream: the placer's Fmax "
                   "estimate and timing report in minutes")


def _seed_list(text: str) -> list[int]:
    """``1-8`` or ``1,3,5`` (or both: ``1-4,9``)."""
    seeds = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds as 1-8 or 1,3,5") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r}: no seeds (a range like 4-1 is empty)")
    return seeds


def _setup_flash(p):
    p.add_argument("--board", required=True, metavar="NAME")
    p.add_argument("--out", metavar="DIR", help="the build directory (default build/BOARD)")


def _c(module: str):
    """A module of :mod:`fireforge.sw.commands`, imported when its command runs (``fireforge
    boards`` does not import torch)."""
    return importlib.import_module(f"{__package__}.commands.{module}")


#: name -> (help, argument setup, the call: (args, log) -> result)
_COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "model": ("per-layer table of a preset: shapes, params, MACs, activations, storage",
              _setup_model,
              lambda a, log: _c("model").describe(a.preset, weights=a.weights, log=log,
                                                 **_overrides(a))),
    "train": ("train a preset on an offline data set and write a checkpoint", _setup_train,
              lambda a, log: _c("train").train(
                  a.preset, a.data, a.out, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                  shift=a.shift, seed=a.seed, threads=a.threads, log=log, **_overrides(a))),
    "compress": ("Deep Compression: prune and retrain, k-means weight sharing, size report",
                 _setup_compress,
                 lambda a, log: _c("compress").compress(
                     a.checkpoint, a.density, a.bits, a.out, data=a.data, steps=a.steps,
                     epochs_per_step=a.epochs_per_step, finetune_epochs=a.finetune_epochs,
                     seed=a.seed, prune_by=a.prune_by, log=log)),
    "sensitivity": ("prune each layer alone to several densities and plot the accuracy",
                    _setup_sensitivity,
                    lambda a, log: _c("compress").sensitivity(a.checkpoint, a.out, data=a.data,
                                                             log=log)),
    "dsd": ("Dense-Sparse-Dense training: prune and retrain, then retrain every weight",
            _setup_dsd,
            lambda a, log: _c("compress").dsd(
                a.checkpoint, a.out, density=a.density, data=a.data,
                sparse_epochs=a.sparse_epochs, redense_epochs=a.redense_epochs, log=log)),
    "explore": ("design-space exploration: train, compress, compile and measure each network "
                "of a space on boards (Ray tasks); table, Pareto fronts, plots",
                _setup_explore,
                lambda a, log: _c("explore").explore(a.space, a.out, ray_address=a.ray_address,
                                                     log=log)),
    "import": ("an ONNX model to a checkpoint: its graph of the engine's operations, batch norm "
               "folded; anything else refused by node", _setup_import,
               lambda a, log: _c("imports").import_model(a.model, a.out, data=a.data, log=log)),
    "compile": ("lower a checkpoint to the accelerator's Program and memory images",
                _setup_compile,
                lambda a, log: _c("compile").compile_program(
                    a.checkpoint, a.out, config=a.config, board=a.board,
                    budget_kib=a.budget_kib, data=a.data, calibration=a.calibration, log=log)),
    "golden": ("run the bit-exact integer golden model on a data set's test images",
               _setup_golden,
               lambda a, log: _c("golden").golden(a.program, data=a.data, count=a.count,
                                                  log=log)),
    "sim": ("run a compiled program on real images in the RTL simulation (cocotb)", _setup_sim,
            lambda a, log: _c("sim").simulate(
                a.program, images=a.images, simulator=a.simulator, config=a.config,
                data=a.data, check_layers=not a.no_layer_check, trace=a.trace,
                build_dir=a.build_dir, log=log)),
    "simboard": ("serve the whole chip (UART included) in Verilator on a localhost TCP port",
                 _setup_simboard,
                 lambda a, log: _c("simboard").simboard(
                     a.program, port=a.port, config=a.config, board=a.board,
                     divisor=a.divisor,
                     build_dir=a.build_dir, ready_file=a.ready_file,
                     max_seconds=a.max_seconds, byte_cycles=a.byte_cycles,
                     stats_file=a.stats_file, log=log)),
    "bench": ("a board's throughput: the engine's at Fmax and images streamed through its "
              "link on the simulated board, as JSON",
              _setup_bench,
              lambda a, log: _c("bench").bench(
                  a.board, a.program, runs=a.runs, images=a.images, out=a.out,
                  build_dir=a.build_dir, log=log)),
    "infer": ("classify images on a board (or simulated board) through the host link",
              _setup_infer,
              lambda a, log: _c("infer").infer(
                  _port(a), a.program, a.images, data=a.data, count=a.count, top=a.top,
                  verify=a.verify, load_first=a.load, log=log)),
    "load": ("load a compiled program onto a board over the host link (no new bitstream)",
             _setup_load, lambda a, log: _c("infer").load(_port(a), a.program, log=log)),
    "boards": ("list the supported boards with their devices, budgets and default presets",
               _setup_boards, lambda a, log: _c("build").list_boards(log=log)),
    "build": ("fit-check, synthesize and place-and-route a program for a board (bitstream)",
              _setup_build,
              lambda a, log: _c("build").build(
                  a.board, a.program, runs=a.runs, out=a.out, seed=a.seed,
                  target_mhz=a.target_mhz, fit_only=a.fit_only,
                  timing_report=a.timing_report, place_only=a.place_only, seeds=a.seeds,
                  ray_address=a.ray_address, log=log)),
    "flash": ("program a board with its built bitstream (iceprog, openFPGALoader, dfu-util)",
              _setup_flash, lambda a, log: _c("build").flash(a.board, a.out, log=log)),
}
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fireforge",
        description="SqueezeNet-style CNNs from PyTorch to FPGA accelerators with open tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help, setup, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true",
                       help="print one JSON object on stdout (reports go to stderr)")
        setup(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = sys.stderr if args.json else sys.stdout

    def log(text: str = "") -> None:
        print(text, file=stream, flush=True)

    try:
        result = _COMMANDS[args.command][2](args, log)
    # (an OSError: the disk or the OS refused, a full disk, a read-only folder, ...)
    except (FireforgeError, OSError) as e:
        message = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"fireforge {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Terminated) else processes.received
        if signum:
            print(f"fireforge {args.command}: stopped by {signal.Signals(signum).name}",
                  file=sys.stderr)
            return 128 + signum
        print(f"fireforge {args.command}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        json.dump(result.to_dict(), sys.stdout, default=_json_default)
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


def run() -> None:
    """The ``fireforge`` program: :func:`main` with the simulators and tools it starts
    stopped when it ends, however it ends (SIGTERM and SIGHUP included)."""
    sys.exit(run_supervised(main))


if __name__ == "__main__":
    run()
