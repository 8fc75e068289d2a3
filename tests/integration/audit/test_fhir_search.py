"""FHIR AuditEvent search and read over a real trail, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

# fhir.resources 7.x models FHIR R5 by default and R4B in a subpackage (no R4 proper);
# AuditEvent, Bundle and OperationOutcome are the same in R4 (4.0.1) and R4B (4.3.0).
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import select

from connrad.audit.fhir import (
    SUBTYPE_RULES,
    TYPE_RULES,
    FhirSearchError,
    operation_outcome,
    read_audit_event,
    search_audit_events,
    to_audit_event,
)
from connrad.audit.log import AuditRecord
from connrad.audit.models import AuditEvent as AuditEventRow
from connrad.services import Services

BASE = "http://testserver/fhir"
events = AuditEventRow.__table__


@dataclass(frozen=True)
class Spec:
    actor: str
    actor_site_id: int | None
    source: str
    action: str
    resource: str
    outcome: int
    study_uid: str | None = None
    site_id: int | None = None


# The trail every test searches; a test names events by their index here.
TRAIL = [
    Spec("user:1", 1, "10.0.0.1", "read", "study", 200, "1.2.3.1", 1),  # 0
    Spec("device:3", 2, "CT_SCANNER", "create", "study", 200, "1.2.3.2", 2),  # 1
    Spec("user:1", 1, "10.0.0.1", "search", "study", 200),  # 2
    Spec("anonymous", None, "192.168.5.9", "read", "study", 404, "1.2.3.9"),  # 3
    Spec("user:9", None, "10.0.0.2", "login", "session", 200),  # 4
    Spec("user:9", None, "10.0.0.2", "update", "user", 200, None, 1),  # 5
    Spec("user:9", None, "10.0.0.2", "delete", "site", 503, None, 2),  # 6
    Spec("user:1", 1, "10.0.0.1", "logout", "session", 200),  # 7
    Spec("user:2", 2, "172.16.0.8", "reidentify", "study", 201, "1.2.3.2", 2),  # 8
    Spec("user:9", None, "10.0.0.2", "search", "AuditEvent", 400),  # 9
    Spec("user:9", None, "10.0.0.2", "search", "user", 200),  # 10
]
EVERY = set(range(len(TRAIL)))


@pytest.fixture
def trail(services: Services) -> list[dict[str, Any]]:
    """The TRAIL, written through the audit log (each record() returns once committed)."""
    for spec in TRAIL:
        detail: dict[str, Any] = {"route": f"/{spec.resource}"}
        if spec.action == "search":
            detail |= {"keys": ["PatientName"], "studies": ["1.2.3.1"], "study_count": 1}
        services.audit.record(
            AuditRecord(
                actor=spec.actor,
                source=spec.source,
                action=spec.action,
                resource=spec.resource,
                outcome=spec.outcome,
                actor_site_id=spec.actor_site_id,
                study_uid=spec.study_uid,
                site_id=spec.site_id,
                detail=detail,
            )
        )
    with services.engine.connect() as conn:
        rows = conn.execute(select(events).order_by(events.c.sequence)).mappings().all()
    assert len(rows) == len(TRAIL)
    return [dict(row) for row in rows]


Search = Callable[..., dict[str, Any]]


@pytest.fixture
def search(services: Services, trail: list[dict[str, Any]]) -> Search:
    def run(params: dict[str, list[str]], site_ids: frozenset[int] | None = None) -> Any:
        with services.engine.connect() as conn:
            bundle = search_audit_events(conn, params, site_ids=site_ids, base_url=BASE)
        Bundle.parse_obj(bundle)  # every entry is validated as an AuditEvent too
        return bundle

    return run


def found(bundle: dict[str, Any], trail: list[dict[str, Any]]) -> list[int]:
    """The trail indexes of the bundle's entries, in the bundle's order."""
    index = {str(row["id"]): n for n, row in enumerate(trail)}
    return [index[entry["resource"]["id"]] for entry in bundle.get("entry", [])]


def iso(moment: datetime, zone: timezone = UTC) -> str:
    return moment.astimezone(zone).isoformat(timespec="microseconds")


CASES: list[tuple[dict[str, list[str]], set[int]]] = [
    ({}, EVERY),
    ({"action": ["R"]}, {0, 3}),
    ({"action": ["C"]}, {1}),
    ({"action": ["U"]}, {5}),
    ({"action": ["D"]}, {6}),
    ({"action": ["E"]}, {2, 4, 7, 8, 9, 10}),
    ({"action": ["C,D"]}, {1, 6}),
    ({"action": ["R", "C"]}, set()),  # repeated: AND
    ({"action": ["http://hl7.org/fhir/audit-event-action|R"]}, {0, 3}),
    ({"action": ["urn:other|R"]}, set()),
    ({"outcome": ["0"]}, EVERY - {3, 6, 9}),
    ({"outcome": ["4"]}, {3, 9}),
    ({"outcome": ["8"]}, {6}),
    ({"outcome": ["4,8"]}, {3, 6, 9}),
    ({"outcome": ["12"]}, set()),
    ({"agent": ["user:1"]}, {0, 2, 7}),
    ({"agent": ["user:1,device:3"]}, {0, 1, 2, 7}),
    ({"agent": ["user"]}, set()),  # exact, not a prefix
    ({"agent:identifier": ["urn:connrad:actor|device:3"]}, {1}),
    ({"agent:identifier": ["urn:other|device:3"]}, set()),
    ({"address": ["10.0.0.2"]}, {4, 5, 6, 9, 10}),
    ({"address": ["10.0.0"]}, {0, 2, 4, 5, 6, 7, 9, 10}),
    ({"address": ["ct_scan"]}, {1}),  # FHIR string search: prefix, any case
    ({"address:exact": ["CT_SCANNER"]}, {1}),
    ({"address:exact": ["ct_scanner"]}, set()),
    ({"address:contains": ["168.5"]}, {3}),
    ({"address:contains": ["_"]}, {1}),  # LIKE wildcards are escaped
    ({"address": ["%"]}, set()),
    ({"address": ["172.16.0.8,192.168"]}, {3, 8}),
    ({"entity": ["urn:oid:1.2.3.2"]}, {1, 8}),
    ({"entity": ["1.2.3.1"]}, {0}),
    ({"entity": ["1.2.3.1,1.2.3.9"]}, {0, 3}),
    ({"entity:identifier": ["urn:dicom:uid|urn:oid:1.2.3.9"]}, {3}),
    ({"entity:identifier": ["urn:other|urn:oid:1.2.3.9"]}, set()),
    ({"subtype": ["read"]}, {0, 3}),
    ({"subtype": ["http://hl7.org/fhir/restful-interaction|search-type"]}, {2, 9, 10}),
    ({"subtype": ["http://dicom.nema.org/resources/ontology/DCM|read"]}, set()),
    ({"subtype": ["110122"]}, {4}),
    ({"subtype": ["110123"]}, {7}),
    ({"subtype": ["110122,110123"]}, {4, 7}),
    ({"subtype": ["110137"]}, {5}),
    ({"subtype": ["110129"]}, {6}),
    ({"subtype": ["reidentify"]}, {8}),
    ({"subtype": ["no-such-code"]}, set()),
    ({"type": ["110110"]}, {0, 1, 2, 3, 8}),
    ({"type": ["110114"]}, {4, 7}),
    ({"type": ["110113"]}, {5, 6}),
    ({"type": ["110101"]}, {9}),
    ({"type": ["http://terminology.hl7.org/CodeSystem/audit-event-type|rest"]}, {10}),
    ({"action": ["R"], "outcome": ["0"]}, {0}),
    ({"agent": ["user:9"], "type": ["110113"], "outcome": ["8"]}, {6}),
    ({"action": [""], "foo": ["bar"], "_format": ["json"]}, EVERY),  # ignored
]


def test_search_parameters(search: Search, trail: list[dict[str, Any]]) -> None:
    # One trail for the whole table (building it per case costs a migration each).
    wrong = []
    for params, expected in CASES:
        bundle = search({**params, "_count": ["500"]})
        got = set(found(bundle, trail))
        if got != expected or bundle["total"] != len(expected):
            wrong.append((params, sorted(got), sorted(expected)))
    assert wrong == []


def test_type_and_subtype_searches_agree_with_the_mapping(
    search: Search, trail: list[dict[str, Any]]
) -> None:
    mapped = [to_audit_event(row, BASE) for row in trail]
    for rule in (*TYPE_RULES, *SUBTYPE_RULES):
        coding = rule.coding
        parameter = "type" if rule in TYPE_RULES else "subtype"
        expected = {
            n
            for n, event in enumerate(mapped)
            if any(
                (c["system"], c["code"]) == (coding.system, coding.code)
                for c in [event["type"], *event.get("subtype", [])]
            )
        }
        bundle = search({parameter: [f"{coding.system}|{coding.code}"], "_count": ["500"]})
        assert set(found(bundle, trail)) == expected, coding


def test_entries_are_the_mapped_rows(search: Search, trail: list[dict[str, Any]]) -> None:
    bundle = search({"_sort": ["date"]})
    assert bundle["type"] == "searchset"
    for entry, row in zip(bundle["entry"], trail, strict=True):
        assert entry["fullUrl"] == f"{BASE}/AuditEvent/{row['id']}"
        assert entry["search"] == {"mode": "match"}
        assert entry["resource"] == to_audit_event(row, BASE)
        chain = {p["url"]: p for p in entry["resource"]["extension"][0]["extension"]}
        assert chain["sequence"]["valueInteger"] == row["sequence"]
        assert chain["hash"]["valueString"] == row["hash"]


def test_dates_at_microsecond_precision(search: Search, trail: list[dict[str, Any]]) -> None:
    moment = trail[5]["occurred_at"]
    at = iso(moment)
    cases = {
        f"eq{at}": {5},
        at: {5},
        f"ne{at}": EVERY - {5},
        f"lt{at}": {0, 1, 2, 3, 4},
        f"eb{at}": {0, 1, 2, 3, 4},
        f"le{at}": {0, 1, 2, 3, 4, 5},
        f"gt{at}": {6, 7, 8, 9, 10},
        f"sa{at}": {6, 7, 8, 9, 10},
        f"ge{at}": {5, 6, 7, 8, 9, 10},
        f"eq{iso(moment, timezone(timedelta(hours=5, minutes=30)))}": {5},
        f"eq{iso(moment, timezone(timedelta(hours=-3)))}": {5},
        # An unencoded '+' in a query string arrives as a space.
        f"eq{iso(moment, timezone(timedelta(hours=2))).replace('+', ' ')}": {5},
    }
    for value, expected in cases.items():
        assert set(found(search({"date": [value]}), trail)) == expected, value
    both = {"date": [f"ge{at}", f"lt{iso(trail[8]['occurred_at'])}"]}  # repeated: AND
    assert set(found(search(both), trail)) == {5, 6, 7}


@pytest.mark.parametrize(
    ("fmt", "unit"),
    [
        ("%Y", None),
        ("%Y-%m", None),
        ("%Y-%m-%d", timedelta(days=1)),
        ("%Y-%m-%dT%H:%MZ", timedelta(minutes=1)),
        ("%Y-%m-%dT%H:%M:%SZ", timedelta(seconds=1)),
    ],
)
def test_dates_at_coarser_precision(
    search: Search, trail: list[dict[str, Any]], fmt: str, unit: timedelta | None
) -> None:
    moment: datetime = trail[0]["occurred_at"].astimezone(UTC)
    text = moment.strftime(fmt)
    when = [row["occurred_at"].astimezone(UTC).strftime(fmt) for row in trail]
    same = {n for n, period in enumerate(when) if period == text}
    assert same  # the events share this period, or the comparison below proves nothing
    before = {n for n, period in enumerate(when) if period < text}
    assert set(found(search({"date": [text]}), trail)) == same
    assert set(found(search({"date": [f"ne{text}"]}), trail)) == EVERY - same
    assert set(found(search({"date": [f"lt{text}"]}), trail)) == before
    assert set(found(search({"date": [f"ge{text}"]}), trail)) == EVERY - before
    assert set(found(search({"date": [f"le{text}"]}), trail)) == before | same
    assert set(found(search({"date": [f"gt{text}"]}), trail)) == EVERY - before - same
    if unit is not None:
        earlier = (moment - unit * 400).strftime(fmt)
        assert set(found(search({"date": [earlier]}), trail)) == set()
        assert set(found(search({"date": [f"gt{earlier}"]}), trail)) == EVERY


def test_sort(search: Search, trail: list[dict[str, Any]]) -> None:
    oldest_first = list(range(len(TRAIL)))
    assert found(search({"_sort": ["date"]}), trail) == oldest_first
    assert found(search({"_sort": ["-date"]}), trail) == oldest_first[::-1]
    assert found(search({}), trail) == oldest_first[::-1]  # default: newest first


def test_paging_follows_next_links(search: Search, trail: list[dict[str, Any]]) -> None:
    params: dict[str, list[str]] = {"_count": ["3"], "_sort": ["date"], "outcome": ["0"]}
    pages, seen = 0, []
    while True:
        bundle = search(params)
        pages += 1
        assert bundle["total"] == 8
        assert len(bundle.get("entry", [])) <= 3
        seen += found(bundle, trail)
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert ("previous" in links) == (pages > 1)
        if "next" not in links:
            break
        url = urlsplit(links["next"])
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/AuditEvent"
        params = parse_qs(url.query)
        assert params["outcome"] == ["0"] and params["_sort"] == ["date"]
    assert pages == 3
    assert seen == sorted(EVERY - {3, 6, 9})


def test_links_keep_known_parameters_only(search: Search) -> None:
    bundle = search({"agent": ["user:1"], "foo": ["bar"], "address:exact": ["10.0.0.1"]})
    (self_link,) = [link["url"] for link in bundle["link"] if link["relation"] == "self"]
    query = parse_qs(urlsplit(self_link).query)
    assert query == {
        "agent": ["user:1"],
        "address:exact": ["10.0.0.1"],
        "_count": ["50"],
        "_offset": ["0"],
    }


def test_count_limits(search: Search, trail: list[dict[str, Any]]) -> None:
    only_total = search({"_count": ["0"]})
    assert only_total["total"] == len(TRAIL) and "entry" not in only_total
    assert [link["relation"] for link in only_total["link"]] == ["self"]
    capped = search({"_count": ["100000"]})
    assert "_count=500" in capped["link"][0]["url"]
    assert len(capped["entry"]) == len(TRAIL)
    past_the_end = search({"_offset": ["50"]})
    assert past_the_end["total"] == len(TRAIL) and "entry" not in past_the_end


@pytest.mark.parametrize(
    ("site_ids", "expected"),
    [
        (frozenset({1}), {0, 2, 5, 7}),  # about site 1, or by a caller of site 1
        (frozenset({2}), {1, 6, 8}),
        (frozenset({1, 2}), {0, 1, 2, 5, 6, 7, 8}),
        (frozenset({99}), set()),
        (frozenset(), set()),
        (None, EVERY),
    ],
)
def test_site_filtering(
    search: Search,
    trail: list[dict[str, Any]],
    site_ids: frozenset[int] | None,
    expected: set[int],
) -> None:
    bundle = search({"_count": ["500"]}, site_ids)
    assert set(found(bundle, trail)) == expected and bundle["total"] == len(expected)
    assert set(found(search({"action": ["R"]}, site_ids), trail)) == expected & {0, 3}


def test_read(services: Services, trail: list[dict[str, Any]]) -> None:
    def read(event_id: str, site_ids: frozenset[int] | None = None) -> dict[str, Any] | None:
        with services.engine.connect() as conn:
            return read_audit_event(conn, event_id, site_ids=site_ids, base_url=BASE)

    for row in trail:
        event = read(str(row["id"]))
        assert event == to_audit_event(row, BASE)
        AuditEvent.parse_obj(event)
    other_site = str(trail[1]["id"])  # site 2, by a device of site 2
    assert read(other_site, frozenset({1})) is None
    assert read(other_site, frozenset({2})) is not None
    assert read(str(trail[3]["id"]), frozenset({1, 2})) is None  # no site at all
    absent = max(row["id"] for row in trail) + 1000
    for bad in (str(absent), "abc", "-1", "1.0", "", " 1", "٣", "9" * 19, "9" * 30):
        assert read(bad) is None, bad


BAD = [
    ({"date": ["xx2024"]}, "prefix 'xx'"),
    ({"date": ["ap2024"]}, "prefix 'ap'"),
    ({"date": ["2024-13"]}, "not a valid date"),
    ({"date": ["2024-02-30"]}, "not a valid date"),
    ({"date": ["2024-1-01"]}, "not a FHIR date"),
    ({"date": ["2024-01-01T10:00:00"]}, "with a timezone"),
    ({"date": ["yesterday"]}, "not a FHIR date"),
    ({"_count": ["abc"]}, "whole number"),
    ({"_count": ["-1"]}, "whole number"),
    ({"_count": ["1", "2"]}, "only once"),
    ({"_offset": ["x"]}, "whole number"),
    ({"_sort": ["action"]}, "'date' or '-date'"),
    ({"action": ["X"]}, "not a code"),
    ({"outcome": ["3"]}, "not a code"),
    ({"address:fuzzy": ["10.0"]}, "':fuzzy' is not supported"),
    ({"action:not": ["R"]}, "':not' is not supported"),
]


def test_bad_parameters(search: Search) -> None:
    for params, message in BAD:
        with pytest.raises(FhirSearchError, match=message) as caught:
            search(params)
        outcome = operation_outcome("error", "invalid", str(caught.value))
        OperationOutcome.parse_obj(outcome)
