"""The protocol file is data, validated on load, and the engine applies what it says."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from scheduler import ProtocolError, load_protocol
from scheduler.protocol import SOURCES, available_versions, parse_protocol, protocol_version
from tests.conftest import protocol_document, protocol_with, schedule_for


def broken(mutate):
    document = copy.deepcopy(protocol_document())
    mutate(document)
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(document)
    return str(caught.value)


def rule(document, rule_id):
    return next(r for r in document["rules"] if r["id"] == rule_id)


def test_packaged_protocol_loads_with_identity_and_provenance():
    protocol = load_protocol()
    assert (protocol.id, protocol.version, protocol.revision) == (
        "NCT07064876", "2026-12-04.3", 3)
    assert all(r.source in SOURCES and r.text for r in protocol.rules.values())
    assert protocol.rule("serplulimab").source == "record"
    assert protocol.rule("dose-window").source == "assumed"
    assert protocol.rule("hold-limit").source == "label"


def test_record_rules_quote_the_registry_record(shared_dir):
    record = (shared_dir / "seed" / "NCT07064876-registry-record.txt").read_text()
    flat = " ".join(record.split())
    quoted = [r for r in load_protocol().rules.values()
              if r.source == "record" and r.id.startswith("lookback-")]
    assert quoted and all(r.text in flat for r in quoted)


def test_missing_rule_is_named():
    message = broken(lambda d: d["rules"].remove(rule(d, "dose-window")))
    assert "missing rules: dose-window" in message


def test_malformed_parameter_names_rule_and_field():
    message = broken(lambda d: rule(d, "serplulimab")["params"].update(cycle_length_days="21"))
    assert message == ("rule 'serplulimab' field 'params.cycle_length_days' has an invalid "
                       "value '21'")


def test_missing_parameter_names_rule_and_field():
    message = broken(lambda d: rule(d, "dose-window")["params"].pop("days_after"))
    assert message == "rule 'dose-window' field 'params.days_after' is missing"


def test_unknown_parameter_is_rejected():
    message = broken(lambda d: rule(d, "dose-window")["params"].update(days_around=3))
    assert "rule 'dose-window' field 'params.days_around' is not a parameter" in message


def test_unknown_provenance_is_rejected():
    message = broken(lambda d: rule(d, "hold-limit").update(source="folklore"))
    assert "rule 'hold-limit' field 'source'" in message


def test_unknown_and_duplicate_rules_are_rejected():
    assert "unknown rule id 'extra'" in broken(
        lambda d: d["rules"].append({"id": "extra", "source": "record", "text": "x",
                                     "params": {}}))
    assert "defined twice" in broken(lambda d: d["rules"].append(rule(d, "hold-limit")))


def test_rule_without_its_sentence_is_rejected():
    assert "field 'text'" in broken(lambda d: rule(d, "contraception").update(text=" "))


def test_study_period_must_run_forwards():
    message = broken(lambda d: rule(d, "study-period")["params"].update(completion="2025-01-01"))
    assert "rule 'study-period'" in message


def test_not_json_is_reported(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ProtocolError, match="not valid JSON"):
        load_protocol(path)


def test_a_protocol_file_on_disk_can_replace_the_default(tmp_path):
    document = copy.deepcopy(protocol_document())
    rule(document, "dose-window")["params"].update(days_before=2, days_after=5)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    window = schedule_for(protocol=load_protocol(path)).visit("C2D1").window
    assert (window.earliest.isoformat(), window.latest.isoformat()) == ("2026-03-28", "2026-04-04")


def test_cycle_length_and_count_come_from_the_protocol_file():
    protocol = protocol_with("serplulimab", cycle_length_days=14, max_cycles=4)
    schedule = schedule_for(protocol=protocol)
    infusions = [v for v in schedule.visits if v.kind == "infusion"]
    # C3 is due Mon 2026-04-06 (Qingming, observed) and moves to Tue 04-07; C4 chains from it.
    assert [v.date.isoformat() for v in infusions] == [
        "2026-03-09", "2026-03-23", "2026-04-07", "2026-04-21"]


# Versions: the first stays loadable byte for byte; the newest is the default.

V1_SHA256 = "958bbc003eb361d6a5a1c4a81ef81fa8a323218c4fedc9b135120b099e073726"


def test_the_first_version_file_is_unchanged_byte_for_byte():
    from importlib import resources

    data = resources.files("scheduler").joinpath("protocols/NCT07064876.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == V1_SHA256


def test_versions_are_listed_oldest_first_and_the_newest_is_the_default():
    assert available_versions() == ("2025-09-15.1", "2026-11-25.2", "2026-12-04.3")
    assert load_protocol().version == "2026-12-04.3"
    first = load_protocol(version="2025-09-15.1")
    assert (first.version, first.revision, first.corrected) == ("2025-09-15.1", 1, False)
    assert protocol_version("2026-12-04.3") is load_protocol()
    assert protocol_version("2026-11-25.2").revision == 2


def test_an_unknown_version_is_named_with_the_available_ones():
    with pytest.raises(ProtocolError) as caught:
        load_protocol(version="2024-01-01.0")
    assert str(caught.value) == ("no protocol version '2024-01-01.0'; available: "
                                 "2025-09-15.1, 2026-11-25.2, 2026-12-04.3")


def test_revision_2_carries_its_new_rules_with_provenance():
    protocol = load_protocol()
    sources = {rule_id: protocol.rule(rule_id).source for rule_id in (
        "off-study", "same-day-order", "one-trip", "future-facts", "fact-order",
        "lookback-prior-malignancy")}
    assert sources == {"off-study": "typical", "same-day-order": "assumed",
                       "one-trip": "assumed", "future-facts": "assumed",
                       "fact-order": "assumed", "lookback-prior-malignancy": "record"}
    assert protocol.rule("pregnancy-test").word("anchor") == "cryoablation"
    assert protocol.rule("end-of-treatment").number("days_after_discontinuation") == 7
    assert protocol.rule("response-imaging").number("minimum_spacing_weeks") == 6
    assert not load_protocol(version="2025-09-15.1").has("one-trip")


def test_revision_2_record_rules_quote_the_registry_record(shared_dir):
    record = (shared_dir / "seed" / "NCT07064876-registry-record.txt").read_text()
    flat = " ".join(record.split())
    quoted = [r for r in load_protocol().rules.values()
              if r.source == "record" and r.id.startswith("lookback-")]
    assert len(quoted) == 7 and all(r.text in flat for r in quoted)


def test_a_revision_2_file_missing_a_revision_2_rule_is_refused():
    message = broken(lambda d: d["rules"].remove(rule(d, "one-trip")))
    assert "missing rules: one-trip" in message


def test_an_unknown_revision_is_refused():
    assert "field 'revision' must be one of 1, 2, 3" in broken(lambda d: d.update(revision=4))


def test_same_day_order_must_name_every_visit_kind_once():
    message = broken(lambda d: rule(d, "same-day-order")["params"]["kinds"].pop())
    assert message.startswith("rule 'same-day-order' field 'params.kinds' has an invalid value")
