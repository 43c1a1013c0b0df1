"""Everything the entry points use, built once from the configuration (`api.app`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from api.persistence.unit_of_work import UnitOfWorkFactory
from api.usecases.api_keys import ApiKeys
from api.usecases.common import SiteClock
from api.usecases.feed_tokens import FeedLinks
from api.usecases.feeds import Feeds
from api.usecases.participants import Participants
from api.usecases.protocols import Protocols
from api.usecases.schedule_documents import ScheduleDocuments
from api.usecases.schedules import Schedules
from api.usecases.webhooks import Webhooks
from api.usecases.worklist import Worklist
from scheduler import Protocol, SiteCalendar


@dataclass(frozen=True)
class Container:
    protocol: Protocol
    site: SiteCalendar
    engine: Engine  # the database the units of work run on (migrations, readiness)
    units: UnitOfWorkFactory
    schedules: Schedules
    participants: Participants
    api_keys: ApiKeys
    feeds: Feeds
    feed_links: FeedLinks
    protocols: Protocols  # every version a participant may be pinned to; `protocol` is current
    clock: SiteClock  # the site's today; tests freeze it
    worklist: Worklist
    # Stored participants' schedules as served, kept per (version, day): the schedule GET.
    schedule_documents: ScheduleDocuments
    webhooks: Webhooks  # endpoints and their deliveries (the worker drains the outbox)
