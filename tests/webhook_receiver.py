"""A webhook receiver for the tests: a small HTTP server on 127.0.0.1 that verifies each
delivery's signature with the `standardwebhooks` package, as a real receiver would, fails the
first tries of each message if asked, and drops repeats by `webhook-id`."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Inbox:
    """One endpoint's side: its secret (set once registered), how many tries of each message
    to fail, and what arrived."""

    secret: str | None = None
    fail_first: int = 0
    fail_status: int = 503
    tries: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: Counter[str] = field(default_factory=Counter)
    forged: int = 0
    hold: threading.Event | None = None  # while set up, the first request waits on it
    arrived: threading.Event = field(default_factory=threading.Event)


class Receiver:
    def __init__(self) -> None:
        self.inboxes: dict[str, Inbox] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def inbox(self, name: str, **settings: Any) -> tuple[str, Inbox]:
        inbox = Inbox(**settings)
        self.inboxes[name] = inbox
        return f"{self.base}/{name}", inbox

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                inbox = receiver.inboxes.get(self.path.strip("/"))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if inbox is None or inbox.secret is None:
                    self._answer(404)
                    return
                inbox.arrived.set()
                if inbox.hold is not None:
                    inbox.hold.wait(30)
                    inbox.hold = None
                    self._answer(503)
                    return
                try:
                    payload = Webhook(inbox.secret).verify(body, dict(self.headers))
                except WebhookVerificationError:
                    with receiver.lock:
                        inbox.forged += 1
                    self._answer(400)
                    return
                message_id = self.headers["webhook-id"]
                with receiver.lock:
                    inbox.tries[message_id] += 1
                    failing = inbox.tries[message_id] <= inbox.fail_first
                    if not failing:
                        if message_id in inbox.accepted:
                            inbox.repeats[message_id] += 1
                        else:
                            inbox.accepted[message_id] = payload
                self._answer(inbox.fail_status if failing else 204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        for inbox in receiver.inboxes.values():
            if inbox.hold is not None:
                inbox.hold.set()
        receiver.server.shutdown()
        receiver.server.server_close()


def types_of(inbox: Inbox) -> list[str]:
    return sorted(payload["type"] for payload in inbox.accepted.values())


def bodies(inbox: Inbox) -> str:
    return json.dumps(list(inbox.accepted.values()))
