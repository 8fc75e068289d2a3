"""Writing and reading prior links; a link is only ever made within one patient.

The viewer trusts a link to show two studies of the same person side by side, so a study
filed under another patient row (another PatientID or issuer, whatever the PACS answered)
is never linked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from connrad.archive.models import Study
from connrad.db.base import utcnow
from connrad.priors.models import StudyPrior

S = Study.__table__
P = StudyPrior.__table__


def link(conn: Connection, study_pk: int, prior_pks: Iterable[int]) -> list[int]:
    """Link the priors (same patient, not the study itself) not yet linked; the new links."""
    patient_pk = conn.execute(select(S.c.patient_pk).where(S.c.id == study_pk)).scalar()
    if patient_pk is None:
        return []
    wanted = sorted(set(prior_pks) - {study_pk})
    if not wanted:
        return []
    same_patient = set(
        conn.execute(
            select(S.c.id).where(S.c.id.in_(wanted), S.c.patient_pk == patient_pk)
        ).scalars()
    )
    linked = set(conn.execute(select(P.c.prior_study_pk).where(P.c.study_pk == study_pk)).scalars())
    added: list[int] = []
    now = utcnow()
    for prior_pk in wanted:
        if prior_pk not in same_patient or prior_pk in linked:
            continue
        try:
            with conn.begin_nested():  # another job linked it meanwhile: nothing to add
                conn.execute(
                    insert(P).values(study_pk=study_pk, prior_study_pk=prior_pk, linked_at=now)
                )
        except IntegrityError:
            continue
        added.append(prior_pk)
    return added


def linked_study_pks(conn: Connection, study_pk: int) -> set[int]:
    return set(conn.execute(select(P.c.prior_study_pk).where(P.c.study_pk == study_pk)).scalars())


def priors_of(conn: Connection, study_pk: int) -> list[dict[str, Any]]:
    """The study's linked priors, most recent first, as the archive holds them.

    UIDs and dates are the archive's (pseudonymous UIDs and shifted dates under a
    pseudonymized policy), consistent with how the study itself is shown.
    """
    rows = conn.execute(
        select(
            S.c.id,
            S.c.study_uid,
            S.c.study_date,
            S.c.study_time,
            S.c.modalities_in_study,
            S.c.study_description,
            S.c.num_series,
            S.c.num_instances,
            P.c.linked_at,
        )
        .join(P, P.c.prior_study_pk == S.c.id)
        .where(P.c.study_pk == study_pk)
        .order_by(S.c.study_date.desc(), S.c.study_time.desc(), S.c.id.desc())
    ).all()
    return [
        {
            "study_pk": int(row.id),
            "study_uid": row.study_uid,
            "study_date": row.study_date,
            "study_time": row.study_time,
            "modalities": [m for m in (row.modalities_in_study or "").split("\\") if m],
            "study_description": row.study_description,
            "num_series": int(row.num_series),
            "num_instances": int(row.num_instances),
            "linked_at": row.linked_at,
        }
        for row in rows
    ]
