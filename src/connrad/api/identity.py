"""Re-identification: the real identity behind a pseudonym, for the sending site only.

Every answer, and every refusal, is audited. Searches by real identifiers are POSTed, so the
identifiers never appear in URLs, proxy logs or browser history; the vault is searched by
keyed blind indexes, so the database never holds them in clear. A study of a site the
caller may not re-identify is answered exactly like a study that does not exist.

Held instances (images waiting for Clean Pixel Data or a person's review) are listed,
released or discarded here too, by the administrators of their site.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, select

from connrad.access import ManageCaller, ReidentifyCaller
from connrad.archive.models import Instance, Patient, Study
from connrad.audit.http import record
from connrad.deid import held, records, vault
from connrad.deid.vault import IndexKind
from connrad.dicomweb.deps import ServicesDep
from connrad.identity.authenticate import AuthError
from connrad.identity.caller import Caller
from connrad.identity.models import Site
from connrad.identity.policy import Action, allows, site_scope
from connrad.services import Services

router = APIRouter(prefix="/api/identity", tags=["identity"])
held_router = APIRouter(prefix="/api/held", tags=["identity"])

_studies, _patients, _instances = Study.__table__, Patient.__table__, Instance.__table__
_sites = Site.__table__
Uid = Annotated[str, Path(min_length=1, max_length=64)]
HeldId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_NOT_FOUND = "study not found"


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: str | None = Field(None, min_length=1, max_length=64)
    patient_name: str | None = Field(None, min_length=1, max_length=324)
    accession_number: str | None = Field(None, min_length=1, max_length=16)
    site_id: int | None = Field(None, ge=1, le=2**63 - 1)

    @model_validator(mode="after")
    def _one_identifier(self) -> SearchIn:
        if not (self.patient_id or self.patient_name or self.accession_number):
            raise ValueError("give patient_id, patient_name or accession_number")
        return self


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clean: bool = Field(
        False, description="Run Clean Pixel Data first instead of releasing as it is."
    )


@router.post("/search", summary="Find pseudonymized patients and studies by real identifiers")
def search(
    body: SearchIn, request: Request, services: ServicesDep, caller: ReidentifyCaller
) -> dict[str, Any]:
    sites = _sites_to_search(services, caller, body.site_id)
    patients: list[dict[str, Any]] = []
    studies: list[dict[str, Any]] = []
    with services.engine.connect() as conn:
        for site_id in sites:
            key_versions = services.site_keys.all(site_id)
            if not key_versions:
                continue
            patients += _patients_found(conn, site_id, body, key_versions.values())
            if body.accession_number:
                studies += _studies_found(conn, site_id, body.accession_number, key_versions)
    record(
        services,
        request,
        caller,
        action="reidentify",
        resource="search",
        outcome=200,
        detail={
            "by": sorted(
                k for k in ("patient_id", "patient_name", "accession_number") if getattr(body, k)
            ),
            "patients": len(patients),
            "studies": len(studies),
        },
    )
    return {"patients": patients, "studies": studies}


@router.get("/studies/{study_uid}", summary="The real identity behind a pseudonymized study")
def study_identity(
    study_uid: Uid, request: Request, services: ServicesDep, caller: ReidentifyCaller
) -> dict[str, Any]:
    with services.engine.connect() as conn:
        found = conn.execute(
            select(_studies.c.site_id, _patients.c.patient_id)
            .join(_patients, _patients.c.id == _studies.c.patient_pk)
            .where(_studies.c.study_uid == study_uid)
        ).first()
        if found is None or not allows(caller, Action.REIDENTIFY, int(found.site_id)):
            _refuse(services, request, caller, "study", study_uid if found else None)
        site_id = int(found.site_id)
        keys = services.site_keys.all(site_id)
        patient = records.read(conn, site_id, records.PATIENT, str(found.patient_id), keys)
        study = records.read(conn, site_id, records.STUDY, study_uid, keys)
    if patient is None and study is None:
        # An identified or anonymized site's study: nothing was sealed, there is no way back.
        record(
            services,
            request,
            caller,
            action="reidentify",
            resource="study",
            outcome=404,
            study_uid=study_uid,
            site_id=site_id,
        )
        request.state.refusal_audited = True
        raise AuthError(404, "no identity is kept for this study")
    record(
        services,
        request,
        caller,
        action="reidentify",
        resource="study",
        outcome=200,
        study_uid=study_uid,
        site_id=site_id,
    )
    return {
        "study_uid": study_uid,
        "site_id": site_id,
        "patient_pseudonym": str(found.patient_id),
        "patient": patient or {},
        "study": study or {},
    }


@router.get("/instances/{sop_uid}", summary="Original identifiers and UIDs of an instance")
def instance_identity(
    sop_uid: Uid, request: Request, services: ServicesDep, caller: ReidentifyCaller
) -> dict[str, Any]:
    with services.engine.connect() as conn:
        found = conn.execute(
            select(_studies.c.site_id, _studies.c.study_uid)
            .join(_instances, _instances.c.study_pk == _studies.c.id)
            .where(_instances.c.sop_uid == sop_uid)
        ).first()
        if found is None or not allows(caller, Action.REIDENTIFY, int(found.site_id)):
            _refuse(services, request, caller, "instance", found.study_uid if found else None)
        site_id = int(found.site_id)
        values = records.read(
            conn, site_id, records.INSTANCE, sop_uid, services.site_keys.all(site_id)
        )
    outcome = 200 if values is not None else 404
    record(
        services,
        request,
        caller,
        action="reidentify",
        resource="instance",
        outcome=outcome,
        study_uid=str(found.study_uid),
        site_id=site_id,
        detail={"sop_uid": sop_uid},
    )
    if values is None:
        request.state.refusal_audited = True
        raise AuthError(404, "no identity is kept for this instance")
    uids = {
        k.removeprefix(records.UID_PREFIX): v
        for k, v in values.items()
        if k.startswith(records.UID_PREFIX)
    }
    originals = {k: v for k, v in values.items() if not k.startswith(records.UID_PREFIX)}
    return {"sop_uid": sop_uid, "site_id": site_id, "originals": originals, "uids": uids}


# --- held instances ------------------------------------------------------------------------


@held_router.get("", summary="Instances held out of the archive (burned-in text)")
def list_held(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    return [asdict(v) for v in held.list_held(services, site_scope(caller, Action.MANAGE))]


@held_router.post("/{held_id}/release", summary="Release a held instance, or have it cleaned")
def release_held(
    held_id: HeldId, body: ReleaseIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    site_id = _held_site(services, request, caller, held_id, "release")
    try:
        state = held.release(services, held_id, clean=body.clean)
    except held.HeldError as exc:
        raise AuthError(exc.status, str(exc)) from None
    record(
        services,
        request,
        caller,
        action="release",
        resource="held",
        outcome=200,
        site_id=site_id,
        detail={"id": held_id, "clean": body.clean},
    )
    return {"id": held_id, "state": state}


@held_router.delete("/{held_id}", summary="Discard a held instance")
def discard_held(
    held_id: HeldId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    site_id = _held_site(services, request, caller, held_id, "delete")
    try:
        held.discard(services, held_id)
    except held.HeldError as exc:
        raise AuthError(exc.status, str(exc)) from None
    record(
        services,
        request,
        caller,
        action="delete",
        resource="held",
        outcome=200,
        site_id=site_id,
        detail={"id": held_id},
    )
    return {"id": held_id, "state": "discarded"}


# --- helpers -------------------------------------------------------------------------------


def _held_site(
    services: Services, request: Request, caller: Caller, held_id: int, action: str
) -> int:
    site_id = held.site_of(services, held_id)
    if site_id is None or not allows(caller, Action.MANAGE, site_id):
        record(
            services,
            request,
            caller,
            action=action,
            resource="held",
            outcome=404,
            detail={"id": held_id},
        )
        request.state.refusal_audited = True
        raise AuthError(404, "held instance not found")
    return site_id


def _refuse(
    services: Services, request: Request, caller: Caller, resource: str, study_uid: str | None
) -> Any:
    record(
        services,
        request,
        caller,
        action="reidentify",
        resource=resource,
        outcome=404,
        study_uid=study_uid,
    )
    request.state.refusal_audited = True
    raise AuthError(404, f"{resource} not found")


def _sites_to_search(services: Services, caller: Caller, site_id: int | None) -> list[int]:
    scope = site_scope(caller, Action.REIDENTIFY)
    if site_id is not None:
        return [site_id] if scope is None or site_id in scope else []
    if scope is not None:
        return sorted(scope)
    with services.engine.connect() as conn:
        return sorted(int(i) for i in conn.execute(select(_sites.c.id)).scalars())


def _patients_found(
    conn: Connection, site_id: int, body: SearchIn, keys: Any
) -> list[dict[str, Any]]:
    pseudonyms: set[str] | None = None
    for key in keys:  # records sealed before a key rotation carry the older key's terms
        found = _patient_pseudonyms(conn, site_id, body, key)
        if found is not None:
            pseudonyms = found if pseudonyms is None else pseudonyms | found
    if not pseudonyms:
        return []
    rows = conn.execute(
        select(_patients.c.patient_id, _studies.c.study_uid)
        .join(_studies, _studies.c.patient_pk == _patients.c.id)
        .where(_patients.c.site_id == site_id, _patients.c.patient_id.in_(sorted(pseudonyms)))
        .order_by(_studies.c.study_date, _studies.c.id)
    ).all()
    by_patient: dict[str, list[str]] = {p: [] for p in sorted(pseudonyms)}
    for row in rows:
        by_patient[str(row.patient_id)].append(str(row.study_uid))
    return [
        {"site_id": site_id, "patient_id": pid, "studies": uids} for pid, uids in by_patient.items()
    ]


def _patient_pseudonyms(
    conn: Connection, site_id: int, body: SearchIn, key: bytes
) -> set[str] | None:
    """Pseudonyms matching every identifier given; None when only an accession was given."""
    matched: set[str] | None = None
    if body.patient_id:
        term = vault.blind_index(key, IndexKind.PATIENT_ID, body.patient_id)
        matched = _pseudonyms(conn, site_id, IndexKind.PATIENT_ID, [term])
    if body.patient_name:
        terms = _name_terms(key, body.patient_name)
        found = _pseudonyms(conn, site_id, IndexKind.PATIENT_NAME, terms) if terms else set()
        matched = found if matched is None else matched & found
    return matched


def _name_terms(key: bytes, name: str) -> list[str]:
    """One term per query: the full name in one script, or a family name alone."""
    if "^" in name or "=" in name:
        return [vault.blind_index(key, IndexKind.PATIENT_NAME, name.split("=")[0] or name)]
    return [vault.name_component_index(key, vault.NamePart.FAMILY, name)]


def _pseudonyms(conn: Connection, site_id: int, kind: IndexKind, terms: list[str]) -> set[str]:
    return {p for k, p in records.search(conn, site_id, kind, terms) if k == records.PATIENT}


def _studies_found(
    conn: Connection, site_id: int, accession: str, keys: dict[int, bytes]
) -> list[dict[str, Any]]:
    found: set[str] = set()
    for key in keys.values():
        term = vault.blind_index(key, IndexKind.ACCESSION, accession)
        found |= {
            p
            for k, p in records.search(conn, site_id, IndexKind.ACCESSION, [term])
            if k == records.STUDY
        }
    return [{"site_id": site_id, "study_uid": uid} for uid in sorted(found)]
