"""The protocol definition, loaded from data and validated on load.

Every timing number the engine applies comes from a rule in a protocol file
(`scheduler/protocols/<id>.json`); each rule carries its provenance (`record`, `label`,
`typical`, `assumed`) and the sentence it comes from, so a site can see which dates rest on
the registry record and which on a default it may override.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from scheduler.errors import ProtocolError

SOURCES = ("record", "label", "typical", "assumed")
VISIT_KINDS = (
    "cryoablation", "recovery_check", "screening_labs", "pregnancy_test", "baseline_imaging",
    "infusion", "predose_labs", "response_imaging", "end_of_treatment", "safety_follow_up",
    "survival_follow_up", "os_landmark", "contraception_end",
)
LOOKBACK_FIELDS = (
    "live_vaccine", "major_surgery", "systemic_antimicrobials_end", "radical_radiotherapy",
    "myocardial_infarction", "other_trial_last_dose", "prior_malignancy",
)
DISCONTINUATION_REASONS = (
    "progression", "toxicity", "participant_decision", "investigator_decision", "other",
)
OFF_STUDY_REASONS = (
    "withdrawal_of_consent", "lost_to_follow_up", "death", "study_closed", "other",
)
# The protocol file of each revision, oldest first; the newest is the default for new
# computations, and every older one stays loadable so a schedule computed under it can be
# computed again byte for byte.
PROTOCOL_FILES = ("protocols/NCT07064876.json", "protocols/NCT07064876.v2.json",
                  "protocols/NCT07064876.v3.json")
# Kinds revision 2 keeps, with a warning, after the estimated study completion (rule
# study-period): the single obligations. Revision 3 lists its own in the rule's parameters.
REVISION_2_KEPT = frozenset({"end_of_treatment", "safety_follow_up", "os_landmark",
                             "contraception_end"})

Check = Callable[[Any], bool]


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3650


def _positive(value: Any) -> bool:
    return _count(value) and value > 0


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _iso_date(value: Any) -> bool:
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _one_of(*choices: str) -> Check:
    return lambda value: value in choices


def _kinds(value: Any) -> bool:
    return isinstance(value, list) and all(kind in VISIT_KINDS for kind in value)


def _ordered_kinds(value: Any) -> bool:
    return _kinds(value) and len(set(value)) == len(value) == len(VISIT_KINDS)


def _words_of(*choices: str) -> Check:
    return lambda value: isinstance(value, list) and bool(value) and \
        all(word in choices for word in value) and len(set(value)) == len(value)


_LOOKBACK = {
    "field": _one_of(*LOOKBACK_FIELDS),
    "days_after_event": _count,
    "months_after_event": _count,
    "forbidden_during_study": _flag,
}

_LOOKBACK_V2 = {
    **_LOOKBACK,
    "before": _one_of("first_dose", "screening"),
    "inclusive": _flag,
}

# The parameters each rule must carry, and what each must be. A rule that is missing, unknown
# or malformed stops the load with a message naming the rule and the field.
RULE_PARAMS: Mapping[str, Mapping[str, Check]] = {
    "study-period": {"start": _iso_date, "completion": _iso_date},
    "cryoablation": {},
    "recovery-gate": {},
    "first-dose": {},
    "first-dose-minimum-interval": {"days_after_cryoablation": _count},
    "pending-recovery-projection": {"assumed_recovery_days_after_cryoablation": _count},
    "complication-hold": {},
    "serplulimab": {"dose": _text, "cycle_length_days": _positive, "max_cycles": _positive},
    "cycle-chaining": {},
    "skipped-dose": {"counts_toward_max_cycles": _flag},
    "dose-window": {"days_before": _count, "days_after": _count},
    "dose-modification": {},
    "discontinuation": {},
    "hold-limit": {"weeks": _positive},
    "screening-labs": {"days_before_first_dose": _count},
    "pregnancy-test": {"days_before": _count, "anchor": _one_of("first_dose", "cryoablation")},
    "baseline-imaging": {"days_before_first_dose": _count},
    "predose-labs": {"days_before_dose": _count, "from_cycle": _positive},
    "response-imaging": {
        "on_treatment_every_weeks": _positive,
        "on_treatment_window_days": _count,
        "follow_up_every_months": _positive,
        "follow_up_window_days": _count,
        "follow_up_until_month": _positive,
        "long_term_every_months": _positive,
        "long_term_window_days": _count,
    },
    "end-of-treatment": {"days_after_last_dose": _count, "window_days": _count},
    "safety-follow-up": {"days_after_last_dose": _count, "window_days": _count},
    "survival-follow-up": {"every_weeks": _positive, "window_days": _count},
    "os-landmark": {
        "months": _positive, "window_days": _count,
        "time_zero": _one_of("cryoablation", "first_dose"),
    },
    "contraception": {"months_after_last_dose": _count},
    "calendar-months": {},
    "working-days": {"movable_kinds": _kinds},
    "lookback-live-vaccine": _LOOKBACK,
    "lookback-major-surgery": _LOOKBACK,
    "lookback-systemic-antimicrobials": _LOOKBACK,
    "lookback-radical-radiotherapy": _LOOKBACK,
    "lookback-myocardial-infarction": _LOOKBACK,
    "lookback-other-trial": {**_LOOKBACK, "half_lives": _positive},
}

# Revision 2 (the clinical review's corrections): rules whose parameters changed, and the
# rules it adds. A revision-2 file must carry every one of them.
RULE_PARAMS_V2: Mapping[str, Mapping[str, Check]] = {
    **RULE_PARAMS,
    "discontinuation": {
        "reason_codes": _words_of(*DISCONTINUATION_REASONS),
        "default_reason_code": _one_of(*DISCONTINUATION_REASONS),
        "stops_response_imaging": _words_of(*DISCONTINUATION_REASONS),
    },
    "off-study": {"reasons": _words_of(*OFF_STUDY_REASONS)},
    "pregnancy-test": {
        "days_before": _count, "anchor": _one_of("cryoablation"),
        "last_day_before_anchor": _count, "repeat_days_before_first_dose": _count,
    },
    "baseline-imaging": {
        "days_before_first_dose": _count, "last_day_before_cryoablation": _count,
        "target_days_before_cryoablation": _count,
    },
    "response-imaging": {**RULE_PARAMS["response-imaging"], "minimum_spacing_weeks": _positive},
    "end-of-treatment": {**RULE_PARAMS["end-of-treatment"], "days_after_discontinuation": _count},
    "same-day-order": {"kinds": _ordered_kinds},
    "one-trip": {"within_days": _count, "joining_kinds": _kinds},
    "future-facts": {},
    "fact-order": {},
    "lookback-live-vaccine": _LOOKBACK_V2,
    "lookback-major-surgery": _LOOKBACK_V2,
    "lookback-systemic-antimicrobials": _LOOKBACK_V2,
    "lookback-radical-radiotherapy": _LOOKBACK_V2,
    "lookback-myocardial-infarction": _LOOKBACK_V2,
    "lookback-other-trial": {**_LOOKBACK_V2, "half_lives": _positive},
    "lookback-prior-malignancy": {**_LOOKBACK_V2, "exceptions": _text},
}
# Revision 3 (a third clinical review): infusion cycles are kept after the estimated study
# completion like the single obligations, and a held dose's later chain is projected from the
# site's today.
RULE_PARAMS_V3: Mapping[str, Mapping[str, Check]] = {
    **RULE_PARAMS_V2,
    "study-period": {**RULE_PARAMS["study-period"], "kept_after_completion": _kinds},
    "held-dose-projection": {},
}
SCHEMAS: Mapping[int, Mapping[str, Mapping[str, Check]]] = {
    1: RULE_PARAMS, 2: RULE_PARAMS_V2, 3: RULE_PARAMS_V3}


@dataclass(frozen=True)
class Rule:
    """One timing rule: its id, provenance, the sentence it comes from, and its parameters."""

    id: str
    source: str
    text: str
    params: Mapping[str, Any]
    title: str | None = None

    def number(self, name: str) -> int:
        value: int = self.params[name]
        return value

    def flag(self, name: str) -> bool:
        return bool(self.params[name])

    def word(self, name: str) -> str:
        return str(self.params[name])

    def date(self, name: str) -> dt.date:
        return dt.date.fromisoformat(self.params[name])

    def words(self, name: str) -> tuple[str, ...]:
        return tuple(self.params[name])


@dataclass(frozen=True, eq=False)
class Protocol:
    """A validated protocol definition; rules are looked up by id."""

    id: str
    version: str
    modified: dt.datetime
    title: str
    response_criteria: str
    rules: Mapping[str, Rule]
    revision: int = 1

    def rule(self, rule_id: str) -> Rule:
        return self.rules[rule_id]

    def has(self, rule_id: str) -> bool:
        """True when this revision of the protocol carries the rule."""
        return rule_id in self.rules

    @property
    def corrected(self) -> bool:
        """True from revision 2 on: the clinical review's corrections apply."""
        return self.revision >= 2

    @cached_property
    def study_start(self) -> dt.date:
        return self.rule("study-period").date("start")

    @cached_property
    def study_completion(self) -> dt.date:
        return self.rule("study-period").date("completion")

    @cached_property
    def kept_after_completion(self) -> frozenset[str]:
        """Visit kinds kept, dated as usual and with a warning, when they fall after the
        estimated study completion (rule study-period); revision 1 cuts every one."""
        rule = self.rule("study-period")
        if "kept_after_completion" in rule.params:
            return frozenset(rule.words("kept_after_completion"))
        return REVISION_2_KEPT if self.corrected else frozenset()

    @cached_property
    def visit_order(self) -> tuple[str, ...]:
        """The kinds' clinical order on one day (rule same-day-order); empty without the rule,
        which lists one day's visits by id (scheduler.visit_order)."""
        return self.rule("same-day-order").words("kinds") if self.has("same-day-order") else ()

    @cached_property
    def movable_kinds(self) -> frozenset[str]:
        return frozenset(self.rule("working-days").words("movable_kinds"))

    @cached_property
    def lookbacks(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules.values() if rule.id.startswith("lookback-"))


@cache
def _packaged() -> tuple[Protocol, ...]:
    """Every packaged revision, oldest first, each loaded once."""
    loaded = []
    for name in PROTOCOL_FILES:
        text = resources.files("scheduler").joinpath(name).read_text(encoding="utf-8")
        loaded.append(parse_protocol(json.loads(text), name.removeprefix("protocols/")))
    return tuple(loaded)


def available_versions() -> tuple[str, ...]:
    """The versions of the packaged protocol, oldest first; the last is the default.

    >>> available_versions()
    ('2025-09-15.1', '2026-11-25.2', '2026-12-04.3')
    """
    return tuple(protocol.version for protocol in _packaged())


def protocol_version(version: str) -> Protocol:
    """The packaged protocol of one version; `ProtocolError` naming the known ones otherwise."""
    for protocol in _packaged():
        if protocol.version == version:
            return protocol
    raise ProtocolError(f"no protocol version {version!r}; available: "
                        f"{', '.join(available_versions())}")


def load_protocol(path: str | Path | None = None, version: str | None = None) -> Protocol:
    """Load and validate a protocol file: the newest packaged NCT07064876 definition by
    default, a given packaged `version`, or a file on disk."""
    if path is None:
        return protocol_version(version) if version else _packaged()[-1]
    text = Path(path).read_text(encoding="utf-8")
    where = str(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"{where}: not valid JSON: {error}") from error
    return parse_protocol(document, where)


def parse_protocol(document: Any, where: str = "protocol") -> Protocol:
    """Validate a decoded protocol document, failing loudly on the first malformed rule."""
    if not isinstance(document, dict):
        raise ProtocolError(f"{where}: the document must be an object")
    for key in ("id", "version", "title", "response_criteria"):
        if not _text(document.get(key)):
            raise ProtocolError(f"{where}: field '{key}' must be a non-empty string")
    revision = document.get("revision", 1)
    if isinstance(revision, bool) or revision not in SCHEMAS:
        raise ProtocolError(f"{where}: field 'revision' must be one of "
                            f"{', '.join(str(known) for known in SCHEMAS)}")
    schema = SCHEMAS[revision]
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list):
        raise ProtocolError(f"{where}: field 'rules' must be a list")
    rules: dict[str, Rule] = {}
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, f"{where}: rules[{index}]", schema)
        if rule.id in rules:
            raise ProtocolError(f"{where}: rule '{rule.id}' is defined twice")
        rules[rule.id] = rule
    missing = sorted(set(schema) - set(rules))
    if missing:
        raise ProtocolError(f"{where}: missing rules: {', '.join(missing)}")
    protocol = Protocol(
        id=document["id"], version=document["version"], modified=_utc(document, where),
        title=document["title"],
        response_criteria=document["response_criteria"], rules=rules, revision=revision,
    )
    if protocol.study_completion <= protocol.study_start:
        raise ProtocolError(f"{where}: rule 'study-period' field 'params.completion' "
                            "must be after 'params.start'")
    return protocol


def _utc(document: dict[str, Any], where: str) -> dt.datetime:
    """When this definition last changed, as an aware UTC timestamp (field 'modified')."""
    try:
        modified = dt.datetime.fromisoformat(document.get("modified", ""))
    except (TypeError, ValueError):
        modified = None
    if modified is None or modified.utcoffset() != dt.timedelta(0):
        raise ProtocolError(f"{where}: field 'modified' must be an RFC 3339 UTC timestamp")
    return modified.astimezone(dt.UTC)


def _parse_rule(raw: Any, where: str, schema: Mapping[str, Mapping[str, Check]]) -> Rule:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: each rule must be an object")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or rule_id not in schema:
        raise ProtocolError(f"{where}: unknown rule id {rule_id!r}")
    where = f"rule '{rule_id}'"
    if raw.get("source") not in SOURCES:
        raise ProtocolError(f"{where} field 'source' must be one of {', '.join(SOURCES)}")
    if not _text(raw.get("text")):
        raise ProtocolError(f"{where} field 'text' must quote the sentence the rule comes from")
    title = raw.get("title")
    if title is not None and not _text(title):
        raise ProtocolError(f"{where} field 'title' must be a non-empty string")
    params = raw.get("params")
    if not isinstance(params, dict):
        raise ProtocolError(f"{where} field 'params' must be an object")
    expected = schema[rule_id]
    for name in sorted(set(params) - set(expected)):
        raise ProtocolError(f"{where} field 'params.{name}' is not a parameter of this rule")
    for name, check in expected.items():
        if name not in params:
            raise ProtocolError(f"{where} field 'params.{name}' is missing")
        if not check(params[name]):
            raise ProtocolError(f"{where} field 'params.{name}' has an invalid value "
                                f"{params[name]!r}")
    return Rule(id=rule_id, source=raw["source"], text=raw["text"], params=params, title=title)
