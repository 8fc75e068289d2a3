"""Index writes of every concurrent ingest, group-committed (db.batching).

A batch is one write transaction with a savepoint per instance, so one bad instance does not
undo the others; the commit's fsync, the dominant cost of a small instance, is shared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import Enum, auto
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError

from connrad.archive import index
from connrad.audit import log as audit_log
from connrad.audit.log import AuditRecord
from connrad.db.batching import BatchWriter
from connrad.db.transaction import write_transaction
from connrad.dicom.parse import InstanceHeader
from connrad.qc.findings import Finding
from connrad.storage import StagedBlob

if TYPE_CHECKING:
    from connrad.archive.ingest import FollowUp, Source

log = logging.getLogger(__name__)

MAX_BATCH = 64
_OTHER_CONTENT = "an instance with this SOP Instance UID and other content is stored"


class Outcome(Enum):
    INDEXED = auto()
    SAME_CONTENT = auto()  # already stored, identical
    OTHER_CONTENT = auto()  # already stored with other content: the first is kept
    CONFLICT = auto()  # UID owned by another site/study
    UNAVAILABLE = auto()  # database error


_UNAVAILABLE = (Outcome.UNAVAILABLE, "index unavailable")
_EXISTING_SHA256 = select(index.instances.c.sha256).where(
    index.instances.c.sop_uid == bindparam("sop")
)


@dataclass(frozen=True)
class _Request:
    header: InstanceHeader
    staged: StagedBlob
    source: Source
    vault_rows: tuple[object, ...] = ()
    findings: tuple[Finding, ...] = ()
    identity_fp: str | None = None


class IndexCommitter:
    def __init__(self, engine: Engine, follow_ups: list[FollowUp]) -> None:
        self.engine = engine
        self.follow_ups = follow_ups
        self.parents = index.ParentCache()
        self._writer: BatchWriter[_Request, tuple[Outcome, str]] = BatchWriter(
            "connrad-index-committer", self._commit, lambda _: _UNAVAILABLE, MAX_BATCH
        )

    def submit(
        self,
        header: InstanceHeader,
        staged: StagedBlob,
        source: Source,
        vault_rows: tuple[object, ...] = (),
        *,
        findings: tuple[Finding, ...] = (),
        identity_fp: str | None = None,
    ) -> tuple[Outcome, str]:
        return self._writer.submit(
            _Request(header, staged, source, vault_rows, findings, identity_fp)
        )

    def _commit(self, batch: list[_Request]) -> list[tuple[Outcome, str]]:
        outcomes: list[tuple[Outcome, str]] = []
        try:
            with write_transaction(self.engine) as conn:
                pending = self.parents.pending()
                for request in batch:
                    outcomes.append(self._one(conn, request, pending))
                audit_log.append(conn, _audit_records(batch, outcomes))
            self.parents.remember(pending)
        except OperationalError as exc:
            log.error("index write failed: %s", type(exc).__name__)
            return [_UNAVAILABLE] * len(batch)
        return outcomes

    def _one(
        self, conn: Connection, request: _Request, pending: index.PendingParents
    ) -> tuple[Outcome, str]:
        existing = conn.execute(_EXISTING_SHA256, {"sop": request.header.sop_instance_uid}).scalar()
        if existing is not None:
            if existing == request.staged.sha256:
                return Outcome.SAME_CONTENT, ""
            return Outcome.OTHER_CONTENT, _OTHER_CONTENT
        for attempt in range(2):
            savepoint = conn.begin_nested()
            try:
                stored = index.add_instance(
                    conn,
                    request.header,
                    request.staged,
                    request.source,
                    pending,
                    identity_fp=request.identity_fp,
                )
                if request.vault_rows or request.findings:
                    stored = replace(
                        stored, vault_rows=request.vault_rows, findings=request.findings
                    )
                for follow_up in self.follow_ups:
                    follow_up(conn, stored)
            except index.OwnershipConflict as exc:
                savepoint.rollback()
                pending.forget_item()
                return Outcome.CONFLICT, str(exc)
            except IntegrityError:
                # Another process created the same patient/study/series first; with its
                # row now committed, a second attempt finds and uses it.
                savepoint.rollback()
                pending.forget_item()
                if attempt:
                    return Outcome.UNAVAILABLE, "index constraint violated"
                continue
            savepoint.commit()
            pending.keep_item()
            return Outcome.INDEXED, ""
        raise AssertionError("unreachable")


def _audit_records(batch: list[_Request], outcomes: list[tuple[Outcome, str]]) -> list[AuditRecord]:
    """A "create" event per instance newly stored by a door that audits per instance."""
    return [
        AuditRecord(
            actor=request.source.actor,
            actor_site_id=request.source.site_id,
            source=request.source.address,
            action="create",
            resource="instance",
            outcome=200,
            study_uid=request.header.study_uid,
            site_id=request.source.site_id,
            detail={"door": request.source.door, "sop_uid": request.header.sop_instance_uid},
        )
        for request, (outcome, _) in zip(batch, outcomes, strict=True)
        if request.source.actor is not None and outcome is Outcome.INDEXED
    ]
