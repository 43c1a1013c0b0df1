"""The same VEVENT built through icalendar's object model: the oracle scheduler/ical.py's
direct serializer must match byte for byte."""

from __future__ import annotations

import datetime as dt

from icalendar import Alarm, Event, vText

from scheduler.ical import FeedEvent, _alarm, _summary, event_description


def render_event_with_icalendar(event: FeedEvent) -> bytes:
    visit = event.visit
    assert visit.date is not None
    stamp = event.stamp.astimezone(dt.UTC)
    vevent = Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", stamp)
    vevent.add("last-modified", stamp)
    vevent.add("sequence", event.sequence)
    vevent.add("dtstart", visit.date)
    vevent.add("dtend", visit.date + dt.timedelta(days=1))
    vevent.add("summary", _summary(visit, event.subject_code))
    vevent.add("description", event_description(visit, event.subject_code))
    vevent.add("categories", [visit.kind])
    vevent.add("status", "TENTATIVE" if visit.status == "provisional" else "CONFIRMED")
    vevent.add("transp", "TRANSPARENT")
    vevent.add("x-trial-visit-id", vText(visit.id))
    vevent.add("x-trial-visit-status", vText(visit.status))
    if visit.window is not None:
        vevent.add("x-trial-window-earliest", vText(visit.window.earliest.isoformat()))
        vevent.add("x-trial-window-latest", vText(visit.window.latest.isoformat()))
    if visit.status in ("planned", "provisional"):
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", _alarm(visit))
        alarm.add("trigger", dt.timedelta(days=-1))
        vevent.add_component(alarm)
    body: bytes = vevent.to_ical()
    return body
