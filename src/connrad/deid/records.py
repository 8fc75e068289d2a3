"""Identity records in the vault: what is sealed at ingest, and how it is read back.

Three kinds of record per pseudonymized instance, each sealed under the site key and bound
to its row (kind and pseudonym as associated data):

- ``patient`` (keyed by the pseudonymous PatientID): PatientID, issuer, name, birth date,
  other IDs. Blind-index terms for the PatientID and the name make it searchable.
- ``study`` (keyed by the new Study Instance UID): accession number, study ID, the original
  Study Instance UID and date. The accession number is searchable.
- ``instance`` (keyed by the new SOP Instance UID): every original identifier the engine
  recorded and every UID it replaced (``uid:<new>`` -> old), so egress to the site's own
  PACS can restore the instance as the clinic sent it.

Rows are written in the indexing transaction of the instance (``write``), so a stored
pseudonymized instance always has its way back. The first record of a pseudonym wins: a
re-upload seals the same originals again and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, insert, select

from connrad.deid import vault
from connrad.deid.engine import Result
from connrad.deid.models import IdentityRecord, IdentityTerm
from connrad.deid.vault import IndexKind

records = IdentityRecord.__table__
terms = IdentityTerm.__table__

PATIENT, STUDY, INSTANCE = "patient", "study", "instance"
UID_PREFIX = "uid:"
_PATIENT_FIELDS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")
_STUDY_FIELDS = ("StudyInstanceUID", "AccessionNumber", "StudyID", "StudyDate")


@dataclass(frozen=True)
class VaultRow:
    kind: str
    pseudonym: str
    key_version: int
    sealed: bytes = field(repr=False)
    terms: tuple[tuple[str, str], ...] = ()  # (index kind, keyed HMAC)


def record_ref(kind: str, pseudonym: str) -> str:
    return f"{kind}:{pseudonym}"


def build_rows(
    result: Result, site_id: int, key_version: int, site_key: bytes
) -> tuple[VaultRow, ...]:
    """Seal the originals of one de-identified instance (CPU work, outside any transaction)."""
    originals = result.originals
    out = result.dataset

    def row(
        kind: str, pseudonym: str, values: Mapping[str, str], found: Iterable[tuple[str, str]] = ()
    ) -> VaultRow:
        sealed = vault.seal(site_key, site_id, values, record_ref=record_ref(kind, pseudonym))
        return VaultRow(kind, pseudonym, key_version, sealed, tuple(sorted(set(found))))

    patient_values = {k: originals[k] for k in _PATIENT_FIELDS if k in originals}
    patient_terms: set[tuple[str, str]] = set()
    if originals.get("PatientID", "").strip():
        term = vault.blind_index(site_key, IndexKind.PATIENT_ID, originals["PatientID"])
        patient_terms.add((IndexKind.PATIENT_ID.value, term))
    if originals.get("PatientName"):
        for term in vault.name_index_terms(site_key, originals["PatientName"]):
            patient_terms.add((IndexKind.PATIENT_NAME.value, term))
    rows = [row(PATIENT, result.pseudonym_id, patient_values, patient_terms)]

    study_uid = str(out.get("StudyInstanceUID", ""))
    if study_uid:
        study_values = {k: originals[k] for k in _STUDY_FIELDS if k in originals}
        study_terms = set()
        if originals.get("AccessionNumber", "").strip():
            term = vault.blind_index(site_key, IndexKind.ACCESSION, originals["AccessionNumber"])
            study_terms.add((IndexKind.ACCESSION.value, term))
        rows.append(row(STUDY, study_uid, study_values, study_terms))

    sop_uid = str(out.get("SOPInstanceUID", ""))
    if sop_uid:
        instance_values = dict(originals)
        instance_values.update({UID_PREFIX + new: old for old, new in result.uid_pairs})
        if result.date_offset_days is not None:
            instance_values["date_offset_days"] = str(result.date_offset_days)
        rows.append(row(INSTANCE, sop_uid, instance_values))
    return tuple(rows)


def write(conn: Connection, site_id: int, rows: Iterable[VaultRow]) -> None:
    """Insert rows not yet in the vault, with their terms, on the caller's transaction."""
    for vault_row in rows:
        where = and_(
            records.c.site_id == site_id,
            records.c.kind == vault_row.kind,
            records.c.pseudonym == vault_row.pseudonym,
        )
        if conn.execute(select(records.c.id).where(where)).first() is not None:
            continue
        record_id = conn.execute(
            insert(records)
            .values(
                site_id=site_id,
                kind=vault_row.kind,
                pseudonym=vault_row.pseudonym,
                key_version=vault_row.key_version,
                sealed=vault_row.sealed,
            )
            .returning(records.c.id)
        ).scalar_one()
        if vault_row.terms:
            conn.execute(
                insert(terms),
                [
                    {"site_id": site_id, "kind": kind, "term": term, "record_id": record_id}
                    for kind, term in vault_row.terms
                ],
            )


def read(
    conn: Connection, site_id: int, kind: str, pseudonym: str, keys: Mapping[int, bytes]
) -> dict[str, str | None] | None:
    """Open one record; ``keys`` maps the site's key versions to unwrapped keys."""
    found = conn.execute(
        select(records.c.key_version, records.c.sealed).where(
            records.c.site_id == site_id,
            records.c.kind == kind,
            records.c.pseudonym == pseudonym,
        )
    ).first()
    if found is None:
        return None
    key = keys[int(found.key_version)]
    return vault.open_record(
        key, site_id, bytes(found.sealed), record_ref=record_ref(kind, pseudonym)
    )


def search(
    conn: Connection, site_id: int, kind: IndexKind, term_values: Iterable[str]
) -> list[tuple[str, str]]:
    """(record kind, pseudonym) of records holding every one of the given terms."""
    wanted = sorted(set(term_values))
    if not wanted:
        return []
    matches: set[int] | None = None
    for term in wanted:
        ids = set(
            conn.execute(
                select(terms.c.record_id).where(
                    terms.c.site_id == site_id, terms.c.kind == kind.value, terms.c.term == term
                )
            ).scalars()
        )
        matches = ids if matches is None else matches & ids
    if not matches:
        return []
    rows = conn.execute(
        select(records.c.kind, records.c.pseudonym).where(records.c.id.in_(sorted(matches)))
    )
    return sorted((str(r.kind), str(r.pseudonym)) for r in rows)
