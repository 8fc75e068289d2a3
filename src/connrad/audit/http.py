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
            detail={"route": getattr(request.scope.get("route"), "path", ""), **(detail or {})},
        )
    )
