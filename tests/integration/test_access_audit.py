"""Refused requests leave a trace: no credentials, bad credentials, policy, hidden objects."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from connrad.audit.models import AuditEvent
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.services import Services
from tests.conftest import device_api_key


def _refusals(services: Services) -> list[tuple[str, str, int, str]]:
    events = AuditEvent.__table__
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.actor, events.c.action, events.c.outcome, events.c.detail)
            .where(events.c.resource == "route")
            .order_by(events.c.sequence)
        ).all()
    return [(r.actor, r.action, r.outcome, r.detail["route"]) for r in rows]


def test_refusals_are_audited(anonymous_client: TestClient, services: Services) -> None:
    with write_transaction(services.engine) as conn:
        other = admin.create_site(conn, "other", "Other")["id"]
        hidden = admin.create_device(conn, other, "hidden", "api")["id"]
        stow_only = admin.create_device(
            conn, services.local_site_id, "stow-only", "api", device_scopes=["dicomweb.stow"]
        )
        _, stow_key = admin.issue_api_key(conn, stow_only["id"])
    reader = device_api_key(services, other, "reader")
    http = anonymous_client
    assert http.get("/dicomweb/studies").status_code == 401
    bad = http.get("/dicomweb/studies", headers={"Authorization": "Bearer crk_000000000000_x"})
    assert bad.status_code == 401
    denied = http.get("/dicomweb/studies", headers={"Authorization": f"Bearer {stow_key}"})
    assert denied.status_code == 403
    not_admin = http.get(
        f"/api/admin/devices/{hidden}", headers={"Authorization": f"Bearer {reader}"}
    )
    assert not_admin.status_code == 403
    actor = f"device:{stow_only['id']}"
    route = "/api/admin/devices/{device_id}"
    assert _refusals(services) == [
        ("anonymous", "access", 401, "/dicomweb/studies"),
        ("anonymous", "access", 401, "/dicomweb/studies"),
        (actor, "search", 403, "/dicomweb/studies"),
        (f"device:{_device_of(services, 'reader')}", "manage", 403, route),
    ]


def _device_of(services: Services, name: str) -> int:
    with services.engine.connect() as conn:
        return next(d["id"] for d in admin.list_devices(conn, None) if d["name"] == name)


def test_public_routes_ignore_failing_credentials(anonymous_client: TestClient) -> None:
    stale = {"Authorization": "Bearer crk_000000000000_revoked"}
    assert anonymous_client.get("/healthz", headers=stale).status_code == 200
    discovery = anonymous_client.get("/.well-known/smart-configuration", headers=stale)
    assert discovery.status_code == 200
    assert anonymous_client.get("/dicomweb/studies", headers=stale).status_code == 401
