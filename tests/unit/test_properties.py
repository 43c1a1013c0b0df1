"""Invariants of the schedule over thousands of generated participants (hypothesis), under
the default protocol (revision 3)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from itertools import pairwise

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from api.http.schemas import schedule_dict
from scheduler import ScheduleInputError, compute_schedule
from scheduler.engine import add_months
from scheduler.history import Enrolment, Event, fold
from scheduler.model import (
    Discontinuation,
    DoseRecord,
    Lookbacks,
    OffStudy,
    ParticipantFacts,
    Recovery,
    Schedule,
)
from scheduler.outcomes import (
    NOT_A_VISIT,
    OFF_STUDY_REASONS,
    OWN_EVENT,
    OffStudyOutcome,
    Outcomes,
    VisitDoneOutcome,
    VisitMissedOutcome,
    apply_outcomes,
    facts_with_outcomes,
    on_day,
)
from scheduler.protocol import DISCONTINUATION_REASONS
from scheduler.visit_order import order_key, visit_key
from tests.conftest import PROTOCOL, SITE

START, COMPLETION = PROTOCOL.study_start, PROTOCOL.study_completion
MOVABLE = set(PROTOCOL.rule("working-days").words("movable_kinds"))
OPEN = ("planned", "provisional")
MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def after(day: dt.date, low: int, high: int):
    return st.integers(low, high).map(lambda n: day + dt.timedelta(days=n))


@st.composite
def participants(draw, on_treatment: bool = False) -> ParticipantFacts:
    """Facts that could really happen: doses in order, after recovery, inside the study.

    `on_treatment` gives only recovered, not discontinued participants.
    """
    cryo = draw(st.dates(START, COMPLETION))
    statuses = ["recovered"] if on_treatment else ["pending", "recovered", "recovered",
                                                   "complication"]
    status = draw(st.sampled_from(statuses))
    recovery = Recovery(status)
    doses: list[DoseRecord] = []
    last = cryo
    if status == "recovered":
        recovery = Recovery(status, min(draw(after(cryo, 0, 40)), COMPLETION))
        last = recovery.date
        for cycle in range(1, draw(st.integers(0, 6)) + 1):
            if draw(st.integers(0, 4)) == 0:
                doses.append(DoseRecord(cycle, "skipped", reason=draw(st.text(max_size=20))))
                continue
            day = draw(after(last, 0 if cycle == 1 else 1, 60))
            if day > COMPLETION:
                break
            doses.append(DoseRecord(cycle, "given", day))
            last = day
    stop = None
    if not on_treatment and draw(st.booleans()):
        stop = Discontinuation(min(draw(after(last, 0, 90)), COMPLETION), None,
                               draw(st.sampled_from(DISCONTINUATION_REASONS)))
    lookbacks = Lookbacks(
        live_vaccine=draw(st.none() | st.dates(dt.date(2025, 1, 1), COMPLETION)),
        major_surgery=draw(st.none() | after(cryo, -90, 10).map(lambda d: min(d, COMPLETION))),
        radical_radiotherapy=draw(st.none() | after(cryo, -200, -1)),
    )
    return ParticipantFacts(cryo, recovery, draw(st.booleans()), tuple(doses), stop, lookbacks,
                            as_of=draw(st.none() | after(cryo, 0, 400)),
                            screening_date=draw(st.none() | after(cryo, -40, 0)))


def compute(facts: ParticipantFacts) -> Schedule:
    return compute_schedule(PROTOCOL, facts, SITE)


@MANY
@given(participants())
def test_open_visits_lie_inside_their_windows_and_inside_the_study(facts):
    schedule = compute(facts)
    kept = {w.visit_id for w in schedule.warnings if w.code == "after-estimated-study-completion"}
    for visit in schedule.visits:
        if visit.date is not None and visit.date > COMPLETION:
            # Only obligations outlast the estimated completion, and each says so.
            assert visit.kind in PROTOCOL.kept_after_completion and visit.id in kept, visit.id
        if visit.status in OPEN and visit.window is not None:
            assert visit.window.earliest <= visit.date <= visit.window.latest, visit.id


@MANY
@given(participants())
def test_ids_are_unique_and_visits_sorted_by_date_then_clinical_order(facts):
    visits = compute(facts).visits
    ids = [v.id for v in visits]
    assert len(ids) == len(set(ids))
    rank = {kind: i for i, kind in enumerate(PROTOCOL.rule("same-day-order").words("kinds"))}
    dated = [(v.date, rank[v.kind]) for v in visits if v.date is not None]
    assert dated == sorted(dated)
    assert all(v.date is None for v in visits[len(dated):])


@MANY
@given(participants())
def test_a_sorts_visit_key_is_the_one_order_key(facts):
    """`visit_key` (a sort's key, its ranks looked up once, `order_keys`) gives each visit
    `order_key`'s key, with the protocol's same-day order and with none (revision 1)."""
    for kinds in (PROTOCOL.visit_order, ()):
        key = visit_key(kinds)
        for visit in compute(facts).visits:
            assert key(visit) == order_key(kinds, visit.date, visit.kind, visit.id), visit.id


@MANY
@given(participants())
def test_at_most_six_infusions_at_least_18_days_apart_unless_recorded(facts):
    infusions = [v for v in compute(facts).visits if v.kind == "infusion"]
    assert len(infusions) <= PROTOCOL.rule("serplulimab").number("max_cycles")
    dated = [v for v in infusions if v.date is not None and v.status != "skipped"]
    for earlier, later in pairwise(dated):
        if earlier.status == "done" and later.status == "done":
            continue
        assert (later.date - earlier.date).days >= 18, (earlier.id, later.id)


@MANY
@given(participants())
def test_no_clinic_visit_on_a_non_working_day_without_a_warning(facts):
    schedule = compute(facts)
    warned = {w.visit_id for w in schedule.warnings if w.code == "no-working-day-in-window"}
    for visit in schedule.visits:
        if visit.kind in MOVABLE and visit.status in OPEN and visit.date is not None:
            assert SITE.is_working_day(visit.date) or visit.id in warned, visit.id


@MANY
@given(participants())
def test_the_same_facts_give_the_same_schedule(facts):
    assert compute(facts) == compute(facts)
    assert schedule_dict(compute(facts)) == schedule_dict(compute(replace(facts)))


@MANY
@given(participants(on_treatment=True))
def test_recording_the_next_dose_as_planned_moves_nothing(facts):
    before = compute(facts)
    upcoming = [v for v in before.visits if v.kind == "infusion" and v.status in OPEN]
    assume(upcoming)
    dose = upcoming[0]
    # A dose held past its window is another property's (below): the chain after it is
    # projected from the site's today, not from its planned day.
    assume(facts.as_of is None or dose.window is None or facts.as_of <= dose.window.latest)
    recorded = replace(facts, doses=(*facts.doses, DoseRecord(dose.cycle, "given", dose.date)))
    after_recording = compute(recorded)
    assert [(v.id, v.date) for v in before.visits] == \
        [(v.id, v.date) for v in after_recording.visits]
    assert after_recording.visit(dose.id).status == "done"


@MANY
@given(participants(on_treatment=True))
def test_a_held_dose_given_today_moves_nothing_projected_from_it(facts):
    """Rule held-dose-projection: while a dose is held past its window, the later cycles and
    the contraception end stand where giving it on the site's today puts them, provisional."""
    before = compute(facts)
    upcoming = [v for v in before.visits if v.kind == "infusion" and v.status in OPEN]
    assume(upcoming and facts.as_of is not None)
    held = upcoming[0]
    assume(held.window is not None and facts.as_of > held.window.latest)
    assert all(v.status == "provisional" for v in upcoming[1:])
    given_today = compute(replace(facts, doses=(
        *facts.doses, DoseRecord(held.cycle, "given", facts.as_of))))
    chained = [v.id for v in upcoming[1:]] + ["CONTRACEPTION-END"]
    assert [(i, before.visit(i).date) for i in chained] == \
        [(i, given_today.visit(i).date) for i in chained]
    assert not any(v.kind == "end_of_treatment" and v.date is not None and v.date < facts.as_of
                   and v.status in OPEN for v in before.visits)


def dates_anywhere():
    return st.none() | st.dates()


@settings(max_examples=1500, deadline=None)
@given(st.builds(
    ParticipantFacts,
    cryoablation_date=st.dates(),
    recovery=st.builds(Recovery, st.sampled_from(["pending", "recovered", "complication"]),
                       dates_anywhere()),
    childbearing_potential=st.booleans(),
    doses=st.lists(st.builds(DoseRecord, st.integers(-2, 9), st.sampled_from(["given", "skipped"]),
                             dates_anywhere(), st.none() | st.text(max_size=5)),
                   max_size=8).map(tuple),
    discontinuation=st.none() | st.builds(Discontinuation, st.dates(), st.none(),
                                          st.sampled_from([*DISCONTINUATION_REASONS, "x"])),
    lookbacks=st.builds(Lookbacks, *[dates_anywhere()] * 6,
                        st.none() | st.floats(allow_nan=True, allow_infinity=True),
                        dates_anywhere()),
    as_of=dates_anywhere(),
    screening_date=dates_anywhere(),
    off_study=st.none() | st.builds(OffStudy, st.dates(),
                                    st.sampled_from(["death", "other", "x"])),
    baseline_imaging_date=dates_anywhere(),
))
def test_any_facts_give_a_schedule_or_a_domain_error(facts):
    try:
        schedule = compute(facts)
    except ScheduleInputError as error:
        assert error.errors and all(e.field and e.rule and e.message for e in error.errors)
        return
    assert schedule.visit("CRYO").date == facts.cryoablation_date


def grid_day(visit):
    """The date the imaging grid placed a scan on, before any move onto a working day or to
    join another visit."""
    return visit.rule.shifted_from or visit.date


@SOME
@given(participants())
def test_no_two_response_scans_within_42_days_on_the_grid(facts):
    scans = [v for v in compute(facts).visits if v.kind == "response_imaging" and v.date]
    for earlier, later in pairwise(sorted(scans, key=grid_day)):
        assert (grid_day(later) - grid_day(earlier)).days >= 42, (earlier.id, later.id)
        # and a move never takes a scan out of its window
        assert later.window.earliest <= later.date <= later.window.latest


@SOME
@given(participants())
def test_no_obligation_is_cut_at_the_completion_date(facts):
    schedule = compute(facts)
    dosed = [v for v in schedule.visits if v.kind == "infusion" and v.date
             and v.status in ("done", "planned", "provisional")]
    cut = " ".join(w.message for w in schedule.warnings if w.code == "cut-at-study-completion")
    for visit_id in ("EOT", "SAFETY-FU", "CONTRACEPTION-END", "OS-1Y"):
        assert visit_id not in cut
    if dosed:
        for visit_id in ("EOT", "SAFETY-FU", "CONTRACEPTION-END"):
            assert schedule.visit(visit_id).date is not None, visit_id


@SOME
@given(participants())
def test_pregnancy_test_and_baseline_imaging_come_before_the_cryoablation(facts):
    schedule = compute(facts)
    for visit in schedule.visits:
        if visit.id in ("PREGNANCY", "BASELINE-IMAGING") and visit.date is not None:
            assert visit.date < facts.cryoablation_date, visit.id
        elif visit.id in ("PREGNANCY", "BASELINE-IMAGING"):
            # Undated only when every dose is cancelled before the first was given, or while
            # the first dose is held after a complication.
            assert visit.status in ("cancelled", "held"), visit.id
            assert schedule.first_dose_date is None, visit.id
    if facts.childbearing_potential:
        assert schedule.visit("PREGNANCY").date is not None


@SOME
@given(participants())
def test_end_of_treatment_is_on_or_after_the_discontinuation_date(facts):
    assume(facts.discontinuation is not None)
    eot = compute(facts).visit("EOT")
    assert eot.date >= facts.discontinuation.date
    assert eot.window.earliest >= facts.discontinuation.date


@st.composite
def histories(draw):
    """A history whose dated facts are entered in some order, and the same facts shuffled."""
    facts = draw(participants())
    events = []
    if facts.recovery.status != "pending":
        complication = facts.recovery.date or facts.cryoablation_date
        before = draw(after(facts.cryoablation_date, 0, max(0, (complication -
                                                                  facts.cryoablation_date).days)))
        if facts.recovery.status == "recovered" and before < complication:
            events.append(("complication", before, None))
        events.append(("recovery_confirmed" if facts.recovery.status == "recovered"
                       else "complication", facts.recovery.date, None))
    events += [("dose_given" if d.status == "given" else "dose_skipped", d.date, d.cycle)
               for d in facts.doses]
    if facts.discontinuation is not None:
        events.append(("discontinued", facts.discontinuation.date, None))
    order = draw(st.permutations(range(len(events))))
    return facts, events, [events[i] for i in order]


def as_events(entries):
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [Event(f"e{seq}", seq, kind, "coordinator", at, date=day, cycle=cycle,
                  description="x" if kind == "complication" else None)
            for seq, (kind, day, cycle) in enumerate(entries, start=1)]


@SOME
@given(histories())
def test_shuffling_the_entry_order_of_dated_facts_changes_nothing(history):
    facts, entered, shuffled = history
    enrolment = Enrolment("ZS-001", facts.cryoablation_date, facts.childbearing_potential,
                          facts.lookbacks, facts.screening_date)
    folded = fold(enrolment, as_events(entered), facts.as_of, PROTOCOL)
    refolded = fold(enrolment, as_events(shuffled), facts.as_of, PROTOCOL)
    assert folded.recovery == refolded.recovery == facts.recovery
    assert sorted(folded.doses, key=lambda d: d.cycle) == \
        sorted(refolded.doses, key=lambda d: d.cycle)
    assert compute(replace(folded, doses=tuple(reversed(folded.doses)))) == compute(refolded)


@st.composite
def recorded(draw) -> tuple[ParticipantFacts, Outcomes]:
    """Facts with the outcomes a site records: visits done on their day or missed, maybe an
    off-study (any reason, death included) after the last dose, all by the site's today."""
    facts = draw(participants())
    today = facts.as_of or draw(after(facts.cryoablation_date, 0, 400))
    facts = replace(facts, as_of=today)
    schedule = compute(facts)
    done: list[VisitDoneOutcome] = []
    missed: list[VisitMissedOutcome] = []
    for visit in schedule.visits:
        if visit.kind in OWN_EVENT or visit.kind in NOT_A_VISIT or visit.status not in OPEN \
                or visit.date is None or visit.date > today:
            continue
        choice = draw(st.integers(0, 3))
        if choice == 0:
            done.append(VisitDoneOutcome(visit.id, visit.date))
        elif choice == 1:
            missed.append(VisitMissedOutcome(visit.id, "not done"))
    left = None
    given = [d.date for d in facts.doses if d.date is not None]
    earliest = max([facts.cryoablation_date, *given, *(d.date for d in done)])
    if earliest <= today and draw(st.booleans()):
        day = draw(st.dates(earliest, today))
        left = OffStudyOutcome(day, draw(st.sampled_from(OFF_STUDY_REASONS)))
    return facts, Outcomes(None, tuple(done), tuple(missed), (), left)


def with_day(facts: ParticipantFacts, outcomes: Outcomes) -> Schedule:
    schedule = compute(facts_with_outcomes(facts, outcomes))
    return on_day(apply_outcomes(schedule, outcomes), facts.as_of or facts.cryoablation_date)


@SOME
@given(recorded())
def test_with_outcomes_applied_one_days_visits_follow_the_same_day_order(case):
    """Rule same-day-order has one owner (`scheduler.visit_order`): recording outcomes and
    applying the day keep it."""
    visits = with_day(*case).visits
    rank = {kind: i for i, kind in enumerate(PROTOCOL.visit_order)}
    dated = [(v.date, rank.get(v.kind, len(rank))) for v in visits if v.date is not None]
    assert dated == sorted(dated)
    assert all(v.date is None for v in visits[len(dated):])


@SOME
@given(recorded())
def test_no_warning_names_a_cancelled_visit(case):
    schedule = with_day(*case)
    cancelled = {v.id for v in schedule.visits if v.status == "cancelled"}
    for warning in schedule.warnings:
        assert warning.visit_id not in cancelled, warning
        if warning.visit_id is None:  # a warning about several visits lists their ids
            named = set(re.findall(r"[A-Z0-9]+(?:-[A-Z0-9]+)*", warning.message))
            assert not named & cancelled, warning


@SOME
@given(recorded())
def test_after_leaving_the_study_the_follow_up_counts_from_the_last_dose_given(case):
    facts, outcomes = case
    assume(outcomes.off_study is not None)
    schedule = with_day(facts, outcomes)
    assert schedule.state == "off_study"
    given = [v for v in schedule.visits if v.kind == "infusion" and v.status == "done"]
    end = schedule.visit("CONTRACEPTION-END") if given else None
    if end is not None and end.status != "cancelled":
        assert end.date == add_months(max(v.date for v in given), 6)
        assert "given" in end.rule.anchor and "left the study" in end.rule.anchor
    assert all(v.status != "planned" or v.date is None or v.date <= outcomes.off_study.date
               or v.kind in NOT_A_VISIT for v in schedule.visits)
