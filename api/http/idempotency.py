"""`Idempotency-Key` on POST: a retry gets the first response, and nothing is recorded twice.

The response is stored in the same transaction as the write it answers, so a crash leaves
either both or neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, request
from sqlalchemy.exc import IntegrityError

from api.http.context import api_key
from api.http.problems import INVALID_INPUT, problem
from api.persistence.records import StoredResponse
from api.persistence.unit_of_work import UnitOfWork
from api.usecases.common import StaleVersion, now
from api.usecases.participants import Hook, Participants
from scheduler import ScheduleInputError
from scheduler.history import HistoryConflict

T = TypeVar("T")
REPLAYED = "Idempotent-Replayed"
KEPT_HEADERS = ("Location", "ETag", "Content-Type")


def _fingerprint() -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data())
    return digest.hexdigest()


def _replay(stored: StoredResponse, fingerprint: str) -> Response:
    if stored.fingerprint != fingerprint:
        return problem(422, "Idempotency-Key reused",
                       "This Idempotency-Key was sent with a different request.",
                       INVALID_INPUT, {"Idempotency-Key": ["used for a different request"]})
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    response.headers[REPLAYED] = "true"
    return response


def run_idempotent(service: Participants, action: Callable[[Hook | None], T],
                   respond: Callable[[T], Response],
                   respond_in: Callable[[UnitOfWork, T], Response] | None = None) -> Response:
    """Run `action`, storing `respond`'s answer under the request's Idempotency-Key.
    `respond_in` gives that answer inside the unit of work that stores it, for an answer that
    shows what the same unit of work wrote (an enrolment's feed link)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return respond(action(None))
    if not 1 <= len(key) <= 255 or not key.isprintable():
        return problem(422, "The request is not valid", "Idempotency-Key: 1 to 255 printable "
                       "characters.", INVALID_INPUT, {"Idempotency-Key": ["1 to 255 printable "
                                                                         "characters"]})
    key_id, fingerprint = api_key().id, _fingerprint()
    stored = _lookup(service, key_id, key)
    if stored is not None:
        return _replay(stored, fingerprint)

    answered: list[Response] = []

    def store(uow: UnitOfWork, result: Any) -> None:
        response = respond_in(uow, result) if respond_in else respond(result)
        answered.append(response)
        headers = {name: response.headers[name] for name in KEPT_HEADERS
                   if name in response.headers}
        uow.idempotency.add(key_id, key, StoredResponse(
            fingerprint, response.status_code, response.get_data(as_text=True), headers), now())

    try:
        result = action(store)
    except (IntegrityError, HistoryConflict, StaleVersion, ScheduleInputError):
        # A concurrent request with the same key may have committed first, and this one then
        # found its own event already recorded: answer as that one was answered.
        stored = _lookup(service, key_id, key)
        if stored is None:
            raise
        return _replay(stored, fingerprint)
    return answered[0] if answered else respond(result)


def _lookup(service: Participants, key_id: str, key: str) -> StoredResponse | None:
    with service.unit(readonly=True) as uow:
        return uow.idempotency.get(key_id, key)
