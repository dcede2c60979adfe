"""The one exception type fireforge raises for bad input.

The command line prints a :class:`FireforgeError` as one line on stderr and exits non-zero, so its
message must name what is wrong and what to do about it.
"""

__all__ = ["FireforgeError"]


class FireforgeError(Exception):
    """Bad input or an impossible request, explained for the user."""
