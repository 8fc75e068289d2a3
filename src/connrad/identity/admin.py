"""Managing sites, devices and users: one set of operations for the CLI and the admin API.

Functions take a Connection inside the caller's write transaction and return plain views;
credentials (one-time passwords, API keys) are returned once and stored only hashed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from connrad.db.base import utcnow
from connrad.identity import api_keys, passwords, scopes
from connrad.identity import sessions as session_store
from connrad.identity.caller import Role
from connrad.identity.models import ApiKey, Device, ReadingGrant, Site, User
from connrad.identity.oauth import ASSERTION_ALGORITHMS, MIN_RSA_BITS
from connrad.qc.policy import QC_POLICIES

sites_t, devices_t, keys_t = Site.__table__, Device.__table__, ApiKey.__table__
users_t, grants_t = User.__table__, ReadingGrant.__table__

_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_AE_TITLE = re.compile(r"^[\x21-\x5b\x5d-\x7e]([\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$")
DEFAULT_DICOM_SCOPES = ("dicomweb.stow", "dicomweb.read")  # store; query/retrieve own site
DEFAULT_API_SCOPES = ("dicomweb.stow", "dicomweb.read")
FIRST_ADMIN = "admin"


class AdminError(ValueError):
    """A request the data does not allow; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _not_found(what: str) -> AdminError:
    return AdminError(f"{what} not found", 404)


# --- sites -------------------------------------------------------------------------------


DEID_POLICIES = ("identified", "pseudonymized", "anonymized")
PIXEL_POLICIES = ("clean", "hold", "pass")


def _check_policy(policy: str) -> str:
    if policy not in DEID_POLICIES:
        raise AdminError(f"de-identification policy: one of {', '.join(DEID_POLICIES)}")
    return policy


def _check_pixel_policy(policy: str) -> str:
    if policy not in PIXEL_POLICIES:
        raise AdminError(f"pixel policy: one of {', '.join(PIXEL_POLICIES)}")
    return policy


def _check_qc_policy(policy: str) -> str:
    if policy not in QC_POLICIES:
        raise AdminError(f"QC policy: one of {', '.join(QC_POLICIES)}")
    return policy


def create_site(
    conn: Connection,
    code: str,
    name: str,
    deid_policy: str = "pseudonymized",
    pixel_policy: str = "clean",
    qc_policy: str = "quarantine",
) -> dict[str, Any]:
    _check_policy(deid_policy)
    _check_pixel_policy(pixel_policy)
    _check_qc_policy(qc_policy)
    if not _CODE.match(code):
        raise AdminError("site code: lower-case letters, digits and '-', at most 63")
    if not name.strip():
        raise AdminError("site name is empty")
    try:
        with conn.begin_nested():
            site_id = conn.execute(
                insert(sites_t)
                .values(
                    code=code,
                    name=name.strip(),
                    disabled=False,
                    deid_policy=deid_policy,
                    pixel_policy=pixel_policy,
                    qc_policy=qc_policy,
                    created_at=utcnow(),
                )
                .returning(sites_t.c.id)
            ).scalar_one()
    except IntegrityError:
        raise AdminError(f"site {code!r} exists", 409) from None
    return get_site(conn, site_id)


def get_site(conn: Connection, site_id: int) -> dict[str, Any]:
    row = conn.execute(select(sites_t).where(sites_t.c.id == site_id)).mappings().first()
    if row is None:
        raise _not_found("site")
    return dict(row)


def site_by_code(conn: Connection, code: str) -> dict[str, Any]:
    row = conn.execute(select(sites_t).where(sites_t.c.code == code)).mappings().first()
    if row is None:
        raise _not_found(f"site {code!r}")
    return dict(row)


def list_sites(conn: Connection, site_ids: frozenset[int] | None = None) -> list[dict[str, Any]]:
    query = select(sites_t).order_by(sites_t.c.code)
    if site_ids is not None:
        query = query.where(sites_t.c.id.in_(site_ids))
    return [dict(row) for row in conn.execute(query).mappings()]


def update_site(
    conn: Connection,
    site_id: int,
    *,
    name: str | None = None,
    disabled: bool | None = None,
    deid_policy: str | None = None,
    pixel_policy: str | None = None,
    qc_policy: str | None = None,
) -> dict[str, Any]:
    get_site(conn, site_id)
    values: dict[str, Any] = {}
    if qc_policy is not None:
        values["qc_policy"] = _check_qc_policy(qc_policy)
    if deid_policy is not None:
        values["deid_policy"] = _check_policy(deid_policy)
    if pixel_policy is not None:
        values["pixel_policy"] = _check_pixel_policy(pixel_policy)
    if name is not None:
        if not name.strip():
            raise AdminError("site name is empty")
        values["name"] = name.strip()
    if disabled is not None:
        values["disabled"] = disabled
    if values:
        conn.execute(update(sites_t).where(sites_t.c.id == site_id).values(**values))
    return get_site(conn, site_id)


# --- devices -----------------------------------------------------------------------------


def _check_scopes(requested: Iterable[str]) -> list[str]:
    listed = list(dict.fromkeys(requested))
    bad = [s for s in listed if not scopes.is_valid(s)]
    if bad:
        raise AdminError(f"unknown scopes: {' '.join(bad)}")
    return listed


def create_device(
    conn: Connection,
    site_id: int,
    name: str,
    kind: str,
    *,
    ae_title: str | None = None,
    hosts: Iterable[str] = (),
    device_scopes: Iterable[str] | None = None,
) -> dict[str, Any]:
    get_site(conn, site_id)
    if kind not in ("dicom", "api"):
        raise AdminError("device kind is 'dicom' or 'api'")
    if not name.strip() or len(name) > 128:
        raise AdminError("device name: 1 to 128 characters")
    if kind == "dicom":
        if not ae_title or not _AE_TITLE.match(ae_title):
            raise AdminError("a DICOM device needs an AE title (1-16 characters, no backslash)")
    elif ae_title:
        raise AdminError("an API device has no AE title")
    default = DEFAULT_DICOM_SCOPES if kind == "dicom" else DEFAULT_API_SCOPES
    values = {
        "site_id": site_id,
        "name": name.strip(),
        "kind": kind,
        "ae_title": ae_title,
        "hosts": list(dict.fromkeys(h.strip() for h in hosts if h.strip())),
        "scopes": _check_scopes(default if device_scopes is None else device_scopes),
        "client_id": f"dev-{secrets.token_hex(8)}" if kind == "api" else None,
        "jwks": None,
        "disabled": False,
        "created_at": utcnow(),
    }
    try:
        with conn.begin_nested():
            device_id = conn.execute(
                insert(devices_t).values(**values).returning(devices_t.c.id)
            ).scalar_one()
    except IntegrityError:
        raise AdminError("a device with this name or AE title exists", 409) from None
    return get_device(conn, device_id)


def get_device(conn: Connection, device_id: int) -> dict[str, Any]:
    row = conn.execute(select(devices_t).where(devices_t.c.id == device_id)).mappings().first()
    if row is None:
        raise _not_found("device")
    return dict(row)


def list_devices(conn: Connection, site_ids: frozenset[int] | None) -> list[dict[str, Any]]:
    query = select(devices_t).order_by(devices_t.c.site_id, devices_t.c.name)
    if site_ids is not None:
        query = query.where(devices_t.c.site_id.in_(site_ids))
    return [dict(row) for row in conn.execute(query).mappings()]


def update_device(
    conn: Connection,
    device_id: int,
    *,
    disabled: bool | None = None,
    hosts: Iterable[str] | None = None,
    device_scopes: Iterable[str] | None = None,
) -> dict[str, Any]:
    get_device(conn, device_id)
    values: dict[str, Any] = {}
    if disabled is not None:
        values["disabled"] = disabled
    if hosts is not None:
        values["hosts"] = list(dict.fromkeys(h.strip() for h in hosts if h.strip()))
    if device_scopes is not None:
        values["scopes"] = _check_scopes(device_scopes)
    if values:
        conn.execute(update(devices_t).where(devices_t.c.id == device_id).values(**values))
    return get_device(conn, device_id)


def set_device_jwks(conn: Connection, device_id: int, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """Register the public keys an API device signs its OAuth client assertions with."""
    device = get_device(conn, device_id)
    if device["kind"] != "api":
        raise AdminError("only API devices use OAuth client credentials")
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise AdminError("a JWK Set needs a non-empty 'keys' list")
    for key in keys:
        _check_signing_key(key)
    clean = {"keys": [dict(k) for k in keys]}
    conn.execute(update(devices_t).where(devices_t.c.id == device_id).values(jwks=clean))
    return get_device(conn, device_id)


def _check_signing_key(key: Any) -> None:
    """Refuse a key the token endpoint could never verify an assertion with, saying why.

    SMART Backend Services allow RS384 and ES384; the endpoint also wants RSA keys of at
    least 2048 bits (NIST SP 800-131A) and EC keys on P-384, meant for signatures.
    """
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if not isinstance(key, Mapping) or "d" in key:
        raise AdminError("keys must be public JWKs (no private part)")
    alg = _algorithm_for(key)
    if alg not in ASSERTION_ALGORITHMS:
        raise AdminError(
            f"key algorithm must be one of {', '.join(ASSERTION_ALGORITHMS)}: give 'alg', "
            "or a key of type RSA or EC"
        )
    key_ops = key.get("key_ops", ["verify"])
    if key.get("use", "sig") != "sig" or not isinstance(key_ops, list) or "verify" not in key_ops:
        raise AdminError("keys must be meant for signatures (use 'sig', key_ops 'verify')")
    try:
        public = jwt.PyJWK(dict(key), algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError):
        raise AdminError("a key in the set cannot be used") from None
    if alg == "RS384" and not (
        isinstance(public, rsa.RSAPublicKey) and public.key_size >= MIN_RSA_BITS
    ):
        raise AdminError(f"RS384 keys must be RSA keys of at least {MIN_RSA_BITS} bits")
    if alg == "ES384" and not (
        isinstance(public, ec.EllipticCurvePublicKey)
        and isinstance(public.curve, ec.SECP384R1)
        and key.get("crv") == "P-384"
    ):
        raise AdminError("ES384 keys must be EC keys on curve P-384")


def _algorithm_for(key: Mapping[str, Any]) -> str:
    if "alg" in key:
        return str(key["alg"])
    return {"RSA": "RS384", "EC": "ES384"}.get(str(key.get("kty")), "none")


def issue_api_key(
    conn: Connection,
    device_id: int,
    key_scopes: Iterable[str] | None = None,
    expires_in_days: int | None = None,
) -> tuple[dict[str, Any], str]:
    """A new key for the device (its scopes at most the device's); the plaintext, once."""
    device = get_device(conn, device_id)
    wanted = _check_scopes(device["scopes"] if key_scopes is None else key_scopes)
    beyond = [s for s in wanted if not scopes.covers(device["scopes"], s)]
    if beyond:
        raise AdminError(f"scopes beyond the device's: {' '.join(beyond)}")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise AdminError("expiry: 1 to 3650 days")
    key = api_keys.new_key()
    now = utcnow()
    key_id = conn.execute(
        insert(keys_t)
        .values(
            device_id=device_id,
            prefix=key.prefix,
            secret_hash=key.secret_hash,
            scopes=wanted,
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        .returning(keys_t.c.id)
    ).scalar_one()
    return _key_view(conn, key_id), key.plaintext


def _key_view(conn: Connection, key_id: int) -> dict[str, Any]:
    row = conn.execute(select(keys_t).where(keys_t.c.id == key_id)).mappings().first()
    if row is None:
        raise _not_found("API key")
    return {k: v for k, v in row.items() if k != "secret_hash"}


def list_api_keys(conn: Connection, device_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(keys_t).where(keys_t.c.device_id == device_id).order_by(keys_t.c.id)
    ).mappings()
    return [{k: v for k, v in row.items() if k != "secret_hash"} for row in rows]


def revoke_api_key(conn: Connection, device_id: int, key_id: int) -> dict[str, Any]:
    done = conn.execute(
        update(keys_t)
        .where(keys_t.c.id == key_id, keys_t.c.device_id == device_id)
        .values(revoked_at=func.coalesce(keys_t.c.revoked_at, utcnow()))
    ).rowcount
    if not done:
        raise _not_found("API key")
    return _key_view(conn, key_id)


# --- users -------------------------------------------------------------------------------


def create_user(
    conn: Connection,
    username: str,
    role: Role,
    site_id: int | None,
    display_name: str = "",
) -> tuple[dict[str, Any], str]:
    """A new account with a one-time password (returned once; must be changed at login)."""
    if not _USERNAME.match(username):
        raise AdminError("username: letters, digits and . _ @ -, at most 64")
    if role in (Role.CLINIC_STAFF, Role.SITE_ADMIN) and site_id is None:
        raise AdminError(f"a {role} belongs to a site")
    if site_id is not None:
        get_site(conn, site_id)
    secret = passwords.one_time_password()
    try:
        with conn.begin_nested():
            user_id = conn.execute(
                insert(users_t)
                .values(
                    username=username,
                    display_name=display_name.strip()[:256],
                    role=str(role),
                    site_id=site_id,
                    password_hash=passwords.hash_password(secret),
                    must_change_password=True,
                    totp_secret=None,
                    totp_enabled=False,
                    totp_last_step=0,
                    disabled=False,
                    created_at=utcnow(),
                )
                .returning(users_t.c.id)
            ).scalar_one()
    except IntegrityError:
        raise AdminError(f"user {username!r} exists", 409) from None
    return get_user(conn, user_id), secret


_USER_FIELDS = ("id", "username", "display_name", "role", "site_id", "disabled", "created_at")


def get_user(conn: Connection, user_id: int) -> dict[str, Any]:
    row = conn.execute(select(users_t).where(users_t.c.id == user_id)).mappings().first()
    if row is None:
        raise _not_found("user")
    return _user_view(conn, row)


def user_by_name(conn: Connection, username: str) -> dict[str, Any]:
    row = conn.execute(select(users_t).where(users_t.c.username == username)).mappings().first()
    if row is None:
        raise _not_found(f"user {username!r}")
    return _user_view(conn, row)


def _user_view(conn: Connection, row: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: row[k] for k in _USER_FIELDS}
    view["totp_enabled"] = bool(row["totp_enabled"])
    view["must_change_password"] = bool(row["must_change_password"])
    view["reading_sites"] = sorted(
        conn.execute(select(grants_t.c.site_id).where(grants_t.c.user_id == row["id"])).scalars()
    )
    return view


def list_users(conn: Connection, site_ids: frozenset[int] | None) -> list[dict[str, Any]]:
    query = select(users_t).order_by(users_t.c.username)
    if site_ids is not None:
        query = query.where(users_t.c.site_id.in_(site_ids))
    return [_user_view(conn, row) for row in conn.execute(query).mappings()]


def update_user(
    conn: Connection,
    user_id: int,
    *,
    disabled: bool | None = None,
    display_name: str | None = None,
    role: Role | None = None,
) -> dict[str, Any]:
    current = get_user(conn, user_id)
    values: dict[str, Any] = {}
    if disabled is not None:
        values["disabled"] = disabled
    if display_name is not None:
        values["display_name"] = display_name.strip()[:256]
    if role is not None:
        if role in (Role.CLINIC_STAFF, Role.SITE_ADMIN) and current["site_id"] is None:
            raise AdminError(f"a {role} belongs to a site")
        values["role"] = str(role)
    stays_admin = values.get("role", current["role"]) == Role.ADMIN and not values.get(
        "disabled", current["disabled"]
    )
    if current["role"] == Role.ADMIN and not current["disabled"] and not stays_admin:
        _keep_an_administrator(conn, user_id)
    if values:
        conn.execute(update(users_t).where(users_t.c.id == user_id).values(**values))
    if disabled:
        session_store.end_all(conn, user_id)
    return get_user(conn, user_id)


def _keep_an_administrator(conn: Connection, leaving: int) -> None:
    others = conn.execute(
        select(func.count())
        .select_from(users_t)
        .where(
            users_t.c.role == str(Role.ADMIN),
            users_t.c.disabled.is_(False),
            users_t.c.id != leaving,
        )
    ).scalar_one()
    if not others:
        raise AdminError("the last active administrator cannot be demoted or disabled", 409)


def reset_password(conn: Connection, user_id: int) -> tuple[dict[str, Any], str]:
    """A new one-time password; every session of the account ends and TOTP stays as it is."""
    get_user(conn, user_id)
    secret = passwords.one_time_password()
    conn.execute(
        update(users_t)
        .where(users_t.c.id == user_id)
        .values(password_hash=passwords.hash_password(secret), must_change_password=True)
    )
    session_store.end_all(conn, user_id)
    return get_user(conn, user_id), secret


def set_reading_grants(conn: Connection, user_id: int, site_ids: Iterable[int]) -> dict[str, Any]:
    user = get_user(conn, user_id)
    wanted = sorted(set(site_ids))
    if wanted and user["role"] != Role.RADIOLOGIST:
        raise AdminError("reading rights are for radiologists")
    for site_id in wanted:
        get_site(conn, site_id)
    conn.execute(delete(grants_t).where(grants_t.c.user_id == user_id))
    if wanted:
        conn.execute(insert(grants_t), [{"user_id": user_id, "site_id": s} for s in wanted])
    return get_user(conn, user_id)


def ensure_first_admin(conn: Connection) -> str | None:
    """Create the first administrator when there is none; its one-time password, or None."""
    exists = conn.execute(
        select(users_t.c.id).where(users_t.c.role == str(Role.ADMIN)).limit(1)
    ).first()
    if exists is not None:
        return None
    _, secret = create_user(conn, FIRST_ADMIN, Role.ADMIN, None, "Administrator")
    return secret


def as_json(view: Mapping[str, Any]) -> dict[str, Any]:
    """A view with datetimes as ISO 8601 strings (for the API and the CLI's JSON output)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in view.items()}
