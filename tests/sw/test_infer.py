"""``fireforge infer``'s own logic against a board double: a board that stops answering in the
middle of a stream is reported with the image it stopped at."""

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from fireforge.hw.program import load_program
from fireforge.sw.commands.infer import Port, infer
from fireforge.sw.driver import BoardTimeout
from fireforge.sw.golden import run_golden


class _Board:
    """Answers like the board for ``good`` images (the golden model's sums), then times out."""

    def __init__(self, good: int, stage: int):
        self.good, self.stage, self.calls = good, stage, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def check_model(self, program):
        return SimpleNamespace(board="double", model_hash=program.model_hash, n_layers=1,
                               config=SimpleNamespace(macs=8, stage_bytes=self.stage))

    def classify(self, program, image, top):
        self.calls += 1
        if self.calls > self.good:
            raise BoardTimeout("RUN: no valid reply after 4 tries (no reply)")
        sums = run_golden(program, image[None]).sums[0]
        return SimpleNamespace(cls=int(sums.argmax()), top=[(int(sums.argmax()), 1.0)],
                               sums=sums, cycles=1, seconds=0.0)

    def classify_many(self, program, images, top):
        for image in images:
            yield self.classify(program, image, top)


@dataclass(frozen=True)
class _Port(Port):
    good: int = 0
    stage: int = 1024

    def open(self):
        return _Board(self.good, self.stage)


def test_a_board_that_stops_mid_stream_names_the_image(quick_tiny_program):
    program = load_program(quick_tiny_program)
    ok = infer(_Port("double://", good=3), program.path, data="digits", count=3)
    assert ok.golden_agreement == 1.0 and len(ok.results) == 3
    with pytest.raises(BoardTimeout, match=r"^image 3 of 5 \(digits:test\[2\]\), after 2 "
                                           r"classified: RUN: no valid reply"):
        infer(_Port("double://", good=2), program.path, data="digits", count=5)


def test_a_board_whose_stage_is_too_small_is_noted(quick_tiny_program):
    """Images that do not fit the board's image stage still run (placed, one at a time), and
    the user is told why the link does not overlap the runs."""
    lines = []
    infer(_Port("double://", good=2, stage=512), quick_tiny_program, data="digits", count=2,
          log=lines.append)
    assert any("image stage holds 512 B and this model's image is 1,024 B" in line
               for line in lines)
