"""``fireforge infer`` (classify images on a board or the simulated board, every sum checked
against the golden model) and ``fireforge load`` (a compiled model written over the link)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ...hw.errors import FireforgeError
from . import Log, Result, optional, quiet

__all__ = ["Port", "InferReport", "infer", "LoadResult", "load"]


@dataclass(frozen=True)
class Port:
    """How to reach a board: any URL pyserial opens, and the link's patience."""

    url: str
    baud: int = 115200
    #: seconds to wait for each reply
    timeout: float = 2.0
    #: tries after a lost or damaged reply
    retries: int = 3

    def open(self):
        from ..driver import Board

        return Board.open(self.url, baudrate=self.baud, timeout=self.timeout,
                          retries=self.retries)


@dataclass
class InferReport(Result):
    program: str
    model_hash: str
    #: per image: class, label, top scores, cycles, seconds, the golden class and whether the
    #: sums equal golden (and, with verify, the layer-by-layer comparison)
    results: list
    golden_agreement: float
    accuracy: float | None = optional()


def _load_with_progress(board, program):
    """Load ``program`` onto ``board`` with a progress bar; the new info and the seconds."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=0, unit="B", unit_scale=True, file=sys.stderr, desc="load",
              disable=None) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        info = board.load(program, progress)
    return info, time.perf_counter() - t0


def infer(port: Port, program: str | Path, images: list[str | Path] = (), *,
          data: str | None = None, count: int = 10, top: int = 3, verify: bool = False,
          load_first: bool = False, log: Log = quiet) -> InferReport:
    """Classify image files (PNG, JPEG, ``.npy``), or the first ``count`` test images of
    ``data``, on the board at ``port`` running ``program``. ``verify`` also reads back every
    layer; ``load_first`` loads ``program`` when the board runs another model or none. Raises
    when any image's sums differ from the golden model's."""
    import numpy as np

    from ...hw.program import load_program
    from ..driver import BoardError, load_image_file, prepare_image, stages
    from ..golden import run_golden

    prog = load_program(program)
    classes = prog.manifest.classes or [str(i) for i in range(prog.num_classes)]
    if bool(images) == bool(data):
        raise FireforgeError("give image files, or --data NAME [--count N], not both")
    notes: list[str] = []
    if images:
        names = [str(p) for p in images]
        x = np.stack([prepare_image(load_image_file(p), prog, p, notes) for p in images])
        labels = None
    else:
        from ..data import load_dataset

        c, size, _ = prog.input_shape
        dataset = load_dataset(data, size, c)
        x, labels = dataset.x_test[:count], dataset.y_test[:count]
        names = [f"{data}:test[{i}]" for i in range(len(x))]
    for note in notes:
        log(f"note: {note}")
    golden = run_golden(prog, x, keep_layers=verify)
    results = []
    with port.open() as board:
        if load_first and board.info().model_hash != prog.model_hash:
            info, seconds = _load_with_progress(board, prog)  # (load checks the new model)
            log(f"loaded {prog.path} onto {info.board!r} in {seconds:.1f} s")
        else:
            info = board.check_model(prog)
        log(f"board {info.board!r}: model {info.model_hash[:12]}… ({info.n_layers} layers), "
            f"{info.config.macs} MACs")
        if not stages(info.config.stage_bytes, x[0]):
            log(f"note: the board's image stage holds {info.config.stage_bytes:,} B and this "
                f"model's image is {x[0].size:,} B: each image goes placed (WRITE_IMAGE) after "
                f"the last result, not during the run")
        top = min(top, prog.num_classes)
        # the next image crosses the link while the board runs one (verify runs each alone)
        stream = (board.classify(prog, image, top) for image in x) if verify else \
            board.classify_many(prog, x, top)
        for n, name in enumerate(names):
            try:
                r = next(stream)
            except BoardError as e:  # (a board that stops answering mid-stream)
                raise type(e)(f"image {n + 1} of {len(x)} ({name}), after {n} classified: "
                              f"{e}") from None
            entry = {"image": name, "class": r.cls, "label": classes[r.cls],
                     "top": [[c, round(score, 4)] for c, score in r.top],
                     "cycles": r.cycles, "seconds": round(r.seconds, 3),
                     "golden_class": int(golden.predictions[n]),
                     "equals_golden": bool(np.array_equal(r.sums, golden.sums[n]))}
            if labels is not None:
                entry["true_class"] = int(labels[n])
            if verify:
                entry["verify"] = board.verify(prog, x[n], golden, n)
            results.append(entry)
            log(_describe(entry, r.top, classes, labels, n))
    report = InferReport(program=str(program), model_hash=prog.model_hash, results=results,
                         golden_agreement=float(np.mean([r["equals_golden"] for r in results])))
    if labels is not None:
        report.accuracy = float(np.mean([r["class"] == r["true_class"] for r in results]))
        log(f"accuracy {report.accuracy * 100:.1f}% on {len(results)} images; sums equal to "
            f"the golden model's on {report.golden_agreement * 100:.1f}%")
    bad = [r for r in results if not r["equals_golden"]
           or (verify and not r["verify"]["bit_exact"])]
    if bad:
        raise FireforgeError(f"{len(bad)} of {len(results)} images differ from the golden model "
                             f"(first: {bad[0]['image']})")
    return report


def _describe(entry: dict, top, classes, labels, n: int) -> str:
    """One image's line: class, label, top scores, cycles, and how it compares with golden."""
    scores = ", ".join(f"{classes[c]} {score:.2f}" for c, score in top)
    check = "" if entry["equals_golden"] else "  SUMS DIFFER FROM GOLDEN"
    if "verify" in entry:
        v = entry["verify"]
        check += ("  every layer bit-exact" if v["bit_exact"] else
                  f"  MISMATCH at {v['layer']} channel {v['channel']} "
                  f"({v['y']}, {v['x']}): got {v['got']}, expected {v['expected']}")
    truth = f" (label {classes[labels[n]]})" if labels is not None else ""
    return (f"{entry['image']}: {entry['label']}{truth}  top: {scores}  {entry['cycles']:,} "
            f"cycles, {entry['seconds'] * 1000:.0f} ms{check}")


@dataclass
class LoadResult(Result):
    program: str
    model_hash: str
    board: str
    seconds: float


def load(port: Port, program: str | Path, *, log: Log = quiet) -> LoadResult:
    """Write ``program`` into the spare model slot of the board at ``port``; the board switches
    to it only when its CRC-32 checks out."""
    from ...hw.program import load_program

    prog = load_program(program)
    with port.open() as board:
        info, seconds = _load_with_progress(board, prog)
    log(f"board {info.board!r} now runs {info.model_hash[:16]}… ({info.n_layers} layers, "
        f"{info.num_classes} classes), loaded in {seconds:.1f} s")
    return LoadResult(program=str(program), model_hash=info.model_hash, board=info.board,
                      seconds=round(seconds, 2))
