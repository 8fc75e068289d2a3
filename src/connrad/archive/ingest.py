"""The one ingest pipeline every door calls (STOW-RS, DIMSE, uploader, edge relay).

parse and check -> commit the blob durably -> index and enqueue follow-up jobs in one
transaction -> answer. The index only ever points at committed blobs; a crash between commit
and index leaves an unreferenced blob (harmless, content-addressed) and no acknowledgement.

Re-sending an instance with identical content succeeds and stores nothing new. With other
content under the same SOP Instance UID the first is kept and a warning (0xB006) returned:
silently replacing what a radiologist may already have read would be worse than refusing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from connrad.archive import index
from connrad.archive.status import StoreStatus
from connrad.db.transaction import write_transaction
from connrad.dicom.parse import InstanceHeader, ParseError, read_header
from connrad.dicom.uids import is_storage_sop_class
from connrad.storage import BlobStore, StagedBlob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Who sent the instance: decides ownership (and, later, the de-identification policy)."""

    site_id: int
    device_id: int | None
    door: str


@dataclass(frozen=True)
class StoredInstance:
    instance_pk: int
    series_pk: int
    study_pk: int
    site_id: int
    header: InstanceHeader
    staged: StagedBlob


# Follow-up hooks run inside the indexing transaction and enqueue their jobs there.
FollowUp = Callable[[Connection, StoredInstance], None]


@dataclass
class IngestResult:
    status: StoreStatus
    reason: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    duplicate: bool = False

    @property
    def stored(self) -> bool:
        return not self.status.is_failure


@dataclass
class IngestService:
    engine: Engine
    blobs: BlobStore
    accept_unknown_sop_classes: bool = False
    follow_ups: list[FollowUp] = field(default_factory=list)

    def ingest(
        self, staged: StagedBlob, source: Source, *, expected_study_uid: str | None = None
    ) -> IngestResult:
        """Ingest one staged file; the staged file is consumed (committed or discarded)."""
        try:
            return self._ingest(staged, source, expected_study_uid)
        finally:
            self.blobs.discard(staged)  # no-op once committed (moved away)

    def _ingest(
        self, staged: StagedBlob, source: Source, expected_study_uid: str | None
    ) -> IngestResult:
        try:
            header = read_header(staged.path)
        except ParseError as exc:
            return IngestResult(StoreStatus.CANNOT_UNDERSTAND, str(exc))
        result = IngestResult(
            StoreStatus.SUCCESS,
            sop_class_uid=header.sop_class_uid,
            sop_instance_uid=header.sop_instance_uid,
            study_uid=header.study_uid,
            series_uid=header.series_uid,
        )
        rejection = self._check(header, expected_study_uid)
        if rejection:
            result.status, result.reason = rejection
            return result
        if self._known_duplicate(header, staged, result):
            return result
        try:
            self.blobs.commit(staged)
        except OSError as exc:
            log.error("blob commit failed: %s", type(exc).__name__)
            result.status, result.reason = StoreStatus.OUT_OF_RESOURCES, "storage unavailable"
            return result
        return self._index(header, staged, source, result)

    def _check(
        self, header: InstanceHeader, expected_study_uid: str | None
    ) -> tuple[StoreStatus, str] | None:
        if expected_study_uid and header.study_uid != expected_study_uid:
            return StoreStatus.DATASET_MISMATCH, "StudyInstanceUID differs from the request URL"
        if not self.accept_unknown_sop_classes and not is_storage_sop_class(header.sop_class_uid):
            return StoreStatus.SOP_CLASS_NOT_SUPPORTED, "SOP class is not a storage SOP class"
        return None

    def _known_duplicate(
        self, header: InstanceHeader, staged: StagedBlob, result: IngestResult
    ) -> bool:
        with self.engine.connect() as conn:
            existing = conn.execute(
                select(index.instances.c.sha256).where(
                    index.instances.c.sop_uid == header.sop_instance_uid
                )
            ).scalar()
        if existing is None:
            return False
        _mark_duplicate(result, same_content=existing == staged.sha256)
        return True

    def _index(
        self, header: InstanceHeader, staged: StagedBlob, source: Source, result: IngestResult
    ) -> IngestResult:
        for attempt in range(5):
            try:
                with write_transaction(self.engine) as conn:
                    stored = index.add_instance(conn, header, staged, source)
                    for follow_up in self.follow_ups:
                        follow_up(conn, stored)
                return result
            except index.OwnershipConflict as exc:
                result.status, result.reason = StoreStatus.PROCESSING_FAILURE, str(exc)
                return result
            except IntegrityError:
                # A concurrent request created the same patient/study/series/instance first.
                if self._known_duplicate(header, staged, result):
                    return result
                if attempt == 4:
                    raise
            except OperationalError as exc:
                log.error("index write failed: %s", type(exc).__name__)
                result.status, result.reason = StoreStatus.OUT_OF_RESOURCES, "index unavailable"
                return result
        return result


def _mark_duplicate(result: IngestResult, *, same_content: bool) -> None:
    result.duplicate = True
    if not same_content:
        result.status = StoreStatus.ELEMENTS_DISCARDED
        result.reason = "an instance with this SOP Instance UID and other content is stored"
