"""Independent iCalendar readers that must agree on every (UID, start) of a feed
(docs/feeds.md, "How feeds are checked")."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
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


def with_node_ical(data: bytes) -> Pairs:
    node = shutil.which("node")
    need(node is not None, "node is not installed: node-ical cannot read the feed")
    need((ROOT / "node_modules" / "node-ical").is_dir(),
         "node-ical is not installed (make test runs npm ci when npm is present)")
    result = subprocess.run([node, str(ROOT / "tests" / "feeds" / "nodeical_reader.mjs")],
                            input=data, capture_output=True, check=True, timeout=60)
    return {(uid, start) for uid, start in json.loads(result.stdout)}


# Debian's python, which has python3-gi; the project's .venv cannot import `gi`.
SYSTEM_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGES = "make test installs Debian's {} when run as root"


def _system_python_has_libical() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('ICalGLib', "
                            "'3.0'); from gi.repository import ICalGLib"],
                           capture_output=True, timeout=60)
    return probe.returncode == 0


def with_libical(data: bytes) -> Pairs:
    """libical: parse, then its restriction check; any X-LIC-ERROR left is a failure."""
    need(_system_python_has_libical(),
         f"libical's GObject bindings are not importable by {SYSTEM_PYTHON} "
         f"({DEBIAN_PACKAGES.format('python3-gi and gir1.2-ical-3.0')})")
    result = subprocess.run([SYSTEM_PYTHON, str(ROOT / "tests" / "feeds" / "libical_reader.py")],
                            input=data, capture_output=True, check=True, timeout=60)
    reading = json.loads(result.stdout)
    assert reading["errors"] == [], f"libical: {reading['errors']}"
    return {(uid, start) for uid, start in reading["pairs"]}


IMPORTED = re.compile(rb"(\d+) apps / (\d+) events / (\d+) todos / (\d+) skipped")


def calcurse_dates(data: bytes) -> list[str]:
    """`calcurse -i` into a scratch directory: every VEVENT imported, none skipped; returns
    the start date of each imported entry, sorted (calcurse keeps no UIDs)."""
    calcurse = shutil.which("calcurse")
    need(calcurse is not None,
         f"calcurse is not installed ({DEBIAN_PACKAGES.format('calcurse')})")
    assert calcurse is not None
    with tempfile.TemporaryDirectory(prefix="calcurse-") as scratch:
        feed = Path(scratch) / "feed.ics"
        feed.write_bytes(data)
        data_dir = Path(scratch) / "data"
        data_dir.mkdir()
        result = subprocess.run([calcurse, "-D", str(data_dir), "-i", str(feed)],
                                capture_output=True, timeout=60,
                                env={**os.environ, "HOME": scratch})
        report = IMPORTED.search(result.stdout)
        assert result.returncode == 0 and report is not None, result.stdout + result.stderr
        apps, events, todos, skipped = (int(n) for n in report.groups())
        assert (apps + events, todos, skipped) == (data.count(b"BEGIN:VEVENT"), 0, 0), \
            result.stdout
        assert result.stderr == b"", result.stderr
        dates = []
        for line in (data_dir / "apts").read_text(encoding="utf-8").splitlines():
            month, day, year = line[:10].split("/")
            dates.append(f"{year}-{month}-{day}")
    return sorted(dates)


READERS = {"icalendar": with_icalendar, "ical": with_ical, "vobject": with_vobject,
           "ical.js": with_icaljs, "node-ical": with_node_ical, "libical": with_libical}


def agreed_pairs(data: bytes) -> Pairs:
    """What every reader reads; they must all read the same. calcurse keeps no UIDs, so it
    must read the same start date for every event."""
    readings = {name: read(data) for name, read in READERS.items()}
    first = readings["icalendar"]
    for name, pairs in readings.items():
        assert pairs == first, f"{name} reads the feed differently"
    assert calcurse_dates(data) == sorted(start[:10] for _, start in first), \
        "calcurse reads the feed differently"
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
    # No METHOD (ical-feeds rule 8): a subscription feed is not an iTIP message.
    assert not any(line.split(b":")[0].split(b";")[0] == b"METHOD" for line in unfolded)
    # No control characters but the line breaks (RFC 5545 §3.3.11; ical-feeds rule 15).
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", data), "a control character"
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
