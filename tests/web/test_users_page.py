"""The admins' accounts page: list, create, change a role, disable and enable again."""

from __future__ import annotations

import html
import re

import pytest

from tests.web.conftest import PASSWORD, Browser, token_of


def error_of(page: str, field_id: str) -> str:
    found = re.search(rf'<span class="error" id="{re.escape(field_id)}-error">([^<]*)</span>',
                      page)
    return html.unescape(found.group(1)) if found else ""


def row_of(page: str, email: str) -> str:
    for row in re.findall(r'<tr id="user-[^"]+"[^>]*>(.*?)</tr>', page, re.S):
        if f"<td>{email}" in row:
            return row
    raise AssertionError(f"no row for {email}")


def user_id(accounts, email: str) -> str:
    return next(a.id for a in accounts.listing() if a.email == email)


def test_an_admin_sees_every_account_with_role_created_and_disabled(admin, accounts):
    accounts.disable(user_id(accounts, "investigator@site.example"))
    answer = admin.get("/users")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    for role in ("coordinator", "investigator", "viewer", "admin"):
        row = row_of(page, f"{role}@site.example")
        assert f"<td>{role}</td>" in row
        created = re.findall(r'<td class="nowrap">([^<]*)</td>', row)
        assert re.fullmatch(r"\w{3} \d{4}-\d{2}-\d{2}", created[0])
        assert (created[1] == "\u2014") == (role != "investigator")
    assert 'class="disabled"' in page.split("investigator@site.example")[0].rsplit("<tr", 1)[1]
    assert 'href="/users" aria-current="page">Accounts</a>' in page


@pytest.mark.parametrize("who", ["viewer", "coordinator"])
def test_only_admins_reach_the_accounts_page(db_app, accounts, who):
    browser = Browser(db_app.test_client(), f"{who}@site.example")
    assert browser.get("/users").status_code == 403
    target = user_id(accounts, "viewer@site.example")
    for path, data in (("/users", {"email": "x@site.example", "role": "admin",
                                   "password": PASSWORD}),
                       (f"/users/{target}/role", {"role": "admin"}),
                       (f"/users/{target}/disable", {}),
                       (f"/users/{target}/enable", {})):
        assert browser.post(path, data).status_code == 403
    assert {a.email: a.role for a in accounts.listing()}["viewer@site.example"] == "viewer"
    assert "x@site.example" not in {a.email for a in accounts.listing()}
    assert 'href="/users"' not in browser.get("/").get_data(as_text=True)


def test_an_admin_creates_an_account_that_can_sign_in(db_app, admin):
    answer = admin.post("/users", {"email": "Nurse@Site.example", "role": "coordinator",
                                   "password": PASSWORD})
    assert answer.status_code == 303
    page = admin.get("/users").get_data(as_text=True)
    assert "Created the account of nurse@site.example." in page
    assert "<td>coordinator</td>" in row_of(page, "nurse@site.example")
    nurse = Browser(db_app.test_client(), "nurse@site.example")
    assert "nurse@site.example (coordinator)" in nurse.get("/").get_data(as_text=True)


def test_the_new_account_form_keeps_the_command_line_rules_beside_each_field(admin,
                                                                            accounts):
    short = admin.post("/users", {"email": "a@site.example", "role": "viewer",
                                  "password": "short"})
    assert short.status_code == 422
    page = short.get_data(as_text=True)
    assert error_of(page, "new-password") == "At least 12 characters."
    assert 'id="new-password" name="password" type="password" autocomplete="new-password" ' \
           'aria-invalid="true"' in page
    assert 'value="a@site.example"' in page and "short" not in page.split("<main")[1]
    bad = admin.post("/users", {"email": "not an email", "role": "viewer",
                                "password": PASSWORD}).get_data(as_text=True)
    assert error_of(bad, "new-email") == "Not an email address."
    assert PASSWORD not in bad
    taken = admin.post("/users", {"email": "VIEWER@site.example", "role": "viewer",
                                  "password": PASSWORD}).get_data(as_text=True)
    assert error_of(taken, "new-email") == "An account with this email exists."
    role = admin.post("/users", {"email": "b@site.example", "role": "owner",
                                 "password": PASSWORD}).get_data(as_text=True)
    assert error_of(role, "new-role") == "Choose one of the roles."
    assert {a.email for a in accounts.listing()} == {
        f"{r}@site.example" for r in ("coordinator", "investigator", "viewer", "admin")}


def test_the_forms_need_the_csrf_token(admin, accounts):
    target = user_id(accounts, "viewer@site.example")
    for path, data in (("/users", {"email": "x@site.example", "role": "admin",
                                   "password": PASSWORD}),
                       (f"/users/{target}/role", {"role": "admin"}),
                       (f"/users/{target}/disable", {})):
        assert admin.client.post(path, data=data).status_code == 400
    assert {a.email: (a.role, a.disabled_at) for a in accounts.listing()}[
        "viewer@site.example"] == ("viewer", None)
    assert "x@site.example" not in {a.email for a in accounts.listing()}


def test_a_new_role_applies_to_a_session_already_open(db_app, admin, accounts, coordinator):
    participant = coordinator.enrol()
    viewer = Browser(db_app.test_client(), "viewer@site.example")
    record = {"type": "recovery_confirmed", "date": "2026-03-09", "version": "1"}
    assert viewer.post(f"/participants/{participant}/events", record).status_code == 403
    target = user_id(accounts, "viewer@site.example")
    assert admin.post(f"/users/{target}/role", {"role": "coordinator"}).status_code == 303
    assert "<td>coordinator</td>" in row_of(admin.get("/users").get_data(as_text=True),
                                            "viewer@site.example")
    assert viewer.post(f"/participants/{participant}/events", record).status_code == 303


def test_a_disabled_account_is_signed_out_and_cannot_sign_in_until_enabled(db_app, admin,
                                                                          accounts):
    viewer = Browser(db_app.test_client(), "viewer@site.example")
    target = user_id(accounts, "viewer@site.example")
    assert admin.post(f"/users/{target}/disable", {}).status_code == 303
    assert viewer.get("/").status_code == 302  # the open session ends
    client = db_app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    refused = client.post("/login", data={"email": "viewer@site.example",
                                          "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 401
    row = row_of(admin.get("/users").get_data(as_text=True), "viewer@site.example")
    assert "/enable" in row and "/disable" not in row
    assert admin.post(f"/users/{target}/enable", {}).status_code == 303
    Browser(db_app.test_client(), "viewer@site.example")


def test_an_admin_keeps_their_own_rights_and_the_last_admin_stays(admin, accounts):
    me = user_id(accounts, "admin@site.example")
    demoted = admin.post(f"/users/{me}/role", {"role": "viewer"})
    assert demoted.status_code == 422
    page = demoted.get_data(as_text=True)
    assert "cannot take your own admin rights" in error_of(page, f"role-{me}")
    assert f'id="role-{me}" name="role" aria-invalid="true"' in page
    assert admin.post(f"/users/{me}/disable", {}).status_code == 422
    assert {a.email: a.role for a in accounts.listing()}["admin@site.example"] == "admin"
    other = accounts.create("second@site.example", "admin", PASSWORD)
    assert admin.post(f"/users/{other.id}/role", {"role": "viewer"}).status_code == 303
    bad = admin.post(f"/users/{other.id}/role", {"role": "owner"})
    assert bad.status_code == 422
    assert error_of(bad.get_data(as_text=True), f"role-{other.id}") == \
        "Choose one of the roles."
    assert admin.post("/users/nobody/disable", {}).status_code == 404


def test_the_accounts_page_in_chinese(admin):
    page = admin.get("/users", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "<h1>账户</h1>" in page
    assert "<td>协调员</td>" in row_of(page, "coordinator@site.example")
    refused = admin.post("/users", {"email": "a@site.example", "role": "viewer",
                                    "password": "short"},
                         headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert error_of(refused, "new-password") == "至少 12 个字符。"
