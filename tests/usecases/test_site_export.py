"""The site's visits in a date range (the CSV export's use case), on the in-memory store,
against each participant's schedule as of the same day."""

from __future__ import annotations

from api.usecases.worklist import Worklist
from scheduler.history import (
    Complication,
    CryoablationDone,
    DoseGiven,
    Enrolment,
    RecoveryConfirmed,
)
from tests.conftest import D
from tests.usecases.conftest import service_on

TODAY = D("2026-11-25")


def enrolled(service, code, *events):
    participant = service.enrol(Enrolment(code, D("2026-06-01")), "test")
    for event in events:
        service.record(participant.id, event, "test", TODAY)
    return participant


def expected(service, participants, start, end):
    found = set()
    for participant in participants:
        _, schedule = service.schedule(participant.id, TODAY)
        found |= {(participant.enrolment.subject_code, v.id, v.date, v.status)
                  for v in schedule.visits if v.date is not None and start <= v.date <= end}
    return found


def test_every_dated_visit_in_the_range_with_its_status_on_the_day(store):
    service = service_on(store)
    participants = [
        enrolled(service, "ZS-001"),
        enrolled(service, "ZS-002", CryoablationDone(D("2026-06-01")),
                 RecoveryConfirmed(D("2026-06-08")), DoseGiven(1, D("2026-06-08"))),
        # A complication holds the recovery check: dated, with no window.
        enrolled(service, "ZS-003", CryoablationDone(D("2026-06-01")),
                 Complication(D("2026-06-03"), "haemorrhage"))]
    for start, end in [(D("2026-05-01"), D("2026-12-31")),
                       # After the first open visits: a later cycle in the range chains from
                       # an earlier overdue one, and is not itself due.
                       (D("2026-07-01"), D("2026-09-30"))]:
        listed = Worklist(store, reproject=service.visits_for_day).dated(start, end, TODAY)
        assert {(i.visit.subject_code, i.visit.visit_id, i.visit.date, i.status)
                for i in listed} == expected(service, participants, start, end)
        assert [i.visit.date for i in listed] == sorted(i.visit.date for i in listed)
    worklist = Worklist(store, reproject=service.visits_for_day)
    held = [i for i in worklist.dated(D("2026-06-01"), D("2026-06-30"), TODAY)
            if i.visit.subject_code == "ZS-003" and i.visit.visit_id == "RECOVERY"]
    assert [(i.status, i.visit.earliest) for i in held] == [("held", None)]
