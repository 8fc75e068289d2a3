"""Signing in to the web app: cookie and CSRF, one-time passwords, throttling, TOTP, audit."""

from __future__ import annotations

import dataclasses
import functools
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, update

from connrad.app import create_app
from connrad.audit.models import AuditEvent
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.identity import admin, passwords
from connrad.identity.caller import Role
from connrad.identity.models import LoginThrottle, Session, User
from connrad.identity.sessions import COOKIE, CSRF_HEADER
from connrad.services import Services

users_t, sessions_t, throttle_t = User.__table__, Session.__table__, LoginThrottle.__table__
events_t = AuditEvent.__table__

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a much longer and newer secret"
REFUSED = {"detail": "wrong username, password or code"}


def add_user(
    services: Services, username: str, role: Role, site_id: int | None, password: str = PASSWORD
) -> int:
    """An account that has already chosen ``password`` (no one-time password pending)."""
    with write_transaction(services.engine) as conn:
        view, _ = admin.create_user(conn, username, role, site_id)
        conn.execute(
            update(users_t)
            .where(users_t.c.id == view["id"])
            .values(password_hash=password_hash(password), must_change_password=False)
        )
    return int(view["id"])


@functools.cache
def password_hash(password: str) -> str:
    return passwords.hash_password(password)  # argon2 is slow on purpose: hash once


def add_new_user(services: Services, username: str, role: Role, site_id: int | None) -> str:
    """An account as an administrator creates it; its one-time password."""
    with write_transaction(services.engine) as conn:
        _, one_time = admin.create_user(conn, username, role, site_id)
    return one_time


def sign_in(client: TestClient, username: str, password: str = PASSWORD, **extra: str) -> Response:
    return client.post(
        "/api/auth/login", json={"username": username, "password": password, **extra}
    )


def signed_in(app: FastAPI, username: str, password: str = PASSWORD) -> TestClient:
    """A new browser, signed in as ``username``, that sends its CSRF token on every request."""
    browser = TestClient(app)
    response = sign_in(browser, username, password)
    assert response.status_code == 200, response.text
    browser.headers[CSRF_HEADER] = response.json()["csrf_token"]
    return browser


def client_with(services: Services, **changes: object) -> TestClient:
    """A client of a new app whose settings differ from the test's by ``changes``.

    The routes read the login limits and cookie flags from ``services.settings``, so the
    services get the changed settings too (sharing the engine and the rest).
    """
    settings = services.settings.model_copy(update=changes)
    return TestClient(create_app(settings, dataclasses.replace(services, settings=settings)))


def cookie_attributes(response: Response) -> dict[str, str]:
    header = next(v for v in response.headers.get_list("set-cookie") if v.startswith(f"{COOKIE}="))
    attributes = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value.lower()
    return attributes


def audit_events(services: Services, *actions: str) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(events_t).where(events_t.c.action.in_(actions)).order_by(events_t.c.sequence)
        ).mappings()
        return [dict(row) for row in rows]


# --- the session cookie ------------------------------------------------------------------


def test_login_sets_a_strict_http_only_cookie_and_returns_the_csrf_token(
    anonymous_client: TestClient, services: Services
) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    response = sign_in(anonymous_client, "nurse")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "nurse"
    assert body["must_change_password"] is False
    assert len(body["csrf_token"]) >= 32
    attributes = cookie_attributes(response)
    assert "httponly" in attributes
    assert attributes["samesite"] == "strict"
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    me = anonymous_client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["actor"].startswith("user:")
    assert me.json()["csrf_token"] == body["csrf_token"]
    assert anonymous_client.get("/dicomweb/studies").status_code == 200


def test_cookie_is_secure_over_https_and_under_tls(
    anonymous_client: TestClient, services: Services, tmp_path: Path
) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    with TestClient(anonymous_client.app, base_url="https://testserver") as https:
        response = sign_in(https, "nurse")
        assert response.status_code == 200
        assert "secure" in cookie_attributes(response)
        assert https.get("/api/auth/me").status_code == 200
    with client_with(services, tls_certfile=tmp_path / "cert.pem") as tls:
        response = sign_in(tls, "nurse")
        assert response.status_code == 200
        assert "secure" in cookie_attributes(response)


def test_changes_need_the_sessions_csrf_token(
    anonymous_client: TestClient, services: Services
) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    first = signed_in(anonymous_client.app, "nurse")
    other = signed_in(anonymous_client.app, "nurse")
    token = first.headers.pop(CSRF_HEADER)
    assert first.get("/api/auth/me").status_code == 200  # reads need no CSRF token
    missing = first.post("/api/auth/logout")
    assert (missing.status_code, missing.json()) == (403, {"detail": "missing or wrong CSRF token"})
    wrong = first.post("/api/auth/logout", headers={CSRF_HEADER: token[:-2] + "xx"})
    assert wrong.status_code == 403
    of_other_session = first.post(
        "/api/auth/logout", headers={CSRF_HEADER: other.headers[CSRF_HEADER]}
    )
    assert of_other_session.status_code == 403
    assert first.get("/api/auth/me").status_code == 200  # still signed in
    assert first.post("/api/auth/logout", headers={CSRF_HEADER: token}).status_code == 200


def test_logout_ends_the_session(anonymous_client: TestClient, services: Services) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    browser = signed_in(anonymous_client.app, "nurse")
    cookie = browser.cookies[COOKIE]
    response = browser.post("/api/auth/logout")
    assert response.status_code == 200
    assert f'{COOKIE}=""' in response.headers["set-cookie"]  # the browser forgets it
    replayed = TestClient(anonymous_client.app, cookies={COOKIE: cookie})
    assert replayed.get("/api/auth/me").status_code == 401
    assert replayed.get("/dicomweb/studies").status_code == 401
    with services.engine.connect() as conn:
        assert conn.execute(select(sessions_t)).first() is None


def test_a_browser_holding_a_cookie_can_sign_in_again(
    anonymous_client: TestClient, services: Services
) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    doctor_id = add_user(services, "doctor", Role.RADIOLOGIST, services.local_site_id)
    browser = signed_in(anonymous_client.app, "nurse")
    browser.headers.pop(CSRF_HEADER)  # a sign-in form does not know the session's token
    assert sign_in(browser, "doctor").status_code == 200
    assert browser.get("/api/auth/me").json()["role"] == "radiologist"
    with write_transaction(services.engine) as conn:
        _, one_time = admin.reset_password(conn, doctor_id)  # ends the doctor's sessions
    assert browser.get("/api/auth/me").status_code == 401  # the cookie is stale now
    again = sign_in(browser, "doctor", one_time)
    assert again.status_code == 200
    assert again.json()["must_change_password"] is True


def test_expired_session_is_refused(anonymous_client: TestClient, services: Services) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    browser = signed_in(anonymous_client.app, "nurse")
    with write_transaction(services.engine) as conn:
        conn.execute(update(sessions_t).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = browser.get("/api/auth/me")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "session expired; sign in again"},
    )


def test_session_lifetime_follows_the_settings(services: Services) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    with client_with(services, session_hours=0.5) as short:
        response = sign_in(short, "nurse")
    assert cookie_attributes(response)["max-age"] == "1800"
    with services.engine.connect() as conn:
        expires = conn.execute(select(sessions_t.c.expires_at)).scalar_one()
    assert timedelta(minutes=29) < expires - utcnow() <= timedelta(minutes=30)


# --- passwords ---------------------------------------------------------------------------


def test_one_time_password_must_be_changed_first(
    anonymous_client: TestClient, services: Services
) -> None:
    one_time = add_new_user(services, "newbie", Role.CLINIC_STAFF, services.local_site_id)
    response = sign_in(anonymous_client, "newbie", one_time)
    assert response.status_code == 200
    assert response.json()["must_change_password"] is True
    anonymous_client.headers[CSRF_HEADER] = response.json()["csrf_token"]
    refused = anonymous_client.get("/dicomweb/studies")
    assert (refused.status_code, refused.json()) == (403, {"detail": "password change required"})
    assert anonymous_client.post("/api/auth/totp/setup").status_code == 403
    assert anonymous_client.get("/api/auth/me").json()["must_change_password"] is True

    def change(current: str, new: str) -> Response:
        body = {"current_password": current, "new_password": new}
        return anonymous_client.post("/api/auth/password", json=body)

    weak = change(one_time, "short")
    assert weak.status_code == 400 and "at least 12" in weak.json()["detail"]
    assert change(one_time, "aaaaaaaaaaaaaaaa").status_code == 400  # too repetitive
    assert change(one_time, one_time).status_code == 400
    wrong = change("not-the-password", NEW_PASSWORD)
    assert (wrong.status_code, wrong.json()) == (403, {"detail": "current password is wrong"})
    assert anonymous_client.get("/dicomweb/studies").status_code == 403
    assert change(one_time, NEW_PASSWORD).status_code == 200
    assert anonymous_client.get("/dicomweb/studies").status_code == 200
    assert anonymous_client.get("/api/auth/me").json()["must_change_password"] is False
    assert sign_in(TestClient(anonymous_client.app), "newbie", one_time).status_code == 401
    again = sign_in(TestClient(anonymous_client.app), "newbie", NEW_PASSWORD)
    assert again.json()["must_change_password"] is False


def test_password_change_ends_the_other_sessions(
    anonymous_client: TestClient, services: Services
) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    here = signed_in(anonymous_client.app, "nurse")
    elsewhere = signed_in(anonymous_client.app, "nurse")
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert here.post("/api/auth/password", json=body).status_code == 200
    assert here.get("/api/auth/me").status_code == 200
    assert elsewhere.get("/api/auth/me").status_code == 401
    recorded = audit_events(services, "update")
    assert [(e["resource"], e["outcome"]) for e in recorded] == [("password", 200)]


def test_wrong_password_and_unknown_user_get_the_same_answer(
    anonymous_client: TestClient, services: Services
) -> None:
    add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    wrong = sign_in(anonymous_client, "nurse", "not-the-password")
    unknown = sign_in(anonymous_client, "nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == REFUSED
    assert wrong.content == unknown.content
    assert COOKIE not in wrong.cookies and COOKIE not in unknown.cookies
    assert "www-authenticate" not in wrong.headers and "www-authenticate" not in unknown.headers


@pytest.mark.parametrize(
    "body",
    [
        {"username": "nurse"},
        {"username": "", "password": PASSWORD},
        {"username": "nurse", "password": PASSWORD, "role": "admin"},
        {"username": "nurse", "password": "x" * (passwords.MAX_LENGTH + 1)},
    ],
    ids=["no-password", "empty-username", "extra-field", "huge-password"],
)
def test_malformed_login_is_400(anonymous_client: TestClient, body: dict[str, str]) -> None:
    response = anonymous_client.post("/api/auth/login", json=body)
    assert response.status_code == 400
    assert PASSWORD not in response.text


# --- throttling --------------------------------------------------------------------------


def test_account_is_locked_after_its_failures_but_not_others(services: Services) -> None:
    add_user(services, "alice", Role.CLINIC_STAFF, services.local_site_id)
    add_user(services, "bob", Role.CLINIC_STAFF, services.local_site_id)
    limits = {"login_max_failures_account": 3, "login_max_failures_address": 5}
    with client_with(services, login_lockout_seconds=600, **limits) as client:
        for _ in range(3):
            assert sign_in(client, "alice", "not-the-password").status_code == 401
        locked = sign_in(client, "alice")  # the right password, yet locked out
        assert locked.status_code == 429
        assert locked.json() == {"detail": "too many failed sign-ins; try later"}
        assert 590 <= int(locked.headers["retry-after"]) <= 601
        assert COOKIE not in locked.cookies
        # Same address, other account: three failures so far, below the address limit.
        assert sign_in(client, "bob").status_code == 200
        assert sign_in(client, "nobody", "guess-1").status_code == 401
        assert sign_in(client, "nobody-else", "guess-2").status_code == 401  # the fifth
        address_locked = sign_in(client, "bob")
        assert address_locked.status_code == 429
        assert "retry-after" in address_locked.headers
        elsewhere = TestClient(client.app, client=("192.0.2.7", 50000))
        assert sign_in(elsewhere, "bob").status_code == 200
        assert sign_in(elsewhere, "alice").status_code == 429  # the account is still locked
    outcomes = [e["outcome"] for e in audit_events(services, "login")]
    assert outcomes == [401, 401, 401, 429, 200, 401, 401, 429, 200, 429]


def test_success_resets_the_account_count(services: Services) -> None:
    add_user(services, "alice", Role.CLINIC_STAFF, services.local_site_id)
    limits = {"login_max_failures_account": 3, "login_max_failures_address": 100}
    with client_with(services, **limits) as client:
        for _ in range(2):
            assert sign_in(client, "alice", "not-the-password").status_code == 401
        assert sign_in(client, "alice").status_code == 200
        for _ in range(2):
            assert sign_in(client, "alice", "not-the-password").status_code == 401
        assert sign_in(client, "alice").status_code == 200
        for _ in range(3):
            assert sign_in(client, "alice", "not-the-password").status_code == 401
        assert sign_in(client, "alice").status_code == 429


def test_lockout_ends_after_its_time(services: Services) -> None:
    add_user(services, "alice", Role.CLINIC_STAFF, services.local_site_id)
    with client_with(services, login_max_failures_account=1) as client:
        assert sign_in(client, "alice", "not-the-password").status_code == 401
        assert sign_in(client, "alice").status_code == 429
        with write_transaction(services.engine) as conn:
            conn.execute(update(throttle_t).values(locked_until=utcnow() - timedelta(seconds=1)))
        assert sign_in(client, "alice").status_code == 200


# --- disabled accounts and sites ---------------------------------------------------------


def test_disabled_user_cannot_sign_in_and_loses_its_sessions(
    anonymous_client: TestClient, services: Services
) -> None:
    user_id = add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    browser = signed_in(anonymous_client.app, "nurse")
    with write_transaction(services.engine) as conn:
        admin.update_user(conn, user_id, disabled=True)
    assert browser.get("/api/auth/me").status_code == 401
    assert browser.get("/dicomweb/studies").status_code == 401
    refused = sign_in(TestClient(anonymous_client.app), "nurse")
    assert (refused.status_code, refused.json()) == (401, REFUSED)
    with write_transaction(services.engine) as conn:
        admin.update_user(conn, user_id, disabled=False)
    assert sign_in(TestClient(anonymous_client.app), "nurse").status_code == 200


def test_disabled_site_stops_its_users(anonymous_client: TestClient, services: Services) -> None:
    with write_transaction(services.engine) as conn:
        site_id = admin.create_site(conn, "far-clinic", "Far clinic")["id"]
    add_user(services, "nurse", Role.CLINIC_STAFF, site_id)
    browser = signed_in(anonymous_client.app, "nurse")
    assert browser.get("/dicomweb/studies").status_code == 200
    with write_transaction(services.engine) as conn:
        admin.update_site(conn, site_id, disabled=True)
    me = browser.get("/api/auth/me")
    assert (me.status_code, me.json()) == (401, {"detail": "account disabled"})
    assert browser.get("/dicomweb/studies").status_code == 401
    refused = sign_in(TestClient(anonymous_client.app), "nurse")
    assert (refused.status_code, refused.json()) == (401, REFUSED)


# --- TOTP --------------------------------------------------------------------------------


def code(secret: str, steps_ahead: int = 0) -> str:
    """The TOTP code of the current 30 s step, or of a neighbouring one."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def wrong_code(secret: str) -> str:
    """A well-formed code that no step the server accepts now (or soon) produces."""
    valid = {code(secret, steps) for steps in range(-2, 3)}
    return next(
        c
        for c in ("123456", "654321", "111111", "222222", "333333", "444444", "555555", "999999")
        if c not in valid
    )


def away_from_step_change(margin_s: float = 3.0) -> None:
    """Wait when a new TOTP step is about to start, so the codes chosen stay valid."""
    left = 30 - time.time() % 30
    if left < margin_s:
        time.sleep(left + 0.1)


def test_totp_enrol_sign_in_replay_and_disable(
    anonymous_client: TestClient, services: Services
) -> None:
    add_user(services, "doctor", Role.RADIOLOGIST, services.local_site_id)
    browser = signed_in(anonymous_client.app, "doctor")
    setup = browser.post("/api/auth/totp/setup")
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    # Each code is accepted once and only if newer than the last one used: the previous,
    # current and next steps are all valid, so use them in that order.
    away_from_step_change()
    assert browser.post("/api/auth/totp/enable", json={"code": code(secret, -1)}).status_code == 200
    assert browser.post("/api/auth/totp/setup").status_code == 409

    fresh = TestClient(anonymous_client.app)
    asked = sign_in(fresh, "doctor")
    assert (asked.status_code, asked.json()) == (
        401,
        {"detail": "second factor required", "totp_required": True},
    )
    wrong = sign_in(fresh, "doctor", totp_code=wrong_code(secret))
    assert (wrong.status_code, wrong.json()) == (401, REFUSED)
    with services.engine.connect() as conn:
        failures = conn.execute(
            select(throttle_t.c.failures).where(throttle_t.c.key == "user:doctor")
        ).scalar_one()
    assert failures == 1  # a wrong code counts as a failed sign-in
    current = code(secret)
    assert sign_in(fresh, "doctor", totp_code=current).status_code == 200
    replayed = sign_in(TestClient(anonymous_client.app), "doctor", totp_code=current)
    assert (replayed.status_code, replayed.json()) == (401, REFUSED)

    def disable(password: str, totp_code: str) -> Response:
        return browser.post(
            "/api/auth/totp/disable", json={"password": password, "code": totp_code}
        )

    assert disable("not-the-password", code(secret, 1)).status_code == 403
    assert disable(PASSWORD, current).status_code == 403  # already used
    assert disable(PASSWORD, code(secret, 1)).status_code == 200
    assert sign_in(TestClient(anonymous_client.app), "doctor").status_code == 200


def test_totp_enable_needs_a_valid_code(anonymous_client: TestClient, services: Services) -> None:
    add_user(services, "doctor", Role.RADIOLOGIST, services.local_site_id)
    browser = signed_in(anonymous_client.app, "doctor")
    assert browser.post("/api/auth/totp/enable", json={"code": "123456"}).status_code == 409
    secret = browser.post("/api/auth/totp/setup").json()["secret"]
    refused = browser.post("/api/auth/totp/enable", json={"code": wrong_code(secret)})
    assert (refused.status_code, refused.json()) == (400, {"detail": "wrong code"})
    assert browser.post("/api/auth/totp/enable", json={"code": "12ab56"}).status_code == 400
    assert sign_in(TestClient(anonymous_client.app), "doctor").status_code == 200  # not enabled


# --- audit -------------------------------------------------------------------------------


def test_logins_and_logouts_are_audited_without_credentials(
    anonymous_client: TestClient, services: Services
) -> None:
    user_id = add_user(services, "nurse", Role.CLINIC_STAFF, services.local_site_id)
    assert sign_in(anonymous_client, "nurse", "not-the-password").status_code == 401
    assert sign_in(anonymous_client, "ghost", "not-the-password").status_code == 401
    browser = signed_in(anonymous_client.app, "nurse")
    assert browser.post("/api/auth/logout").status_code == 200
    recorded = audit_events(services, "login", "logout")
    summary = [(e["action"], e["resource"], e["outcome"], e["actor"]) for e in recorded]
    assert summary == [
        ("login", "session", 401, "anonymous"),
        ("login", "session", 401, "anonymous"),
        ("login", "session", 200, f"user:{user_id}"),
        ("logout", "session", 200, f"user:{user_id}"),
    ]
    assert recorded[2]["site_id"] == services.local_site_id
    assert all(e["source"] == "testclient" for e in recorded)
    flat = str(recorded)
    for secret in ("nurse", "ghost", "not-the-password", PASSWORD):
        assert secret not in flat
