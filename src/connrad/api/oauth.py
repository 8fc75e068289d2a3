"""OAuth 2.0 token endpoint: ``client_credentials`` with ``private_key_jwt`` client
authentication (RFC 7523), as SMART Backend Services specify, and its discovery document.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from connrad.access import PublicCaller
from connrad.audit.http import client_address, record
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.dicomweb.deps import ServicesDep
from connrad.identity import oauth
from connrad.identity.authenticate import device_caller
from connrad.identity.models import Device, Site, UsedAssertion
from connrad.services import Services

router = APIRouter(tags=["auth"])
devices_t, sites_t, used_t = Device.__table__, Site.__table__, UsedAssertion.__table__
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_url(request: Request) -> str:
    """The URL clients must put in their assertions' ``aud``."""
    base = request.app.state.settings.public_base_url or str(request.base_url)
    return base.rstrip("/") + "/oauth/token"


def _error(exc: oauth.OAuthError) -> JSONResponse:
    status = 401 if exc.error == "invalid_client" else 400
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description}, status, headers=_NO_STORE
    )


@router.post("/oauth/token", summary="OAuth 2.0 token endpoint (client_credentials)")
def issue_token(
    request: Request,
    services: ServicesDep,
    caller: PublicCaller,
    grant_type: Annotated[str | None, Form(max_length=64)] = None,
    client_assertion_type: Annotated[str | None, Form(max_length=128)] = None,
    client_assertion: Annotated[str | None, Form(max_length=16384)] = None,
    scope: Annotated[str | None, Form(max_length=2048)] = None,
) -> JSONResponse:
    try:
        if not grant_type:
            # Answered here, not by the app's validation handler: RFC 6749 §5.2 error body.
            raise oauth.OAuthError("invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise oauth.OAuthError("unsupported_grant_type", "only client_credentials")
        if client_assertion_type != oauth.ASSERTION_TYPE or not client_assertion:
            raise oauth.OAuthError("invalid_request", "a private_key_jwt client assertion")
        device, granted = _authenticate_client(services, request, client_assertion, scope)
    except oauth.OAuthError as exc:
        record(
            services,
            request,
            caller,
            action="token",
            resource="token",
            outcome=401 if exc.error == "invalid_client" else 400,
            detail={"error": exc.error},
        )
        return _error(exc)
    token, expires_in = services.tokens.issue(f"device:{device['id']}", granted, device["site_id"])
    issued = device_caller(device, frozenset(granted), client_address(request))
    record(services, request, issued, action="token", resource="token", outcome=200)
    body = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": " ".join(granted),
    }
    return JSONResponse(body, headers=_NO_STORE)


def _authenticate_client(
    services: Services, request: Request, assertion: str, scope: str | None
) -> tuple[dict[str, Any], list[str]]:
    client_id = oauth.unverified_client_id(assertion)
    with services.engine.connect() as conn:
        device = (
            conn.execute(
                select(devices_t)
                .join(sites_t, sites_t.c.id == devices_t.c.site_id)
                .where(
                    devices_t.c.client_id == client_id,
                    devices_t.c.disabled.is_(False),
                    sites_t.c.disabled.is_(False),
                )
            )
            .mappings()
            .first()
        )
    if device is None or not device["jwks"]:
        raise oauth.OAuthError("invalid_client", "unknown client or no registered keys")
    verified = oauth.verify_client_assertion(
        assertion, jwks=device["jwks"], token_url=token_url(request)
    )
    granted = oauth.grant_scopes(scope, device["scopes"])
    if not granted:
        raise oauth.OAuthError("invalid_scope", "the client has no scopes")
    now = utcnow()
    try:
        with write_transaction(services.engine) as conn:
            conn.execute(delete(used_t).where(used_t.c.expires_at < now - timedelta(minutes=1)))
            conn.execute(
                insert(used_t).values(
                    jti=verified.jti, client_id=client_id, expires_at=verified.expires_at
                )
            )
    except IntegrityError:
        raise oauth.OAuthError("invalid_client", "client assertion already used") from None
    return dict(device), granted


@router.get(
    "/.well-known/smart-configuration", summary="SMART discovery: how backend services sign in"
)
def smart_configuration(request: Request, caller: PublicCaller) -> dict[str, Any]:
    return {
        "token_endpoint": token_url(request),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(oauth.ASSERTION_ALGORITHMS),
        "scopes_supported": ["dicomweb.read", "dicomweb.stow", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric"],
    }
