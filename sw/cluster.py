"""Independent jobs (nextpnr seeds, sweep trials) as Ray tasks: on this machine's cores by
default, or on a cluster a user started (``ray start --head`` there, ``--ray-address`` here).

:func:`run_tasks` runs one function over many argument tuples and reports each result as it
finishes, with the node that ran it; a task's :class:`FireforgeError` comes back as itself."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..hw.errors import FireforgeError

__all__ = ["ray_session", "run_tasks", "TaskPool"]


@contextmanager
def ray_session(address: str | None = None):
    """Ray for the duration: a local instance on this machine's cores, or the cluster at
    ``address`` (``HOST:PORT`` of its head, or ``auto``); shut down afterwards."""
    try:
        import ray
    except ImportError:
        raise FireforgeError("Ray is not installed: pip install 'ray>=2.40,<3' (make setup "
                             "does)") from None
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    # ray.init installs its own SIGTERM handlers (a bare exit, and a crash dump): the command's
    # own, which stops everything it started and exits with one line, stay in charge
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # ("local": a new instance even where `ray start` runs a cluster on this machine,
            # which a bare ray.init would join)
            ray.init(address="local", num_cpus=os.cpu_count(), **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise FireforgeError(f"cannot start or join {where}: {str(e).splitlines()[0]}") from None
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, handler in handlers.items():
                if handler is not None:  # (None: a handler not set from Python)
                    signal.signal(s, handler)
    try:
        yield ray
    finally:
        ray.shutdown()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class TaskPool:
    """Tasks of one function submitted as they are chosen (a sampler that learns from
    finished trials chooses the next), each tagged; :meth:`next` waits for the first to
    finish. A task's :class:`FireforgeError` comes back as itself and cancels the rest."""

    def __init__(self, ray, fn: Callable, cpus: float = 1):
        self._ray = ray
        self._task = ray.remote(num_cpus=cpus)(lambda *a: (fn(*a), _node_id()))
        self._pending: dict = {}

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, tag, *args) -> None:
        self._pending[self._task.remote(*args)] = tag

    def next(self) -> tuple[object, object, str]:
        """``(tag, result, node id)`` of the first task to finish."""
        ray = self._ray
        [done], _ = ray.wait(list(self._pending), num_returns=1)
        tag = self._pending.pop(done)
        try:
            result, node = ray.get(done)
        except ray.exceptions.RayTaskError as e:
            for ref in self._pending:
                ray.cancel(ref, force=True)
            self._pending.clear()
            cause = getattr(e, "cause", None)
            if isinstance(cause, FireforgeError):
                raise FireforgeError(str(cause)) from None
            raise
        return tag, result, node


def run_tasks(ray, fn: Callable, args: list[tuple], cpus: float = 1
              ) -> Iterator[tuple[int, object, str]]:
    """``fn(*a)`` for each ``a`` in ``args`` as Ray tasks of ``cpus`` CPUs each; yields
    ``(index, result, node id)`` in the order they finish."""
    pool = TaskPool(ray, fn, cpus)
    for i, a in enumerate(args):
        pool.submit(i, *a)
    while pool:
        yield pool.next()
