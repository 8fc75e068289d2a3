"""The access check every route declares: authenticate the request, then ask the policy.

Each route depends on exactly one :class:`Access` rule (``public`` where no credentials are
needed); the route-matrix test walks the app's route table and fails for a route without
one. Per-site decisions are taken where the data is queried, with
:func:`connrad.identity.policy.site_scope`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from connrad.audit.http import client_address, route_template
from connrad.audit.log import AuditRecord
from connrad.identity.authenticate import BEARER_CHALLENGE, AuthError
from connrad.identity.caller import ANONYMOUS, Caller
from connrad.identity.policy import Action, allows
from connrad.identity.sessions import COOKIE, CSRF_HEADER

# Declared so the OpenAPI document (and its "Authorize" dialog) shows how to authenticate;
# the values are read from the request below, in one place.
_bearer = HTTPBearer(
    auto_error=False, description="A device API key (crk_...) or an OAuth access token."
)
_session = APIKeyCookie(name=COOKIE, auto_error=False, description="Web session (sign in).")
_csrf = APIKeyHeader(
    name=CSRF_HEADER, auto_error=False, description="The session's CSRF token, on changes."
)


class Access:
    """A route's access rule; with ``action`` None, anyone (or anyone signed in) passes."""

    def __init__(
        self,
        action: Action | None,
        *,
        signed_in: bool = False,
        password_change: bool = False,
        users_only: bool = False,
    ) -> None:
        self.action = action
        self.signed_in = signed_in or users_only or action is not None
        self.password_change = password_change  # reachable while a new password is due
        self.users_only = users_only  # the account's own session, password, second factor

    def __repr__(self) -> str:
        return f"Access({self.action}, signed_in={self.signed_in})"

    def __call__(
        self,
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
        _session: Annotated[str | None, Security(_session)] = None,
        _csrf: Annotated[str | None, Security(_csrf)] = None,
    ) -> Caller:
        return self.resolve(request)

    def resolve(self, request: Request) -> Caller:
        services = request.app.state.services
        address = client_address(request)
        caller = services.authenticator.caller(
            authorization=request.headers.get("authorization"),
            session_token=request.cookies.get(COOKIE),
            csrf_token=request.headers.get(CSRF_HEADER),
            method=request.method,
            address=address,
        )
        request.state.caller = caller
        if not self.signed_in:
            return caller
        if caller.kind == "anonymous":
            raise AuthError(401, "authentication required", BEARER_CHALLENGE)
        if self.users_only and caller.kind != "user":
            raise AuthError(403, "only user accounts have sessions and passwords")
        if caller.must_change_password and not self.password_change:
            raise AuthError(403, "password change required")
        if self.action is not None and not allows(caller, self.action):
            request.state.denied_action = str(self.action)
            raise AuthError(403, "not permitted")
        return caller


def audit_refusal(request: Request, exc: AuthError) -> None:
    """Every refused request is in the trail: bad credentials, policy denials, hidden objects."""
    caller: Caller | None = getattr(request.state, "caller", None)
    route = route_template(request)
    request.app.state.services.audit.record(
        AuditRecord(
            actor=caller.actor if caller else "anonymous",
            actor_site_id=caller.site_id if caller else None,
            source=client_address(request),
            action=getattr(request.state, "denied_action", "access")[:16],
            resource="route",
            outcome=exc.status,
            detail={"route": route, "method": request.method, "reason": exc.detail},
        )
    )


def auth_error_response(exc: AuthError) -> JSONResponse:
    headers = {"WWW-Authenticate": exc.challenge} if exc.challenge else None
    return JSONResponse({"detail": exc.detail}, exc.status, headers=headers)


class PublicAccess(Access):
    """No credentials needed (health, sign-in, token endpoint, discovery).

    Credentials that fail (an expired session, a revoked key) do not block a public route:
    the caller is then anonymous, as if none had been sent.
    """

    def __init__(self) -> None:
        super().__init__(None)

    def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        try:
            return self.resolve(request)
        except AuthError:
            request.state.caller = ANONYMOUS
            return ANONYMOUS


public = PublicAccess()
whoami = Access(None, signed_in=True, password_change=True)
account = Access(None, users_only=True)
password_change = Access(None, users_only=True, password_change=True)

PublicCaller = Annotated[Caller, Depends(public)]
WhoamiCaller = Annotated[Caller, Depends(whoami)]
AccountCaller = Annotated[Caller, Depends(account)]
PasswordChangeCaller = Annotated[Caller, Depends(password_change)]
SearchCaller = Annotated[Caller, Depends(Access(Action.SEARCH))]
ReadCaller = Annotated[Caller, Depends(Access(Action.READ))]
StoreCaller = Annotated[Caller, Depends(Access(Action.STORE))]
ReidentifyCaller = Annotated[Caller, Depends(Access(Action.REIDENTIFY))]
AuditReadCaller = Annotated[Caller, Depends(Access(Action.AUDIT_READ))]
ManageCaller = Annotated[Caller, Depends(Access(Action.MANAGE))]
SystemCaller = Annotated[Caller, Depends(Access(Action.MANAGE_SYSTEM))]
