"""Free text typed by people stays out of the participant and site feeds (ical-feeds.md rule
15): complication descriptions, skip reasons and discontinuation reasons."""

from __future__ import annotations

from tests.db.conftest import bearer
from tests.db.test_feeds import by_visit, feed, path_of
from tests.feed_readers import agreed_pairs, check_bytes

FREE_TEXT = ("pneumothorax needing a chest drain", "grade 2 pneumonitis",
             "moved to another city")


def test_free_text_is_in_neither_the_participant_nor_the_site_feed(client, keys):
    writer = bearer(keys["write"])
    participant = client.post("/v1/participants", json={
        "subject_code": "ZS-031", "cryoablation_date": "2026-03-02"}, headers=writer).get_json()
    events = f"/v1/participants/{participant['id']}/events"
    for body in ({"type": "complication", "date": "2026-03-03", "description": FREE_TEXT[0]},
                 {"type": "recovery_confirmed", "date": "2026-03-09"},
                 {"type": "dose_given", "cycle": 1, "date": "2026-03-09"},
                 {"type": "dose_skipped", "cycle": 2, "reason": FREE_TEXT[1]},
                 {"type": "discontinued", "date": "2026-05-10", "reason": FREE_TEXT[2]}):
        assert client.post(events, json=body, headers=writer).status_code == 201, body
    history = client.get(events, headers=writer).get_data(as_text=True)
    assert all(text in history for text in FREE_TEXT)  # recorded, just not published

    own = feed(client, participant)
    site_link = client.post("/v1/site/feed-token", headers=bearer(keys["admin"])).get_json()
    with client.get(path_of(site_link["feed"]["https"])) as response:
        assert response.status_code == 200
        site = response.data
    for data in (own, site):
        unfolded = data.replace(b"\r\n ", b"").decode()
        assert [text for text in FREE_TEXT if text in unfolded] == []
        assert "pneumo" not in unfolded and "city" not in unfolded
        skipped = by_visit(data)["C2D1"]
        assert skipped["X-TRIAL-VISIT-STATUS"] == "skipped"
        assert "\\; skipped (rule skipped-dose\\, assumed)" in skipped["DESCRIPTION"]
        check_bytes(data)
        assert len(agreed_pairs(data)) == data.count(b"BEGIN:VEVENT")
