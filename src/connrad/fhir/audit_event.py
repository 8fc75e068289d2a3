"""FHIR R4 AuditEvent read and search: the audit trail for administrators and auditors.

Administrators see every event; site administrators (and devices with
``system/AuditEvent.rs``) see their own site's. Reading the trail is audited too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from connrad.access import AuditReadCaller
from connrad.audit import fhir
from connrad.audit.http import record
from connrad.dicomweb.deps import ServicesDep
from connrad.identity.policy import Action, site_scope

router = APIRouter(prefix="/fhir", tags=["fhir"])
FHIR_JSON = "application/fhir+json"


def fhir_base(request: Request) -> str:
    base = request.app.state.settings.public_base_url or str(request.base_url)
    return base.rstrip("/") + "/fhir"


def fhir_response(content: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(content, status, media_type=FHIR_JSON)


@router.get("/AuditEvent", summary="Search the audit trail (FHIR R4 AuditEvent)")
def search(request: Request, services: ServicesDep, caller: AuditReadCaller) -> JSONResponse:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    scope = site_scope(caller, Action.AUDIT_READ)
    try:
        with services.engine.connect() as conn:
            bundle = fhir.search_audit_events(
                conn, params, site_ids=scope, base_url=fhir_base(request)
            )
    except fhir.FhirSearchError as exc:
        record(services, request, caller, action="search", resource="AuditEvent", outcome=400)
        return fhir_response(fhir.operation_outcome("error", "invalid", str(exc)), 400)
    record(
        services,
        request,
        caller,
        action="search",
        resource="AuditEvent",
        outcome=200,
        detail={"total": bundle.get("total"), "parameters": sorted(params)},
    )
    return fhir_response(bundle)


@router.get("/AuditEvent/{event_id}", summary="One audit event (FHIR R4 AuditEvent)")
def read(
    event_id: str, request: Request, services: ServicesDep, caller: AuditReadCaller
) -> JSONResponse:
    scope = site_scope(caller, Action.AUDIT_READ)
    with services.engine.connect() as conn:
        event = fhir.read_audit_event(conn, event_id, site_ids=scope, base_url=fhir_base(request))
    record(
        services,
        request,
        caller,
        action="read",
        resource="AuditEvent",
        outcome=200 if event else 404,
        detail={"id": event_id[:20]},
    )
    if event is None:
        return fhir_response(
            fhir.operation_outcome("error", "not-found", "AuditEvent not found"), 404
        )
    return fhir_response(event)
