"""Every participant's schedule at once, for the site-wide exports (CDISC ODM).

Two steps, so an export can answer a revalidation from the participants' versions alone,
before any history is read or schedule computed."""

from __future__ import annotations

import datetime as dt

from api.persistence.records import StoredParticipant
from api.usecases.participants import Participants
from scheduler import Schedule


def site_participants(participants: Participants) -> list[StoredParticipant]:
    """Every participant in enrolment order, with its version; one read."""
    with participants.unit(readonly=True) as uow:
        return uow.participants.listing()


def schedules_of(participants: Participants, listed: list[StoredParticipant],
                 today: dt.date) -> list[tuple[StoredParticipant, Schedule]]:
    """Each listed participant with its schedule as of `today`, each computed under the
    protocol version it is pinned to; the histories are read in one query."""
    if not listed:
        return []
    with participants.unit(readonly=True) as uow:
        histories = uow.participants.events_of_many([p.id for p in listed])
    return [(p, participants.compute(p, histories[p.id], today)) for p in listed]
