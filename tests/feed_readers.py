"""Independent iCalendar readers that must agree on every (UID, start) of a feed
(docs/feeds.md, "How feeds are checked")."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from icalendar import Calendar

ROOT = Path(__file__).resolve().parents[1]
Pairs = set[tuple[str, str]]


def need(condition: bool, reason: str) -> None:
    """Skip when a reader's tool is missing; with REQUIRE_ALL_READERS=1 (as .ci/run sets)
    a missing tool fails instead, so a run cannot pass by checking less."""
    if condition:
        return
    if os.environ.get("REQUIRE_ALL_READERS") == "1":
        pytest.fail(f"{reason} (REQUIRE_ALL_READERS=1)")
    pytest.skip(reason)


def with_icalendar(data: bytes) -> Pairs:
    calendar = Calendar.from_ical(data)
    problems = [(c.name, c.errors) for c in calendar.walk() if c.errors]
    assert problems == []
    return {(str(e["UID"]), e.decoded("DTSTART").isoformat()) for e in calendar.walk("VEVENT")}


def with_ical(data: bytes) -> Pairs:
    from ical.calendar_stream import IcsCalendarStream

    calendar = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    return {(event.uid, event.dtstart.isoformat()) for event in calendar.events}


def with_vobject(data: bytes) -> Pairs:
    import vobject

    calendar = vobject.readOne(data.decode("utf-8"), validate=True)
    return {(event.uid.value, event.dtstart.value.isoformat())
            for event in calendar.contents.get("vevent", [])}


def with_icaljs(data: bytes) -> Pairs:
    node = shutil.which("node")
    need(node is not None, "node is not installed: ical.js cannot read the feed")
    need((ROOT / "node_modules" / "ical.js").is_dir(),
         "ical.js is not installed (make test runs npm ci when npm is present)")
    result = subprocess.run([node, str(ROOT / "tests" / "feeds" / "icaljs_reader.mjs")],
                            input=data, capture_output=True, check=True, timeout=60)
    return {(uid, start) for uid, start in json.loads(result.stdout)}


READERS = {"icalendar": with_icalendar, "ical": with_ical, "vobject": with_vobject,
           "ical.js": with_icaljs}


def agreed_pairs(data: bytes) -> Pairs:
    """What every reader reads; they must all read the same."""
    readings = {name: read(data) for name, read in READERS.items()}
    first = readings["icalendar"]
    for name, pairs in readings.items():
        assert pairs == first, f"{name} reads the feed differently"
    return first


def check_bytes(data: bytes) -> None:
    """What parsers tolerate and clients may not (RFC 5545 §3.1, §3.3.11, §3.6.1)."""
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in lines), "a line is not folded at 75 octets"
    data.decode("utf-8")
    unfolded = re.sub(rb"\r\n[ \t]", b"", data).split(b"\r\n")
    assert unfolded.count(b"VERSION:2.0") == 1
    assert sum(line.startswith(b"PRODID:") for line in unfolded) == 1
    assert not any(line.startswith(b"METHOD:") and line != b"METHOD:PUBLISH" for line in unfolded)
    uids = []
    for block in b"\r\n".join(unfolded).split(b"BEGIN:VEVENT")[1:]:
        event = block.split(b"END:VEVENT")[0].split(b"\r\n")
        for name in (b"UID", b"DTSTAMP", b"DTSTART"):
            assert sum(line.split(b":")[0].split(b";")[0] == name for line in event) == 1, name
        uids += [line[4:] for line in event if line.startswith(b"UID:")]
        for line in event:
            if line.startswith((b"SUMMARY:", b"DESCRIPTION:")):
                value = line.split(b":", 1)[1]
                assert not re.search(rb"(?<!\\)[,;]", value), f"unescaped text: {line!r}"
    assert len(uids) == len(set(uids)), "duplicate UIDs"
