"""Chinese and English: the page's language, and the words for statuses, rows and fields.

The language comes from the `lang` cookie the switch on every page sets, else from the
browser's Accept-Language. Protocol rule sentences are shown as the protocol record words them;
only the interface around them is translated.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable

from babel import dates
from flask import request
from flask_babel import format_date, get_locale, lazy_gettext

LANGUAGES = {"en": "English", "zh_CN": "中文"}
LANG_COOKIE = "lang"


def select_locale() -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(["en", "zh-CN", "zh"], default="en")
    return "zh_CN" if best.startswith("zh") else "en"


def current_language() -> str:
    """`zh_CN` or `en`, the codes of the switch."""
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def html_lang() -> str:
    return "zh-CN" if current_language() == "zh_CN" else "en"


def day(value: dt.date | None) -> str:
    """A date with its weekday, in the page's language: `Mon 2026-03-09`, `周一 2026-03-09`."""
    if value is None:
        return "—"
    return f"{_weekday(str(get_locale() or 'en'), value.weekday())} {value.isoformat()}"


def day_formatter() -> Callable[[dt.date | None], str]:
    """`day` for the current page's language, looking the language up once."""
    locale = str(get_locale() or "en")
    names = [_weekday(locale, weekday) for weekday in range(7)]

    def formatted(value: dt.date | None) -> str:
        return "—" if value is None else f"{names[value.weekday()]} {value.isoformat()}"
    return formatted


@functools.lru_cache(maxsize=64)
def _weekday(locale: str, weekday: int) -> str:
    """The abbreviated weekday name (0 is Monday), asked of babel once per language."""
    monday = dt.date(2024, 1, 1)
    return str(dates.format_date(monday + dt.timedelta(days=weekday), "EEE", locale=locale))


def long_day(value: dt.date) -> str:
    """A day heading: `Monday, 9 March 2026`, `2026年3月9日星期一`."""
    return str(format_date(value, "full"))


def month(value: dt.date) -> str:
    return str(format_date(value, "MMM yyyy"))


STATUSES = {
    "planned": lazy_gettext("planned"),
    "provisional": lazy_gettext("provisional"),
    "due": lazy_gettext("due"),
    "done": lazy_gettext("done"),
    "overdue": lazy_gettext("overdue"),
    "missed": lazy_gettext("missed"),
    "skipped": lazy_gettext("skipped"),
    "held": lazy_gettext("held"),
    "cancelled": lazy_gettext("cancelled"),
}

STATES = {
    "provisional": lazy_gettext("provisional (recovery pending)"),
    "on_hold": lazy_gettext("on hold (complication)"),
    "scheduled": lazy_gettext("scheduled"),
    "discontinued": lazy_gettext("discontinued"),
    "completed": lazy_gettext("completed"),
    "off_study": lazy_gettext("off study"),
}

ROWS = {
    "procedure": lazy_gettext("Procedure"),
    "cycles": lazy_gettext("Cycles"),
    "scans": lazy_gettext("Scans"),
    "follow_up": lazy_gettext("Follow-up"),
}

EVENTS = {
    "recovery_confirmed": lazy_gettext("Recovery confirmed"),
    "complication": lazy_gettext("Complication"),
    "dose_given": lazy_gettext("Dose given"),
    "dose_skipped": lazy_gettext("Dose skipped"),
    "discontinued": lazy_gettext("Treatment discontinued"),
    "correction": lazy_gettext("Correction"),
    "protocol_version_changed": lazy_gettext("Protocol version changed"),
    "enrolment_corrected": lazy_gettext("Enrolment corrected"),
    "cryoablation_done": lazy_gettext("Cryoablation done"),
    "visit_done": lazy_gettext("Visit done"),
    "visit_missed": lazy_gettext("Visit missed"),
    "unscheduled_visit": lazy_gettext("Unscheduled visit"),
    "off_study": lazy_gettext("Off study"),
}

# The reason codes of a discontinuation and of leaving the study (scheduler.protocol).
REASONS = {
    "progression": lazy_gettext("Progression"),
    "toxicity": lazy_gettext("Toxicity"),
    "participant_decision": lazy_gettext("Participant's decision"),
    "investigator_decision": lazy_gettext("Investigator's decision"),
    "withdrawal_of_consent": lazy_gettext("Withdrawal of consent"),
    "lost_to_follow_up": lazy_gettext("Lost to follow-up"),
    "death": lazy_gettext("Death"),
    "study_closed": lazy_gettext("Study closed"),
    "other": lazy_gettext("Other"),
}

FIELDS = {
    "date": lazy_gettext("Date"),
    "cycle": lazy_gettext("Cycle"),
    "reason": lazy_gettext("Reason"),
    "description": lazy_gettext("Description"),
    "event_id": lazy_gettext("Event to void"),
    "visit_id": lazy_gettext("Visit"),
    "purpose": lazy_gettext("Purpose"),
    "note": lazy_gettext("Note"),
    "reason_code": lazy_gettext("Reason code"),
    "version": lazy_gettext("Protocol version"),
    "subject_code": lazy_gettext("Subject code"),
    "cryoablation_date": lazy_gettext("Cryoablation date"),
    "childbearing_potential": lazy_gettext("Childbearing potential"),
    "screening_date": lazy_gettext("Screening date"),
    "lookbacks.live_vaccine": lazy_gettext("Last live vaccine"),
    "lookbacks.major_surgery": lazy_gettext("Last major surgery"),
    "lookbacks.systemic_antimicrobials_end": lazy_gettext("End of systemic antimicrobials"),
    "lookbacks.radical_radiotherapy": lazy_gettext("Last radical radiotherapy"),
    "lookbacks.myocardial_infarction": lazy_gettext("Last myocardial infarction"),
    "lookbacks.other_trial_last_dose": lazy_gettext("Last dose in another trial"),
    "lookbacks.other_trial_half_life_days": lazy_gettext("That drug's half-life (days)"),
    "lookbacks.prior_malignancy": lazy_gettext("Prior malignancy treated or free since"),
}

ROLES = {
    "viewer": lazy_gettext("viewer"),
    "coordinator": lazy_gettext("coordinator"),
    "investigator": lazy_gettext("investigator"),
    "admin": lazy_gettext("admin"),
}

# Why an account change was refused (api.web.accounts.AccountError codes).
ACCOUNT_ERRORS = {
    "email": lazy_gettext("Not an email address."),
    "exists": lazy_gettext("An account with this email exists."),
    "role": lazy_gettext("Choose one of the roles."),
    "short_password": lazy_gettext("At least %(num)s characters."),
    "last_admin": lazy_gettext("The last active admin must stay an admin."),
    "self": lazy_gettext("You cannot take your own admin rights or disable yourself."),
}

SOURCES = {
    "record": lazy_gettext("trial record"),
    "label": lazy_gettext("drug label"),
    "typical": lazy_gettext("typical practice"),
    "assumed": lazy_gettext("assumption"),
}
