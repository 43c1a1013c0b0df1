"""A coordinator's day in the browser, and axe-core on every page it shows."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import AXE, PASSWORD, SITE_PHONE

SERIOUS = ("serious", "critical")


def site_today() -> dt.date:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings for the page as it is (WCAG 2.1 A and AA)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            f"{[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in SERIOUS]


def shoot(page, folder, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def sign_in(page, site: str, role: str) -> None:
    page.goto(f"{site}/login")
    page.fill("#email", f"{role}@site.example")
    page.fill("#password", PASSWORD)
    page.click("form.narrow button[type=submit]")


def row_text(page, subject: str, visit: str) -> str:
    """The worklist row of one participant's visit, as text."""
    rows = page.locator("table.visits tbody tr").filter(has_text=subject).filter(
        has_text=visit)
    return " ".join(rows.all_inner_texts())


@pytest.fixture
def context(browser):
    # axe-core is injected as a script, which the pages' CSP (rightly) forbids.
    made = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900},
                               locale="en-GB", extra_http_headers={"Accept-Language": "en"})
    yield made
    made.close()


def test_coordinator_enrols_records_prints_and_switches_to_chinese(context, site,
                                                                    screenshot_dir):
    today = site_today()
    page = context.new_page()
    page.goto(f"{site}/")
    assert page.url.startswith(f"{site}/login")
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "login")

    sign_in(page, site, "coordinator")
    assert page.url == f"{site}/"
    assert page.locator("h1").inner_text().startswith("Worklist")

    # Enrol: a wrong date first, refused beside its field with the API's message.
    page.goto(f"{site}/participants")
    page.fill("#subject_code", "ZS-101")
    page.fill("#cryoablation_date", "2024-01-05")
    page.click("#enrol-heading ~ form button[type=submit]")
    error = page.locator("#cryoablation_date-error").inner_text()
    assert "study period" in error
    assert page.locator("#cryoablation_date").get_attribute("aria-invalid") == "true"
    assert serious_violations(page) == []
    cryoablation = today - dt.timedelta(days=10)
    page.fill("#cryoablation_date", cryoablation.isoformat())
    page.click("#enrol-heading ~ form button[type=submit]")
    assert re.search(r"/participants/[0-9a-f-]{36}$", page.url)
    participant_url = page.url
    assert page.locator("h1").inner_text().startswith("ZS-101")
    assert "provisional" in page.locator("#visit-C1D1").inner_text()

    # Recovery confirmed today: the first dose's window opens today, so it is due, and in
    # the worklist.
    page.fill("#recovery_confirmed-date", today.isoformat())
    page.click("#form-recovery_confirmed button[type=submit]")
    assert "Recorded: Recovery confirmed." in page.locator(".flash").inner_text()
    first_dose = page.locator("#visit-C1D1").inner_text()
    assert "due" in first_dose
    page.goto(f"{site}/")
    assert "due" in row_text(page, "ZS-101", "C1D1")
    before = page.locator(".count").first.inner_text()

    # The first dose given today: done on the timeline and in the worklist.
    page.goto(participant_url)
    page.fill("#dose_given-cycle", "1")
    page.fill("#dose_given-date", today.isoformat())
    page.click("#form-dose_given button[type=submit]")
    assert "Recorded: Dose given." in page.locator(".flash").inner_text()
    assert "done" in page.locator("#visit-C1D1").inner_text()
    assert any(t.startswith("C1D1 ") and t.split(" ")[2] == "done"
               for t in page.locator("svg.timeline g title").all_text_contents())
    page.goto(f"{site}/")
    assert row_text(page, "ZS-101", "C1D1") == ""  # done: off the list
    assert page.locator(".count").first.inner_text() == before
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "worklist")

    # A dose recorded twice is refused beside the cycle, as the API refuses it.
    page.goto(participant_url)
    page.fill("#dose_given-cycle", "1")
    page.fill("#dose_given-date", today.isoformat())
    page.click("#form-dose_given button[type=submit]")
    assert "rule" in page.locator("#dose_given-cycle-error").inner_text()
    assert serious_violations(page) == []

    # A missed scan: the baseline imaging did not take place. Recorded with its reason, it
    # is missed in the visits table and on the timeline, and off the worklist.
    page.goto(participant_url)
    scans = [value for value in page.locator("#visit_missed-visit_id option").evaluate_all(
        "options => options.map(o => o.value)") if "IMAGING" in value or
        value.startswith("IMG-")]
    assert "BASELINE-IMAGING" in scans
    page.select_option("#visit_missed-visit_id", value="BASELINE-IMAGING")
    page.fill("#visit_missed-reason", "scanner out of service")
    page.click("#form-visit_missed button[type=submit]")
    assert "Recorded: Visit missed." in page.locator(".flash").inner_text()
    assert "missed" in page.locator("#visit-BASELINE-IMAGING").inner_text()
    assert any(t.startswith("BASELINE-IMAGING ") and t.split(" ")[2] == "missed"
               for t in page.locator("svg.timeline g title").all_text_contents())
    history = page.locator("#history-heading ~ table tbody tr").first.inner_text()
    assert "coordinator@site.example" in history
    assert "Visit missed · BASELINE-IMAGING" in history
    assert "scanner out of service" in history
    assert page.locator("svg.timeline").count() == 1
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "participant")
    page.goto(f"{site}/")
    assert row_text(page, "ZS-101", "BASELINE-IMAGING") == ""

    # A second tab still showing an old version is told why nothing was saved.
    stale = context.new_page()
    stale.goto(participant_url)
    page.goto(participant_url)
    page.fill("#unscheduled_visit-date", today.isoformat())
    page.fill("#unscheduled_visit-purpose", "wound check")
    page.click("#form-unscheduled_visit button[type=submit]")
    assert "Recorded: Unscheduled visit." in page.locator(".flash").inner_text()
    stale.fill("#discontinued-date", today.isoformat())
    stale.fill("#discontinued-reason", "progression")
    response = None

    def remember(answer) -> None:
        nonlocal response
        if answer.request.method == "POST":
            response = answer

    stale.on("response", remember)
    stale.click("#form-discontinued button[type=submit]")
    assert response is not None and response.status == 412
    assert "Not saved: this page was out of date" in stale.locator(".stale").inner_text()
    assert "Treatment discontinued" not in stale.locator(
        "#history-heading ~ table").inner_text()
    stale.close()

    # The print card: weekday, date and window, the site's phone and the QR code.
    page.goto(f"{participant_url}/print")
    card = page.locator("main").inner_text()
    assert "ZS-101" in card
    assert SITE_PHONE in card
    assert re.search(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d{2}-\d{2}", card)
    assert page.locator("figure.qr svg").count() == 1
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "print")
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1  # one A4 sheet
    page.emulate_media(media="screen")

    # The participants list, then Chinese from the switch on the page.
    page.goto(f"{site}/participants?q=zs-1")
    assert page.locator("table.visits tbody tr").count() == 1
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "participants")
    with page.expect_navigation():
        page.click("a[lang=zh-CN]")
    assert page.url == f"{site}/participants?q=zs-1"
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "受试者"
    page.goto(participant_url)
    weekday = "一二三四五六日"[today.weekday()]
    assert f"周{weekday} {today.isoformat()}" in page.locator("#visit-RECOVERY").inner_text()
    # The rule sentences stay as the protocol record words them.
    assert "Serplulimab" in page.locator("#visit-C1D1").inner_text()
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "participant-zh")
    page.goto(f"{site}/")
    assert page.locator("h1").inner_text().startswith("工作清单")
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "worklist-zh")


def test_a_viewer_reads_but_is_offered_no_form(context, site):
    page = context.new_page()
    sign_in(page, site, "viewer")
    page.goto(f"{site}/participants")
    assert page.locator("#enrol-heading").count() == 0
    assert page.locator("form[method=post]").count() == 1  # signing out only


def test_an_admin_issues_the_site_feed(context, site, screenshot_dir):
    page = context.new_page()
    sign_in(page, site, "admin")
    page.goto(f"{site}/participants")
    page.click("#site-feed-heading ~ form button[type=submit]")
    links = page.locator("#site-feed-heading ~ ul.links a").all_inner_texts()
    assert links[0].startswith(f"{site}/feeds/site/") and links[0].endswith(".ics")
    assert links[1].startswith("webcal://")


def test_an_admin_manages_the_accounts(context, site, screenshot_dir):
    page = context.new_page()
    sign_in(page, site, "admin")
    page.click("nav a[href='/users']")
    assert page.locator("h1").inner_text() == "Accounts"
    page.fill("#new-email", "nurse@site.example")
    page.select_option("#new-role", value="coordinator")
    page.fill("#new-password", "too short")
    page.click("#new-user-heading ~ form button[type=submit]")
    assert page.locator("#new-password-error").inner_text() == "At least 12 characters."
    assert page.locator("#new-password").get_attribute("aria-invalid") == "true"
    assert page.locator("#new-email").input_value() == "nurse@site.example"
    assert serious_violations(page) == []
    page.fill("#new-password", PASSWORD)
    page.click("#new-user-heading ~ form button[type=submit]")
    assert "Created the account of nurse@site.example." in page.locator(".flash").inner_text()
    row = page.locator("table.users tbody tr", has_text="nurse@site.example")
    row.locator("select").select_option(value="investigator")
    row.locator("button", has_text="Change role").click()
    assert "The role was changed." in page.locator(".flash").inner_text()
    assert page.locator("table.users tbody tr", has_text="nurse@site.example").locator(
        "td").nth(1).inner_text() == "investigator"
    page.locator("table.users tbody tr", has_text="nurse@site.example").locator(
        "button", has_text="Disable").click()
    assert "no longer sign in" in page.locator(".flash").inner_text()
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "users")
    with page.expect_navigation():
        page.click("a[lang=zh-CN]")
    assert page.locator("h1").inner_text() == "账户"
    assert serious_violations(page) == []
    shoot(page, screenshot_dir, "users-zh")
