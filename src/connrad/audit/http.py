"""Audit records for HTTP requests: who did what to which resource, from where, with what
outcome. Details hold identifiers and counts, never patient data.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from connrad.audit.log import AuditRecord
from connrad.identity.caller import Caller
from connrad.services import Services


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def route_template(request: Request) -> str:
    """The matched route as a template with its router prefix (``/dicomweb/studies/{study}``).

    The route object knows its path relative to its router; the prefix is what precedes the
    template's segments in the request path (path parameters never span a slash).
    """
    template = getattr(request.scope.get("route"), "path", "")
    if not template:
        return ""
    own = template.strip("/").split("/")
    actual = request.url.path.strip("/").split("/")
    prefix = actual[: max(0, len(actual) - len(own))]
    return "/" + "/".join([*prefix, *own]) if prefix else template


def record(
    services: Services,
    request: Request,
    caller: Caller,
    *,
    action: str,
    resource: str,
    outcome: int,
    study_uid: str | None = None,
    site_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    services.audit.record(
        AuditRecord(
            actor=caller.actor,
            actor_site_id=caller.site_id,
            source=client_address(request),
            action=action,
            resource=resource,
            outcome=outcome,
            study_uid=study_uid,
            site_id=site_id,
            detail={"route": route_template(request), **(detail or {})},
        )
    )
