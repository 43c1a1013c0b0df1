"""The waker that NOTIFYs the webhook workers after a write commits (api/persistence/webhooks.py
`Waker`), with its NOTIFY replaced: one NOTIFY covers the rings that came while the last was
being sent, a failed one is logged and the next ring sends again, and an idle thread ends and
starts again when rung."""

from __future__ import annotations

import logging
import threading
import time
import weakref

import pytest
import sqlalchemy as sa

from api.persistence import webhooks
from api.persistence.webhooks import Waker


class Counting(Waker):
    """Counts its NOTIFYs; the first one waits for `gate`, and fails when `fail_first`."""

    def __init__(self, fail_first: bool = False) -> None:
        super().__init__(sa.create_engine("sqlite://"))
        self.sent = 0
        self.started = threading.Event()
        self.gate = threading.Event()
        self.fail_first = fail_first

    def notify(self) -> None:
        self.sent += 1
        self.started.set()
        if self.sent == 1:
            assert self.gate.wait(5)
            if self.fail_first:
                raise sa.exc.OperationalError("NOTIFY", {}, Exception("server gone"))


@pytest.fixture(autouse=True)
def short_idle(monkeypatch):
    """Threads end 0.1 s after their last NOTIFY here; each test waits for its own."""
    monkeypatch.setattr(webhooks, "WAKER_IDLE_SECONDS", 0.1)
    yield
    for thread in threading.enumerate():
        if thread.name == "webhook-waker":
            thread.join(5)


def settle(check, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_rings_during_a_notify_are_covered_by_one_more():
    waker = Counting()
    waker.ring()
    assert waker.started.wait(5)
    for _ in range(10):  # ten writes commit while the first NOTIFY is on its way
        waker.ring()
    waker.gate.set()
    settle(lambda: waker.sent == 2)
    time.sleep(0.2)
    assert waker.sent == 2


def test_a_failed_notify_is_logged_and_the_next_ring_sends_again(caplog):
    waker = Counting(fail_first=True)
    with caplog.at_level(logging.WARNING, "trial_schedule.webhooks"):
        waker.ring()
        assert waker.started.wait(5)
        waker.gate.set()
        settle(lambda: "could not wake the webhook workers" in caplog.text)
    waker.ring()
    settle(lambda: waker.sent == 2)


def test_an_idle_thread_ends_and_a_ring_starts_another():
    waker = Counting()
    waker.gate.set()
    waker.ring()
    settle(lambda: waker.sent == 1)
    settle(lambda: not any(t.name == "webhook-waker" and t.is_alive()
                           for t in threading.enumerate()) and waker._running_in is None)
    waker.ring()
    settle(lambda: waker.sent == 2)


def test_the_thread_does_not_keep_its_waker_alive(monkeypatch):
    """An app dropped (a test's) takes its engine with it; its thread ends at the next idle
    check."""
    monkeypatch.setattr(webhooks, "WAKER_IDLE_SECONDS", 2.0)

    def rung_once() -> weakref.ref[Counting]:
        waker = Counting()
        waker.gate.set()
        waker.ring()
        settle(lambda: waker.sent == 1)
        return weakref.ref(waker)

    gone = rung_once()
    [thread] = [t for t in threading.enumerate() if t.name == "webhook-waker"]
    settle(lambda: gone() is None)
    assert thread.is_alive()
    thread.join(5)
    assert not thread.is_alive()
