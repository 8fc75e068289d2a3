"""Recording findings and statuses in the index (connrad.qc.models)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from connrad.db.base import utcnow
from connrad.qc.findings import Finding, Severity, Status, status_of
from connrad.qc.models import QcFinding

findings_t = QcFinding.__table__
FAST, DEEP = "fast", "deep"
_MESSAGE_MAX = 512


def add(
    conn: Connection,
    findings: Iterable[Finding],
    *,
    stage: str,
    study_pk: int,
    series_pk: int | None = None,
    instance_pk: int | None = None,
) -> None:
    now = utcnow()
    rows = [
        {
            "study_pk": study_pk,
            "series_pk": series_pk,
            "instance_pk": instance_pk,
            "stage": stage,
            "code": f.code[:64],
            "severity": f.severity.value,
            "message": f.message[:_MESSAGE_MAX],
            "attribute": f.attribute[:64],
            "data": f.data or None,
            "created_at": now,
        }
        for f in findings
    ]
    if rows:
        conn.execute(insert(findings_t), rows)


def clear_deep(conn: Connection, study_pk: int, series_pk: int | None) -> None:
    """Remove earlier deep findings of a series (or the study-level ones: series None)."""
    series_match = (
        findings_t.c.series_pk.is_(None)
        if series_pk is None
        else findings_t.c.series_pk == series_pk
    )
    conn.execute(
        delete(findings_t).where(
            and_(findings_t.c.study_pk == study_pk, findings_t.c.stage == DEEP, series_match)
        )
    )


def load(conn: Connection, study_pk: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(findings_t).where(findings_t.c.study_pk == study_pk).order_by(findings_t.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def as_finding(row: dict[str, Any]) -> Finding:
    return Finding(
        str(row["code"]),
        Severity(row["severity"]),
        str(row["message"]),
        str(row["attribute"] or ""),
        dict(row["data"] or {}),
    )


def status_of_rows(rows: Sequence[dict[str, Any]]) -> Status:
    return status_of(as_finding(row) for row in rows)
