"""Calendar feeds: one participant's visits, or the whole site's, rendered as iCalendar and
authorised by the token in their URL alone (docs/feeds.md)."""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import hmac
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import holidays

from api.persistence.feed_reads import FeedKey
from api.persistence.records import FeedToken, StoredParticipant, bumped
from api.persistence.unit_of_work import UnitOfWork
from api.usecases.common import Lru, NotFound, digest, now
from api.usecases.feed_tokens import FeedLinks, FeedTokens
from api.usecases.participants import Participants, sync_visits
from api.usecases.protocols import Protocols
from scheduler import Schedule
from scheduler.history import Event
from scheduler.ical import event_mark, render_event, render_header
from scheduler.subscription import VisitState, feed_events

# The holiday data's version: a new one may move visits, so it is part of every feed's ETag.
HOLIDAYS_VERSION: str = holidays.__version__  # type: ignore[attr-defined]
BATCH = 500
FOOTER = b"END:VCALENDAR\r\n"
# How long another host's assembled site feed is kept on disk after it was last assembled.
SITE_FILE_HOURS = 1


@lru_cache(maxsize=1024)
def _header(name: str, source: str, description: str | None = None) -> bytes:
    """A feed's opening lines; `source` is its own URL (ical-feeds rule 9), so the header of
    one token or host is never another's."""
    return render_header(name, source=source, description=description)


@lru_cache(maxsize=8192)
def _participant_tag(protocol_tag: str, participant_id: str, version: int, source: str) -> str:
    """A participant feed's ETag: the protocol, the participant and its version, and the URL
    the feed was asked at (its SOURCE: the token and the host), so the body kept under an ETag
    is always that URL's."""
    return hashlib.sha256(
        f"{protocol_tag}|{participant_id}|{version}|{source}".encode()).hexdigest()


def feeds_protocol_tag(protocols: Protocols) -> str:
    """What, besides a participant's version, a rendered feed depends on: every protocol
    version's text and the holiday data."""
    return f"{protocols.tag}:holidays-{HOLIDAYS_VERSION}"


@dataclass(frozen=True)
class SiteEventsWriter:
    """Keeps each participant's site-feed events rendered as of its last write, in the write's
    own unit of work (the participants' `on_saved` hook): a cold site feed is then assembled
    from stored bytes, not computed."""

    protocol_tag: str

    def __call__(self, uow: UnitOfWork, participant: StoredParticipant, schedule: Schedule,
                 states: Mapping[str, VisitState]) -> None:
        """Render the participant's site events, reusing the stored bytes of each event whose
        mark (`scheduler.ical.event_mark`: what rendering it reads) the write left as it
        was: a dose recorded on its planned day changes one or two of thirty. The marks are
        stored beside the events, one line an event: its UID, its mark and its length."""
        events = feed_events(schedule, states, f"site/{participant.id}",
                             participant.enrolment.subject_code)
        last = uow.rendered_feeds.last(participant.id)
        kept = stored_events(zlib.decompress(last[1]), last[2]) \
            if last is not None and last[0] == self.protocol_tag and last[2] else {}
        chunks, marks = [], []
        for event in events:
            mark = event_mark(event)
            stored = kept.get(event.uid)
            chunk = stored[1] if stored is not None and stored[0] == mark \
                else render_event(event)
            chunks.append(chunk)
            marks.append(f"{event.uid} {mark} {len(chunk)}\n")
        uow.rendered_feeds.put(participant.id, participant.version, self.protocol_tag,
                               zlib.compress(b"".join(chunks), 1), "".join(marks))


def stored_events(body: bytes, marks: str) -> dict[str, tuple[str, bytes]]:
    """A stored block of rendered events with its marks: each event's mark and bytes by its
    UID."""
    found = {}
    offset = 0
    for line in marks.splitlines():
        uid, mark, length = line.split(" ")
        end = offset + int(length)
        found[uid] = (mark, body[offset:end])
        offset = end
    return found


class RenderedCache:
    """Each participant's rendered events, compressed, keyed by (participant, version): a
    version changes with every write, so an entry is never stale. Bounded by the compressed
    bytes it holds, least recently used first out."""

    def __init__(self, max_bytes: int) -> None:
        self.packed = Lru[tuple[str, int], bytes](max_bytes, cost=lambda _, packed: len(packed))

    def get(self, key: tuple[str, int]) -> bytes | None:
        packed = self.packed.get(key)
        return None if packed is None else zlib.decompress(packed)

    def put(self, key: tuple[str, int], rendered: bytes) -> None:
        self.packed.put(key, zlib.compress(rendered, 1))

    def clear(self) -> None:
        self.packed.clear()


@dataclass(frozen=True)
class Feed:
    chunks: Iterator[bytes] | None
    etag: str
    last_modified: dt.datetime
    path: Path | None = None  # the whole feed as a file, served with sendfile


@dataclass(slots=True)
class ParticipantFeed:
    """One participant's feed as its key read it: enough to answer 304 without anything
    else; `body()` gives the calendar, from memory when this version was served before."""

    feeds: Feeds
    key: FeedKey
    source: str  # the feed's own URL, with the token it was asked with
    etag: str
    last_modified: dt.datetime

    def body(self) -> tuple[str, dt.datetime, bytes]:
        """The ETag, Last-Modified and bytes of the feed. They usually are this key's; when the
        stored visit states had to be brought up to date first (the protocol or the holiday
        data changed since the last write), they are the new version's."""
        return self.feeds.participant_body(self)


def whole_feeds(max_bytes: int) -> Lru[str, bytes]:
    """Recently served participant feeds, whole and uncompressed, keyed by the ETag (which
    names the protocol, the participant, its version and the feed's URL, so an entry is never
    stale and never another token's or host's): a repeated 200 costs one lookup. Bounded in
    bytes."""
    return Lru(max_bytes, cost=lambda _, body: len(body))


def _key_of(token: FeedToken, participant: StoredParticipant | None) -> FeedKey:
    return FeedKey(token.kind, token.participant_id, token.digest, token.revoked_at is not None,
                   participant.version if participant else None,
                   participant.updated_at if participant else None,
                   participant.enrolment.subject_code if participant else None)


@dataclass
class Feeds:
    participants: Participants
    tokens: FeedTokens
    cache: RenderedCache = field(default_factory=lambda: RenderedCache(64 * 1024 * 1024))
    # Where the assembled site feed is kept, one file per site ETag, shared by the workers
    # (gunicorn preloads the app, so they inherit one folder); made when first needed.
    site_dir: Path | None = None
    # The feed hot path's read (api/persistence/feed_reads.py); without one, a unit of work.
    keys: Callable[[str], FeedKey | None] | None = None
    whole: Lru[str, bytes] = field(default_factory=lambda: whole_feeds(16 * 1024 * 1024))

    def _site_folder(self) -> Path:
        if self.site_dir is None:
            self.site_dir = Path(tempfile.mkdtemp(prefix="site-feed-"))
            atexit.register(shutil.rmtree, self.site_dir, ignore_errors=True)  # at worker exit
        return self.site_dir

    @property
    def links(self) -> FeedLinks:
        return self.tokens.links

    @cached_property
    def protocol_tag(self) -> str:
        """Every loaded protocol version and the holiday data: fixed for the process's life,
        and asked for by every feed request, so worked out once."""
        return feeds_protocol_tag(self.participants.protocols)

    def rotate(self, kind: str, participant_id: str | None = None) -> FeedToken:
        """A new token for the feed; the old one stops working at once. A participant's
        representation shows its feed link, so rotating it is a new version of the
        participant (a new ETag for clients that revalidate it)."""
        with self.participants.unit() as uow:
            if participant_id is not None:
                participant = self.participants.lock(uow, participant_id)
                uow.participants.update(bumped(participant, now()))
            self.tokens.new_token(uow, kind, participant_id)
            token = uow.feed_tokens.active(kind, participant_id)
            uow.commit()
        assert token is not None
        return token

    def _read_key(self, feed_id: str) -> FeedKey | None:
        if self.keys is not None:
            return self.keys(feed_id)
        with self.participants.unit(readonly=True) as uow:
            found = uow.feed_tokens.with_participant(feed_id)
        return None if found is None else _key_of(*found)

    def verify(self, presented: str, kind: str) -> FeedKey | None:
        """The live token of this kind behind a presented one, compared in constant time,
        with its participant's version (none for the site feed); one round trip."""
        feed_id, _, _ = presented.partition(".")
        if not feed_id or len(presented) > 200:
            return None
        key = self._read_key(feed_id)
        if key is None or key.revoked or key.kind != kind \
                or not hmac.compare_digest(digest(presented), key.digest):
            return None
        return key

    def links_for(self, participant_ids: list[str]) -> dict[str, dict[str, str]]:
        with self.participants.unit(readonly=True) as uow:
            # A few named (a page, one participant) are read by id; many, in one sweep.
            tokens = uow.feed_tokens.active_for_participants(
                participant_ids if len(participant_ids) <= BATCH else None)
        return {pid: self.links.participant_links(tokens[pid])
                for pid in participant_ids if pid in tokens}

    def participant_tag(self, participant_id: str, version: int, source: str) -> str:
        return _participant_tag(self.protocol_tag, participant_id, version, source)

    def participant_feed(self, presented: str, request_base: str | None = None) \
            -> ParticipantFeed | None:
        """The feed behind a presented token, or None. Its ETag and Last-Modified come from the
        participant's version, read with the token, so a revalidation is answered before
        anything is rendered or loaded. `request_base`: the request's scheme and host, when
        the caller has them (else they come from the request being answered)."""
        key = self.verify(presented, "participant")
        if key is None or key.participant_id is None or key.version is None:
            return None
        assert key.updated_at is not None
        source = self.links.participant_source(presented, request_base)
        return ParticipantFeed(self, key, source,
                               self.participant_tag(key.participant_id, key.version, source),
                               key.updated_at)

    def whole_body(self, feed: ParticipantFeed) -> bytes | None:
        """The feed's bytes if this version at this URL was served before (from memory)."""
        return self.whole.get(feed.etag)

    def participant_body(self, feed: ParticipantFeed) -> tuple[str, dt.datetime, bytes]:
        cached = self.whole.get(feed.etag)
        if cached is not None:
            return feed.etag, feed.last_modified, cached
        assert feed.key.participant_id is not None
        participant, events = self._rendered(feed.key.participant_id)
        etag = self.participant_tag(participant.id, participant.version, feed.source)
        body = b"".join((
            _header(f"{self.participants.protocol.id} {participant.enrolment.subject_code}",
                    feed.source),
            events, FOOTER))
        self.whole.put(etag, body)
        return etag, participant.updated_at, body

    def site_feed(self, presented: str) -> Feed | None:
        """Every participant's visits, or None for a token that is not the site's. The ETag
        comes from every participant's version; the feed for an ETag is assembled once into a
        file (only participants changed since they were last rendered are rendered again) and
        then served from it by sendfile."""
        if self.verify(presented, "site") is None:
            return None
        source = self.links.site_source(presented)
        with self.participants.unit(readonly=True) as uow:
            listing = uow.participants.listing()
        versions = hashlib.sha256(f"{self.protocol_tag}|{source}|".encode())
        for participant in listing:
            versions.update(f"{participant.id}:{participant.version};".encode())
        etag = versions.hexdigest()
        last = max((p.updated_at for p in listing), default=self.participants.protocol.modified)
        # One file per ETag, named after the host asked too, so that the file of one host is
        # not removed while another host's is assembled.
        host = hashlib.sha256(self.links.base().encode()).hexdigest()[:16]
        path = self._site_folder() / f"site-{host}-{etag}.ics"
        if not path.exists():
            self._assemble(path, self._site_chunks(
                listing, f"{self.participants.protocol.id} site visits", source))
        return Feed(None, etag, last, path)

    def _assemble(self, path: Path, chunks: Iterator[bytes]) -> None:
        """Write the feed beside its final name and rename it there, so a reader sees a whole
        file or none; older assembled feeds of the same host (another version, or a rotated
        token) are removed, and other hosts' once they are an hour old."""
        handle, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(partial, path)
        host = path.name.split("-")[1]
        stale = time.time() - SITE_FILE_HOURS * 3600
        for old in path.parent.glob("site-*.ics"):
            if old == path:
                continue
            try:
                if old.name.split("-")[1] == host or old.stat().st_mtime < stale:
                    old.unlink(missing_ok=True)
            except FileNotFoundError:
                pass  # another worker removed it first

    def _site_chunks(self, listing: list[StoredParticipant], name: str,
                     source: str) -> Iterator[bytes]:
        """The site feed: each participant's events as stored at their last write when that
        is the version listed (and the protocol is the same), else from memory or rendered."""
        yield _header(name, source, "Every participant's visits at the site")
        tag = self.protocol_tag
        for start in range(0, len(listing), BATCH):
            batch = listing[start:start + BATCH]
            with self.participants.unit(readonly=True) as uow:
                stored = uow.rendered_feeds.of_many([p.id for p in batch])
            found: dict[str, bytes | None] = {}
            for participant in batch:
                row = stored.get(participant.id)
                found[participant.id] = zlib.decompress(row[2]) \
                    if row is not None and row[0] == participant.version and row[1] == tag \
                    else self.cache.get(self._key(participant, "site"))
            rendered = self._render_many([p for p in batch if found[p.id] is None])
            for participant in batch:
                body = found[participant.id]
                yield body if body is not None else rendered[participant.id]
        yield FOOTER

    def _key(self, participant: StoredParticipant, scope: str) -> tuple[str, int]:
        return (f"{scope}:{participant.id}", participant.version)

    def _render_many(self, batch: list[StoredParticipant]) -> dict[str, bytes]:
        if not batch:
            return {}
        ids = [p.id for p in batch]
        with self.participants.unit(readonly=True) as uow:
            histories = uow.participants.events_of_many(ids)
            states = uow.visit_states.of_many(ids)
        rendered = {}
        for participant in batch:
            body = self._render(participant, histories[participant.id], states[participant.id],
                                "site")
            if body is None:
                participant, body = self._reconciled(participant.id, "site")
            self.cache.put(self._key(participant, "site"), body)
            rendered[participant.id] = body
        return rendered

    def _rendered(self, participant_id: str) -> tuple[StoredParticipant, bytes]:
        """The participant as stored now, and its rendered events. The participant is read
        before its history, so the events are never older than the version they are kept
        under."""
        with self.participants.unit(readonly=True) as uow:
            participant = uow.participants.get(participant_id)
            if participant is None:
                raise NotFound()
            cached = self.cache.get(self._key(participant, "participant"))
            if cached is not None:
                return participant, cached
            history = uow.participants.events(participant_id)
            states = uow.visit_states.of(participant_id)
        body = self._render(participant, history, states, "participant")
        if body is None:
            participant, body = self._reconciled(participant_id, "participant")
        self.cache.put(self._key(participant, "participant"), body)
        return participant, body

    def _render(self, participant: StoredParticipant, history: list[Event],
                states: dict[str, VisitState], scope: str) -> bytes | None:
        """The participant's events, or None when the stored visit states are behind the
        schedule (the protocol or the holiday data changed since the last write). The schedule
        is the one as of the day the states were written (`Participants.days_written`): a held
        dose's projection is shown as of the last write, and a read never rewrites it."""
        for day in self.participants.days_written(participant):
            schedule = self.participants.recorded_schedule(participant, history, day)
            try:
                events = feed_events(schedule, states, f"{scope}/{participant.id}",
                                     participant.enrolment.subject_code)
            except KeyError:
                continue
            return b"".join(render_event(event) for event in events)
        return None

    def _reconciled(self, participant_id: str, scope: str) -> tuple[StoredParticipant, bytes]:
        """Bring the visit states up to the schedule as it is now, as one more version."""
        with self.participants.unit() as uow:
            participant = self.participants.lock(uow, participant_id)
            history = uow.participants.events(participant_id)
            schedule = self.participants.recorded_schedule(
                participant, history, self.participants.days_written(participant)[0])
            when = now()
            states = sync_visits(uow, participant_id, schedule, when)
            participant = bumped(participant, when)
            uow.participants.update(participant)
            self.participants.saved(uow, participant, schedule, states)
            uow.commit()
        body = self._render(participant, history, states, scope)
        assert body is not None
        return participant, body
