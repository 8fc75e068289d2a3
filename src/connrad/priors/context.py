"""The new study as the site's PACS knows it: the real patient, the original UID and date.

Under ``identified`` the archive holds them as received. Under ``pseudonymized`` they are
opened from the vault (the patient record of the pseudonymous PatientID, the study record of
the new Study Instance UID): the PACS files the patient under the real PatientID. Under
``anonymized`` there is no way back to the patient, so there are no priors to fetch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from connrad.archive.models import Patient, Series, Study
from connrad.deid import records
from connrad.deid.pipeline import IDENTIFIED, PSEUDONYMIZED
from connrad.deid.pseudonyms import remap_uid
from connrad.priors.query import PatientKey
from connrad.priors.relevance import Current

if TYPE_CHECKING:
    from connrad.services import Services

S, R, PT = Study.__table__, Series.__table__, Patient.__table__


@dataclass(frozen=True)
class CurrentStudy:
    study_pk: int
    site_id: int
    stored_uid: str  # as the archive holds it
    policy: str
    patient: PatientKey
    relevance: Current
    uid_key: bytes | None = field(default=None, repr=False)  # the site key UIDs are remapped by

    def stored_uid_of(self, original_uid: str) -> str:
        """The UID a study of the PACS gets in the archive (the same under ``identified``)."""
        return original_uid if self.uid_key is None else remap_uid(self.uid_key, original_uid)


def load(services: Services, study_pk: int) -> CurrentStudy | None:
    """The study's context, or None when it is gone or its policy allows no priors."""
    with services.engine.connect() as conn:
        row = conn.execute(
            select(
                S.c.site_id,
                S.c.study_uid,
                S.c.study_date,
                S.c.study_time,
                S.c.modalities_in_study,
                S.c.first_received_at,
                PT.c.patient_id,
                PT.c.issuer_of_patient_id,
            )
            .join(PT, PT.c.id == S.c.patient_pk)
            .where(S.c.id == study_pk)
        ).first()
        if row is None:
            return None
        site_id = int(row.site_id)
        policy = _policy(services, site_id)
        if policy == IDENTIFIED:
            patient = PatientKey(str(row.patient_id), str(row.issuer_of_patient_id or ""))
            original_uid, original_date, uid_key = str(row.study_uid), str(row.study_date), None
        elif policy == PSEUDONYMIZED:
            opened = _from_vault(services, conn, site_id, str(row.patient_id), str(row.study_uid))
            if opened is None:
                return None
            patient, original_uid, original_date = opened
            uid_key = services.site_keys.current(site_id)[1]
        else:
            return None
        body_parts = _body_parts(conn, study_pk)
    if not original_date.strip():  # no StudyDate: it was made about when it arrived
        original_date = row.first_received_at.strftime("%Y%m%d")
    current = Current(
        study_uid=original_uid,
        study_date=original_date,
        study_time=str(row.study_time or ""),
        modalities=frozenset(m for m in str(row.modalities_in_study or "").split("\\") if m),
        body_parts=body_parts,
    )
    return CurrentStudy(
        study_pk, site_id, str(row.study_uid), policy, patient, current, uid_key=uid_key
    )


def _policy(services: Services, site_id: int) -> str:
    deidentifier = services.ingest.deidentifier
    return IDENTIFIED if deidentifier is None else deidentifier.policy(site_id).deid


def _from_vault(
    services: Services, conn: Connection, site_id: int, pseudonym: str, study_uid: str
) -> tuple[PatientKey, str, str] | None:
    keys = services.site_keys.all(site_id)
    patient = records.read(conn, site_id, records.PATIENT, pseudonym, keys)
    study = records.read(conn, site_id, records.STUDY, study_uid, keys)
    if patient is None or study is None or not study.get("StudyInstanceUID"):
        return None
    key = PatientKey(
        str(patient.get("PatientID") or ""), str(patient.get("IssuerOfPatientID") or "")
    )
    return key, str(study["StudyInstanceUID"]), str(study.get("StudyDate") or "")


def _body_parts(conn: Connection, study_pk: int) -> frozenset[str]:
    parts = conn.execute(
        select(R.c.body_part_examined).where(R.c.study_pk == study_pk).distinct()
    ).scalars()
    return frozenset(str(p).strip() for p in parts if p and str(p).strip())
