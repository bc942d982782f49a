"""The exceptions tvpower raises, grouped by what the caller can do about them.

::

    TvpowerError                 anything tvpower raises on purpose
    ├── ScheduleError            a schedule or calendar file is wrong: fix the file
    │                            (also a ValueError)
    ├── UsageError               a command-line value is wrong: fix the command
    │                            (also a ValueError)
    └── BrokerError              the MQTT broker cannot be reached, started or used:
                                 check the broker or the network
                                 (also an OSError)

Entry points turn each of these into one line on stderr and a non-zero exit
status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TvpowerError(Exception):
    """Base class of every error tvpower raises on purpose."""


class ScheduleError(TvpowerError, ValueError):
    """A schedule or calendar file is wrong.

    The message names the file, the entry and the field, what was expected
    and what was found, in one line.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        entry: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.entry = entry
        self.field = field
        self.reason = message
        where = path
        if entry is not None:
            where += f": {entry}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")


class UsageError(TvpowerError, ValueError):
    """A command-line value is wrong."""


class BrokerError(TvpowerError, OSError):
    """The MQTT broker cannot be reached, started or used."""
