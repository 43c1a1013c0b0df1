"""Reads an iCalendar feed on stdin with libical (through GObject introspection) and prints
{"pairs": [[uid, start], ...], "errors": [...]} as JSON.

Run by Debian's /usr/bin/python3, which has python3-gi; the project's virtualenv has no `gi`.
`errors` holds every X-LIC-ERROR libical leaves in the calendar after parsing and after its
restriction check (RFC 5545/5546 property counts), which must find none.
"""

import json
import sys

import gi

gi.require_version("ICalGLib", "3.0")
from gi.repository import ICalGLib as ICal  # noqa: E402

ANY = ICal.ComponentKind.ANY_COMPONENT
VEVENT = ICal.ComponentKind.VEVENT_COMPONENT
XLICERROR = ICal.PropertyKind.XLICERROR_PROPERTY


def errors(component, found):
    prop = component.get_first_property(XLICERROR)
    while prop is not None:
        found.append(f"{ICal.Component.kind_to_string(component.isa())}: "
                     f"{prop.get_xlicerror()}")
        prop = component.get_next_property(XLICERROR)
    child = component.get_first_component(ANY)
    while child is not None:
        errors(child, found)
        child = component.get_next_component(ANY)
    return found


def main():
    text = sys.stdin.buffer.read().decode("utf-8")
    calendar = ICal.Parser.parse_string(text)
    if calendar is None or calendar.isa() != ICal.ComponentKind.VCALENDAR_COMPONENT:
        json.dump({"pairs": [], "errors": ["no VCALENDAR parsed"]}, sys.stdout)
        return
    found = errors(calendar, [])
    if not ICal.restriction_check(calendar):
        found.append("restriction_check returned false")
    found += [e for e in errors(calendar, []) if e not in found]
    pairs = []
    event = calendar.get_first_component(VEVENT)
    while event is not None:
        start = event.get_dtstart()
        day = f"{start.get_year():04d}-{start.get_month():02d}-{start.get_day():02d}"
        if not start.is_date():
            day += "T" + start.as_ical_string().split("T", 1)[1]
        pairs.append([event.get_uid(), day])
        event = calendar.get_next_component(VEVENT)
    json.dump({"pairs": pairs, "errors": found}, sys.stdout)


main()
