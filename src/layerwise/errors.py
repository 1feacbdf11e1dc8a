"""The few error types layerwise raises. Every message is one sentence that says what to do."""

from __future__ import annotations


class LayerwiseError(Exception):
    """A problem the user can fix: bad data, a bad setting, a missing file. The CLI exits with 2."""

    exit_code = 2


class DataError(LayerwiseError):
    """The data cannot be read or does not fit what was asked."""


class ConfigError(LayerwiseError):
    """A setting is unknown or out of range."""


class RunError(LayerwiseError):
    """A run folder or checkpoint is missing, damaged, or not a run."""


def say(msg: str | None, quiet: bool = False) -> None:
    """Print one line of progress or advice to stderr (nothing when quiet or msg is empty)."""
    if msg and not quiet:
        import sys

        print(msg, file=sys.stderr)
