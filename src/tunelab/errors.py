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


def check_writable(folder, what: str, fix: str):
    """Create ``folder`` (with its parents) and a file in it, or raise a TunelabError naming ``what`` and ``fix``.

    A real try rather than ``os.access``: root passes every permission check, while a read-only
    mount, a full disk or a path through a file still fail; this finds all of them.
    """
    import tempfile
    from pathlib import Path

    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tunelab-write-test-"):
            pass
    except OSError as err:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        reason = (
            f"{blocker} is a file, not a folder"
            if blocker is not None
            else "the disk is full"
            if err.errno == 28
            else err.strerror or str(err)
        )
        raise TunelabError(f"Cannot write {what} '{folder}': {reason}. {fix}") from None
    return folder
