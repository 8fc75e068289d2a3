"""The OAuth token endpoint: SMART Backend Services client credentials with real keys.

Devices sign client assertions with their own RSA or EC P-384 keys (``private_key_jwt``,
RFC 7523); the tokens they get are used on DICOMweb like API keys.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from httpx import Response
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from connrad.audit.models import AuditEvent
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.caller import Role
from connrad.identity.oauth import ASSERTION_TYPE
from connrad.services import Services
from tests.factories import STOW_TYPE, make_instance, stow_body
from tests.integration.api.test_auth import add_user, signed_in

TOKEN_URL = "http://testserver/oauth/token"  # the tests' public_base_url + /oauth/token
events_t = AuditEvent.__table__

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return {"keys": [public_jwk(rsa_key, "rsa-1", "RS384"), public_jwk(ec_key, "ec-1", "ES384")]}


@pytest.fixture
def device(services: Services, jwks: dict[str, Any]) -> dict[str, Any]:
    """An API client of the local site (may read and store) with its key set registered."""
    with write_transaction(services.engine) as conn:
        created = admin.create_device(conn, services.local_site_id, "backend", "api")
        return admin.set_device_jwks(conn, created["id"], jwks)


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": alg}


def assertion(
    key: PrivateKey | bytes,
    client_id: str,
    alg: str = "RS384",
    kid: str = "rsa-1",
    exp_in: int = 240,
    **claims: Any,
) -> str:
    """A client assertion as SMART Backend Services specify; ``claims`` override or add."""
    now = int(time.time())
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + exp_in,
        "iat": now,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def request_token(
    client: TestClient,
    signed: str,
    scope: str | None = None,
    grant_type: str = "client_credentials",
) -> Response:
    form = {
        "grant_type": grant_type,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    if scope is not None:
        form["scope"] = scope
    return client.post(TOKEN_URL, data=form)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stow(client: TestClient, token: str) -> Response:
    headers = {"Content-Type": STOW_TYPE, **bearer(token)}
    return client.post("/dicomweb/studies", content=stow_body(make_instance()), headers=headers)


def assert_refused(response: Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


# --- discovery and issuance --------------------------------------------------------------


def test_discovery_names_the_token_endpoint(anonymous_client: TestClient) -> None:
    response = anonymous_client.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    config = response.json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}


def test_rs384_and_es384_assertions_get_working_tokens(
    anonymous_client: TestClient,
    services: Services,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    jwks: dict[str, Any],
) -> None:
    add_user(services, "root", Role.ADMIN, None)
    operator = signed_in(anonymous_client.app, "root")
    created = operator.post(
        "/api/admin/devices",
        json={"site_id": services.local_site_id, "name": "backend", "kind": "api"},
    )
    assert created.status_code == 201
    device_id, client_id = created.json()["id"], created.json()["client_id"]
    registered = operator.put(f"/api/admin/devices/{device_id}/jwks", json=jwks)
    assert registered.status_code == 200
    token_endpoint = anonymous_client.get("/.well-known/smart-configuration").json()[
        "token_endpoint"
    ]
    signed = {
        "RS384": assertion(rsa_key, client_id, "RS384", "rsa-1", aud=token_endpoint),
        "ES384": assertion(ec_key, client_id, "ES384", "ec-1", aud=token_endpoint),
    }
    for alg, client_assertion in signed.items():
        response = request_token(anonymous_client, client_assertion)
        assert response.status_code == 200, (alg, response.text)
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 300
        assert set(body["scope"].split()) == {"dicomweb.read", "dicomweb.stow"}
        token = body["access_token"]
        assert anonymous_client.get("/dicomweb/studies", headers=bearer(token)).status_code == 200
        me = anonymous_client.get("/api/auth/me", headers=bearer(token)).json()
        assert (me["kind"], me["actor"]) == ("device", f"device:{device_id}")
        assert me["site_id"] == services.local_site_id
    assert anonymous_client.get("/dicomweb/studies").status_code == 401


def test_access_token_expires(
    anonymous_client: TestClient, services: Services, device: dict[str, Any]
) -> None:
    subject, scopes = f"device:{device['id']}", ["dicomweb.read"]
    recent, _ = services.tokens.issue(
        subject, scopes, device["site_id"], now=utcnow() - timedelta(minutes=4)
    )
    assert anonymous_client.get("/dicomweb/studies", headers=bearer(recent)).status_code == 200
    old, _ = services.tokens.issue(
        subject, scopes, device["site_id"], now=utcnow() - timedelta(minutes=6)
    )
    response = anonymous_client.get("/dicomweb/studies", headers=bearer(old))
    assert response.status_code == 401
    assert response.json() == {"detail": "the access token has expired"}
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_token_of_another_server_is_refused(
    anonymous_client: TestClient, device: dict[str, Any]
) -> None:
    claims = {"sub": f"device:{device['id']}", "scope": "dicomweb.read", "site": 1}
    forged = jwt.encode(
        {**claims, "iss": "connrad", "aud": "connrad", "iat": int(time.time())},
        b"k" * 32,
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    response = anonymous_client.get("/dicomweb/studies", headers=bearer(forged))
    assert response.status_code == 401


# --- scopes ------------------------------------------------------------------------------


def test_scope_requests_are_limited_to_the_devices(
    anonymous_client: TestClient, device: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    client_id = device["client_id"]
    narrowed = request_token(anonymous_client, assertion(rsa_key, client_id), "dicomweb.read")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "dicomweb.read"
    token = narrowed.json()["access_token"]
    assert anonymous_client.get("/dicomweb/studies", headers=bearer(token)).status_code == 200
    assert stow(anonymous_client, token).status_code == 403
    for beyond in ("system/*.rs", "dicomweb.read system/AuditEvent.rs", "user/*.read"):
        refused = request_token(anonymous_client, assertion(rsa_key, client_id), beyond)
        assert_refused(refused, 400, "invalid_scope")


def test_stow_only_token_stores_but_cannot_search(
    anonymous_client: TestClient, device: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    response = request_token(
        anonymous_client, assertion(rsa_key, device["client_id"]), "dicomweb.stow"
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert stow(anonymous_client, token).status_code == 200
    refused = anonymous_client.get("/dicomweb/studies", headers=bearer(token))
    assert (refused.status_code, refused.json()) == (403, {"detail": "not permitted"})


def test_narrowed_device_scopes_narrow_its_tokens(
    anonymous_client: TestClient,
    services: Services,
    device: dict[str, Any],
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    response = request_token(anonymous_client, assertion(rsa_key, device["client_id"]))
    token = response.json()["access_token"]
    with write_transaction(services.engine) as conn:
        admin.update_device(conn, device["id"], device_scopes=["dicomweb.stow"])
    # The token says dicomweb.read, but the device may no longer read.
    assert anonymous_client.get("/dicomweb/studies", headers=bearer(token)).status_code == 403


# --- refused assertions ------------------------------------------------------------------


def test_replayed_assertion_is_refused(
    anonymous_client: TestClient, device: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    signed = assertion(rsa_key, device["client_id"])
    assert request_token(anonymous_client, signed).status_code == 200
    replayed = request_token(anonymous_client, signed)
    assert_refused(replayed, 401, "invalid_client")
    assert replayed.json()["error_description"] == "client assertion already used"
    jti = jwt.decode(signed, options={"verify_signature": False})["jti"]
    same_jti = assertion(rsa_key, device["client_id"], jti=jti)  # signed anew, same jti
    assert_refused(request_token(anonymous_client, same_jti), 401, "invalid_client")
    assert (
        request_token(anonymous_client, assertion(rsa_key, device["client_id"])).status_code == 200
    )


# How to sign (key, alg, kid) and which claims to change; each must answer 401 invalid_client.
BAD_ASSERTIONS = {
    "key-of-another-client": (("other", "RS384", "rsa-1"), {}),
    "rs256": (("rsa", "RS256", "rsa-1"), {}),
    "es384-naming-the-rsa-key": (("ec", "ES384", "rsa-1"), {}),
    "hs256-with-a-secret": (("secret", "HS256", "rsa-1"), {}),
    "unknown-kid": (("rsa", "RS384", "rsa-2"), {}),
    "aud-other-path": (("rsa", "RS384", "rsa-1"), {"aud": "http://testserver/oauth/other"}),
    "aud-other-scheme": (("rsa", "RS384", "rsa-1"), {"aud": "https://testserver/oauth/token"}),
    "expired": (("rsa", "RS384", "rsa-1"), {"exp_in": -120}),
    "exp-too-far-ahead": (("rsa", "RS384", "rsa-1"), {"exp_in": 3600}),
    "sub-not-iss": (("rsa", "RS384", "rsa-1"), {"sub": "someone-else"}),
    "unknown-client": (("rsa", "RS384", "rsa-1"), {"iss": "dev-x", "sub": "dev-x"}),
}


@pytest.mark.parametrize(("signer", "claims"), BAD_ASSERTIONS.values(), ids=BAD_ASSERTIONS.keys())
def test_bad_assertions_are_refused(
    anonymous_client: TestClient,
    device: dict[str, Any],
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    other_key: rsa.RSAPrivateKey,
    signer: tuple[str, str, str],
    claims: dict[str, Any],
) -> None:
    keys = {"rsa": rsa_key, "ec": ec_key, "other": other_key, "secret": b"s" * 32}
    name, alg, kid = signer
    signed = assertion(keys[name], device["client_id"], alg, kid, **claims)
    response = request_token(anonymous_client, signed)
    assert_refused(response, 401, "invalid_client")
    assert signed not in response.text


def test_unsupported_grant_and_missing_assertion(
    anonymous_client: TestClient, device: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    signed = assertion(rsa_key, device["client_id"])
    assert_refused(
        request_token(anonymous_client, signed, grant_type="password"),
        400,
        "unsupported_grant_type",
    )
    assert_refused(
        anonymous_client.post(TOKEN_URL, data={"grant_type": "client_credentials"}),
        400,
        "invalid_request",
    )
    assert_refused(anonymous_client.post(TOKEN_URL, data={}), 400, "invalid_request")
    wrong_type = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:example:other",
        "client_assertion": signed,
    }
    assert_refused(anonymous_client.post(TOKEN_URL, data=wrong_type), 400, "invalid_request")
    not_a_jwt = request_token(anonymous_client, "not.a.jwt")
    assert_refused(not_a_jwt, 401, "invalid_client")
    # The assertion was never accepted, so it is still good.
    assert request_token(anonymous_client, signed).status_code == 200


# --- disabled devices and sites ----------------------------------------------------------


def test_disabled_device_loses_its_tokens(
    anonymous_client: TestClient,
    services: Services,
    device: dict[str, Any],
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    token = request_token(anonymous_client, assertion(rsa_key, device["client_id"])).json()[
        "access_token"
    ]
    with write_transaction(services.engine) as conn:
        admin.update_device(conn, device["id"], disabled=True)
    refused = anonymous_client.get("/dicomweb/studies", headers=bearer(token))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    again = request_token(anonymous_client, assertion(rsa_key, device["client_id"]))
    assert_refused(again, 401, "invalid_client")
    with write_transaction(services.engine) as conn:
        admin.update_device(conn, device["id"], disabled=False)
    assert anonymous_client.get("/dicomweb/studies", headers=bearer(token)).status_code == 200


def test_disabled_site_loses_its_devices_tokens(
    anonymous_client: TestClient,
    services: Services,
    jwks: dict[str, Any],
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    with write_transaction(services.engine) as conn:
        site_id = admin.create_site(conn, "far-clinic", "Far clinic")["id"]
        created = admin.create_device(conn, site_id, "backend", "api")
        admin.set_device_jwks(conn, created["id"], jwks)
    token = request_token(anonymous_client, assertion(rsa_key, created["client_id"])).json()[
        "access_token"
    ]
    assert stow(anonymous_client, token).status_code == 200
    with write_transaction(services.engine) as conn:
        admin.update_site(conn, site_id, disabled=True)
    assert stow(anonymous_client, token).status_code == 401
    refused = request_token(anonymous_client, assertion(rsa_key, created["client_id"]))
    assert_refused(refused, 401, "invalid_client")


# --- audit -------------------------------------------------------------------------------


def test_token_requests_are_audited_without_secrets(
    anonymous_client: TestClient,
    services: Services,
    device: dict[str, Any],
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    signed = assertion(rsa_key, device["client_id"])
    token = request_token(anonymous_client, signed).json()["access_token"]
    request_token(anonymous_client, signed)  # replay
    with services.engine.connect() as conn:
        recorded = [
            dict(row)
            for row in conn.execute(
                select(events_t).where(events_t.c.action == "token").order_by(events_t.c.sequence)
            ).mappings()
        ]
    summary = [(e["actor"], e["outcome"], e["detail"].get("error")) for e in recorded]
    assert summary == [
        (f"device:{device['id']}", 200, None),
        ("anonymous", 401, "invalid_client"),
    ]
    flat = str(recorded)
    assert signed not in flat and token not in flat
