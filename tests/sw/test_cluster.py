"""Jobs as Ray tasks: results come back with the node that ran them, and a task's
FireforgeError comes back as one (the CLI prints it as one line)."""

import argparse

import pytest
from fireforge.hw.errors import FireforgeError
from fireforge.sw.cli import _seed_list
from fireforge.sw.cluster import ray_session, run_tasks


def _square(x):
    if x < 0:
        raise FireforgeError(f"{x} is negative")
    return x * x


def test_tasks_run_and_errors_come_back_as_themselves():
    with ray_session() as ray:
        results = {i: (r, node) for i, r, node in run_tasks(ray, _square, [(2,), (3,), (4,)])}
        assert {i: r for i, (r, _) in results.items()} == {0: 4, 1: 9, 2: 16}
        assert all(len(node) > 8 for _, node in results.values())
        with pytest.raises(FireforgeError, match="^-1 is negative$"):
            list(run_tasks(ray, _square, [(1,), (-1,)]))


def test_seed_lists():
    assert _seed_list("1-4") == [1, 2, 3, 4]
    assert _seed_list("1,3,5") == [1, 3, 5]
    assert _seed_list("1-2,7") == [1, 2, 7]
    for bad in ("a-b", "4-1", "1,,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            _seed_list(bad)
