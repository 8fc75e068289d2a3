"""The administration API: sites, devices, API keys, users and reading grants, per role."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from connrad.audit.models import AuditEvent
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.caller import Role
from connrad.services import Services
from tests.factories import STOW_TYPE, make_instance, stow_body
from tests.integration.api.test_auth import NEW_PASSWORD, add_user, sign_in, signed_in

events_t = AuditEvent.__table__


@pytest.fixture
def app(anonymous_client: TestClient) -> FastAPI:
    return anonymous_client.app  # type: ignore[return-value]


@pytest.fixture
def operator(app: FastAPI, services: Services) -> TestClient:
    """A browser signed in as an administrator (all sites)."""
    add_user(services, "root", Role.ADMIN, None)
    return signed_in(app, "root")


@pytest.fixture
def sites(operator: TestClient) -> dict[str, int]:
    """Two clinics, A and B, created through the API."""
    created = {}
    for code in ("clinic-a", "clinic-b"):
        response = operator.post("/api/admin/sites", json={"code": code, "name": code.upper()})
        assert response.status_code == 201, response.text
        created[code[-1]] = response.json()["id"]
    return created


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stow(client: TestClient, key: str) -> int:
    headers = {"Content-Type": STOW_TYPE, **bearer(key)}
    response = client.post("/dicomweb/studies", content=stow_body(make_instance()), headers=headers)
    return response.status_code


def audit_trail(services: Services) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(events_t).order_by(events_t.c.sequence)).mappings()
        return [dict(row) for row in rows]


# --- the first administrator -------------------------------------------------------------


def test_first_administrator_chooses_a_password_then_manages(
    anonymous_client: TestClient, services: Services
) -> None:
    with write_transaction(services.engine) as conn:
        one_time = admin.ensure_first_admin(conn)
    with write_transaction(services.engine) as conn:
        assert admin.ensure_first_admin(conn) is None  # only once
    assert one_time is not None
    response = sign_in(anonymous_client, admin.FIRST_ADMIN, one_time)
    assert response.json()["must_change_password"] is True
    anonymous_client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    assert anonymous_client.get("/api/admin/sites").status_code == 403
    change = {"current_password": one_time, "new_password": NEW_PASSWORD}
    assert anonymous_client.post("/api/auth/password", json=change).status_code == 200
    listed = anonymous_client.get("/api/admin/sites")
    assert listed.status_code == 200
    assert [s["code"] for s in listed.json()] == ["local"]


# --- an administrator's work -------------------------------------------------------------


def test_sites_and_devices(operator: TestClient, sites: dict[str, int]) -> None:
    listed = operator.get("/api/admin/sites").json()
    assert [s["code"] for s in listed] == ["clinic-a", "clinic-b", "local"]
    modality = created(
        operator.post(
            "/api/admin/devices",
            json={
                "site_id": sites["a"],
                "name": "CT scanner",
                "kind": "dicom",
                "ae_title": "CLINIC_A_CT",
                "hosts": ["10.0.0.5", " 10.0.0.5 "],
            },
        )
    )
    assert modality["ae_title"] == "CLINIC_A_CT"
    assert modality["hosts"] == ["10.0.0.5"]
    assert modality["scopes"] == ["dicomweb.stow", "dicomweb.read"]
    assert modality["client_id"] is None
    client = created(
        operator.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "uploader", "kind": "api"}
        )
    )
    assert client["client_id"].startswith("dev-")
    assert set(client["scopes"]) == {"dicomweb.read", "dicomweb.stow"}
    assert operator.get(f"/api/admin/devices/{client['id']}").json() == client
    names = [d["name"] for d in operator.get("/api/admin/devices").json()]
    assert {"CT scanner", "uploader"} <= set(names)
    renamed = operator.patch(f"/api/admin/sites/{sites['a']}", json={"name": "Clinic A (new)"})
    assert renamed.json()["name"] == "Clinic A (new)"
    narrowed = operator.patch(
        f"/api/admin/devices/{client['id']}", json={"scopes": ["dicomweb.read"]}
    )
    assert narrowed.json()["scopes"] == ["dicomweb.read"]


def test_api_key_is_shown_once_works_and_can_be_revoked(
    operator: TestClient, sites: dict[str, int]
) -> None:
    device = created(
        operator.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "uploader", "kind": "api"}
        )
    )
    keys_url = f"/api/admin/devices/{device['id']}/api-keys"
    issued = created(operator.post(keys_url, json={}))
    key = issued["api_key"]
    assert key.startswith("crk_")
    assert "secret_hash" not in issued
    assert set(issued["scopes"]) == {"dicomweb.read", "dicomweb.stow"}
    read_only = created(operator.post(keys_url, json={"scopes": ["dicomweb.read"]}))
    listing = operator.get(keys_url)
    assert [k["id"] for k in listing.json()] == [issued["id"], read_only["id"]]
    assert key not in listing.text and read_only["api_key"] not in listing.text
    assert all("api_key" not in k and "secret_hash" not in k for k in listing.json())

    anonymous = TestClient(operator.app)
    assert stow(anonymous, key) == 200
    assert anonymous.get("/dicomweb/studies", headers=bearer(key)).status_code == 200
    assert stow(anonymous, read_only["api_key"]) == 403
    revoked = operator.delete(f"{keys_url}/{issued['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = anonymous.get("/dicomweb/studies", headers=bearer(key))
    assert (refused.status_code, refused.json()) == (401, {"detail": "API key revoked or expired"})
    assert operator.delete(f"{keys_url}/{issued['id']}").status_code == 200  # again: no change
    assert (
        anonymous.get("/dicomweb/studies", headers=bearer(read_only["api_key"])).status_code == 200
    )
    assert operator.delete(f"{keys_url}/999999").status_code == 404


def test_users_get_a_one_time_password(
    app: FastAPI, operator: TestClient, sites: dict[str, int]
) -> None:
    user = created(
        operator.post(
            "/api/admin/users",
            json={"username": "nurse.a", "role": "clinic_staff", "site_id": sites["a"]},
        )
    )
    one_time = user.pop("one_time_password")
    assert len(one_time) >= 16
    assert user["must_change_password"] is True
    listing = operator.get("/api/admin/users")
    assert one_time not in listing.text and "password_hash" not in listing.text
    assert [u["username"] for u in listing.json()] == ["nurse.a", "root"]
    browser = TestClient(app)
    assert sign_in(browser, "nurse.a", one_time).json()["must_change_password"] is True

    reset = operator.post(f"/api/admin/users/{user['id']}/password-reset")
    assert reset.status_code == 200
    assert browser.get("/api/auth/me").status_code == 401  # sessions end with the reset
    assert sign_in(TestClient(app), "nurse.a", one_time).status_code == 401
    assert sign_in(TestClient(app), "nurse.a", reset.json()["one_time_password"]).status_code == 200


def test_reading_grants(operator: TestClient, services: Services, sites: dict[str, int]) -> None:
    reader = created(
        operator.post("/api/admin/users", json={"username": "reader", "role": "radiologist"})
    )
    url = f"/api/admin/users/{reader['id']}/reading-grants"
    granted = operator.put(url, json={"site_ids": [sites["b"], sites["a"], sites["a"]]})
    assert granted.status_code == 200
    assert granted.json()["reading_sites"] == sorted([sites["a"], sites["b"]])
    assert operator.put(url, json={"site_ids": [sites["b"]]}).json()["reading_sites"] == [
        sites["b"]
    ]
    assert operator.put(url, json={"site_ids": [999999]}).status_code == 404
    assert operator.get(f"/api/admin/users/{reader['id']}").json()["reading_sites"] == [sites["b"]]
    staff = created(
        operator.post(
            "/api/admin/users",
            json={"username": "staff", "role": "clinic_staff", "site_id": sites["a"]},
        )
    )
    refused = operator.put(
        f"/api/admin/users/{staff['id']}/reading-grants", json={"site_ids": [sites["b"]]}
    )
    assert (refused.status_code, refused.json()) == (
        400,
        {"detail": "reading rights are for radiologists"},
    )


def test_disable_and_enable(
    app: FastAPI, operator: TestClient, services: Services, sites: dict[str, int]
) -> None:
    device = created(
        operator.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "uploader", "kind": "api"}
        )
    )
    key = created(operator.post(f"/api/admin/devices/{device['id']}/api-keys", json={}))["api_key"]
    add_user(services, "nurse.a", Role.CLINIC_STAFF, sites["a"])
    nurse = signed_in(app, "nurse.a")
    anonymous = TestClient(app)

    def patch(path: str, **changes: Any) -> dict[str, Any]:
        response = operator.patch(path, json=changes)
        assert response.status_code == 200, response.text
        return response.json()

    assert patch(f"/api/admin/devices/{device['id']}", disabled=True)["disabled"] is True
    assert stow(anonymous, key) == 401
    patch(f"/api/admin/devices/{device['id']}", disabled=False)
    assert stow(anonymous, key) == 200

    assert patch(f"/api/admin/sites/{sites['a']}", disabled=True)["disabled"] is True
    assert stow(anonymous, key) == 401
    assert nurse.get("/api/auth/me").status_code == 401
    patch(f"/api/admin/sites/{sites['a']}", disabled=False)
    assert stow(anonymous, key) == 200
    assert nurse.get("/api/auth/me").status_code == 200

    nurse_id = nurse.get("/api/auth/me").json()["actor"].removeprefix("user:")
    assert patch(f"/api/admin/users/{nurse_id}", disabled=True)["disabled"] is True
    assert nurse.get("/api/auth/me").status_code == 401
    patch(f"/api/admin/users/{nurse_id}", disabled=False)
    assert signed_in(app, "nurse.a").get("/dicomweb/studies").status_code == 200

    root_id = operator.get("/api/auth/me").json()["actor"].removeprefix("user:")
    refused = operator.patch(f"/api/admin/users/{root_id}", json={"disabled": True})
    assert (refused.status_code, refused.json()) == (
        400,
        {"detail": "you cannot disable your own account"},
    )


# --- site administrators -----------------------------------------------------------------


@pytest.fixture
def site_b_objects(operator: TestClient, sites: dict[str, int]) -> dict[str, int]:
    """A device, a user and a radiologist of site B, made by the administrator."""
    device = created(
        operator.post(
            "/api/admin/devices", json={"site_id": sites["b"], "name": "b-device", "kind": "api"}
        )
    )
    user = created(
        operator.post(
            "/api/admin/users",
            json={"username": "staff.b", "role": "clinic_staff", "site_id": sites["b"]},
        )
    )
    key = created(operator.post(f"/api/admin/devices/{device['id']}/api-keys", json={}))
    return {"device": device["id"], "user": user["id"], "key": key["id"]}


def test_site_admin_sees_only_their_site(
    app: FastAPI,
    services: Services,
    sites: dict[str, int],
    site_b_objects: dict[str, int],
) -> None:
    add_user(services, "boss.a", Role.SITE_ADMIN, sites["a"])
    boss = signed_in(app, "boss.a")
    assert [s["code"] for s in boss.get("/api/admin/sites").json()] == ["clinic-a"]
    own = created(
        boss.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "a-device", "kind": "api"}
        )
    )
    assert [d["name"] for d in boss.get("/api/admin/devices").json()] == ["a-device"]
    assert [u["username"] for u in boss.get("/api/admin/users").json()] == ["boss.a"]
    assert created(boss.post(f"/api/admin/devices/{own['id']}/api-keys", json={}))["api_key"]

    device_b, user_b = site_b_objects["device"], site_b_objects["user"]
    hidden = [
        boss.get(f"/api/admin/devices/{device_b}"),
        boss.patch(f"/api/admin/devices/{device_b}", json={"disabled": True}),
        boss.get(f"/api/admin/devices/{device_b}/api-keys"),
        boss.post(f"/api/admin/devices/{device_b}/api-keys", json={}),
        boss.delete(f"/api/admin/devices/{device_b}/api-keys/{site_b_objects['key']}"),
        boss.put(f"/api/admin/devices/{device_b}/jwks", json={"keys": [{"kty": "RSA"}]}),
        boss.get(f"/api/admin/users/{user_b}"),
        boss.patch(f"/api/admin/users/{user_b}", json={"disabled": True}),
        boss.post(f"/api/admin/users/{user_b}/password-reset"),
    ]
    assert [r.status_code for r in hidden] == [404] * len(hidden)
    # As if absent: the same answer as for an ID that does not exist.
    assert boss.get(f"/api/admin/devices/{device_b}").json() == (
        boss.get("/api/admin/devices/999999").json()
    )
    assert boss.get(f"/api/admin/users/{user_b}").json() == (
        boss.get("/api/admin/users/999999").json()
    )
    elsewhere = boss.post(
        "/api/admin/devices", json={"site_id": sites["b"], "name": "sneaky", "kind": "api"}
    )
    assert elsewhere.status_code == 404
    assert (
        elsewhere.json()
        == boss.post(
            "/api/admin/devices", json={"site_id": 999999, "name": "sneaky", "kind": "api"}
        ).json()
    )
    user_b_elsewhere = boss.post(
        "/api/admin/users",
        json={"username": "sneaky", "role": "clinic_staff", "site_id": sites["b"]},
    )
    assert user_b_elsewhere.status_code == 404
    with services.engine.connect() as conn:
        assert not admin.get_device(conn, device_b)["disabled"]
        assert not admin.get_user(conn, user_b)["disabled"]


def test_site_admin_cannot_grant_more_than_their_site(
    app: FastAPI, operator: TestClient, services: Services, sites: dict[str, int]
) -> None:
    add_user(services, "boss.a", Role.SITE_ADMIN, sites["a"])
    boss = signed_in(app, "boss.a")
    for role in ("admin", "researcher"):
        body = {"username": f"new-{role}", "role": role, "site_id": sites["a"]}
        refused = boss.post("/api/admin/users", json=body)
        assert (refused.status_code, refused.json()) == (
            403,
            {"detail": f"only administrators grant the role {role}"},
        )
    staff = created(
        boss.post(
            "/api/admin/users",
            json={"username": "staff.a", "role": "clinic_staff", "site_id": sites["a"]},
        )
    )
    promoted = boss.patch(f"/api/admin/users/{staff['id']}", json={"role": "admin"})
    assert promoted.status_code == 403
    boss_id = boss.get("/api/auth/me").json()["actor"].removeprefix("user:")
    assert boss.patch(f"/api/admin/users/{boss_id}", json={"role": "admin"}).status_code == 403
    assert boss.post("/api/admin/sites", json={"code": "mine", "name": "Mine"}).status_code == 403
    assert boss.patch(f"/api/admin/sites/{sites['a']}", json={"disabled": True}).status_code == 403
    root_id = operator.get("/api/auth/me").json()["actor"].removeprefix("user:")
    assert boss.get(f"/api/admin/users/{root_id}").status_code == 404

    reader = created(
        boss.post(
            "/api/admin/users",
            json={"username": "reader.a", "role": "radiologist", "site_id": sites["a"]},
        )
    )
    url = f"/api/admin/users/{reader['id']}/reading-grants"
    assert boss.put(url, json={"site_ids": [sites["b"]]}).status_code == 403
    assert operator.put(url, json={"site_ids": [sites["a"], sites["b"]]}).status_code == 200
    # The site administrator manages site A's grant only; the grant for B stays.
    assert boss.put(url, json={"site_ids": []}).status_code == 200
    assert operator.get(f"/api/admin/users/{reader['id']}").json()["reading_sites"] == [sites["b"]]


@pytest.mark.parametrize("role", [Role.CLINIC_STAFF, Role.RADIOLOGIST, Role.RESEARCHER])
def test_other_roles_may_not_administer(
    app: FastAPI, services: Services, sites: dict[str, int], role: Role
) -> None:
    add_user(services, "someone", role, sites["a"])
    browser = signed_in(app, "someone")
    requests = [
        browser.get("/api/admin/sites"),
        browser.get("/api/admin/devices"),
        browser.get("/api/admin/users"),
        browser.post("/api/admin/sites", json={"code": "x", "name": "x"}),
        browser.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "x", "kind": "api"}
        ),
        browser.post(
            "/api/admin/users",
            json={"username": "x", "role": "clinic_staff", "site_id": sites["a"]},
        ),
    ]
    assert [(r.status_code, r.json()) for r in requests] == [
        (403, {"detail": "not permitted"})
    ] * len(requests)


def test_devices_and_strangers_may_not_administer(
    app: FastAPI, services: Services, sites: dict[str, int]
) -> None:
    with write_transaction(services.engine) as conn:
        device = admin.create_device(conn, sites["a"], "uploader", "api")
        _, key = admin.issue_api_key(conn, device["id"])
    anonymous = TestClient(app)
    assert anonymous.get("/api/admin/users", headers=bearer(key)).status_code == 403
    assert anonymous.get("/api/admin/users").status_code == 401


# --- validation --------------------------------------------------------------------------


def rsa_jwk(bits: int = 2048) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)


def ec_jwk(curve: ec.EllipticCurve) -> dict[str, Any]:
    return ECAlgorithm.to_jwk(ec.generate_private_key(curve).public_key(), as_dict=True)


def private_rsa_jwk() -> dict[str, Any]:
    return RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048), as_dict=True)


def test_bad_requests_get_a_clear_4xx(
    operator: TestClient, services: Services, sites: dict[str, int]
) -> None:
    a = sites["a"]
    api = created(
        operator.post("/api/admin/devices", json={"site_id": a, "name": "api", "kind": "api"})
    )
    ct = created(
        operator.post(
            "/api/admin/devices",
            json={"site_id": a, "name": "ct", "kind": "dicom", "ae_title": "CT_A"},
        )
    )
    staff = created(
        operator.post(
            "/api/admin/users", json={"username": "staff", "role": "clinic_staff", "site_id": a}
        )
    )
    jwks_url = f"/api/admin/devices/{api['id']}/jwks"
    # (method, path, body, status, part of the detail)
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/admin/sites", {"code": "Bad Code", "name": "x"}, 400, "site code"),
        ("POST", "/api/admin/sites", {"code": "-x", "name": "x"}, 400, "site code"),
        ("POST", "/api/admin/sites", {"code": "local", "name": "x"}, 409, "exists"),
        ("POST", "/api/admin/sites", {"code": "ok", "name": "  "}, 400, "site name is empty"),
        ("POST", "/api/admin/sites", {"code": "ok", "name": "x", "colour": 1}, 400, "colour"),
        ("POST", "/api/admin/sites", {"code": "ok"}, 400, "name"),
        ("POST", "/api/admin/sites", [], 400, "invalid parameters"),
        ("PATCH", "/api/admin/sites/999999", {"name": "x"}, 404, "site not found"),
        ("PATCH", f"/api/admin/sites/{a}", {"disabled": "maybe"}, 400, "disabled"),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": a, "name": "x", "kind": "api", "scopes": ["dicomweb.all"]},
            400,
            "unknown scopes: dicomweb.all",
        ),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": a, "name": "x", "kind": "dicom", "ae_title": "A" * 17},
            400,
            "ae_title",
        ),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": a, "name": "x", "kind": "dicom", "ae_title": "BAD\\AE"},
            400,
            "AE title",
        ),
        ("POST", "/api/admin/devices", {"site_id": a, "name": "x", "kind": "dicom"}, 400, "AE"),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": a, "name": "x", "kind": "api", "ae_title": "X"},
            400,
            "no AE title",
        ),
        ("POST", "/api/admin/devices", {"site_id": a, "name": "x", "kind": "usb"}, 400, "kind"),
        ("POST", "/api/admin/devices", {"site_id": a, "name": "api", "kind": "api"}, 409, "exists"),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": a, "name": "x", "kind": "dicom", "ae_title": "CT_A"},
            409,
            "exists",
        ),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": 999999, "name": "x", "kind": "api"},
            404,
            "site not found",
        ),
        (
            "POST",
            "/api/admin/devices",
            {"site_id": "abc", "name": "x", "kind": "api"},
            400,
            "site_id",
        ),
        ("PATCH", f"/api/admin/devices/{api['id']}", {"scopes": ["root"]}, 400, "unknown scopes"),
        ("PATCH", "/api/admin/devices/999999", {"disabled": True}, 404, "device not found"),
        (
            "POST",
            f"/api/admin/devices/{ct['id']}/api-keys",
            {"scopes": ["system/AuditEvent.rs"]},
            400,
            "scopes beyond the device's: system/AuditEvent.rs",
        ),
        (
            "POST",
            f"/api/admin/devices/{api['id']}/api-keys",
            {"expires_in_days": 0},
            400,
            "expires_in_days",
        ),
        ("POST", "/api/admin/devices/999999/api-keys", {}, 404, "device not found"),
        ("PUT", jwks_url, {"keys": []}, 400, "keys"),
        ("PUT", jwks_url, {"keys": [private_rsa_jwk()]}, 400, "public"),
        ("PUT", jwks_url, {"keys": [{"kty": "RSA", "n": "abc"}]}, 400, "cannot be used"),
        ("PUT", jwks_url, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, 400, "key"),
        ("PUT", jwks_url, {"keys": [{**rsa_jwk(), "alg": "RS256"}]}, 400, "RS384"),
        ("PUT", jwks_url, {"keys": [ec_jwk(ec.SECP256R1())]}, 400, "P-384"),
        ("PUT", jwks_url, {"keys": [rsa_jwk(1024)]}, 400, "2048"),
        ("PUT", jwks_url, {"keys": [{**rsa_jwk(), "use": "enc"}]}, 400, "signatures"),
        ("PUT", jwks_url, {"keys": [{**rsa_jwk(), "key_ops": "verify"}]}, 400, "signatures"),
        ("PUT", jwks_url, {"keys": ["not a key"]}, 400, "keys"),
        ("PUT", f"/api/admin/devices/{ct['id']}/jwks", {"keys": [rsa_jwk()]}, 400, "API devices"),
        ("POST", "/api/admin/users", {"username": "bad name", "role": "admin"}, 400, "username"),
        ("POST", "/api/admin/users", {"username": "staff", "role": "radiologist"}, 409, "exists"),
        ("POST", "/api/admin/users", {"username": "x", "role": "wizard"}, 400, "role"),
        (
            "POST",
            "/api/admin/users",
            {"username": "x", "role": "clinic_staff"},
            400,
            "belongs to a site",
        ),
        (
            "POST",
            "/api/admin/users",
            {"username": "x", "role": "radiologist", "site_id": 999999},
            404,
            "site not found",
        ),
        (
            "PATCH",
            f"/api/admin/users/{staff['id']}",
            {"password_hash": "x"},
            400,
            "password_hash",
        ),
        ("PATCH", "/api/admin/users/999999", {"disabled": True}, 404, "user not found"),
        ("PUT", f"/api/admin/users/{staff['id']}/reading-grants", {}, 400, "site_ids"),
    ]
    for method, path, body, status, detail in cases:
        response = operator.request(method, path, json=body)
        case = f"{method} {path} {body}"
        assert response.status_code == status, (case, response.text)
        assert detail in response.json()["detail"], (case, response.text)
    # Nothing of it was stored.
    with services.engine.connect() as conn:
        assert [s["code"] for s in admin.list_sites(conn)] == ["clinic-a", "clinic-b", "local"]
        assert len(admin.list_devices(conn, None)) == 2
        assert admin.get_device(conn, api["id"])["jwks"] is None
        assert [u["username"] for u in admin.list_users(conn, None)] == ["root", "staff"]


def test_a_valid_key_set_is_stored(operator: TestClient, sites: dict[str, int]) -> None:
    device = created(
        operator.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "x", "kind": "api"}
        )
    )
    jwks = {"keys": [{**rsa_jwk(), "kid": "r"}, {**ec_jwk(ec.SECP384R1()), "kid": "e"}]}
    response = operator.put(f"/api/admin/devices/{device['id']}/jwks", json=jwks)
    assert response.status_code == 200, response.text
    assert response.json()["jwks"] == jwks


# --- audit -------------------------------------------------------------------------------


def test_every_change_is_audited(
    operator: TestClient, services: Services, sites: dict[str, int]
) -> None:
    device = created(
        operator.post(
            "/api/admin/devices", json={"site_id": sites["a"], "name": "x", "kind": "api"}
        )
    )
    key = created(operator.post(f"/api/admin/devices/{device['id']}/api-keys", json={}))
    user = created(
        operator.post("/api/admin/users", json={"username": "reader", "role": "radiologist"})
    )
    steps = [
        operator.patch(f"/api/admin/sites/{sites['b']}", json={"name": "B"}),
        operator.patch(f"/api/admin/devices/{device['id']}", json={"hosts": ["10.1.1.1"]}),
        operator.put(
            f"/api/admin/devices/{device['id']}/jwks", json={"keys": [{**rsa_jwk(), "kid": "k"}]}
        ),
        operator.delete(f"/api/admin/devices/{device['id']}/api-keys/{key['id']}"),
        operator.patch(f"/api/admin/users/{user['id']}", json={"display_name": "Dr R"}),
        operator.post(f"/api/admin/users/{user['id']}/password-reset"),
        operator.put(
            f"/api/admin/users/{user['id']}/reading-grants", json={"site_ids": [sites["a"]]}
        ),
        operator.post("/api/admin/sites", json={"code": "clinic-a", "name": "again"}),
    ]
    assert [r.status_code for r in steps] == [200] * 7 + [409]
    root = operator.get("/api/auth/me").json()["actor"]
    changes = [
        (e["action"], e["resource"], e["outcome"], e["detail"].get("id"), e["site_id"])
        for e in audit_trail(services)
        if e["actor"] == root and e["action"] != "login"
    ]
    assert changes == [
        ("create", "site", 200, sites["a"], sites["a"]),
        ("create", "site", 200, sites["b"], sites["b"]),
        ("create", "device", 200, device["id"], sites["a"]),
        ("create", "api_key", 200, key["id"], sites["a"]),
        ("create", "user", 200, user["id"], None),
        ("update", "site", 200, sites["b"], sites["b"]),
        ("update", "device", 200, device["id"], sites["a"]),
        ("update", "device", 200, device["id"], sites["a"]),
        ("delete", "api_key", 200, key["id"], sites["a"]),
        ("update", "user", 200, user["id"], None),
        ("update", "user", 200, user["id"], None),
        ("update", "user", 200, user["id"], None),
        ("create", "site", 409, None, None),
    ]
    flat = str(audit_trail(services))
    assert key["api_key"] not in flat
    assert user["one_time_password"] not in flat
    assert steps[5].json()["one_time_password"] not in flat
