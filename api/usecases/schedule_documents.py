"""A stored participant's schedule as it is served: the JSON bytes and their ETag, computed once
per (participant version, site day, protocol versions) in each process and served from memory
after that.

What a schedule depends on, and so what an entry is keyed by:

- the participant's history and enrolment: every write raises the participant's `version`
  (recording an event, correcting enrolment, moving it to another protocol version, bringing
  its visit states up to date), so a version names one history;
- the site's today: it makes open visits due or overdue (`scheduler.outcomes.on_day`) and
  decides which facts are still in the future (rule `future-facts`);
- the protocol versions this process loaded (`Protocols.tag`: every version's text) and the
  holiday data (`HOLIDAYS_VERSION`), which move dates.

Why in process, validated by a version read, and not a table of computed schedules: every
request must see the last write of any worker or instance (read-your-writes), so a request
reads the participant's version from the database whatever is cached; that read is one
prepared statement (together with the API key, `FeedReads.api_key_and_version`), while a
table of schedules would cost a write on the first read of every (version, day), a
migration, and the same read to find the row. An entry is never stale, only old: a version
or a day it does not name is another key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from api.usecases.common import Lru, NotFound
from api.usecases.feeds import feeds_protocol_tag
from api.usecases.participants import Participants
from scheduler import Schedule

# What `Participants.schedule` answers, as the served bytes (the HTTP layer's JSON encoder).
Encode = Callable[[Schedule], bytes]
# The participant's current version, read cheaply (one prepared statement); None: no such one.
VersionRead = Callable[[str], "int | None"]


@dataclass(frozen=True, slots=True)
class ScheduleDocument:
    """One schedule as served: its bytes and strong ETag (the SHA-256 of the bytes, so a new
    day that changes any status is a new ETag, and one that changes nothing keeps it)."""

    participant_id: str
    version: int
    day: dt.date
    etag: str
    body: bytes


def _cost(_key: object, document: ScheduleDocument) -> int:
    return len(document.body) + 200


@dataclass
class ScheduleDocuments:
    """The served schedules of one process, bounded in bytes, least recently used first out."""

    participants: Participants
    encode: Encode
    version_of: VersionRead | None = None
    max_bytes: int = 32 * 1024 * 1024
    documents: Lru[tuple[str, int, dt.date, str], ScheduleDocument] = field(init=False)
    # The protocol versions and holiday data the schedules here are computed under.
    tag: str = field(init=False)

    def __post_init__(self) -> None:
        self.documents = Lru(self.max_bytes, cost=_cost)
        self.tag = feeds_protocol_tag(self.participants.protocols)

    def cached(self, participant_id: str, version: int, day: dt.date) \
            -> ScheduleDocument | None:
        """The document of this participant version on this day, if this process has it."""
        return self.documents.get((participant_id, version, day, self.tag))

    def document(self, participant_id: str, day: dt.date) -> ScheduleDocument:
        """The participant's schedule as of the site's `day`: from memory when the version
        read now was computed before on that day, else read and computed (and kept). NotFound
        when there is no such participant."""
        if self.version_of is not None:
            version = self.version_of(participant_id)
            if version is None:
                raise NotFound()
            found = self.cached(participant_id, version, day)
            if found is not None:
                return found
        participant, events = self.participants.history(participant_id)
        # Keyed by the version read with the history: never a newer version's key.
        found = self.cached(participant.id, participant.version, day)
        if found is not None:
            return found
        body = self.encode(self.participants.compute(participant, events, day))
        document = ScheduleDocument(participant.id, participant.version, day,
                                    hashlib.sha256(body).hexdigest(), body)
        self.documents.put((participant.id, participant.version, day, self.tag), document)
        return document
