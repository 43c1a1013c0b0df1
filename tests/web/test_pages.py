"""Sign-in, roles, CSRF, stale pages, the API's own messages on forms, headers, languages."""

from __future__ import annotations

import html
import re

from tests.db.conftest import bearer
from tests.web.conftest import PASSWORD, Browser, token_of


def errors_on(page: str, field_id: str) -> str:
    found = re.search(rf'<span class="error" id="{re.escape(field_id)}-error">([^<]*)</span>',
                      page)
    return html.unescape(found.group(1)) if found else ""


def test_pages_redirect_to_sign_in_until_signed_in(db_app, accounts):
    client = db_app.test_client()
    for path in ("/", "/participants", "/participants/x", "/participants/x/print"):
        answer = client.get(path)
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith("/login?next=")


def test_a_wrong_password_is_refused_and_names_neither_part(db_app, accounts):
    client = db_app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"email": "coordinator@site.example",
                                         "password": "wrong", "csrf_token": token})
    assert answer.status_code == 401
    assert "The email or the password is wrong." in answer.get_data(as_text=True)
    unknown = client.post("/login", data={"email": "nobody@site.example",
                                          "password": PASSWORD, "csrf_token": token})
    assert unknown.status_code == 401


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(db_app, accounts):
    plain = db_app.test_client()
    token = token_of(plain.get("/login").get_data(as_text=True))
    answer = plain.post("/login", data={"email": "viewer@site.example", "password": PASSWORD,
                                        "csrf_token": token})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = db_app.test_client()
    page = https.get("/login", base_url="https://site.example")
    answer = https.post("/login", base_url="https://site.example", data={
        "email": "viewer@site.example", "password": PASSWORD,
        "csrf_token": token_of(page.get_data(as_text=True))})
    assert answer.status_code == 302
    assert "; Secure" in answer.headers["Set-Cookie"]


def test_sign_in_attempts_are_rate_limited(db_app, accounts):
    db_app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    client = db_app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    statuses = [client.post("/login", data={"email": "viewer@site.example",
                                            "password": "wrong", "csrf_token": token},
                            environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_a_form_post_without_the_csrf_token_is_refused_and_records_nothing(coordinator):
    participant = coordinator.enrol()
    answer = coordinator.client.post(f"/participants/{participant}/events", data={
        "type": "recovery_confirmed", "date": "2026-03-09", "version": "1"})
    assert answer.status_code == 400
    assert "did not come from a page of this site" in answer.get_data(as_text=True)
    page = coordinator.get(f"/participants/{participant}").get_data(as_text=True)
    assert "Nothing recorded yet." in page


def test_the_enrol_form_refuses_what_the_api_refuses_with_its_messages(db_app, keys,
                                                                       coordinator):
    bad = {"subject_code": "Zhang San", "cryoablation_date": "2024-01-05"}
    api = db_app.test_client().post("/v1/participants", json=bad,
                                    headers=bearer(keys["write"])).get_json()
    page = coordinator.post("/participants", bad)
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert errors_on(text, "subject_code") == " ".join(api["errors"]["subject_code"])
    assert "1 to 32 letters, digits" in errors_on(text, "subject_code")
    domain = db_app.test_client().post(
        "/v1/participants", json={**bad, "subject_code": "ZS-009"},
        headers=bearer(keys["write"])).get_json()
    page = coordinator.post("/participants", {**bad, "subject_code": "ZS-009"})
    assert errors_on(page.get_data(as_text=True), "cryoablation_date") == \
        " ".join(domain["errors"]["cryoablation_date"])


def test_the_event_forms_refuse_what_the_api_refuses_with_its_messages(db_app, keys,
                                                                       coordinator):
    participant = coordinator.enrol()
    body = {"type": "dose_given", "cycle": 1, "date": "2026-03-09"}
    api = db_app.test_client().post(f"/v1/participants/{participant}/events", json=body,
                                    headers=bearer(keys["write"])).get_json()
    page = coordinator.post(f"/participants/{participant}/events", {
        "type": "dose_given", "cycle": "1", "date": "2026-03-09", "version": "1"})
    assert page.status_code == 422
    (field, messages), = api["errors"].items()
    assert errors_on(page.get_data(as_text=True), f"dose_given-{field}") == \
        " ".join(messages)
    typed = db_app.test_client().post(f"/v1/participants/{participant}/events", json={
        "type": "dose_given", "cycle": "seven", "date": "2026-03-09"},
        headers=bearer(keys["write"])).get_json()
    wrong = coordinator.post(f"/participants/{participant}/events", {
        "type": "dose_given", "cycle": "seven", "date": "2026-03-09", "version": "1"})
    assert errors_on(wrong.get_data(as_text=True), "dose_given-cycle") == \
        " ".join(typed["errors"]["cycle"])
    assert "Not a valid integer." in typed["errors"]["cycle"]


def test_a_stale_page_gets_412_explained_and_nothing_is_recorded(coordinator):
    participant = coordinator.enrol()
    first = coordinator.post(f"/participants/{participant}/events", {
        "type": "recovery_confirmed", "date": "2026-03-09", "version": "1"})
    assert first.status_code == 303
    stale = coordinator.post(f"/participants/{participant}/events", {
        "type": "complication", "date": "2026-03-10", "description": "pneumothorax",
        "version": "1"})
    assert stale.status_code == 412
    text = stale.get_data(as_text=True)
    assert "Not saved: this page was out of date" in text
    assert "pneumothorax" not in text.split('id="history-heading"')[1].split("</table>")[0]


def test_recorded_by_is_the_signed_in_person(db_app, keys, coordinator):
    participant = coordinator.enrol()
    coordinator.post(f"/participants/{participant}/events", {
        "type": "recovery_confirmed", "date": "2026-03-09", "version": "1"})
    history = db_app.test_client().get(f"/v1/participants/{participant}/events",
                                       headers=bearer(keys["read"])).get_json()
    assert [(e["type"], e["recorded_by"]) for e in history["items"]] == [
        ("recovery_confirmed", "coordinator@site.example")]
    enrolled = db_app.test_client().get(f"/v1/participants/{participant}",
                                        headers=bearer(keys["read"])).get_json()
    assert enrolled["enrolled_by"] == "coordinator@site.example"


def test_the_forms_offer_the_reason_codes_and_record_the_optional_fields(db_app, keys,
                                                                          coordinator):
    participant = coordinator.enrol()
    page = coordinator.get(f"/participants/{participant}").get_data(as_text=True)
    # Why treatment stopped decides whether imaging goes on: a choice, not free typing.
    assert re.search(r'<select id="discontinued-reason_code" name="reason_code"', page)
    assert '<option value="progression">Progression</option>' in page
    assert re.search(r'<select id="off_study-reason" name="reason"', page)
    assert 'id="off_study-note"' in page
    for body in ({"type": "recovery_confirmed", "date": "2026-03-09", "version": "1"},
                 {"type": "dose_given", "cycle": "1", "date": "2026-03-09", "version": "2"},
                 {"type": "discontinued", "date": "2026-03-20", "reason": "scan on 03-18",
                  "reason_code": "progression", "version": "3"},
                 {"type": "off_study", "date": "2026-04-01", "reason": "withdrawal_of_consent",
                  "note": "moved away", "version": "4"}):
        assert coordinator.post(f"/participants/{participant}/events", body).status_code == 303
    history = db_app.test_client().get(f"/v1/participants/{participant}/events",
                                       headers=bearer(keys["read"])).get_json()["items"]
    assert [(e["type"], e.get("reason_code"), e.get("note")) for e in history[2:]] == [
        ("discontinued", "progression", None), ("off_study", None, "moved away")]


def test_a_viewer_reads_but_may_not_record_or_enrol(coordinator, viewer):
    participant = coordinator.enrol()
    assert viewer.get(f"/participants/{participant}").status_code == 200
    assert viewer.post("/participants", {"subject_code": "ZS-002",
                                         "cryoablation_date": "2026-03-02"}).status_code == 403
    assert viewer.post(f"/participants/{participant}/events", {
        "type": "recovery_confirmed", "date": "2026-03-09", "version": "1"}).status_code == 403
    assert viewer.post(f"/participants/{participant}/feed-token", {}).status_code == 403


def test_only_an_admin_issues_the_site_feed(coordinator, admin):
    assert coordinator.post("/site/feed-token", {}).status_code == 403
    assert admin.post("/site/feed-token", {}).status_code == 303
    page = admin.get("/participants")
    assert "/feeds/site/" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_pages_forbid_inline_script_and_framing(coordinator):
    participant = coordinator.enrol()
    for path in ("/", "/participants", f"/participants/{participant}",
                 f"/participants/{participant}/print", "/login"):
        answer = coordinator.get(path)
        assert answer.status_code == 200
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script" not in answer.get_data(as_text=True)


def test_pages_showing_a_feed_url_send_no_referrer(coordinator):
    participant = coordinator.enrol()
    for path in (f"/participants/{participant}", f"/participants/{participant}/print"):
        answer = coordinator.get(path)
        assert "/feeds/" in answer.get_data(as_text=True)
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert coordinator.get("/").headers["Referrer-Policy"] == "same-origin"


def test_the_api_keeps_its_answers_beside_the_pages(db_app, keys):
    client = db_app.test_client()
    protocol = client.get("/v1/protocol")
    assert protocol.status_code == 200
    assert "Set-Cookie" not in protocol.headers
    assert "Content-Security-Policy" not in protocol.headers
    assert "Cookie" not in protocol.headers.get("Vary", "")
    enrolled = client.post("/v1/participants", json={"subject_code": "ZS-050",
                                                     "cryoablation_date": "2026-03-02"},
                           headers=bearer(keys["write"]))
    assert enrolled.status_code == 201  # no CSRF token asked of an API client
    missing = client.get("/v1/participants/nobody", headers=bearer(keys["read"]))
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"


def test_the_language_follows_accept_language_and_the_switch(coordinator):
    participant = coordinator.enrol("ZS-001", "2026-03-02")
    chinese = coordinator.get(f"/participants/{participant}",
                              headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    text = chinese.get_data(as_text=True)
    assert '<html lang="zh-CN">' in text
    assert "周一 2026-03-02" in text  # 2 March 2026 is a Monday
    assert "“Cryoablation will be performed first" in text  # the record's own words
    english = coordinator.get(f"/participants/{participant}",
                              headers={"Accept-Language": "en"})
    assert "Mon 2026-03-02" in english.get_data(as_text=True)
    switched = coordinator.get("/language/zh_CN?next=/participants")
    assert switched.headers["Location"] == "/participants"
    assert "<h1>受试者</h1>" in coordinator.get(
        "/participants", headers={"Accept-Language": "en"}).get_data(as_text=True)
    away = coordinator.get("/language/en?next=https://elsewhere.example/")
    assert away.headers["Location"] == "/"


def test_the_print_card_has_the_site_phone_the_weekdays_and_the_qr_code(db_app, coordinator):
    db_app.config["SITE_PHONE"] = "+86 21 6404 1990"
    participant = coordinator.enrol("ZS-001", "2026-03-02")
    card = coordinator.get(f"/participants/{participant}/print").get_data(as_text=True)
    assert "+86 21 6404 1990" in card
    assert "Mon 2026-03-02" in card
    assert card.count('class="segno"') == 1
    assert "ZS-001" in card


def test_a_missing_participant_is_a_page_not_a_problem_document(coordinator):
    answer = coordinator.get("/participants/nobody")
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert "There is no such page or participant." in answer.get_data(as_text=True)


def test_search_finds_participants_by_subject_code(coordinator):
    coordinator.enrol("ZS-001")
    coordinator.enrol("ZS-002")
    coordinator.enrol("XH-010")
    page = coordinator.get("/participants?q=zs-00").get_data(as_text=True)
    assert re.findall(r">(ZS-\d+|XH-\d+)</a></td>", page) == ["ZS-001", "ZS-002"]
    assert "2 participants matching" in page


def test_browser_helper_signs_in_each_role(db_app, accounts):
    for role in ("coordinator", "investigator", "viewer", "admin"):
        browser = Browser(db_app.test_client(), f"{role}@site.example")
        page = browser.get("/").get_data(as_text=True)
        assert f"{role}@site.example ({role})" in page


FORM_TITLE = re.compile(r'<h3 id="form-([a-z_]+)-title">([^<]*)</h3>')
FORM_LABEL = re.compile(r'<label for="([a-z_]+)-([a-z_.]+)">([^<]*)')
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def test_every_event_form_and_field_has_a_human_label_in_both_languages(coordinator):
    from typing import get_args

    from api.web.i18n import EVENTS, FIELDS
    from scheduler.history import RECORDABLE, EventType, event_fields

    assert set(get_args(EventType)) <= set(EVENTS)
    assert {name for kind in RECORDABLE for name in event_fields(kind)} <= set(FIELDS)
    participant = coordinator.enrol()
    for language, human in (("en", re.compile(r"^[A-Z][a-z]+( [a-z]+)*$")),
                            ("zh-CN", CHINESE)):
        page = coordinator.get(f"/participants/{participant}",
                               headers={"Accept-Language": language}).get_data(as_text=True)
        titles = dict(FORM_TITLE.findall(page))
        assert set(titles) == set(RECORDABLE)
        for kind, title in titles.items():
            assert human.search(title), (language, kind, title)
        labels = FORM_LABEL.findall(page)
        assert labels
        for kind, name, label in labels:
            assert "_" not in label and human.search(label.strip()), (language, kind, name)
    chinese = coordinator.get(f"/participants/{participant}",
                              headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert dict(FORM_TITLE.findall(chinese))["protocol_version_changed"] == "方案版本变更"
