"""/fhir/AuditEvent over HTTP: bundles, reads, errors, and reading the trail is audited."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent as AuditEventModel  # R4 == R4B here
from fhir.resources.R4B.bundle import Bundle

from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.services import Services
from tests.conftest import device_api_key
from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes


def _auditor(services: Services, site_id: int) -> dict[str, str]:
    with write_transaction(services.engine) as conn:
        device = admin.create_device(
            conn, site_id, "siem", "api", device_scopes=["system/AuditEvent.rs"]
        )
        _, key = admin.issue_api_key(conn, device["id"])
    return {"Authorization": f"Bearer {key}"}


def test_audit_events_as_fhir(client: TestClient, services: Services) -> None:
    ds = make_dataset()
    stored = client.post(
        "/dicomweb/studies",
        content=stow_body(to_bytes(ds)),
        headers={"Content-Type": STOW_TYPE},
    )
    assert stored.status_code == 200
    assert client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata").status_code == 200
    auditor = _auditor(services, services.local_site_id)

    found = client.get("/fhir/AuditEvent", params={"entity": ds.StudyInstanceUID}, headers=auditor)
    assert found.status_code == 200
    assert found.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.parse_obj(found.json())
    assert bundle.type == "searchset"
    events = [e.resource for e in bundle.entry or []]
    subtypes = sorted(e.subtype[0].code for e in events if e.subtype)
    assert subtypes == ["create", "read"]
    assert {e.action for e in events} == {"C", "R"}
    assert all(e.outcome == "0" for e in events)

    event_id = found.json()["entry"][0]["resource"]["id"]
    one = client.get(f"/fhir/AuditEvent/{event_id}", headers=auditor)
    assert one.status_code == 200
    AuditEventModel.parse_obj(one.json())

    missing = client.get("/fhir/AuditEvent/999999999", headers=auditor)
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    bad = client.get("/fhir/AuditEvent", params={"date": "yesterday"}, headers=auditor)
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["code"] == "invalid"

    # The auditor's own reads are in the trail too.
    mine = client.get(
        "/fhir/AuditEvent", params={"subtype": "search-type", "_count": "50"}, headers=auditor
    )
    resources = [e["resource"] for e in mine.json()["entry"]]
    assert any(
        any(
            d.get("valueString") == "AuditEvent"
            for x in r.get("entity", [])
            for d in x.get("detail", [])
        )
        or "AuditEvent" in str(r.get("extension"))
        for r in resources
    )


def test_other_sites_events_stay_hidden(client: TestClient, services: Services) -> None:
    ds = make_dataset()
    client.post(
        "/dicomweb/studies", content=stow_body(to_bytes(ds)), headers={"Content-Type": STOW_TYPE}
    )
    with write_transaction(services.engine) as conn:
        other = admin.create_site(conn, "elsewhere", "Elsewhere")["id"]
    outsider = _auditor(services, other)
    device_api_key(services, other, "other-uploader")
    found = client.get("/fhir/AuditEvent", params={"entity": ds.StudyInstanceUID}, headers=outsider)
    assert found.status_code == 200
    assert found.json()["total"] == 0
