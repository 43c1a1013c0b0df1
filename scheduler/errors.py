"""The two errors the domain raises: a malformed protocol or site file, and impossible facts."""

from __future__ import annotations

from dataclasses import dataclass


class ProtocolError(ValueError):
    """A protocol or site definition file is malformed; the message names the rule and field."""


@dataclass(frozen=True)
class FactError:
    """One impossible fact: the input field it sits in, the protocol rule it breaks, and why."""

    field: str
    rule: str
    message: str


class ScheduleInputError(ValueError):
    """The participant's facts are impossible under the protocol; nothing was computed.

    >>> error = FactError("recovery.date", "recovery-gate", "before cryoablation")
    >>> str(ScheduleInputError([error]))
    'recovery.date: before cryoablation (rule recovery-gate)'
    """

    def __init__(self, errors: list[FactError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.message} (rule {e.rule})" for e in errors))
