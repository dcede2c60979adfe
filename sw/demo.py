"""``make demo``: the main job of fireforge on its built-in default, no board needed.

It runs the flow through the same functions the ``fireforge`` commands call
(:mod:`fireforge.sw.commands`), printing the command line that does each step and its report,
and leaves every artifact under ``--runs`` (default ``runs/``):

1. ``fireforge model``: the per-layer table of the default preset;
2. ``fireforge train``: the preset on scikit-learn's digits (skipped when the checkpoint exists);
3. ``fireforge compress``: Deep Compression to 40% density with 4-bit codebooks;
4. ``fireforge compile``: the Program and memory images, checked against the default board;
5. ``fireforge golden``: the bit-exact integer model on the test digits, against the float one;
6. ``fireforge simboard``: the whole chip (accelerator, host link, UART) in Verilator, served on
   a localhost TCP port, the way a board is reached through its USB-serial port (a process of
   its own, as a user would start it);
7. ``fireforge infer``: the host driver classifies test digits on the simulated board (sums
   compared with the golden model), one digit with every layer read back (``--verify``), and a
   photograph from scikit-image through the image-file input path.

The bitstream step (``make bitstream``) is not part of the demo: synthesis and place-and-route
take minutes, and the default board's build is its own command.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

from ..hw.config import DEFAULT_CONFIG
from ..hw.errors import FireforgeError
from .commands.compile import compile_program
from .commands.compress import compress
from .commands.golden import golden
from .commands.infer import Port, infer
from .commands.model import describe
from .commands.simboard import running
from .commands.train import train

PRESET = "squeezenet_tiny"
DATA = "digits"
#: the default board that runs the compressed network (4-bit codebooks: an ECP5 board, on the
#: configuration the simulated board runs)
BOARD = "ulx3s-25f"
DENSITY, BITS = 0.4, 4
CONFIG = DEFAULT_CONFIG
SIM_IMAGES = 5


def _step(title: str, argv: list[str], call) -> None:
    """Print the step and the command line that does it; run it, reports on stdout."""
    print(f"\n=== {title}\n$ fireforge {' '.join(argv)}", flush=True)
    try:
        call(log=_say)
    except FireforgeError as e:
        sys.exit(f"demo: step failed: fireforge {' '.join(argv)}: {e}")


def _say(text: str = "") -> None:
    print(text, flush=True)


def _save_photo(path: Path) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fireforge-demo", description=__doc__)
    parser.add_argument("--runs", default="runs", help="where the artifacts go")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    start = time.perf_counter()
    ckpt = runs / f"{PRESET}-{DATA}"
    _step("the network", ["model", "--preset", PRESET, "--in-channels", "1"],
          partial(describe, PRESET, in_channels=1))
    if (ckpt / "metrics.json").is_file():
        print(f"\n=== training: {ckpt} exists, reusing it (make clean to retrain)")
    else:
        _step("training on real handwritten digits",
              ["train", "--preset", PRESET, "--data", DATA, "--out", str(ckpt)],
              partial(train, PRESET, DATA, ckpt))
    compressed = runs / f"{PRESET}-{DATA}-d{DENSITY}-b{BITS}"
    _step("Deep Compression: prune + retrain, k-means weight sharing, Huffman size report",
          ["compress", "--checkpoint", str(ckpt), "--density", str(DENSITY), "--bits",
           str(BITS), "--out", str(compressed)],
          partial(compress, ckpt, DENSITY, BITS, compressed))
    program = runs / f"{PRESET}-{BOARD}-program"
    _step(f"compile to the accelerator's Program, fit-checked for {BOARD}",
          ["compile", "--checkpoint", str(compressed), "--board", BOARD, "--config", CONFIG,
           "--out", str(program)],
          partial(compile_program, compressed, program, board=BOARD, config=CONFIG))
    _step("the bit-exact integer golden model on the test digits",
          ["golden", "--program", str(program)], partial(golden, program))
    url_file = runs / "simboard.url"
    argv = ["simboard", "--program", str(program), "--config", CONFIG, "--port", "0",
            "--ready-file", str(url_file), "--build-dir", str(runs / "simboard")]
    print(f"\n=== the simulated board: the whole chip, UART included, in Verilator\n"
          f"$ fireforge {' '.join(argv)} &", flush=True)
    try:
        with running(argv, url_file, runs / "simboard.log") as url:
            _on_the_board(url, program, runs)
    except FireforgeError as e:  # (the board's own start; the steps exit with their error)
        sys.exit(f"demo: {e}")
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; artifacts in {runs}/")
    return 0


def _on_the_board(url: str, program: Path, runs: Path) -> None:
    print(f"listening on {url}", flush=True)
    port = Port(url)
    _step("classify test digits through the host driver, sums checked against golden",
          ["infer", "--port", url, "--program", str(program), "--data", DATA, "--count",
           str(SIM_IMAGES)],
          partial(infer, port, program, data=DATA, count=SIM_IMAGES))
    _step("one digit with every layer read back over the link and compared with golden",
          ["infer", "--port", url, "--program", str(program), "--data", DATA, "--count",
           "1", "--verify"],
          partial(infer, port, program, data=DATA, count=1, verify=True))
    photo = runs / "chelsea.png"
    _save_photo(photo)
    _step("a photograph (scikit-image's chelsea) through the image-file input path",
          ["infer", "--port", url, "--program", str(program), str(photo)],
          partial(infer, port, program, [photo]))


if __name__ == "__main__":
    from ..sim.processes import run_supervised

    sys.exit(run_supervised(main))
