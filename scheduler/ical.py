"""Schedules as iCalendar (RFC 5545) for calendar clients that subscribe to a feed.

Each visit with a date becomes an all-day VEVENT (RFC 5545 §3.6.1): `DTSTART;VALUE=DATE` with an
exclusive `DTEND` the next day, built from `date` objects, never from local midnight. The window
is stated in the description and, for machines, in `X-TRIAL-WINDOW-EARLIEST/LATEST`; a window is
not an event of its own, so a client shows one entry per visit.

Nothing here reads a clock: `DTSTAMP` and `LAST-MODIFIED` are the time the visit last changed,
passed in, so the same schedule renders to the same bytes. UIDs are opaque UUIDs derived from a
calendar key and the stable visit id (RFC 7986 §5.3), never from names, codes or host names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from icalendar import Calendar, vDuration

from scheduler.model import Schedule, Visit

PRODID = "-//trial-schedule//NCT07064876 visit schedule//EN"
REFRESH = dt.timedelta(hours=1)
# A fixed namespace makes UIDs reproducible from (calendar key, visit id) alone.
UID_NAMESPACE = uuid.UUID("6f1d0d6e-4a7c-5b55-9c39-1e0a2b6f3d41")
_END = b"END:VCALENDAR\r\n"


def visit_uid(calendar_key: str, visit_id: str) -> str:
    """A visit's UID: stable for the life of the visit and opaque.

    >>> visit_uid("participant-1", "C1D1") == visit_uid("participant-1", "C1D1")
    True
    >>> visit_uid("participant-1", "C1D1") == visit_uid("participant-2", "C1D1")
    False
    """
    return _uuid5_text(f"{calendar_key}/{visit_id}")


_UID_PREFIX = UID_NAMESPACE.bytes


def _uuid5_text(name: str) -> str:
    """`str(uuid.uuid5(UID_NAMESPACE, name))` (RFC 9562 §5.5: the SHA-1 of the namespace and
    the name, with the version and variant bits set), written out without building a UUID
    object, which costs most of it: a write renders a UID for every visit it stores."""
    raw = bytearray(hashlib.sha1(_UID_PREFIX + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True)
class FeedEvent:
    """One visit as it goes into a feed, with what the feed knows of its history."""

    uid: str
    visit: Visit
    stamp: dt.datetime
    sequence: int = 0
    subject_code: str | None = None


def schedule_events(schedule: Schedule, calendar_key: str, stamp: dt.datetime,
                    subject_code: str | None = None,
                    sequences: Mapping[str, int] | None = None) -> list[FeedEvent]:
    """The dated visits of a schedule as feed events; undated (held, cancelled) ones are left out,
    so a subscribing client deletes them (ical-feeds rule 7)."""
    sequences = sequences or {}
    return [FeedEvent(visit_uid(calendar_key, visit.id), visit, stamp,
                      sequences.get(visit.id, 0), subject_code)
            for visit in schedule.visits if visit.date is not None]


# RFC 5545 §3.3.11: TEXT holds no CONTROL other than HTAB (line breaks are escaped as \n); a
# strict reader refuses the whole calendar for one (ical-feeds rule 15). C1 controls go too.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The engine explains a skipped dose as "<anchor>; skipped: <reason>", and the reason is free
# text a person typed: it stays out of feeds altogether (ical-feeds rule 15); the status says
# the dose was skipped.
_SKIP_REASON = "; skipped:"


def plain(text: str) -> str:
    r"""Text with its control characters removed (tab and line breaks stay; they are escaped).

    >>> plain("a\x0bb\x1b[31mc\x07\td")
    'ab[31mc\td'
    """
    return _CONTROL.sub("", text)


def _anchor(visit: Visit) -> str:
    """What the visit was counted from, without any free text the engine quoted in it."""
    anchor = visit.rule.anchor
    if visit.rule.id == "skipped-dose" and _SKIP_REASON in anchor:
        anchor = anchor.split(_SKIP_REASON, 1)[0] + "; skipped"
    return anchor


def _summary(visit: Visit, subject_code: str | None) -> str:
    marks = {"provisional": " (provisional)", "held": " (held)", "skipped": " (skipped)",
             "missed": " (missed)"}
    prefix = f"{subject_code}: " if subject_code else ""
    return plain(f"{prefix}{visit.title}{marks.get(visit.status, '')}")


def event_description(visit: Visit, subject_code: str | None) -> str:
    """The event's DESCRIPTION text (RFC 5545 section 3.8.1.5), before escaping: the title, the
    window, why the visit is where it is, any move, and the subject code."""
    lines = [visit.title]
    if visit.window is not None:
        lines.append(f"window {visit.window.earliest.isoformat()} to "
                     f"{visit.window.latest.isoformat()}")
    lines.append(f"why: {_anchor(visit)} (rule {visit.rule.id}, {visit.rule.source})")
    if visit.rule.shifted_from is not None:
        lines.append(f"moved from {visit.rule.shifted_from.isoformat()}: {visit.rule.shift_reason}")
    lines.append(f"status: {visit.status}")
    if subject_code:
        lines.append(f"subject: {subject_code}")
    return plain("\n".join(lines))


def _alarm(visit: Visit) -> str:
    return plain(f"Tomorrow: {visit.title}")


def escape_text(text: str) -> str:
    r"""TEXT escaping (RFC 5545 §3.3.11), as icalendar does it.

    >>> print(escape_text("a, b; c\\d"))
    a\, b\; c\\d
    """
    return (text.replace(r"\N", "\n").replace("\\", "\\\\").replace(";", r"\;")
            .replace(",", r"\,").replace("\r\n", r"\n").replace("\n", r"\n")
            .replace("\r", r"\n"))


def fold(line: str) -> str:
    r"""Fold a content line at 75 octets (RFC 5545 §3.1), exactly as icalendar does: 74 octets a
    line plus the continuation space, never splitting a UTF-8 sequence or an escape.

    >>> [len(part) for part in fold("X:" + "a" * 80).split("\r\n ")]
    [74, 8]
    """
    if len(line) < 75 and line.isascii():
        return line
    if not line.isascii():
        return _fold_octets(line)
    parts = []
    start = 0
    while len(line) - start > 74:
        end = start + 74
        if line[end - 1] in "\\^":
            end -= 1  # keep an escape with the character it escapes
        parts.append(line[start:end])
        start = end
    parts.append(line[start:])
    return "\r\n ".join(parts)


def _fold_octets(line: str) -> str:
    folded: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode("utf-8"))
        if current and size + width >= 75:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                folded.append("".join(current))
                current, size = [carried], len(carried.encode("utf-8"))
            else:
                folded.append("".join(current))
                current, size = [], 0
        current.append(char)
        size += width
    if current:
        folded.append("".join(current))
    return "\r\n ".join(folded)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def render_event(event: FeedEvent) -> bytes:
    """One VEVENT, CRLF-terminated and folded at 75 octets (RFC 5545 §3.1).

    Written directly rather than through icalendar's object model, which spends about 0.5 ms an
    event (a third of it folding lines a character at a time); the test suite holds this to
    icalendar's own output, byte for byte (tests/ical_oracle.py).
    """
    visit = event.visit
    assert visit.date is not None, "only dated visits are rendered"
    stamp = _utc(event.stamp)
    lines = [
        "BEGIN:VEVENT",
        "SUMMARY:" + escape_text(_summary(visit, event.subject_code)),
        f"DTSTART;VALUE=DATE:{visit.date:%Y%m%d}",
        f"DTEND;VALUE=DATE:{visit.date + dt.timedelta(days=1):%Y%m%d}",
        f"DTSTAMP:{stamp}",
        "UID:" + escape_text(event.uid),
        f"SEQUENCE:{event.sequence}",
        "CATEGORIES:" + escape_text(visit.kind),
        "DESCRIPTION:" + escape_text(event_description(visit, event.subject_code)),
        f"LAST-MODIFIED:{stamp}",
        "STATUS:" + ("TENTATIVE" if visit.status == "provisional" else "CONFIRMED"),
        "TRANSP:TRANSPARENT",
        "X-TRIAL-VISIT-ID:" + escape_text(visit.id),
        "X-TRIAL-VISIT-STATUS:" + escape_text(visit.status),
    ]
    if visit.window is not None:
        lines += [f"X-TRIAL-WINDOW-EARLIEST:{visit.window.earliest.isoformat()}",
                  f"X-TRIAL-WINDOW-LATEST:{visit.window.latest.isoformat()}"]
    if visit.status in ("planned", "provisional"):
        # A display alarm the day before (best effort: Google and Outlook ignore alarms in
        # subscribed calendars; ical-feeds rule 10).
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY",
                  "DESCRIPTION:" + escape_text(_alarm(visit)), "TRIGGER:-P1D",
                  "END:VALARM"]
    lines.append("END:VEVENT")
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode("utf-8")


# Raised whenever `render_event` writes an event differently, so that no stored event rendered
# the old way is taken for one rendered now (`event_mark`).
RENDER_FORMAT = 1


def event_mark(event: FeedEvent) -> str:
    """A fingerprint of everything `render_event` reads of the event: its UID, SEQUENCE and
    DTSTAMP, the subject code, and the visit's id, kind, title, date, window, status and why it
    is where it is (its rule's id, source and anchor, and any move). Two events with the same
    mark render to the same bytes, so a writer keeping rendered events with their marks reuses
    the bytes of an event whose mark is unchanged instead of rendering it again
    (api.usecases.feeds.SiteEventsWriter). A BLAKE2b digest of the fields: the fixed-form
    ones (a number, dates, the status, the UID) each between separators, and the text ones
    as the repr of their tuple, which is unambiguous whatever they hold."""
    visit, rule, window = event.visit, event.visit.rule, event.visit.window
    text = (f"{RENDER_FORMAT}|{event.uid}|{event.stamp.timestamp()}|{event.sequence}|"
            f"{visit.date}|{visit.status}|{window.earliest if window else None}|"
            f"{window.latest if window else None}|{rule.shifted_from}|"
            + repr((event.subject_code, visit.id, visit.kind, visit.title, rule.id,
                    rule.source, rule.anchor, rule.shift_reason)))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def render_header(name: str, source: str | None = None, description: str | None = None) -> bytes:
    """The calendar's opening lines, everything before its first VEVENT.

    RFC 7986 metadata: `NAME` and `X-WR-CALNAME` once each, `REFRESH-INTERVAL` with its required
    `VALUE=DURATION`, `X-PUBLISHED-TTL` as a duration, and `SOURCE` (the URL to refresh from)
    when the feed has one. No `METHOD` (ical-feeds rule 8): a subscription feed is not an iTIP
    message, and libical's iTIP check flags `METHOD:PUBLISH` without an `ORGANIZER`.
    """
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("name", plain(name))
    calendar.add("x-wr-calname", plain(name))
    if description:
        calendar.add("description", plain(description))
    calendar.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    if source:
        calendar.add("source", source, parameters={"VALUE": "URI"})
    whole: bytes = calendar.to_ical()
    assert whole.endswith(_END)
    return whole[: -len(_END)]


def render_calendar(name: str, events: Iterable[FeedEvent], source: str | None = None,
                    description: str | None = None) -> bytes:
    """A whole VCALENDAR with the given events, in the order given."""
    return b"".join(render_stream(name, events, source, description))


def render_stream(name: str, events: Iterable[FeedEvent], source: str | None = None,
                  description: str | None = None) -> Iterable[bytes]:
    """The calendar in pieces (header, one chunk per event, footer), for streaming."""
    yield render_header(name, source, description)
    for event in events:
        yield render_event(event)
    yield _END
