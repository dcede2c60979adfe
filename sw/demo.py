"""``make demo``: the main job of fireforge on its built-in default, no board needed.

It runs the flow as far as the project goes today, each step through the real ``fireforge``
command, and leaves every artifact under ``--runs`` (default ``runs/``):

1. ``fireforge model``: the per-layer table of the default preset;
2. ``fireforge train``: the preset on scikit-learn's digits (skipped when the checkpoint exists);
3. ``fireforge compress``: Deep Compression to 40% density with 4-bit codebooks;
4. ``fireforge compile``: the Program and memory images, checked against the default board;
5. ``fireforge golden``: the bit-exact integer model on the test digits, against the float one;
6. ``fireforge sim``: the accelerator's generated Verilog (Verilator) on test digits, every
   layer compared with the golden model; cycles and MAC-array utilization.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..hw.config import DEFAULT_CONFIG
from .cli import main as fireforge

PRESET = "squeezenet_tiny"
DATA = "digits"
BOARD = "icebreaker"
DENSITY, BITS = "0.4", "4"
CONFIG = DEFAULT_CONFIG
SIM_IMAGES = "3"


def _step(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}\n$ fireforge {' '.join(argv)}", flush=True)
    if fireforge(argv) != 0:
        sys.exit(f"demo: step failed: fireforge {' '.join(argv)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fireforge-demo", description=__doc__)
    parser.add_argument("--runs", default="runs", help="where the artifacts go")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    start = time.perf_counter()
    ckpt = runs / f"{PRESET}-{DATA}"
    _step("the network", ["model", "--preset", PRESET, "--in-channels", "1"])
    if (ckpt / "metrics.json").is_file():
        print(f"\n=== training: {ckpt} exists, reusing it (make clean to retrain)")
    else:
        _step("training on real handwritten digits",
              ["train", "--preset", PRESET, "--data", DATA, "--out", str(ckpt)])
    compressed = runs / f"{PRESET}-{DATA}-d{DENSITY}-b{BITS}"
    _step("Deep Compression: prune + retrain, k-means weight sharing, Huffman size report",
          ["compress", "--checkpoint", str(ckpt), "--density", DENSITY, "--bits", BITS,
           "--out", str(compressed)])
    program = runs / f"{PRESET}-{BOARD}-program"
    _step(f"compile to the accelerator's Program, fit-checked for {BOARD}",
          ["compile", "--checkpoint", str(compressed), "--board", BOARD, "--config", CONFIG,
           "--out", str(program)])
    _step("the bit-exact integer golden model on the test digits",
          ["golden", "--program", str(program)])
    _step(f"the accelerator's RTL ({CONFIG}, Verilator) on test digits, every layer vs golden",
          ["sim", "--program", str(program), "--config", CONFIG, "--simulator", "verilator",
           "--images", SIM_IMAGES, "--build-dir", str(runs / "sim")])
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; artifacts in {runs}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
