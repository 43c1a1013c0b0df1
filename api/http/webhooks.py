"""Webhook endpoints (admin API keys only): register one (its signing secret is shown once),
list, delete, and read or redeliver its deliveries (docs/webhooks.md, Standard Webhooks 1.0)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import marshmallow as ma
from flask import Response, jsonify, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from werkzeug.exceptions import Conflict
from werkzeug.exceptions import NotFound as HttpNotFound

from api.http.auth import requires
from api.http.context import container
from api.http.problems import problem_answers
from api.persistence.records import WebhookDelivery, WebhookEndpoint
from api.usecases.common import NotFound
from api.usecases.webhooks import EVENT_TYPES, EndpointDisabled, Webhooks

blp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks",
                description="Signed change notifications (Standard Webhooks 1.0): endpoints "
                            "and their deliveries. Needs an admin API key.")

STATES = ("pending", "delivered", "dead")
ERRORS = {401: "No valid API key", 403: "Needs an admin key",
          404: "No webhook endpoint (or delivery) with that id",
          409: "The endpoint is disabled (it answered 410 Gone)"}
ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": "5b1c0b8e-3d53-4a5e-9a55-2f1f3f0c9d10", "url": "https://edc.example.org/hooks",
    "event_types": ["participant.enrolled", "schedule.changed"], "status": "active",
    "created_at": "2026-12-07T01:00:00Z", "disabled_at": None}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": "0e4a1f5c-8f0e-4a47-b3a4-6c2d9f1e7b21",
    "webhook_id": "msg_8c1f0e6a2b7d4c3e9f1a5b6c7d8e9f00", "event_type": "schedule.changed",
    "state": "pending", "attempts": 2, "next_attempt_at": "2026-12-07T01:00:25Z",
    "last_attempt_at": "2026-12-07T01:00:05Z", "last_status": 503, "last_error": "HTTP 503",
    "delivered_at": None, "created_at": "2026-12-07T01:00:00Z"}


def webhooks() -> Webhooks:
    return container().webhooks


errors = problem_answers(blp, ERRORS)


@contextmanager
def found() -> Iterator[None]:
    """The use cases' NotFound as this resource's 404."""
    try:
        yield
    except NotFound:
        raise HttpNotFound("No webhook endpoint or delivery with that id.") from None


class WebhookEndpointInSchema(ma.Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=2048), metadata={
                         "description": "Where each event is POSTed (http or https)"})
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        validate=validate.Length(min=1, max=len(EVENT_TYPES)), allow_none=True,
        metadata={"description": "The event types sent to it; absent or null: every type"})


class WebhookEndpointSchema(ma.Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)),
                              required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(("active", "disabled")),
                           metadata={"description": "`disabled` once it answered 410 Gone"})
    created_at = fields.DateTime(required=True)
    disabled_at = fields.DateTime(required=True, allow_none=True)


class WebhookEndpointCreatedSchema(WebhookEndpointSchema):
    secret = fields.String(required=True, metadata={
        "description": "The signing secret (`whsec_` + base64), shown only this once"})


class WebhookEndpointListSchema(ma.Schema):
    items = fields.List(fields.Nested(WebhookEndpointSchema), required=True)


class WebhookDeliveryQuerySchema(ma.Schema):
    state = fields.String(validate=validate.OneOf(STATES))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class WebhookDeliverySchema(ma.Schema):
    id = fields.String(required=True)
    webhook_id = fields.String(required=True, metadata={
        "description": "The message's `webhook-id` header, the same on every attempt"})
    event_type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    state = fields.String(required=True, validate=validate.OneOf(STATES), metadata={
        "description": "`dead`: every attempt failed, or the endpoint went away"})
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True, metadata={
        "description": "When the next attempt is due; null unless pending"})
    last_attempt_at = fields.DateTime(required=True, allow_none=True)
    last_status = fields.Integer(required=True, allow_none=True, metadata={
        "description": "The receiver's HTTP status at the last attempt; null if none came"})
    last_error = fields.String(required=True, allow_none=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


class WebhookDeliveryListSchema(ma.Schema):
    items = fields.List(fields.Nested(WebhookDeliverySchema), required=True)


def endpoint_dict(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url,
            "event_types": list(endpoint.event_types) if endpoint.event_types else None,
            "status": endpoint.status, "created_at": endpoint.created_at,
            "disabled_at": endpoint.disabled_at}


def delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"id": delivery.id, "webhook_id": delivery.message_id,
            "event_type": delivery.event_type, "state": delivery.state,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at if delivery.state == "pending" else None,
            "last_attempt_at": delivery.last_attempt_at, "last_status": delivery.last_status,
            "last_error": delivery.last_error, "delivered_at": delivery.delivered_at,
            "created_at": delivery.created_at}


CREATED = WebhookEndpointCreatedSchema()


@blp.route("")
class EndpointsView(MethodView):
    @requires("admin")
    @blp.arguments(WebhookEndpointInSchema(), example={"url": "https://edc.example.org/hooks",
                                                "event_types": ["participant.enrolled",
                                                                "schedule.changed"]})
    @blp.response(201, WebhookEndpointCreatedSchema, example={
        **ENDPOINT_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    @errors(401, 403)
    def post(self, body: dict[str, Any]) -> Response:
        """Register a webhook endpoint

        Every event of the types chosen is POSTed to the URL, signed as Standard Webhooks
        specifies (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The answer carries
        the signing secret; it is shown only this once.
        """
        types = body.get("event_types")
        endpoint, secret = webhooks().register(
            body["url"], tuple(dict.fromkeys(types)) if types else None)
        response = jsonify(CREATED.dump({**endpoint_dict(endpoint), "secret": secret}))
        response.status_code = 201
        response.headers["Location"] = url_for("webhooks.EndpointView",
                                               endpoint_id=endpoint.id)
        return response

    @requires("admin")
    @blp.response(200, WebhookEndpointListSchema, example={"items": [ENDPOINT_EXAMPLE]})
    @errors(401, 403)
    def get(self) -> dict[str, Any]:
        """List webhook endpoints

        Every endpoint not deleted, oldest first, without its secret.
        """
        return {"items": [endpoint_dict(endpoint) for endpoint in webhooks().listing()]}


@blp.route("/<endpoint_id>")
class EndpointView(MethodView):
    @requires("admin")
    @blp.response(200, WebhookEndpointSchema, example=ENDPOINT_EXAMPLE)
    @errors(401, 403, 404)
    def get(self, endpoint_id: str) -> dict[str, Any]:
        """One webhook endpoint

        Its URL, event types and status (`disabled` once it answered 410 Gone), without its
        secret.
        """
        with found():
            return endpoint_dict(webhooks().get(endpoint_id))

    @requires("admin")
    @blp.response(204, description="Deleted: nothing more is sent to it")
    @errors(401, 403, 404)
    def delete(self, endpoint_id: str) -> Response:
        """Delete a webhook endpoint

        Nothing more is sent to it; its pending deliveries become dead.
        """
        with found():
            webhooks().delete(endpoint_id)
        return Response(status=204)


@blp.route("/<endpoint_id>/deliveries")
class DeliveriesView(MethodView):
    @requires("admin")
    @blp.arguments(WebhookDeliveryQuerySchema(), location="query")
    @blp.response(200, WebhookDeliveryListSchema, example={"items": [DELIVERY_EXAMPLE]})
    @errors(401, 403, 404)
    def get(self, query: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        """An endpoint's deliveries, newest first

        Each message sent or to be sent to the endpoint: its `webhook-id`, type, state
        (`pending`, `delivered`, or `dead` once every attempt failed), attempts so far, the
        next attempt's time and the last answer. `state` filters, `limit` caps (100).
        """
        with found():
            items = webhooks().deliveries(endpoint_id, query.get("state"), query["limit"])
        return {"items": [delivery_dict(delivery) for delivery in items]}


@blp.route("/<endpoint_id>/deliveries/<delivery_id>/redeliver")
class RedeliverView(MethodView):
    @requires("admin")
    @blp.response(202, WebhookDeliverySchema, example={
        **DELIVERY_EXAMPLE, "attempts": 0, "last_error": "HTTP 503",
        "next_attempt_at": "2026-12-07T02:00:00Z"})
    @errors(401, 403, 404, 409)
    def post(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again

        Puts the delivery back in the outbox from its first attempt (a dead one, once the
        receiver is fixed); it keeps its `webhook-id`, so a receiver that had it drops it.
        """
        try:
            with found():
                return delivery_dict(webhooks().redeliver(endpoint_id, delivery_id))
        except EndpointDisabled:
            raise Conflict("The endpoint is disabled: it answered 410 Gone. Register it "
                           "again to receive deliveries.") from None
