"""A stored schedule as served, kept per (participant version, site day): computed once for a
version and a day, and never answered for another (api/usecases/schedule_documents.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from api.usecases.common import NotFound
from api.usecases.schedule_documents import ScheduleDocuments
from scheduler import Schedule
from scheduler.history import Enrolment, RecoveryConfirmed
from tests.usecases.conftest import service_on

DAY = dt.date(2026, 3, 10)


class Encoder:
    """Counts the schedules it encodes: one per computation."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, schedule: Schedule) -> bytes:
        self.calls += 1
        return json.dumps({"state": schedule.state, "visits": [
            [v.id, v.status, str(v.date)] for v in schedule.visits]}).encode()


@pytest.mark.parametrize("with_version_read", [True, False])
def test_one_computation_per_version_and_day(store, with_version_read):
    service = service_on(store)
    encode = Encoder()

    documents = ScheduleDocuments(service, encode,
                                  (lambda pid: service.get(pid).version) if with_version_read
                                  else None)
    participant = service.enrol(Enrolment("ZS-201", dt.date(2026, 3, 2)), "nurse")
    first = documents.document(participant.id, DAY)
    assert documents.document(participant.id, DAY) is first and encode.calls == 1
    assert first.etag == hashlib.sha256(first.body).hexdigest()
    assert first.version == participant.version and first.day == DAY

    service.record(participant.id, RecoveryConfirmed(dt.date(2026, 3, 9)), "nurse", DAY)
    after = documents.document(participant.id, DAY)
    assert encode.calls == 2 and after.version == participant.version + 1
    assert after.body != first.body and json.loads(after.body)["state"] == "scheduled"

    later = documents.document(participant.id, DAY + dt.timedelta(days=60))
    assert encode.calls == 3 and later.etag != after.etag  # C1D1 is overdue by then
    assert documents.cached(participant.id, after.version, DAY) is after


def test_an_unknown_participant_is_not_found(store):
    documents = ScheduleDocuments(service_on(store), Encoder(), lambda pid: None)
    with pytest.raises(NotFound):
        documents.document("no-such-participant", DAY)
    with pytest.raises(NotFound):
        ScheduleDocuments(service_on(store), Encoder()).document("no-such-participant", DAY)
