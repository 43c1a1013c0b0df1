"""Eight writers racing on one participant: nothing lost, nothing twice, every loser told."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

from tests.db.conftest import bearer

WRITERS = 8
CYCLES = 6


def test_eight_threads_recording_one_participant(db_app, keys):
    headers = bearer(keys["write"])
    setup = db_app.test_client()
    participant = setup.post("/v1/participants", json={
        "subject_code": "ZS-RACE", "cryoablation_date": "2026-03-02"}, headers=headers).get_json()
    events_url = f"/v1/participants/{participant['id']}/events"
    assert setup.post(events_url, json={"type": "recovery_confirmed", "date": "2026-03-09"},
                      headers=headers).status_code == 201
    answers: list[tuple[int, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        client = db_app.test_client()
        start.wait()
        for cycle in range(1, CYCLES + 1):
            day = dt.date(2026, 3, 9) + dt.timedelta(days=21 * (cycle - 1))
            extra = {}
            if number % 2:  # half the writers send the version they last saw
                extra["If-Match"] = client.get(f"/v1/participants/{participant['id']}",
                                               headers=headers).headers["ETag"]
            response = client.post(events_url, json={
                "type": "dose_given", "cycle": cycle, "date": day.isoformat()},
                headers={**headers, **extra})
            with lock:
                answers.append((cycle, response.status_code))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    statuses = Counter(status for _, status in answers)
    assert set(statuses) <= {201, 409, 412}, statuses
    assert len(answers) == WRITERS * CYCLES
    recorded = Counter(cycle for cycle, status in answers if status == 201)
    assert recorded == {cycle: 1 for cycle in range(1, CYCLES + 1)}
    history = setup.get(events_url, headers=headers).get_json()["items"]
    doses = [e["cycle"] for e in history if e["type"] == "dose_given"]
    assert sorted(doses) == list(range(1, CYCLES + 1))
    assert [e["seq"] for e in history] == list(range(1, CYCLES + 2))
    final = setup.get(f"/v1/participants/{participant['id']}", headers=headers).get_json()
    assert final["version"] == 1 + len(history)
