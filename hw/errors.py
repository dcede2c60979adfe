"""The one exception type fireforge raises for bad input, and the policy for raising it.

It lives in the lowest layer (``fireforge.hw`` imports neither ``fireforge.sw`` nor torch), so
every part of fireforge raises the same type.

Policy:

* :class:`FireforgeError` is for anything a user can cause: a bad argument, a file that is
  missing or corrupt, a network or configuration the hardware cannot run, a tool that is not
  installed. The command line prints it as one line on stderr and exits with status 1, so the
  message names what is wrong and what to do about it.
* ``ValueError``, ``TypeError`` and ``assert`` are for broken internal contracts (a compiler
  bug that packs a field out of range, a generator called with parameters no configuration
  makes): those are fireforge's bugs, and their tracebacks are wanted.
"""

__all__ = ["FireforgeError"]


class FireforgeError(Exception):
    """Bad input or an impossible request, explained for the user."""
