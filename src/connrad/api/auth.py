"""Signing in and out of the web app: password (argon2), optional TOTP, session cookie + CSRF.

Failed attempts are throttled per account and per client address; the answer to a wrong
username and to a wrong password is the same, and takes as long.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select, update

from connrad.access import Access, AccountCaller, PasswordChangeCaller, WhoamiCaller
from connrad.audit.http import client_address, record
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.dicomweb.deps import ServicesDep
from connrad.identity import passwords, throttle, totp
from connrad.identity import sessions as session_store
from connrad.identity.admin import get_user
from connrad.identity.authenticate import AuthError, load_user_caller
from connrad.identity.caller import ANONYMOUS, Caller
from connrad.identity.models import User
from connrad.services import Services

router = APIRouter(prefix="/api/auth", tags=["auth"])
users_t = User.__table__


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=passwords.MAX_LENGTH)
    totp_code: str | None = Field(None, max_length=10)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=passwords.MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=passwords.MAX_LENGTH)


class TotpCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=6, max_length=10)


class TotpDisable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=passwords.MAX_LENGTH)
    code: str = Field(min_length=6, max_length=10)


class _SigningIn(Access):
    """Anyone may sign in, whatever credentials the browser still holds.

    The body is the credential here: a cookie of a session that has ended (logout elsewhere,
    password reset, expiry) or a signed-in browser without its CSRF token must not block a
    new sign-in, as the public rule's credential check would (401 or 403).
    """

    def __init__(self) -> None:
        super().__init__(None)

    def __call__(self, request: Request) -> Caller:
        request.state.caller = ANONYMOUS
        return ANONYMOUS


SigningInCaller = Annotated[Caller, Depends(_SigningIn())]


def _limits(services: Services) -> throttle.Limits:
    s = services.settings
    return throttle.Limits(
        account_failures=s.login_max_failures_account,
        address_failures=s.login_max_failures_address,
        lockout=timedelta(seconds=s.login_lockout_seconds),
    )


def _attempt(services: Services, body: Credentials, address: str) -> tuple[int, Any]:
    """(status, payload): 200 with the new session, 401 refused, 429 locked out."""
    limits = _limits(services)
    user_key, addr_key = throttle.keys(body.username, address)
    now = utcnow()
    with services.engine.connect() as conn:
        wait = throttle.locked_for(conn, (user_key, addr_key), now)
        user = (
            None
            if wait
            else conn.execute(select(users_t).where(users_t.c.username == body.username))
            .mappings()
            .first()
        )
    if wait:
        return 429, wait
    ok = passwords.verify_password(user["password_hash"] if user else None, body.password)
    with write_transaction(services.engine) as conn:
        caller = load_user_caller(conn, user, address) if ok and user else None
        step = None
        if caller is not None and user is not None and user["totp_enabled"]:
            if not body.totp_code:
                return 401, "second factor required"
            step = totp.matching_step(user["totp_secret"], body.totp_code, user["totp_last_step"])
            if step is None:
                caller = None
        if caller is None or user is None:
            throttle.record_failure(conn, user_key, limits.account_failures, limits, now)
            throttle.record_failure(conn, addr_key, limits.address_failures, limits, now)
            return 401, "wrong username, password or code"
        throttle.clear(conn, user_key)
        values: dict[str, Any] = {}
        if step is not None:
            values["totp_last_step"] = step
        if passwords.needs_rehash(user["password_hash"]):
            values["password_hash"] = passwords.hash_password(body.password)
        if values:
            conn.execute(update(users_t).where(users_t.c.id == user["id"]).values(**values))
        lifetime = timedelta(hours=services.settings.session_hours)
        session = session_store.create(conn, user["id"], address, lifetime, now)
        view = get_user(conn, user["id"])
    return 200, (caller, session, view)


@router.post("/login", summary="Sign in; sets the session cookie and returns the CSRF token")
async def login(
    body: Credentials, request: Request, services: ServicesDep, caller: SigningInCaller
) -> JSONResponse:
    address = client_address(request)
    status, payload = await to_thread.run_sync(_attempt, services, body, address)
    if status == 429:
        await _audit_login(services, request, caller, 429, None)
        retry = str(int(payload) + 1)
        return JSONResponse(
            {"detail": "too many failed sign-ins; try later"}, 429, headers={"Retry-After": retry}
        )
    if status == 401:
        await _audit_login(services, request, caller, 401, None)
        content: dict[str, Any] = {"detail": payload}
        if payload == "second factor required":
            content["totp_required"] = True
        return JSONResponse(content, 401)
    user_caller, session, view = payload
    await _audit_login(services, request, user_caller, 200, user_caller.site_id)
    response = JSONResponse(
        {
            "user": _json_user(view),
            "csrf_token": session.csrf_token,
            "expires_at": session.expires_at.isoformat(),
            "must_change_password": view["must_change_password"],
        }
    )
    response.set_cookie(
        session_store.COOKIE,
        session.token,
        max_age=int(services.settings.session_hours * 3600),
        path="/",
        httponly=True,
        secure=services.settings.tls or request.url.scheme == "https",
        samesite="strict",
    )
    return response


async def _audit_login(
    services: Services, request: Request, caller: Caller, outcome: int, site_id: int | None
) -> None:
    await to_thread.run_sync(
        lambda: record(
            services,
            request,
            caller,
            action="login",
            resource="session",
            outcome=outcome,
            site_id=site_id,
        )
    )


def _json_user(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in view.items()}


def _require_user(caller: Caller) -> int:
    if caller.user_id is None:
        raise AuthError(403, "only user accounts have sessions and passwords")
    return caller.user_id


@router.post("/logout", summary="End this session")
def logout(request: Request, services: ServicesDep, caller: PasswordChangeCaller) -> JSONResponse:
    _require_user(caller)
    token = request.cookies.get(session_store.COOKIE)
    if token:
        with write_transaction(services.engine) as conn:
            session_store.end(conn, token)
    record(services, request, caller, action="logout", resource="session", outcome=200)
    response = JSONResponse({"detail": "signed out"})
    response.delete_cookie(session_store.COOKIE, path="/")
    return response


@router.get("/me", summary="The signed-in account and, for sessions, its CSRF token")
def me(request: Request, services: ServicesDep, caller: WhoamiCaller) -> dict[str, Any]:
    info: dict[str, Any] = {
        "actor": caller.actor,
        "kind": caller.kind,
        "role": caller.role,
        "site_id": caller.site_id,
        "reading_sites": sorted(caller.granted_site_ids),
        "scopes": sorted(caller.scopes) if caller.scopes is not None else None,
        "must_change_password": caller.must_change_password,
    }
    token = request.cookies.get(session_store.COOKIE)
    if caller.kind == "user" and token:
        with services.engine.connect() as conn:
            info["csrf_token"] = conn.execute(
                select(session_store.sessions.c.csrf_token).where(
                    session_store.sessions.c.token_hash == session_store.token_hash(token)
                )
            ).scalar()
    return info


@router.post("/password", summary="Change the password (required after a one-time password)")
def change_password(
    body: PasswordChange, request: Request, services: ServicesDep, caller: PasswordChangeCaller
) -> dict[str, str]:
    user_id = _require_user(caller)
    with services.engine.connect() as conn:
        stored = conn.execute(
            select(users_t.c.password_hash).where(users_t.c.id == user_id)
        ).scalar_one()
    # argon2 runs outside the write transaction, which on SQLite holds the database lock.
    if not passwords.verify_password(stored, body.current_password):
        record(services, request, caller, action="update", resource="password", outcome=403)
        raise AuthError(403, "current password is wrong")
    if body.new_password == body.current_password:
        raise AuthError(400, "the new password must differ from the current one")
    try:
        new_hash = passwords.hash_password(body.new_password)
    except passwords.WeakPassword as exc:
        raise AuthError(400, str(exc)) from None
    this_session = session_store.token_hash(request.cookies.get(session_store.COOKIE) or "")
    with write_transaction(services.engine) as conn:
        conn.execute(
            update(users_t)
            .where(users_t.c.id == user_id)
            .values(password_hash=new_hash, must_change_password=False)
        )
        # Every other session of the account (a stolen cookie, too) must sign in anew.
        conn.execute(
            delete(session_store.sessions).where(
                session_store.sessions.c.user_id == user_id,
                session_store.sessions.c.token_hash != this_session,
            )
        )
    record(services, request, caller, action="update", resource="password", outcome=200)
    return {"detail": "password changed"}


@router.post("/totp/setup", summary="Start enrolling a TOTP authenticator")
def totp_setup(request: Request, services: ServicesDep, caller: AccountCaller) -> dict[str, str]:
    user_id = _require_user(caller)
    secret = totp.new_secret()
    with write_transaction(services.engine) as conn:
        row = conn.execute(
            select(users_t.c.username, users_t.c.totp_enabled).where(users_t.c.id == user_id)
        ).one()
        if row.totp_enabled:
            raise AuthError(409, "TOTP is already enabled; disable it first")
        conn.execute(update(users_t).where(users_t.c.id == user_id).values(totp_secret=secret))
    record(services, request, caller, action="update", resource="totp", outcome=200)
    return {"secret": secret, "otpauth_uri": totp.provisioning_uri(secret, row.username)}


@router.post("/totp/enable", summary="Confirm enrolment with a first code")
def totp_enable(
    body: TotpCode, request: Request, services: ServicesDep, caller: AccountCaller
) -> dict[str, str]:
    user_id = _require_user(caller)
    with write_transaction(services.engine) as conn:
        row = conn.execute(select(users_t).where(users_t.c.id == user_id)).mappings().one()
        if row["totp_enabled"] or not row["totp_secret"]:
            raise AuthError(409, "no TOTP enrolment in progress")
        step = totp.matching_step(row["totp_secret"], body.code, row["totp_last_step"])
        if step is not None:
            conn.execute(
                update(users_t)
                .where(users_t.c.id == user_id)
                .values(totp_enabled=True, totp_last_step=step)
            )
    record(
        services, request, caller, action="update", resource="totp", outcome=200 if step else 400
    )
    if step is None:
        raise AuthError(400, "wrong code")
    return {"detail": "TOTP enabled"}


@router.post("/totp/disable", summary="Remove the second factor (password and code required)")
def totp_disable(
    body: TotpDisable, request: Request, services: ServicesDep, caller: AccountCaller
) -> dict[str, str]:
    user_id = _require_user(caller)
    with write_transaction(services.engine) as conn:
        row = conn.execute(select(users_t).where(users_t.c.id == user_id)).mappings().one()
        ok = bool(
            row["totp_enabled"]
            and passwords.verify_password(row["password_hash"], body.password)
            and totp.matching_step(row["totp_secret"], body.code, row["totp_last_step"])
        )
        if ok:
            conn.execute(
                update(users_t)
                .where(users_t.c.id == user_id)
                .values(totp_enabled=False, totp_secret=None)
            )
    record(services, request, caller, action="update", resource="totp", outcome=200 if ok else 403)
    if not ok:
        raise AuthError(403, "wrong password or code")
    return {"detail": "TOTP disabled"}
