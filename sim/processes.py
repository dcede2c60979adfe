"""Processes a command starts (simulators, FPGA tools, a simulated board) stop with it.

Two halves:

* :func:`supervised` wraps a command's process (the ``fireforge`` entry point, ``make demo``):
  SIGTERM and SIGHUP are raised as :class:`Terminated` (so ``finally`` blocks run, and
  ``subprocess.run`` kills the child it waits for, as on Ctrl-C); the process adopts orphaned
  descendants (``PR_SET_CHILD_SUBREAPER``: a tool's grandchild whose parent died stays ours);
  and when the command ends, however it ends, every process still below it is stopped
  (SIGTERM, then SIGKILL after a grace period).
* :func:`die_with_parent` is called by a simulator's testbench (it runs inside the simulator
  process): the kernel stops the simulator when the process that started it dies, even by
  SIGKILL, when nothing above gets to run.

Linux-only where the kernel offers it (``prctl``, ``/proc``); elsewhere both are no-ops, and
children stop on Ctrl-C as before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

__all__ = ["Terminated", "supervised", "run_supervised", "alive", "descendants",
           "stop_descendants", "die_with_parent"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
#: seconds the descendants get between SIGTERM and SIGKILL
GRACE_SECONDS = 2.0


class Terminated(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (a ``KeyboardInterrupt``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _live_parent(pid: int) -> int | None:
    """The parent of process ``pid``, or None when it is gone or a zombie (dead, only waiting
    to be reaped), from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (2nd field) is in parentheses and may hold spaces
    state, parent = stat[stat.rindex(")") + 2:].split()[:2]
    return None if state == "Z" else int(parent)


def alive(pid: int) -> bool:
    """Process ``pid`` runs (exists and is not a zombie)."""
    return _live_parent(pid) is not None


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below ``pid`` (default: this one), children first, from ``/proc``
    (empty where there is no ``/proc``)."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and (parent := _live_parent(int(entry))) is not None:
            children.setdefault(parent, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def stop_descendants(grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM every process below this one, SIGKILL what is left after ``grace`` seconds;
    returns the pids that were running."""
    pids = descendants()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        _reap()
        if not set(descendants()) & set(pids):
            break
        time.sleep(0.05)
    for pid in descendants():  # (also any the dying ones started meanwhile)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap()
    return pids


#: the signal that stopped the command (a library that turns the exception into its own
#: ``KeyboardInterrupt``, as Ray's waits do, loses it)
received: int | None = None


def _raise_terminated(signum, frame):
    global received
    received = signum
    raise Terminated(signum)


@contextmanager
def supervised():
    """For the duration: SIGINT, SIGTERM and SIGHUP raise :class:`Terminated`, orphaned
    descendants are adopted; on the way out every descendant is stopped. Only in a program's
    main thread. (SIGINT gets its handler here too, not the one Python installs at startup:
    a process started with SIGINT ignored, as a shell starts background jobs, would otherwise
    keep ignoring it.)"""
    previous = {s: signal.signal(s, _raise_terminated)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        # a second signal while the children stop must not cut the cleanup short
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        try:
            stop_descendants()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def run_supervised(main: Callable[[], int]) -> int:
    """``main()`` under :func:`supervised`; a signal that ``main`` does not handle ends it
    with 128 + the signal's number."""
    try:
        with supervised():
            return main()
    except Terminated as e:
        return 128 + e.signum


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (and send it now if
    the parent is already gone: reparented to init)."""
    if _prctl(_PR_SET_PDEATHSIG, sig) and os.getppid() == 1:
        os.kill(os.getpid(), sig)
