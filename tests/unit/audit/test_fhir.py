"""Audit rows as FHIR R4 AuditEvents: codes, agents, entities, chain; all schema-validated."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

# fhir.resources 7.x models FHIR R5 by default and R4B in a subpackage (no R4 proper);
# AuditEvent, Bundle and OperationOutcome are the same in R4 (4.0.1) and R4B (4.3.0).
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.operationoutcome import OperationOutcome

from connrad.audit.fhir import (
    ACTOR_SYSTEM,
    CHAIN_EXTENSION,
    CONTEXT_EXTENSION,
    DCM,
    LIFECYCLE,
    RESTFUL,
    TYPE_RULES,
    operation_outcome,
    outcome_code,
    to_audit_event,
)

BASE = "http://connrad.test/fhir"
OCCURRED = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def make_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 41,
        "sequence": 7,
        "occurred_at": OCCURRED,
        "actor": "user:7",
        "actor_site_id": 2,
        "source": "10.1.2.3",
        "action": "read",
        "resource": "study",
        "study_uid": "1.2.840.99.1",
        "site_id": 3,
        "outcome": 200,
        "detail": {"route": "/dicomweb/studies/{study}/metadata", "instances": 3},
        "previous_hash": "ab" * 32,
        "hash": "cd" * 32,
    }
    return row | overrides


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource, checked against the R4B schema and checked that nothing was dropped."""
    model = AuditEvent.parse_obj(resource)
    back = json.loads(model.json())
    assert back == resource | {"recorded": back["recorded"]}
    assert datetime.fromisoformat(back["recorded"]) == datetime.fromisoformat(resource["recorded"])
    for entity in resource.get("entity", []):  # sev-1, which fhir.resources does not check
        assert not ("name" in entity and "query" in entity)
    return resource


def codes(codings: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in codings]


# action, resource -> type code, subtype codes, action code
CLASSIFICATION = [
    ("read", "study", "110110", [(RESTFUL, "read")], "R"),
    ("read", "instance", "110110", [(RESTFUL, "read")], "R"),
    ("search", "study", "110110", [(RESTFUL, "search-type")], "E"),
    ("create", "study", "110110", [(RESTFUL, "create")], "C"),
    ("update", "series", "110110", [(RESTFUL, "update")], "U"),
    ("delete", "study", "110110", [(RESTFUL, "delete")], "D"),
    ("reidentify", "study", "110110", [(LIFECYCLE, "reidentify")], "E"),
    ("login", "session", "110114", [(DCM, "110122")], "E"),
    ("logout", "session", "110114", [(DCM, "110123")], "E"),
    ("create", "user", "110113", [(RESTFUL, "create"), (DCM, "110137")], "C"),
    ("update", "device", "110113", [(RESTFUL, "update"), (DCM, "110137")], "U"),
    ("delete", "session", "110113", [(RESTFUL, "delete"), (DCM, "110137")], "D"),
    ("update", "site", "110113", [(RESTFUL, "update"), (DCM, "110129")], "U"),
    ("search", "user", "rest", [(RESTFUL, "search-type")], "E"),
    ("read", "site", "rest", [(RESTFUL, "read")], "R"),
    ("search", "AuditEvent", "110101", [(RESTFUL, "search-type")], "E"),
    ("read", "AuditEvent", "110101", [(RESTFUL, "read")], "R"),
    ("export", "study", "110110", [], "E"),
]


@pytest.mark.parametrize(("action", "resource", "type_code", "subtypes", "letter"), CLASSIFICATION)
def test_event_classification(
    action: str, resource: str, type_code: str, subtypes: list[tuple[str, str]], letter: str
) -> None:
    event = validated(to_audit_event(make_row(action=action, resource=resource), BASE))
    assert event["type"]["code"] == type_code
    assert codes(event.get("subtype", [])) == subtypes
    assert event["action"] == letter


def test_exactly_one_type_applies_to_any_event() -> None:
    actions = ["read", "search", "create", "update", "delete", "login", "logout", "reidentify", "x"]
    resources = ["study", "series", "instance", "query", "session", "user", "device", "site"]
    for action, resource in itertools.product(actions, [*resources, "AuditEvent", "other"]):
        applying = [rule for rule in TYPE_RULES if rule.applies(action, resource)]
        assert len(applying) == 1, (action, resource)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        *[(200, "0"), (201, "0"), (202, "0"), (304, "0")],
        *[(400, "4"), (403, "4"), (404, "4"), (409, "4"), (499, "4")],
        *[(500, "8"), (503, "8")],
    ],
)
def test_outcome(status: int, code: str) -> None:
    event = validated(to_audit_event(make_row(outcome=status), BASE))
    assert outcome_code(status) == code
    assert event["outcome"] == code
    assert event["outcomeDesc"] == f"HTTP {status}"


def test_read_of_a_study() -> None:
    event = validated(to_audit_event(make_row(), BASE))
    assert event["id"] == "41"
    assert event["type"] == {"system": DCM, "code": "110110", "display": "Patient Record"}
    assert event["recorded"] == "2026-03-14T09:26:53.589793Z"
    (agent,) = event["agent"]
    assert agent["who"]["identifier"] == {"system": ACTOR_SYSTEM, "value": "user:7"}
    assert agent["requestor"] is True
    assert agent["network"] == {"address": "10.1.2.3", "type": "2"}
    assert event["source"]["observer"]["identifier"]["value"] == BASE
    assert event["source"]["type"][0]["code"] == "4"
    (study,) = event["entity"]
    assert study["what"]["identifier"]["system"] == "urn:dicom:uid"
    assert study["what"]["identifier"]["value"] == "urn:oid:1.2.840.99.1"
    assert study["what"]["identifier"]["type"]["coding"][0]["code"] == "110180"
    assert (study["type"]["code"], study["role"]["code"]) == ("2", "3")  # PS3.15 A.5.3.6
    assert {d["type"]: d["valueString"] for d in study["detail"]} == {
        "instances": "3",
        "route": "/dicomweb/studies/{study}/metadata",
    }


def test_chain_and_context_extensions() -> None:
    event = validated(to_audit_event(make_row(), BASE))
    extensions = {e["url"]: e["extension"] for e in event["extension"]}
    chain = {part["url"]: part for part in extensions[CHAIN_EXTENSION]}
    assert chain["sequence"]["valueInteger"] == 7
    assert chain["hash"]["valueString"] == "cd" * 32
    assert chain["previousHash"]["valueString"] == "ab" * 32
    context = {
        part["url"]: part.get("valueString", part.get("valueInteger"))
        for part in extensions[CONTEXT_EXTENSION]
    }
    assert context == {"action": "read", "resource": "study", "siteId": 3, "actorSiteId": 2}

    bare = validated(to_audit_event(make_row(site_id=None, actor_site_id=None), BASE))
    context_urls = [p["url"] for e in bare["extension"] for p in e["extension"]]
    assert "siteId" not in context_urls and "actorSiteId" not in context_urls


def test_search_query_holds_parameter_names_never_values() -> None:
    detail = {
        "route": "/dicomweb/studies",
        "keys": ["PatientID", "PatientName"],
        "results": 2,
        "studies": ["1.2.3", "1.2.4"],
        "study_count": 2,
    }
    row = make_row(action="search", study_uid=None, site_id=None, detail=detail)
    event = validated(to_audit_event(row, BASE))
    (query,) = event["entity"]
    assert (query["type"]["code"], query["role"]["code"]) == ("2", "24")
    assert base64.b64decode(query["query"]).decode() == "/dicomweb/studies?PatientID&PatientName"
    details = {d["type"]: d["valueString"] for d in query["detail"]}
    assert details["studies"] == "1.2.3 1.2.4"
    assert details["study_count"] == "2"


def test_search_within_a_study_names_the_study_and_the_query() -> None:
    row = make_row(action="search", resource="series", detail={"route": "/studies/{study}/series"})
    study, query = validated(to_audit_event(row, BASE))["entity"]
    assert study["role"]["code"] == "3" and "detail" not in study
    assert base64.b64decode(query["query"]) == b"/studies/{study}/series"


def test_failed_search_without_detail() -> None:
    row = make_row(action="search", study_uid=None, outcome=400, detail={})
    (query,) = validated(to_audit_event(row, BASE))["entity"]
    assert "query" not in query and "detail" not in query


@pytest.mark.parametrize(
    ("source", "network"),
    [
        ("10.1.2.3", {"address": "10.1.2.3", "type": "2"}),
        ("2001:db8::1", {"address": "2001:db8::1", "type": "2"}),
        ("CT_SCANNER_01", {"address": "CT_SCANNER_01", "type": "1"}),
        ("testclient", {"address": "testclient", "type": "1"}),
        ("unknown", None),
    ],
)
def test_network_address_type(source: str, network: dict[str, str] | None) -> None:
    (agent,) = validated(to_audit_event(make_row(source=source), BASE))["agent"]
    assert agent.get("network") == network


@pytest.mark.parametrize(
    ("resource", "role"),
    [("user", "11"), ("device", "11"), ("site", "13"), ("AuditEvent", "13"), ("job", "4")],
)
def test_entity_of_an_event_without_a_study(resource: str, role: str) -> None:
    row = make_row(action="update", resource=resource, study_uid=None, detail={"fields": ["role"]})
    (entity,) = validated(to_audit_event(row, BASE))["entity"]
    assert (entity["type"]["code"], entity["role"]["code"], entity["name"]) == ("2", role, resource)
    assert entity["detail"] == [{"type": "fields", "valueString": "role"}]


def test_reidentification_marks_the_study_lifecycle() -> None:
    event = validated(to_audit_event(make_row(action="reidentify"), BASE))
    assert event["entity"][0]["lifecycle"]["code"] == "reidentify"


def test_detail_values_become_strings() -> None:
    detail = {"route": "", "ok": True, "nested": {"b": 1, "a": [1]}, "mixed": [{"x": 1}]}
    (study,) = validated(to_audit_event(make_row(detail=detail), BASE))["entity"]
    assert study["detail"] == [  # empty strings dropped: FHIR strings may not be empty
        {"type": "mixed", "valueString": '[{"x":1}]'},
        {"type": "nested", "valueString": '{"a":[1],"b":1}'},
        {"type": "ok", "valueString": "true"},
    ]


def test_recorded_is_utc_with_timezone() -> None:
    local = OCCURRED.astimezone(timezone(timedelta(hours=9)))
    assert validated(to_audit_event(make_row(occurred_at=local), BASE))["recorded"] == (
        "2026-03-14T09:26:53.589793Z"
    )
    naive = OCCURRED.replace(tzinfo=None)  # as SQLite may return it: the column is UTC
    assert to_audit_event(make_row(occurred_at=naive), BASE)["recorded"].endswith("Z")


def test_operation_outcome() -> None:
    outcome = operation_outcome("error", "invalid", "'_count' must be a whole number")
    OperationOutcome.parse_obj(outcome)
    assert outcome["issue"][0]["diagnostics"] == "'_count' must be a whole number"
    with pytest.raises(ValueError, match="not a FHIR issue severity"):
        operation_outcome("fatal-ish", "invalid", "x")
