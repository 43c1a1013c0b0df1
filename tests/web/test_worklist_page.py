"""The worklist page shows the service's worklist (`GET /v1/worklist`), read from the stored
visit states: the same visits, overdue first, the rest by day, and no schedule computed."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from api.http.context import container
from api.web.tables import MORE_AFTER
from tests.db.conftest import SITE_TODAY, bearer

TODAY = dt.date.fromisoformat(SITE_TODAY)
OVERDUE_TABLE = re.compile(r'id="overdue-heading".*?<tbody>(.*?)</tbody>', re.S)
DAY_TABLE = re.compile(r'<h2 id="day-(\d{4}-\d{2}-\d{2})">.*?<tbody>(.*?)</tbody>', re.S)
ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
LINK = re.compile(r'<a href="/participants/([^"]+)">([^<]+)</a>')
VISIT_ID = re.compile(r'<span class="visit-id">([^<]+)</span>')


def ago(days: int) -> str:
    return (TODAY - dt.timedelta(days=days)).isoformat()


def record(browser, participant: str, version: int, **fields: str) -> None:
    answer = browser.post(f"/participants/{participant}/events",
                          {**fields, "version": str(version)})
    assert answer.status_code == 303, answer.get_data(as_text=True)


@pytest.fixture
def site(coordinator):
    """Three participants: one long into treatment (its second cycle overdue and later ones
    chained behind it), one dosed a week ago, one waiting for recovery."""
    late = coordinator.enrol("ZS-201", ago(60))
    record(coordinator, late, 1, type="recovery_confirmed", date=ago(53))
    record(coordinator, late, 2, type="dose_given", cycle="1", date=ago(53))
    recent = coordinator.enrol("ZS-202", ago(14))
    record(coordinator, recent, 1, type="recovery_confirmed", date=ago(7))
    record(coordinator, recent, 2, type="dose_given", cycle="1", date=ago(7))
    waiting = coordinator.enrol("ZS-203", ago(2))
    return {"ZS-201": late, "ZS-202": recent, "ZS-203": waiting}


def overdue_of(page: str) -> dict[str, tuple[list[str], int]]:
    """Each participant on the page's overdue table: the visits named (the first few) and
    how many are overdue."""
    found = {}
    table = OVERDUE_TABLE.search(page)
    for row in ROW.findall(table.group(1)) if table else []:
        count = re.search(r"<td[^>]*>(\d+) <span class=\"status status-overdue\"", row)
        found[LINK.search(row).group(1)] = (VISIT_ID.findall(row), int(count.group(1)))
    return found


def shown(page: str) -> tuple[list[tuple[str, str]], dict[str, list[tuple[str, str]]]]:
    """The page's overdue visits (participant, visit id; the first few of each) and its
    other visits by day."""
    overdue = [(participant, visit) for participant, (visits, _) in overdue_of(page).items()
               for visit in visits]
    days = {}
    for day, body in DAY_TABLE.findall(page):
        days[day] = [(LINK.search(row).group(1), VISIT_ID.search(row).group(1))
                     for row in ROW.findall(body)]
    return overdue, days


def test_the_worklist_page_lists_what_the_worklist_api_lists(db_app, keys, coordinator,
                                                              site):
    page = coordinator.get("/").get_data(as_text=True)
    end = TODAY + dt.timedelta(days=7)
    api = db_app.test_client().get(f"/v1/worklist?from={TODAY}&to={end}",
                                   headers=bearer(keys["read"])).get_json()
    listed = [(day["date"], visit) for day in api["days"] for visit in day["visits"]]
    overdue = [(v["participant_id"], v["visit_id"]) for _, v in listed
               if v["status"] == "overdue"]
    by_day: dict[str, list[tuple[str, str]]] = {}
    for day, v in listed:
        if v["status"] != "overdue":
            by_day.setdefault(day, []).append((v["participant_id"], v["visit_id"]))
    assert overdue and by_day  # the comparison below is about something
    _, page_days = shown(page)
    assert page_days == by_day
    named = {}
    for who, visit in overdue:  # in date order
        named.setdefault(who, []).append(visit)
    assert overdue_of(page) == {who: (visits[:MORE_AFTER], len(visits))
                                for who, visits in named.items()}
    # Only the first open cycle of a chain can be overdue; later ones wait behind it.
    assert [visit for visit in named[site["ZS-201"]]
            if visit.startswith("C") and visit.endswith("D1")] == ["C2D1"]
    counts = {label: number for number, label in re.findall(
        r'<li class="count[^"]*"><strong>(\d+)</strong> ([^<]+)</li>', page)}
    assert counts["overdue"] == str(len(overdue))
    assert counts["today"] == str(len(by_day.get(TODAY.isoformat(), [])))
    assert counts["participants"] == str(len({who for who, _ in overdue}
                                             | {who for rows in by_day.values()
                                                for who, _ in rows}))
    assert f'href="/participants/{site["ZS-201"]}">ZS-201</a>' in page


def test_the_worklist_page_computes_no_schedule(db_app, coordinator, site, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the worklist page computed a schedule")

    monkeypatch.setattr(container(db_app).participants, "compute", refuse)
    answer = coordinator.get("/")
    assert answer.status_code == 200
    overdue, days = shown(answer.get_data(as_text=True))
    assert (site["ZS-201"], "C2D1") in overdue
    # Its cryoablation is not recorded, but the recovery and the dose prove it happened:
    # not overdue (rule cryoablation), though the worklist's read holds open visits only.
    assert (site["ZS-201"], "CRYO") not in overdue
    assert days


def test_a_done_visit_leaves_the_worklist_page(coordinator, site):
    before = overdue_of(coordinator.get("/").get_data(as_text=True))[site["ZS-201"]]
    assert "SCREEN-LABS" in before[0]
    record(coordinator, site["ZS-201"], 3, type="visit_done", visit_id="SCREEN-LABS",
           date=ago(54))
    after = overdue_of(coordinator.get("/").get_data(as_text=True))[site["ZS-201"]]
    assert "SCREEN-LABS" not in after[0]
    assert after[1] == before[1] - 1
