"""The NCT07064876 schedule domain: protocol as data, a pure schedule computation, the site
calendar and iCalendar rendering. It imports no web framework, serialiser or database."""

from scheduler.calendar import SiteCalendar, load_site
from scheduler.engine import compute_schedule
from scheduler.errors import FactError, ProtocolError, ScheduleInputError
from scheduler.model import ParticipantFacts, Schedule
from scheduler.protocol import Protocol, load_protocol

__all__ = [
    "FactError", "ParticipantFacts", "Protocol", "ProtocolError", "Schedule",
    "ScheduleInputError", "SiteCalendar", "compute_schedule", "load_protocol", "load_site",
]
