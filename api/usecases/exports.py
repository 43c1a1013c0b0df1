"""Every participant's schedule at once, for the site-wide exports (CDISC ODM)."""

from __future__ import annotations

import datetime as dt

from api.persistence.records import StoredParticipant
from api.usecases.participants import Participants
from scheduler import Schedule


def all_schedules(participants: Participants, today: dt.date) \
        -> list[tuple[StoredParticipant, Schedule]]:
    """Each participant in enrolment order with its schedule as of `today`, each computed under
    the protocol version it is pinned to; the histories are read in one query."""
    with participants.unit(readonly=True) as uow:
        listed = uow.participants.listing()
        histories = uow.participants.events_of_many([p.id for p in listed]) if listed else {}
    return [(p, participants.compute(p, histories[p.id], today)) for p in listed]
