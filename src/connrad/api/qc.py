"""Where quality shows: QC verdicts per study, series and instance, and the worklist.

Reading a verdict is a search-level right on the study's site (the clinic that sent it, the
radiologists reading it); releasing a quarantined study or asking for a new check is a
site administrator's. Every read is audited like any other read of a patient's study; a
study the caller may not see is answered exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import Connection, select, update

from connrad.access import ManageCaller, SearchCaller
from connrad.archive.models import Instance, Patient, Series, Study
from connrad.audit.http import record as audit
from connrad.db.transaction import write_transaction
from connrad.dicomweb.deps import ServicesDep
from connrad.identity.authenticate import AuthError
from connrad.identity.caller import Caller
from connrad.identity.models import Site
from connrad.identity.policy import Action, site_scope
from connrad.jobs import queue
from connrad.qc import record as qc_record
from connrad.qc.models import PENDING
from connrad.qc.service import SERIES_JOB
from connrad.routing.outbox import backup_summary
from connrad.services import Services

router = APIRouter(tags=["qc"])
S, R, N, P = Study.__table__, Series.__table__, Instance.__table__, Patient.__table__
_sites = Site.__table__
Uid = Annotated[str, Path(min_length=1, max_length=64)]
_NOT_FOUND = "study not found"


def _study(conn: Connection, caller: Caller, study_uid: str, action: Action) -> Any:
    row = conn.execute(
        select(S.c.id, S.c.site_id, S.c.qc_status, S.c.qc_checked_at, S.c.quarantined).where(
            S.c.study_uid == study_uid
        )
    ).first()
    scope = site_scope(caller, action)
    if row is None or (scope is not None and int(row.site_id) not in scope):
        raise AuthError(404, _NOT_FOUND)
    return row


def _findings_view(conn: Connection, study_pk: int) -> list[dict[str, Any]]:
    series_uids = dict(
        conn.execute(select(R.c.id, R.c.series_uid).where(R.c.study_pk == study_pk)).all()
    )
    rows = qc_record.load(conn, study_pk)
    instance_pks = {r["instance_pk"] for r in rows if r["instance_pk"] is not None}
    sop_uids = (
        dict(conn.execute(select(N.c.id, N.c.sop_uid).where(N.c.id.in_(instance_pks))).all())
        if instance_pks
        else {}
    )
    out = []
    for row in rows:
        level = "instance" if row["instance_pk"] else "series" if row["series_pk"] else "study"
        view: dict[str, Any] = {
            "level": level,
            "stage": row["stage"],
            "code": row["code"],
            "severity": row["severity"],
            "message": row["message"],
        }
        if row["series_pk"] is not None:
            view["series_uid"] = series_uids.get(row["series_pk"])
        if row["instance_pk"] is not None:
            view["sop_instance_uid"] = sop_uids.get(row["instance_pk"])
        if row["attribute"]:
            view["attribute"] = row["attribute"]
        if row["data"]:
            view["data"] = row["data"]
        out.append(view)
    return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _audit_read(
    services: Services, request: Request, caller: Caller, study_uid: str, site_id: int, what: str
) -> None:
    audit(
        services,
        request,
        caller,
        action="read",
        resource="qc",
        outcome=200,
        study_uid=study_uid,
        site_id=site_id,
        detail={"level": what},
    )


@router.get("/api/studies/{study_uid}/qc", summary="A study's quality verdict and findings")
def study_qc(
    study_uid: Uid, request: Request, services: ServicesDep, caller: SearchCaller
) -> dict[str, Any]:
    with services.engine.connect() as conn:
        study = _study(conn, caller, study_uid, Action.SEARCH)
        series = conn.execute(
            select(
                R.c.series_uid, R.c.modality, R.c.series_number, R.c.num_instances, R.c.qc_status
            )
            .where(R.c.study_pk == study.id)
            .order_by(R.c.series_number, R.c.id)
        ).all()
        findings = _findings_view(conn, int(study.id))
    _audit_read(services, request, caller, study_uid, int(study.site_id), "study")
    return {
        "study_uid": study_uid,
        "status": study.qc_status,
        "checked_at": _iso(study.qc_checked_at),
        "quarantined": bool(study.quarantined),
        "series": [
            {
                "series_uid": s.series_uid,
                "modality": s.modality,
                "series_number": s.series_number,
                "instances": s.num_instances,
                "status": s.qc_status,
            }
            for s in series
        ],
        "findings": findings,
    }


@router.get("/api/studies/{study_uid}/series/{series_uid}/qc", summary="A series' quality verdict")
def series_qc(
    study_uid: Uid, series_uid: Uid, request: Request, services: ServicesDep, caller: SearchCaller
) -> dict[str, Any]:
    with services.engine.connect() as conn:
        study = _study(conn, caller, study_uid, Action.SEARCH)
        series = conn.execute(
            select(R.c.qc_status, R.c.modality).where(
                R.c.study_pk == study.id, R.c.series_uid == series_uid
            )
        ).first()
        if series is None:
            raise AuthError(404, "series not found")
        findings = [
            f for f in _findings_view(conn, int(study.id)) if f.get("series_uid") == series_uid
        ]
    _audit_read(services, request, caller, study_uid, int(study.site_id), "series")
    return {
        "study_uid": study_uid,
        "series_uid": series_uid,
        "modality": series.modality,
        "status": series.qc_status,
        "findings": findings,
    }


@router.get(
    "/api/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/qc",
    summary="An instance's quality findings",
)
def instance_qc(
    study_uid: Uid,
    series_uid: Uid,
    sop_uid: Uid,
    request: Request,
    services: ServicesDep,
    caller: SearchCaller,
) -> dict[str, Any]:
    from connrad.qc.findings import status_of

    with services.engine.connect() as conn:
        study = _study(conn, caller, study_uid, Action.SEARCH)
        found = conn.execute(
            select(N.c.id)
            .join(R, R.c.id == N.c.series_pk)
            .where(N.c.study_pk == study.id, R.c.series_uid == series_uid, N.c.sop_uid == sop_uid)
        ).first()
        if found is None:
            raise AuthError(404, "instance not found")
        findings = [
            f for f in _findings_view(conn, int(study.id)) if f.get("sop_instance_uid") == sop_uid
        ]
    _audit_read(services, request, caller, study_uid, int(study.site_id), "instance")
    status = status_of(qc_record.as_finding({**f, "attribute": "", "data": None}) for f in findings)
    return {
        "study_uid": study_uid,
        "series_uid": series_uid,
        "sop_instance_uid": sop_uid,
        "status": status.value,
        "findings": findings,
    }


def _manage(
    services: Services, request: Request, caller: Caller, study_uid: str, what: str, change: Any
) -> dict[str, Any]:
    with write_transaction(services.engine) as conn:
        study = _study(conn, caller, study_uid, Action.MANAGE)
        change(conn, study)
    audit(
        services,
        request,
        caller,
        action="update",
        resource="qc",
        outcome=200,
        study_uid=study_uid,
        site_id=int(study.site_id),
        detail={"change": what},
    )
    with services.engine.connect() as conn:
        row = conn.execute(select(S.c.qc_status, S.c.quarantined).where(S.c.id == study.id)).one()
    return {"study_uid": study_uid, "status": row.qc_status, "quarantined": bool(row.quarantined)}


@router.post(
    "/api/studies/{study_uid}/qc/release",
    summary="Release a quarantined study to the worklist and routing (site administrators)",
)
def release(
    study_uid: Uid, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    def change(conn: Connection, study: Any) -> None:
        conn.execute(update(S).where(S.c.id == study.id).values(quarantined=False))

    return _manage(services, request, caller, study_uid, "release", change)


@router.post(
    "/api/studies/{study_uid}/qc/recheck",
    summary="Run the study's deep quality checks again (site administrators)",
)
def recheck(
    study_uid: Uid, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    def change(conn: Connection, study: Any) -> None:
        series_pks = conn.execute(select(R.c.id).where(R.c.study_pk == study.id)).scalars().all()
        conn.execute(update(R).where(R.c.study_pk == study.id).values(qc_status=PENDING))
        conn.execute(update(S).where(S.c.id == study.id).values(qc_status=PENDING))
        for series_pk in series_pks:
            queue.enqueue(conn, SERIES_JOB, {"series_pk": int(series_pk)}, delay=timedelta(0))

    return _manage(services, request, caller, study_uid, "recheck", change)


@router.get("/api/worklist", summary="Studies by arrival, newest first, with their QC badge")
def worklist(
    request: Request,
    services: ServicesDep,
    caller: SearchCaller,
    quarantined: Annotated[
        bool, Query(description="List the quarantined studies instead (site administrators).")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    scope = site_scope(caller, Action.MANAGE if quarantined else Action.SEARCH)
    if scope is not None and not scope:
        raise AuthError(403, "not allowed")
    query = (
        select(
            S.c.id,
            S.c.study_uid,
            S.c.study_date,
            S.c.study_description,
            S.c.modalities_in_study,
            S.c.num_series,
            S.c.num_instances,
            S.c.last_received_at,
            S.c.qc_status,
            S.c.quarantined,
            _sites.c.code.label("site"),
            P.c.patient_id,
            P.c.name_alphabetic,
            P.c.name_ideographic,
            P.c.name_phonetic,
            P.c.sex,
        )
        .join(P, P.c.id == S.c.patient_pk)
        .join(_sites, _sites.c.id == S.c.site_id)
        .where(S.c.quarantined.is_(quarantined))
        .order_by(S.c.last_received_at.desc(), S.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if scope is not None:
        query = query.where(S.c.site_id.in_(scope))
    with services.engine.connect() as conn:
        rows = conn.execute(query).all()
        counts = _finding_counts(conn, [int(r.id) for r in rows])
        backups = backup_summary(conn, {int(r.id): int(r.num_instances) for r in rows})
    audit(
        services,
        request,
        caller,
        action="search",
        resource="worklist",
        outcome=200,
        detail={"studies": len(rows), "quarantined": quarantined},
    )
    return {
        "studies": [
            {
                "study_uid": r.study_uid,
                "site": r.site,
                "patient_id": r.patient_id,
                "patient_name": "=".join(
                    g for g in (r.name_alphabetic, r.name_ideographic, r.name_phonetic)
                ).rstrip("="),
                "sex": r.sex,
                "study_date": r.study_date,
                "description": r.study_description,
                "modalities": [m for m in r.modalities_in_study.split("\\") if m],
                "series": r.num_series,
                "instances": r.num_instances,
                "received_at": _iso(r.last_received_at),
                "qc": {
                    "status": r.qc_status,
                    "quarantined": bool(r.quarantined),
                    **counts.get(int(r.id), {"fail": 0, "warn": 0}),
                },
                "backup": backups.get(int(r.id), "none"),
            }
            for r in rows
        ],
        "limit": limit,
        "offset": offset,
    }


def _finding_counts(conn: Connection, study_pks: list[int]) -> dict[int, dict[str, int]]:
    from sqlalchemy import func

    if not study_pks:
        return {}
    findings = qc_record.findings_t
    rows = conn.execute(
        select(findings.c.study_pk, findings.c.severity, func.count())
        .where(findings.c.study_pk.in_(study_pks))
        .group_by(findings.c.study_pk, findings.c.severity)
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for study_pk, severity, count in rows:
        counts.setdefault(int(study_pk), {"fail": 0, "warn": 0})[str(severity)] = int(count)
    return counts
