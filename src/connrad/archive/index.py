"""Writes to the hierarchy index; runs inside the ingest transaction.

Counts and ModalitiesInStudy are updated here, as each instance arrives, so queries never
recount. The first instance of a patient, study or series decides its indexed attributes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Insert, Select, Table, bindparam, insert, select, update

from connrad.archive.models import Instance, Patient, Series, Study
from connrad.db.base import utcnow
from connrad.dicom.parse import InstanceHeader
from connrad.storage import StagedBlob

if TYPE_CHECKING:
    from connrad.archive.ingest import Source, StoredInstance

patients = Patient.__table__
studies = Study.__table__
series = Series.__table__
instances = Instance.__table__


# Statements built once: constructing SQLAlchemy statements per instance cost more CPU than
# SQLite spent executing them.
_FIND_PATIENT = select(patients.c.id).where(
    patients.c.site_id == bindparam("site"),
    patients.c.patient_id == bindparam("pid"),
    patients.c.issuer_of_patient_id == bindparam("issuer"),
)
_COUNT_PATIENT_STUDY = (
    update(patients)
    .where(patients.c.id == bindparam("pk"))
    .values(num_studies=patients.c.num_studies + 1)
)
_STUDY_MODALITIES = select(studies.c.modalities_in_study).where(studies.c.id == bindparam("pk"))
_COUNT_STUDY_SERIES = (
    update(studies)
    .where(studies.c.id == bindparam("pk"))
    .values(num_series=studies.c.num_series + 1, modalities_in_study=bindparam("modalities"))
)
_COUNT_SERIES_INSTANCE = (
    update(series)
    .where(series.c.id == bindparam("pk"))
    .values(num_instances=series.c.num_instances + 1, last_received_at=bindparam("now"))
)
_COUNT_STUDY_INSTANCE = (
    update(studies)
    .where(studies.c.id == bindparam("pk"))
    .values(
        num_instances=studies.c.num_instances + 1,
        size_bytes=studies.c.size_bytes + bindparam("size"),
        last_received_at=bindparam("now"),
    )
)


@cache
def _inserting(table: Table) -> Insert:
    return insert(table).returning(table.c.id)


@cache
def _finding(uid_column: Column[str], owner_column: Column[int]) -> Select[tuple[int, int]]:
    return select(uid_column.table.c.id, owner_column).where(uid_column == bindparam("uid"))


class OwnershipConflict(Exception):
    """The UID is already indexed under another site, study or series."""


@dataclass(frozen=True)
class Parent:
    pk: int
    owner: int  # the site of a study; the study of a series


class ParentCache:
    """UID -> primary key of studies and series already committed.

    A UID's row never changes its key, so entries stay true across processes; only rows
    created in a committed transaction are remembered.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._entries: OrderedDict[str, Parent] = OrderedDict()

    def get(self, uid: str) -> Parent | None:
        return self._entries.get(uid)

    def pending(self) -> PendingParents:
        return PendingParents(self)

    def remember(self, pending: PendingParents) -> None:
        for uid, parent in pending.transaction.items():
            self._entries[uid] = parent
        pending.transaction.clear()
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class PendingParents:
    """Rows seen or created inside the current transaction and savepoint."""

    def __init__(self, cache: ParentCache) -> None:
        self.cache = cache
        self.transaction: dict[str, Parent] = {}
        self.item: dict[str, Parent] = {}

    def get(self, uid: str) -> Parent | None:
        return self.item.get(uid) or self.transaction.get(uid) or self.cache.get(uid)

    def add(self, uid: str, parent: Parent) -> None:
        self.item[uid] = parent

    def keep_item(self) -> None:
        self.transaction.update(self.item)
        self.item.clear()

    def forget_item(self) -> None:
        self.item.clear()


def add_instance(
    conn: Connection,
    header: InstanceHeader,
    staged: StagedBlob,
    source: Source,
    parents: PendingParents,
    *,
    identity_fp: str | None = None,
) -> StoredInstance:
    from connrad.archive.ingest import StoredInstance

    now = utcnow()
    study_pk = _study(conn, header, source.site_id, now, parents)
    series_pk, new_series = _series(conn, header, study_pk, now, parents)
    instance_pk = conn.execute(
        _inserting(instances),
        dict(
            series_pk=series_pk,
            study_pk=study_pk,
            site_id=source.site_id,
            device_id=source.device_id,
            sop_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            instance_number=header.instance_number,
            transfer_syntax_uid=header.transfer_syntax_uid,
            rows=header.rows,
            columns=header.columns,
            number_of_frames=header.number_of_frames,
            bits_allocated=header.bits_allocated,
            size_bytes=staged.size,
            sha256=staged.sha256,
            blob_key=staged.key,
            door=source.door,
            identity_fp=identity_fp,
            received_at=now,
        ),
    ).scalar_one()
    conn.execute(_COUNT_SERIES_INSTANCE, {"pk": series_pk, "now": now})
    conn.execute(_COUNT_STUDY_INSTANCE, {"pk": study_pk, "now": now, "size": staged.size})
    return StoredInstance(
        instance_pk,
        series_pk,
        study_pk,
        source.site_id,
        header,
        staged,
        new_series,
        door=source.door,
    )


def _patient(conn: Connection, header: InstanceHeader, site_id: int, now: object) -> int:
    found = conn.execute(
        _FIND_PATIENT,
        {"site": site_id, "pid": header.patient_id, "issuer": header.issuer_of_patient_id},
    ).scalar()
    if found is not None:
        return int(found)
    name = header.patient_name
    return int(
        conn.execute(
            _inserting(patients),
            dict(
                site_id=site_id,
                patient_id=header.patient_id,
                issuer_of_patient_id=header.issuer_of_patient_id,
                name_alphabetic=name.alphabetic,
                name_ideographic=name.ideographic,
                name_phonetic=name.phonetic,
                name_search=name.search_text(),
                birth_date=header.birth_date,
                sex=header.sex,
                num_studies=0,
                created_at=now,
            ),
        ).scalar_one()
    )


def _existing(
    conn: Connection,
    parents: PendingParents,
    uid_column: Column[str],
    uid: str,
    owner_column: Column[int],
) -> Parent | None:
    """A study or series by UID, from the cache or the index (then cached)."""
    key = f"{uid_column.table.name}:{uid}"
    found = parents.get(key)
    if found is None:
        row = conn.execute(_finding(uid_column, owner_column), {"uid": uid}).first()
        if row is not None:
            found = Parent(int(row[0]), int(row[1]))
            parents.add(key, found)
    return found


def _study(
    conn: Connection, header: InstanceHeader, site_id: int, now: object, parents: PendingParents
) -> int:
    found = _existing(conn, parents, studies.c.study_uid, header.study_uid, studies.c.site_id)
    if found is not None:
        if found.owner != site_id:
            raise OwnershipConflict("the study is already stored for another site")
        return found.pk
    patient_pk = _patient(conn, header, site_id, now)
    referring = header.referring_physician
    study_pk = conn.execute(
        _inserting(studies),
        dict(
            site_id=site_id,
            patient_pk=patient_pk,
            study_uid=header.study_uid,
            study_date=header.study_date,
            study_time=header.study_time,
            accession_number=header.accession_number,
            study_id=header.study_id,
            study_description=header.study_description,
            referring_physician_alphabetic=referring.alphabetic,
            referring_physician_ideographic=referring.ideographic,
            referring_physician_phonetic=referring.phonetic,
            referring_physician_search=referring.search_text(),
            specific_character_set=header.specific_character_set,
            modalities_in_study="",
            num_series=0,
            num_instances=0,
            size_bytes=0,
            first_received_at=now,
            last_received_at=now,
        ),
    ).scalar_one()
    conn.execute(_COUNT_PATIENT_STUDY, {"pk": patient_pk})
    parents.add(f"studies:{header.study_uid}", Parent(int(study_pk), site_id))
    return int(study_pk)


def _series(
    conn: Connection, header: InstanceHeader, study_pk: int, now: object, parents: PendingParents
) -> tuple[int, bool]:
    """The series key, and whether this instance created the series."""
    found = _existing(conn, parents, series.c.series_uid, header.series_uid, series.c.study_pk)
    if found is not None:
        if found.owner != study_pk:
            raise OwnershipConflict("the series is already stored under another study")
        return found.pk, False
    series_pk = conn.execute(
        _inserting(series),
        dict(
            study_pk=study_pk,
            series_uid=header.series_uid,
            modality=header.modality,
            series_number=header.series_number,
            series_description=header.series_description,
            body_part_examined=header.body_part_examined,
            performed_start_date=header.performed_start_date,
            performed_start_time=header.performed_start_time,
            num_instances=0,
            first_received_at=now,
            last_received_at=now,
        ),
    ).scalar_one()
    modalities = conn.execute(_STUDY_MODALITIES, {"pk": study_pk}).scalar_one()
    present = [m for m in modalities.split("\\") if m]
    if header.modality and header.modality not in present:
        present = sorted([*present, header.modality])
    conn.execute(_COUNT_STUDY_SERIES, {"pk": study_pk, "modalities": "\\".join(present)})
    parents.add(f"series:{header.series_uid}", Parent(int(series_pk), study_pk))
    return int(series_pk), True
