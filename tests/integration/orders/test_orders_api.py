"""The orders API: who may schedule, who sees the patient's identity, status changes, audit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from connrad.app import create_app
from connrad.audit.models import AuditEvent
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity import sessions as session_store
from connrad.identity.caller import Role
from connrad.orders import service
from connrad.services import Services
from connrad.settings import Settings
from tests.integration.api.test_auth import add_user

ORDER: dict[str, Any] = {
    "patient_id": "P-HONG-77",
    "issuer": "ISLAND",
    "patient_name": "홍^길동",
    "birth_date": "1980-01-01",
    "sex": "M",
    "accession_number": "ACC-1",
    "modality": "CR",
    "scheduled_station_ae": "PORTCR",
    "scheduled_start": "2026-12-01T09:30:00+09:00",
    "procedure_code": "CXR-PA",
    "procedure_meaning": "Chest PA",
    "requested_procedure_id": "RP-1",
    "reason": "cough",
}


@dataclass
class Callers:
    http: TestClient
    site_a: int
    site_b: int
    headers: dict[str, dict[str, str]]
    cookies: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.http.cookies.clear()
        if who in self.cookies:
            self.http.cookies.set(session_store.COOKIE, self.cookies[who])
        return self.http.request(method, path, headers=self.headers.get(who, {}), **kwargs)

    def create(self, who: str, **changes: Any) -> httpx.Response:
        return self.call(who, "POST", "/api/orders", json={**ORDER, **changes})


@pytest.fixture
def callers(settings: Settings, services: Services) -> Iterator[Callers]:
    site_a = services.local_site_id
    with write_transaction(services.engine) as conn:
        site_b = admin.create_site(conn, "site-b", "Site B")["id"]
    users = {
        "admin": (Role.ADMIN, None),
        "site_admin_a": (Role.SITE_ADMIN, site_a),
        "clinic_a": (Role.CLINIC_STAFF, site_a),
        "radiologist_a": (Role.RADIOLOGIST, None),
        "researcher": (Role.RESEARCHER, None),
        "clinic_b": (Role.CLINIC_STAFF, site_b),
    }
    headers: dict[str, dict[str, str]] = {}
    cookies: dict[str, str] = {}
    for name, (role, site) in users.items():
        user_id = add_user(services, name, role, site)
        with write_transaction(services.engine) as conn:
            if role is Role.RADIOLOGIST:
                admin.set_reading_grants(conn, user_id, [site_a])
            new = session_store.create(conn, user_id, "test", timedelta(hours=1), utcnow())
        cookies[name] = new.token
        headers[name] = {session_store.CSRF_HEADER: new.csrf_token}
    with write_transaction(services.engine) as conn:
        device = admin.create_device(conn, site_a, "reader", "api")
        _, key = admin.issue_api_key(conn, device["id"])
    headers["device_a"] = {"Authorization": f"Bearer {key}"}
    app = create_app(settings, services)
    with TestClient(app) as http:
        yield Callers(http, site_a, site_b, headers, cookies)


def test_clinic_staff_schedule_and_see_the_identity_others_do_not(callers: Callers) -> None:
    created = callers.create("clinic_a")
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["site_id"] == callers.site_a
    assert order["status"] == "scheduled"
    assert order["scheduled_start"] == "2026-12-01T09:30:00+09:00"
    identity = order["identity"]
    assert identity["patient_name"] == "홍^길동"
    assert identity["birth_date"] == "19800101"
    assert identity["study_uid"].startswith("1.2.826.0.1.3680043.")

    def listed(who: str) -> list[dict[str, Any]]:
        response = callers.call(who, "GET", "/api/orders")
        assert response.status_code == 200, (who, response.text)
        return list(response.json())

    assert [o["identity"] for o in listed("clinic_a")] == [identity]
    assert [o["identity"] for o in listed("site_admin_a")] == [identity]
    for blind in ("admin", "radiologist_a", "device_a"):  # the order, not who it is for
        (seen,) = listed(blind)
        assert seen["identity"] is None and seen["id"] == order["id"], blind
        assert "홍" not in str(seen)
    assert listed("clinic_b") == []
    assert callers.call("researcher", "GET", "/api/orders").status_code == 403
    assert callers.call("anonymous", "GET", "/api/orders").status_code == 401


def test_administrators_schedule_for_a_named_site_without_seeing_it(callers: Callers) -> None:
    assert callers.create("admin").status_code == 400  # no home site: say which
    assert callers.create("admin", site_id=2**40).status_code == 404
    created = callers.create("admin", site_id=callers.site_b)
    assert created.status_code == 201, created.text
    assert created.json()["site_id"] == callers.site_b
    assert created.json()["identity"] is None
    (seen,) = callers.call("clinic_b", "GET", "/api/orders").json()
    assert seen["identity"]["patient_id"] == "P-HONG-77"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 401),
        ("radiologist_a", 403),
        ("researcher", 403),
        ("device_a", 403),
        ("clinic_b", 404),  # site A is not theirs: as if it did not exist
    ],
)
def test_who_may_not_schedule(callers: Callers, who: str, status: int) -> None:
    assert callers.create(who, site_id=callers.site_a).status_code == status


def test_bad_input_is_refused_without_echoing_it(callers: Callers) -> None:
    assert callers.create("clinic_a").status_code == 201
    again = callers.create("clinic_a", patient_id="P-OTHER")
    assert again.status_code == 409  # the accession number is taken
    naive = callers.create("clinic_a", scheduled_start="2026-12-01T09:30:00", accession_number="2")
    assert naive.status_code == 400
    assert "2026" not in naive.text
    bad_name = callers.create("clinic_a", patient_name="Hong\\Gildong", accession_number="3")
    assert bad_name.status_code == 400
    assert "Hong" not in bad_name.text


def test_status_moves_on_and_never_back(callers: Callers, services: Services) -> None:
    order_id = callers.create("clinic_a").json()["id"]
    path = f"/api/orders/{order_id}"

    def patch(who: str, status: str) -> httpx.Response:
        return callers.call(who, "PATCH", path, json={"status": status})

    assert patch("clinic_b", "cancelled").status_code == 404
    assert patch("radiologist_a", "cancelled").status_code == 403
    assert patch("clinic_a", "in-progress").json()["status"] == "in-progress"
    assert patch("clinic_a", "in-progress").status_code == 200  # the same again: no change
    done = patch("site_admin_a", "completed")
    assert done.status_code == 200
    assert done.json()["identity"]["patient_id"] == "P-HONG-77"
    assert patch("clinic_a", "scheduled").status_code == 409
    assert patch("admin", "cancelled").status_code == 409  # an administrator may; not this
    missing = callers.call("clinic_a", "PATCH", "/api/orders/999999", json={"status": "cancelled"})
    assert missing.status_code == 404

    keys = services.site_keys.all(callers.site_a)
    with services.engine.connect() as conn:  # a completed order leaves the worklist
        assert service.scheduled(conn, callers.site_a, keys, None, None) == []


def test_every_call_is_audited_without_identities(callers: Callers, services: Services) -> None:
    order_id = callers.create("clinic_a").json()["id"]
    callers.call("clinic_a", "GET", "/api/orders")
    callers.call("admin", "GET", "/api/orders")
    callers.call("clinic_b", "PATCH", f"/api/orders/{order_id}", json={"status": "cancelled"})
    events = AuditEvent.__table__
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.action, events.c.resource, events.c.outcome, events.c.detail)
            .where(events.c.resource.in_(["order", "orders"]))
            .order_by(events.c.sequence)
        ).all()
    assert [(r.action, r.resource, r.outcome) for r in rows] == [
        ("create", "order", 200),
        ("search", "orders", 200),
        ("search", "orders", 200),
        ("update", "order", 404),
    ]
    assert rows[1].detail["identities"] == 1
    assert rows[2].detail["identities"] == 0
    with services.engine.connect() as conn:
        trail = repr(conn.execute(select(events)).all())
    assert "홍" not in trail and "P-HONG-77" not in trail and "ACC-1" not in trail
