"""Bring your own network, measured: ResNet-8 (MLPerf Tiny's shape, :class:`fireforge.sw.zoo.
ResNet8`) written in PyTorch, trained on mnist5k, exported to ONNX and imported, beside the
``squeezenet1_1_cifar_w50`` preset; each compressed, compiled for a board, run by the golden
model on the test images and in Verilator, every layer compared.

    python examples/import_table.py --out runs/import [--board ulx3s-85f] [--epochs 10]

writes ``bench/import-BOARD.json``: per network its float and golden accuracy, on-chip bytes,
cycles per inference (cycle model, equal to the RTL's), inferences/s at the board's measured
Fmax, and whether Verilator was bit-exact.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from fireforge.boards.boards import board_spec
from fireforge.boards.build import measured_fmax
from fireforge.sw.commands.compile import compile_program
from fireforge.sw.commands.compress import compress
from fireforge.sw.commands.golden import golden
from fireforge.sw.commands.imports import import_module
from fireforge.sw.commands.sim import simulate
from fireforge.sw.commands.train import train
from fireforge.sw.data import load_dataset
from fireforge.sw.train import TrainConfig
from fireforge.sw.train import train as run_training
from fireforge.sw.zoo import ResNet8


def measure(name: str, float_dir: Path, root: Path, board: str, images: int, log) -> dict:
    spec = board_spec(board)
    t0 = time.perf_counter()
    c = compress(float_dir, 0.4, 4, root / "c", log=log)
    p = compile_program(root / "c", root / "p", board=board, log=log)
    g = golden(root / "p", log=log)
    s = simulate(root / "p", images=images, simulator="verilator", config=p.config,
                 build_dir=root / "b", log=log)
    fmax, where = measured_fmax(spec, p.config)
    return {"network": name, "board": board, "config": p.config,
            "float_accuracy": g.float_accuracy, "golden_accuracy": g.accuracy,
            "compressed_accuracy": c.accuracy_after,
            "test_images": g.images, "on_chip_bytes": p.fit["use"]["total"],
            "cycles_per_inference": p.cycles_per_inference,
            "mac_utilization": p.mac_utilization, "fmax_mhz": fmax, "fmax_from": where,
            "inferences_per_s": fmax * 1e6 / p.cycles_per_inference,
            "verilator_images": s.images, "bit_exact": s.bit_exact,
            "padding": p.padding, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/import"))
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--images", type=int, default=3, help="Verilator images")
    a = ap.parse_args()
    torch.set_num_threads(1)
    log = print
    rows = []
    # ResNet-8: plain PyTorch, fireforge's training loop, then ONNX
    data = load_dataset("mnist5k", 32, 1)
    mean, std = data.mean_std()
    torch.manual_seed(0)
    model = ResNet8(in_channels=1, num_classes=len(data.classes))
    metrics = run_training(model, data, mean, std, TrainConfig(epochs=a.epochs, lr=2e-3))
    log(f"ResNet-8 trained: {metrics['test_accuracy'] * 100:.2f}% ({metrics['seconds']} s)")
    r = a.out / "resnet8"
    imported = import_module(model, r / "f", data="mnist5k", channels=1, size=32, log=log)
    rows.append({**measure("resnet8 (ONNX)", r / "f", r, a.board, a.images, log),
                 "trained_accuracy": metrics["test_accuracy"],
                 "imported_accuracy": imported.test_accuracy, "params": imported.params,
                 "macs": imported.macs})
    w = a.out / "w50"
    t = train("squeezenet1_1_cifar_w50", "mnist5k", w / "f", log=log)
    rows.append({**measure("squeezenet1_1_cifar_w50", w / "f", w, a.board, a.images, log),
                 "trained_accuracy": t.test_accuracy, "params": t.params})
    Path("bench").mkdir(exist_ok=True)
    out = Path("bench") / f"import-{a.board}.json"
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    for row in rows:
        log(f"{row['network']:<26} float {row['float_accuracy'] * 100:.2f}%  golden "
            f"{row['golden_accuracy'] * 100:.2f}%  {row['cycles_per_inference']:,} cycles  "
            f"{row['inferences_per_s']:,.0f}/s at {row['fmax_mhz']:.1f} MHz  bit-exact "
            f"{row['bit_exact']} ({row['verilator_images']} images)")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
