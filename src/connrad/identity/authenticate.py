"""Turns a request's credentials into a Caller: a device API key or OAuth access token
(``Authorization: Bearer``), or a web session cookie (with its CSRF token on changes).

Disabled users, devices and sites, revoked or expired keys, and expired sessions are refused
at every request, not only at login.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, select

from connrad.db.base import utcnow
from connrad.identity import api_keys
from connrad.identity import sessions as session_store
from connrad.identity.caller import ANONYMOUS, Caller, Role
from connrad.identity.models import ApiKey, Device, ReadingGrant, Session, Site, User
from connrad.identity.oauth import AccessTokens, OAuthError
from connrad.identity.scopes import covers

keys_t = ApiKey.__table__
devices_t = Device.__table__
sites_t = Site.__table__
users_t = User.__table__
grants_t = ReadingGrant.__table__
sessions_t = Session.__table__

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BEARER_CHALLENGE = 'Bearer realm="connrad"'


class AuthError(Exception):
    def __init__(self, status: int, detail: str, challenge: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.challenge = challenge


def _invalid_token(detail: str) -> AuthError:
    return AuthError(401, detail, f'{BEARER_CHALLENGE}, error="invalid_token"')


class Authenticator:
    def __init__(self, engine: Engine, tokens: AccessTokens) -> None:
        self.engine = engine
        self.tokens = tokens

    def caller(
        self,
        *,
        authorization: str | None,
        session_token: str | None,
        csrf_token: str | None,
        method: str,
        address: str,
    ) -> Caller:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(401, "unsupported authorization scheme", BEARER_CHALLENGE)
            return self._bearer(token.strip(), address)
        if session_token:
            return self._session(session_token, csrf_token, method, address)
        return ANONYMOUS

    # --- devices -----------------------------------------------------------------------

    def _bearer(self, token: str, address: str) -> Caller:
        parts = api_keys.split(token)
        if parts is not None:
            return self._api_key(*parts, address)
        try:
            claims = self.tokens.verify(token)
        except OAuthError as exc:
            raise _invalid_token(exc.description) from None
        kind, _, raw_id = claims.subject.partition(":")
        if kind != "device" or not raw_id.isdigit():
            raise _invalid_token("token subject is not a device")
        with self.engine.connect() as conn:
            device = _active_device(conn, devices_t.c.id == int(raw_id))
        if device is None:
            raise _invalid_token("device unknown or disabled")
        return device_caller(device, claims.scopes, address)

    def _api_key(self, prefix: str, secret: str, address: str) -> Caller:
        with self.engine.connect() as conn:
            key = conn.execute(select(keys_t).where(keys_t.c.prefix == prefix)).mappings().first()
            if key is None or not api_keys.matches(secret, key["secret_hash"]):
                raise _invalid_token("unknown API key")
            now = utcnow()
            if key["revoked_at"] is not None or (
                key["expires_at"] is not None and key["expires_at"] <= now
            ):
                raise _invalid_token("API key revoked or expired")
            device = _active_device(conn, devices_t.c.id == key["device_id"])
        if device is None:
            raise _invalid_token("device unknown or disabled")
        return device_caller(device, frozenset(key["scopes"]), address)

    # --- users ---------------------------------------------------------------------------

    def _session(self, token: str, csrf_token: str | None, method: str, address: str) -> Caller:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(sessions_t.c.csrf_token, sessions_t.c.expires_at, users_t)
                    .join(users_t, users_t.c.id == sessions_t.c.user_id)
                    .where(sessions_t.c.token_hash == session_store.token_hash(token))
                )
                .mappings()
                .first()
            )
            if row is None or row["expires_at"] <= utcnow():
                raise AuthError(401, "session expired; sign in again")
            if method.upper() not in SAFE_METHODS and not (
                csrf_token and hmac.compare_digest(csrf_token, row["csrf_token"])
            ):
                raise AuthError(403, "missing or wrong CSRF token")
            caller = load_user_caller(conn, row, address)
        if caller is None:
            raise AuthError(401, "account disabled")
        return caller


def _active_device(conn: Connection, where: Any) -> Mapping[str, Any] | None:
    return (
        conn.execute(
            select(devices_t)
            .join(sites_t, sites_t.c.id == devices_t.c.site_id)
            .where(where, devices_t.c.disabled.is_(False), sites_t.c.disabled.is_(False))
        )
        .mappings()
        .first()
    )


def device_caller(device: Mapping[str, Any], scopes: frozenset[str], address: str) -> Caller:
    # A key or token never grants more than the device currently may have.
    allowed = frozenset(s for s in scopes if covers(device["scopes"], s))
    return Caller(
        kind="device",
        actor=f"device:{device['id']}",
        site_id=device["site_id"],
        device_id=device["id"],
        scopes=allowed,
        address=address,
    )


def dicom_caller(conn: Connection, calling_ae: str, address: str) -> Caller | None:
    """The registered DICOM device calling from ``address``, or None: reject the association."""
    device = _active_device(
        conn, (devices_t.c.kind == "dicom") & (devices_t.c.ae_title == calling_ae.strip())
    )
    if device is None or (device["hosts"] and address not in device["hosts"]):
        return None
    return device_caller(device, frozenset(device["scopes"]), address)


def load_user_caller(conn: Connection, user: Mapping[str, Any], address: str) -> Caller | None:
    if user["disabled"]:
        return None
    if user["site_id"] is not None:
        site_disabled = conn.execute(
            select(sites_t.c.disabled).where(sites_t.c.id == user["site_id"])
        ).scalar_one()
        if site_disabled:
            return None
    role = Role(user["role"])
    granted: frozenset[int] = frozenset()
    if role is Role.RADIOLOGIST:
        granted = frozenset(
            conn.execute(
                select(grants_t.c.site_id)
                .join(sites_t, sites_t.c.id == grants_t.c.site_id)
                .where(grants_t.c.user_id == user["id"], sites_t.c.disabled.is_(False))
            ).scalars()
        )
    return Caller(
        kind="user",
        actor=f"user:{user['id']}",
        site_id=user["site_id"],
        role=role,
        user_id=user["id"],
        granted_site_ids=granted,
        must_change_password=bool(user["must_change_password"]),
        address=address,
    )
