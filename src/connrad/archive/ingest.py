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
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from connrad.archive.committer import IndexCommitter, Outcome
from connrad.archive.status import StoreStatus
from connrad.dicom.parse import InstanceHeader, ParseError, read_header, read_instance
from connrad.dicom.uids import is_storage_sop_class
from connrad.qc.findings import Finding, burned_in_suspected
from connrad.storage import BlobStore, StagedBlob

if TYPE_CHECKING:
    from connrad.deid.pipeline import Prepared, SiteDeidentifier
    from connrad.qc.gate import FastQuality

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Who sent the instance: decides ownership and the de-identification policy.

    With ``actor`` set, each stored instance is audited ("create") in the transaction that
    indexes it (doors that acknowledge instance by instance, like DIMSE C-STORE).
    """

    site_id: int
    device_id: int | None
    door: str
    actor: str | None = None
    address: str = ""


@dataclass(frozen=True)
class StoredInstance:
    instance_pk: int
    series_pk: int
    study_pk: int
    site_id: int
    header: InstanceHeader
    staged: StagedBlob
    new_series: bool
    # Sealed identity records (deid.records.VaultRow) to write in the same transaction.
    vault_rows: tuple[object, ...] = field(default=())
    # Fast quality findings (warnings: failures are not stored) to record with it.
    findings: tuple[Finding, ...] = field(default=())
    door: str = ""  # stow | dimse | prior | ...


# Follow-up hooks run inside the indexing transaction and enqueue their jobs there.
FollowUp = Callable[[Connection, StoredInstance], None]


@dataclass
class IngestResult:
    """The outcome of one instance.

    ``study_uid``, ``series_uid`` and ``sop_instance_uid`` are the UIDs the archive holds
    (new ones under de-identification): URLs and audit records use them.
    ``received_sop_instance_uid`` is the one the sender used, which answers refer to.
    """

    status: StoreStatus
    reason: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    duplicate: bool = False
    received_sop_instance_uid: str = ""
    held: bool = False  # stored, but held out of the archive (pixel cleaning or review)
    findings: list[Finding] = field(default_factory=list)  # fast quality checks

    @property
    def stored(self) -> bool:
        return not self.status.is_failure


class IngestService:
    def __init__(
        self,
        engine: Engine,
        blobs: BlobStore,
        *,
        accept_unknown_sop_classes: bool = False,
        deidentifier: SiteDeidentifier | None = None,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.accept_unknown_sop_classes = accept_unknown_sop_classes
        self.deidentifier = deidentifier
        # Keeps an instance at risk of burned-in identity out of the archive (deid.held).
        self.hold: Callable[[Prepared, Source], IngestResult] | None = None
        # The fast quality checks (connrad.qc.gate); None skips them (tools, tests).
        self.quality: FastQuality | None = None
        self.follow_ups: list[FollowUp] = []
        self.committer = IndexCommitter(engine, self.follow_ups)

    def ingest(
        self,
        staged: StagedBlob,
        source: Source,
        *,
        expected_study_uid: str | None = None,
        declared_sha256: str | None = None,
    ) -> IngestResult:
        """Ingest one staged file; the staged file is consumed (committed or discarded).

        ``declared_sha256``: the digest the sender declared for the bytes (hex), verified.
        Thread-safe: doors call it from many threads at once; the index writes of concurrent
        calls are grouped into shared transactions.
        """
        staged_files = [staged]
        try:
            return self._ingest(staged_files, source, expected_study_uid, declared_sha256)
        finally:
            for each in staged_files:
                self.blobs.discard(each)  # no-op once committed (moved away)

    def _ingest(
        self,
        staged_files: list[StagedBlob],
        source: Source,
        expected_study_uid: str | None,
        declared_sha256: str | None,
    ) -> IngestResult:
        staged = staged_files[0]
        quality = self.quality
        if quality is not None:
            rejected = quality.check_transfer(staged, declared_sha256)
            if rejected is not None and rejected.failure is not None:
                status, reason = rejected.failure
                return IngestResult(status, reason, findings=rejected.findings)
        try:
            if quality is None:
                header, dataset = read_header(staged.path), None
            else:
                header, dataset = read_instance(staged.path)
        except ParseError as exc:
            return IngestResult(StoreStatus.CANNOT_UNDERSTAND, str(exc))
        result = IngestResult(
            StoreStatus.SUCCESS,
            sop_class_uid=header.sop_class_uid,
            sop_instance_uid=header.sop_instance_uid,
            study_uid=header.study_uid,
            series_uid=header.series_uid,
            received_sop_instance_uid=header.sop_instance_uid,
        )
        rejection = self._check(header, expected_study_uid)
        if rejection:
            result.status, result.reason = rejection
            return result
        identity_fp: str | None = None
        if quality is not None and dataset is not None:
            verdict = quality.check(dataset, header, staged)
            result.findings = verdict.findings
            if verdict.failure is not None:
                result.status, result.reason = verdict.failure
                return result
            identity_fp = quality.identity_fingerprint(header, source.site_id)
        vault_rows: tuple[object, ...] = ()
        if self.deidentifier is not None:
            from connrad.deid.pipeline import IDENTIFIED, DeidentificationError

            policy = self.deidentifier.policy(source.site_id)
            if policy.deid != IDENTIFIED:
                try:
                    prepared = self.deidentifier.prepare(staged, source.site_id, policy)
                except DeidentificationError as exc:
                    result.status, result.reason = StoreStatus.CANNOT_UNDERSTAND, str(exc)
                    return result
                staged_files.append(prepared.staged)
                staged, header, vault_rows = prepared.staged, prepared.header, prepared.vault_rows
                result.study_uid, result.series_uid = header.study_uid, header.series_uid
                result.sop_instance_uid = header.sop_instance_uid
                if prepared.hold is not None:
                    if self.hold is None:  # never pass at-risk pixels on for want of a place
                        result.status = StoreStatus.PROCESSING_FAILURE
                        result.reason = "no place to hold images at risk of burned-in text"
                        return result
                    held = self.hold(prepared, source)
                    held.received_sop_instance_uid = result.received_sop_instance_uid
                    held.findings = [*result.findings, burned_in_suspected(prepared.hold)]
                    return held
        try:
            self.blobs.commit(staged)
        except OSError as exc:
            log.error("blob commit failed: %s", type(exc).__name__)
            result.status, result.reason = StoreStatus.OUT_OF_RESOURCES, "storage unavailable"
            return result
        # A blob left unreferenced (rejected duplicate, conflict) is never deleted here: a
        # concurrent ingest in another process may be indexing the same content right now.
        outcome, reason = self.committer.submit(
            header,
            staged,
            source,
            vault_rows,
            findings=tuple(result.findings),
            identity_fp=identity_fp,
        )
        result.reason = reason
        if outcome is Outcome.SAME_CONTENT:
            result.duplicate = True
        elif outcome is Outcome.OTHER_CONTENT:
            result.duplicate = True
            result.status = StoreStatus.ELEMENTS_DISCARDED
        elif outcome is Outcome.CONFLICT:
            result.status = StoreStatus.PROCESSING_FAILURE
        elif outcome is Outcome.UNAVAILABLE:
            result.status = StoreStatus.OUT_OF_RESOURCES
        return result

    def _check(
        self, header: InstanceHeader, expected_study_uid: str | None
    ) -> tuple[StoreStatus, str] | None:
        if expected_study_uid and header.study_uid != expected_study_uid:
            return StoreStatus.DATASET_MISMATCH, "StudyInstanceUID differs from the request URL"
        if not self.accept_unknown_sop_classes and not is_storage_sop_class(header.sop_class_uid):
            return StoreStatus.SOP_CLASS_NOT_SUPPORTED, "SOP class is not a storage SOP class"
        return None
