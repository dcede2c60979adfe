"""The one exception type fireforge raises for bad input, and the policy for raising it.

It lives in the lowest layer (``fireforge.hw`` imports neither ``fireforge.sw`` nor torch), so
every part of fireforge raises the same type.

Policy:

* :class:`FireforgeError` is for anything a user can cause: a bad argument, a file that is
  missing or corrupt, a network or configuration the hardware cannot run, a tool that is not
  installed. The command line prints it as one line on stderr and exits with status 1, so the
  message is one line that names what is wrong and what to do about it; a failed tool's
  message names its log (:func:`tool_failed`).
* A library's exception (torch, numpy, a pickle, the OS) is translated where it arises, into a
  :class:`FireforgeError` that names the file or value; the command line prints any other
  ``OSError`` as one line too.
* ``ValueError``, ``TypeError`` and ``assert`` are for broken internal contracts (a compiler
  bug that packs a field out of range, a generator called with parameters no configuration
  makes): those are fireforge's bugs, and their tracebacks are wanted.
"""

from pathlib import Path

__all__ = ["FireforgeError", "tool_failed"]


class FireforgeError(Exception):
    """Bad input or an impossible request, explained for the user."""


def tool_failed(what: str, log: Path | None) -> FireforgeError:
    """The one-line error for a tool that failed (a simulator build, synthesis): what failed,
    the last line its log says, and where the whole log is."""
    last = ""
    if log is not None and log.is_file():
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
        last = next((line for line in reversed(lines) if line), "")
    detail = f": {last[:200]}" if last else ""
    return FireforgeError(f"{what}{detail} (the whole log: {log})" if log else f"{what}{detail}")
