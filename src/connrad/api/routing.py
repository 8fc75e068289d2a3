"""Destinations, routing rules and the backup queues, for the administrators of a site.

Every change is audited (``api.admin._change``); objects of a site the caller may not manage
answer 404 like missing ones. A destination's secret is write-only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import Field, model_validator
from sqlalchemy import Connection, select

from connrad.access import ManageCaller, SearchCaller
from connrad.api.admin import BodyId, _Body, _change, _own, _read
from connrad.archive.models import Study
from connrad.audit.http import record
from connrad.dicomweb.deps import ServicesDep
from connrad.identity import admin
from connrad.identity.authenticate import AuthError
from connrad.identity.policy import Action, site_scope
from connrad.routing import destinations, outbox, rules
from connrad.routing.senders.base import probe

router = APIRouter(prefix="/api", tags=["routing"])
DestinationId = Annotated[int, Path(ge=1, le=2**63 - 1)]
RuleId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Uid = Annotated[str, Path(min_length=1, max_length=64)]
S = Study.__table__


class DestinationIn(_Body):
    site_id: BodyId
    name: str = Field(min_length=1, max_length=128)
    kind: Literal["dicom", "dicomweb"]
    ae_title: str | None = Field(None, min_length=1, max_length=16)
    host: str | None = Field(None, min_length=1, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    tls: bool = False
    url: str | None = Field(None, min_length=1, max_length=2048)
    auth: Literal["basic", "bearer"] | None = None
    secret: str | None = Field(None, min_length=1, max_length=4096)
    trusted: bool = Field(False, description="The site's own PACS: receives identified data.")
    backup: bool = Field(True, description="Back up every study of the site here.")

    @model_validator(mode="after")
    def _address(self) -> DestinationIn:
        if self.kind == "dicom" and not (self.ae_title and self.host and self.port):
            raise ValueError("a DICOM destination needs ae_title, host and port")
        if self.kind == "dicomweb" and not self.url:
            raise ValueError("a DICOMweb destination needs url")
        return self


class RuleIn(_Body):
    destination_id: BodyId
    modality: str = Field("", max_length=16)
    qc: Literal["any", "checked", "passed"] = "any"


def _destination_site(conn: Connection, destination_id: int) -> int:
    return int(destinations.get(conn, destination_id)["site_id"])


def _owned_destination(services: Any, caller: Any, destination_id: int) -> int:
    site_id = _read(services, lambda c: _destination_site(c, destination_id))
    _own(caller, site_id, "destination")
    return site_id


@router.get("/admin/destinations", summary="Destinations of the sites the caller manages")
def list_destinations(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    scope = site_scope(caller, Action.MANAGE)
    views = _read(services, lambda c: destinations.list_for(c, scope))
    return [admin.as_json(v) for v in views]


@router.post("/admin/destinations", status_code=201, summary="Register a destination")
def create_destination(
    body: DestinationIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _own(caller, body.site_id, "site")

    def work(conn: Connection) -> dict[str, Any]:
        if body.kind == "dicom":
            assert body.ae_title and body.host and body.port
            return destinations.create_dicom(
                conn,
                body.site_id,
                body.name,
                ae_title=body.ae_title,
                host=body.host,
                port=body.port,
                tls=body.tls,
                trusted=body.trusted,
                backup=body.backup,
            )
        return destinations.create_dicomweb(
            conn,
            body.site_id,
            body.name,
            url=body.url or "",
            auth_kind=body.auth or "",
            auth_secret=body.secret or "",
            trusted=body.trusted,
            backup=body.backup,
        )

    view = _change(services, request, caller, "destination", "create", work, lambda v: v["site_id"])
    return admin.as_json(view)


@router.post(
    "/admin/destinations/{destination_id}/test",
    summary="C-ECHO (DICOM) or an HTTP probe (DICOMweb) of a destination",
)
def test_destination(
    destination_id: DestinationId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    site_id = _owned_destination(services, caller, destination_id)
    spec = _read(services, lambda c: destinations.spec_of(c, destination_id))
    ok, detail = probe(spec, calling_ae=services.settings.ae_title)
    record(
        services,
        request,
        caller,
        action="execute",
        resource="destination",
        outcome=200 if ok else 502,
        site_id=site_id,
        detail={"id": destination_id, "test": "ok" if ok else "failed"},
    )
    return {"destination_id": destination_id, "ok": ok, "detail": detail}


def _pause(
    destination_id: int, paused: bool, request: Request, services: Any, caller: Any
) -> dict[str, Any]:
    _owned_destination(services, caller, destination_id)
    view = _change(
        services,
        request,
        caller,
        "destination",
        "update",
        lambda c: destinations.set_paused(c, destination_id, paused),
        lambda v: v["site_id"],
    )
    return admin.as_json(view)


@router.post("/admin/destinations/{destination_id}/pause", summary="Pause a destination")
def pause_destination(
    destination_id: DestinationId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    return _pause(destination_id, True, request, services, caller)


@router.post("/admin/destinations/{destination_id}/resume", summary="Resume a destination")
def resume_destination(
    destination_id: DestinationId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    return _pause(destination_id, False, request, services, caller)


@router.get("/admin/routing-rules", summary="Routing rules of the sites the caller manages")
def list_rules(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    scope = site_scope(caller, Action.MANAGE)
    return [admin.as_json(r) for r in _read(services, lambda c: rules.list_for(c, scope))]


@router.post("/admin/routing-rules", status_code=201, summary="Add a routing rule")
def create_rule(
    body: RuleIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _owned_destination(services, caller, body.destination_id)
    view = _change(
        services,
        request,
        caller,
        "routing-rule",
        "create",
        lambda c: rules.create(c, body.destination_id, modality=body.modality, qc=body.qc),
        lambda v: v["site_id"],
    )
    if services.routing_rules is not None:
        services.routing_rules.forget()
    return admin.as_json(view)


@router.delete("/admin/routing-rules/{rule_id}", status_code=204, summary="Remove a routing rule")
def delete_rule(
    rule_id: RuleId, request: Request, services: ServicesDep, caller: ManageCaller
) -> None:
    site_id = _read(services, lambda c: int(rules.get(c, rule_id)["site_id"]))
    _own(caller, site_id, "rule")
    _change(services, request, caller, "routing-rule", "delete", lambda c: rules.remove(c, rule_id))
    if services.routing_rules is not None:
        services.routing_rules.forget()


@router.get("/queues", summary="Backup queues: depth, oldest age, failures per destination")
def queues(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    scope = site_scope(caller, Action.MANAGE)
    return _read(services, lambda c: outbox.queue_stats(c, scope))


@router.post("/queues/{destination_id}/retry", summary="Resubmit a destination's dead letters")
def retry_dead(
    destination_id: DestinationId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _owned_destination(services, caller, destination_id)
    count = _change(
        services,
        request,
        caller,
        "queue",
        "update",
        lambda c: outbox.resubmit_dead(c, destination_id),
    )
    return {"destination_id": destination_id, "resubmitted": count}


@router.post("/queues/{destination_id}/purge", summary="Delete a destination's dead letters")
def purge_dead(
    destination_id: DestinationId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _owned_destination(services, caller, destination_id)
    count = _change(
        services, request, caller, "queue", "delete", lambda c: outbox.purge(c, destination_id)
    )
    return {"destination_id": destination_id, "purged": count}


def _visible_study(conn: Connection, caller: Any, study_uid: str) -> Any:
    """The study's key and site; 404 (like a missing one) when the caller may not search it."""
    row = conn.execute(select(S.c.id, S.c.site_id).where(S.c.study_uid == study_uid)).first()
    scope = site_scope(caller, Action.SEARCH)
    if row is None or (scope is not None and int(row.site_id) not in scope):
        raise AuthError(404, "study not found")
    return row


@router.get("/studies/{study_uid}/backup", summary="A study's backup status per destination")
def study_backup(
    study_uid: Uid, request: Request, services: ServicesDep, caller: SearchCaller
) -> dict[str, Any]:
    with services.engine.connect() as conn:
        row = _visible_study(conn, caller, study_uid)
        per_destination = outbox.study_backup(conn, int(row.id))
    record(
        services,
        request,
        caller,
        action="read",
        resource="backup",
        outcome=200,
        study_uid=study_uid,
        site_id=int(row.site_id),
    )
    return {"study_uid": study_uid, "destinations": per_destination}


@router.get("/studies/{study_uid}/priors", summary="Earlier studies of the patient, linked")
def study_priors(
    study_uid: Uid, request: Request, services: ServicesDep, caller: SearchCaller
) -> dict[str, Any]:
    from connrad.priors.links import priors_of

    with services.engine.connect() as conn:
        row = _visible_study(conn, caller, study_uid)
        priors = priors_of(conn, int(row.id))
    record(
        services,
        request,
        caller,
        action="read",
        resource="priors",
        outcome=200,
        study_uid=study_uid,
        site_id=int(row.site_id),
    )
    return {
        "study_uid": study_uid,
        "priors": [
            {
                k: v.isoformat() if hasattr(v, "isoformat") else v
                for k, v in p.items()
                if k != "study_pk"
            }
            for p in priors
        ],
    }
