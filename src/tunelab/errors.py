"""One exception type for every mistake a user can fix.

It subclasses Hydra's ``CompactHydraException`` so that, inside ``tunelab train``, Hydra prints
the message alone instead of a stack trace. Every message says what is wrong, where, and how to
fix it. Plain-Python users catch it like any exception.
"""

from hydra.errors import CompactHydraException


class TunelabError(CompactHydraException):
    """A user-fixable problem: bad config, bad data, bad model path, missing asset."""

    exit_code = 2


def did_you_mean(name: str, choices) -> str:
    """A 'did you mean ...?' hint for a misspelt name, or an empty string."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
