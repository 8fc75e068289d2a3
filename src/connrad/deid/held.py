"""Instances held out of the archive until their pixels are clean (PS3.15 E.3.1).

An image at risk of burned-in identity is acknowledged once it is durably stored here (its
header already de-identified, its vault records written), so the sender loses nothing and
the patient's name on the pixels reaches no reader:

- state ``cleaning``: a ``deid.clean_pixels`` job masks the text found by OCR, then releases
  the cleaned copy into the archive through the index writer, like any new instance;
- state ``held``: waits for a person (site policy ``hold``, or cleaning failed). An
  administrator of the site can release it as it is, have it cleaned, or delete it.

Release is idempotent: a crash after indexing and before the held row is removed is found
by the next attempt (the SOP Instance UID is already in the archive) and finished there.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydicom
from sqlalchemy import Connection, delete, insert, select, update

from connrad.archive.committer import Outcome
from connrad.archive.ingest import IngestResult, Source
from connrad.archive.models import Instance
from connrad.archive.status import StoreStatus
from connrad.audit import log as audit_log
from connrad.audit.log import AuditRecord
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.deid import records
from connrad.deid.models import HeldInstance
from connrad.deid.pipeline import Prepared
from connrad.dicom.parse import ParseError, read_header
from connrad.jobs import queue
from connrad.qc.findings import burned_in_suspected

if TYPE_CHECKING:
    from connrad.services import Services

log = logging.getLogger(__name__)

CLEAN_JOB = "deid.clean_pixels"
CLEANING, HELD, DISCARDED = "cleaning", "held", "discarded"
PIXEL_RISK = "pixel-risk"
held = HeldInstance.__table__
_instances = Instance.__table__


class HeldError(Exception):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HeldView:
    id: int
    site_id: int
    sop_uid: str
    study_uid: str
    sop_class_uid: str
    reason: str
    state: str
    detail: str
    size_bytes: int
    received_at: str


def hold(services: Services, prepared: Prepared, source: Source) -> IngestResult:
    """Store a de-identified, at-risk instance durably, held; enqueue its cleaning."""
    header, staged = prepared.header, prepared.staged
    result = IngestResult(
        StoreStatus.COERCED,
        "held until burned-in text is masked"
        if prepared.hold == CLEANING
        else "held for review of burned-in text",
        sop_class_uid=header.sop_class_uid,
        sop_instance_uid=header.sop_instance_uid,
        study_uid=header.study_uid,
        series_uid=header.series_uid,
        held=True,
    )
    try:
        services.blobs.commit(staged)
    except OSError as exc:
        log.error("blob commit failed: %s", type(exc).__name__)
        return IngestResult(StoreStatus.OUT_OF_RESOURCES, "storage unavailable")
    with write_transaction(services.engine) as conn:
        if _in_archive(conn, header.sop_instance_uid):
            # Sent again after release: the archive holds the cleaned copy.
            result.status, result.reason, result.duplicate, result.held = (
                StoreStatus.SUCCESS,
                "",
                True,
                False,
            )
            return result
        existing = conn.execute(
            select(held.c.sha256).where(held.c.sop_uid == header.sop_instance_uid)
        ).first()
        if existing is not None:
            result.duplicate = True
            return result
        now = utcnow()
        held_id = conn.execute(
            insert(held)
            .values(
                site_id=source.site_id,
                device_id=source.device_id,
                door=source.door,
                sop_uid=header.sop_instance_uid,
                study_uid=header.study_uid,
                sop_class_uid=header.sop_class_uid,
                blob_key=staged.key,
                sha256=staged.sha256,
                size_bytes=staged.size,
                reason=PIXEL_RISK,
                state=prepared.hold or HELD,
                detail="",
                received_at=now,
                updated_at=now,
            )
            .returning(held.c.id)
        ).scalar_one()
        records.write(conn, source.site_id, prepared.vault_rows)  # type: ignore[arg-type]
        if source.actor is not None:  # doors that audit per instance, as the index writer does
            audit_log.append(conn, [_created(source, header.study_uid, header.sop_instance_uid)])
        if prepared.hold == CLEANING:
            queue.enqueue(conn, CLEAN_JOB, {"held_id": held_id})
    return result


def _created(source: Source, study_uid: str, sop_uid: str) -> AuditRecord:
    return AuditRecord(
        actor=source.actor or "",
        actor_site_id=source.site_id,
        source=source.address,
        action="create",
        resource="instance",
        outcome=202,  # stored, held
        study_uid=study_uid,
        site_id=source.site_id,
        detail={"door": source.door, "sop_uid": sop_uid, "held": True},
    )


def clean_job(services: Services, payload: dict[str, Any]) -> None:
    """Mask burned-in text of a held instance and release the result into the archive."""
    from connrad.deid.pixels import PixelCleaningError, clean_pixels

    row = _load(services, int(payload["held_id"]))
    if row is None or row.state != CLEANING:
        return
    if _already_released(services, row):
        return
    with services.blobs.open(row.blob_key) as handle:
        ds = pydicom.dcmread(handle, force=True)
    try:
        cleaned = clean_pixels(ds, max_ocr_frames=services.settings.deid_max_ocr_frames)
    except PixelCleaningError as exc:
        # Never pass on pixels that could not be read: hold them for a person instead.
        _set_state(services, row.id, HELD, f"cleaning failed: {exc}"[:256])
        return
    buffer = io.BytesIO()
    cleaned.dataset.save_as(buffer, enforce_file_format=True)
    _release(services, row, buffer.getvalue())


def release(services: Services, held_id: int, *, clean: bool) -> str:
    """Release a held instance as it is, or send it to cleaning; returns the new state."""
    row = _load(services, held_id)
    if row is None:
        raise HeldError("no such held instance", 404)
    if row.state == DISCARDED:
        raise HeldError("the held instance was discarded")
    if clean:
        with write_transaction(services.engine) as conn:
            conn.execute(
                update(held)
                .where(held.c.id == held_id)
                .values(state=CLEANING, detail="", updated_at=utcnow())
            )
            queue.enqueue(conn, CLEAN_JOB, {"held_id": held_id})
        return CLEANING
    with services.blobs.open(row.blob_key) as handle:
        data = handle.read()
    _release(services, row, data)
    return "released"


def discard(services: Services, held_id: int) -> None:
    """Discard a held instance (say, a screenshot that should never have been sent).

    The row stays, marked ``discarded``, as the record that it arrived and was refused;
    its pixels are deleted unless the archive stores the same bytes. Idempotent.
    """
    row = _load(services, held_id)
    if row is None:
        raise HeldError("no such held instance", 404)
    with write_transaction(services.engine) as conn:
        conn.execute(
            update(held)
            .where(held.c.id == held_id)
            .values(state=DISCARDED, detail="discarded by an administrator", updated_at=utcnow())
        )
        shared = conn.execute(
            select(_instances.c.id).where(_instances.c.blob_key == row.blob_key).limit(1)
        ).first()
    if shared is None and row.state != DISCARDED:
        services.blobs.delete(row.blob_key)


def list_held(services: Services, site_ids: frozenset[int] | None) -> list[HeldView]:
    query = select(held).order_by(held.c.received_at, held.c.id)  # discarded ones too: a record
    if site_ids is not None:
        query = query.where(held.c.site_id.in_(sorted(site_ids)))
    with services.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        HeldView(
            r.id,
            r.site_id,
            r.sop_uid,
            r.study_uid,
            r.sop_class_uid,
            r.reason,
            r.state,
            r.detail,
            int(r.size_bytes),
            r.received_at.isoformat(),
        )
        for r in rows
    ]


def site_of(services: Services, held_id: int) -> int | None:
    row = _load(services, held_id)
    return None if row is None else int(row.site_id)


def _release(services: Services, row: Any, data: bytes) -> None:
    writer = services.blobs.stage()
    try:
        writer.write(data)
        staged = writer.finish()
    except BaseException:
        writer.abort()
        raise
    try:
        header = read_header(staged.path)
        services.blobs.commit(staged)
        source = Source(int(row.site_id), row.device_id, str(row.door))
        outcome, _ = services.ingest.committer.submit(
            header, staged, source, findings=(burned_in_suspected(str(row.state)),)
        )
    except ParseError as exc:
        _set_state(services, row.id, HELD, f"release failed: {exc}"[:256])
        return
    finally:
        services.blobs.discard(staged)
    if outcome is Outcome.UNAVAILABLE:
        raise RuntimeError("index unavailable; the release will be retried")
    if outcome is Outcome.CONFLICT:
        _set_state(services, row.id, HELD, "release failed: UID owned by another study or site")
        return
    with write_transaction(services.engine) as conn:
        conn.execute(delete(held).where(held.c.id == row.id))


def _already_released(services: Services, row: Any) -> bool:
    """Finish a release that a crash interrupted after indexing."""
    with write_transaction(services.engine) as conn:
        if not _in_archive(conn, row.sop_uid):
            return False
        conn.execute(delete(held).where(held.c.id == row.id))
    return True


def _load(services: Services, held_id: int) -> Any:
    with services.engine.connect() as conn:
        return conn.execute(select(held).where(held.c.id == held_id)).first()


def _set_state(services: Services, held_id: int, state: str, detail: str) -> None:
    with write_transaction(services.engine) as conn:
        conn.execute(
            update(held)
            .where(held.c.id == held_id)
            .values(state=state, detail=detail, updated_at=utcnow())
        )


def _in_archive(conn: Connection, sop_uid: str) -> bool:
    return (
        conn.execute(select(_instances.c.id).where(_instances.c.sop_uid == sop_uid)).first()
        is not None
    )


def register(services: Services) -> None:
    services.ingest.hold = lambda prepared, source: hold(services, prepared, source)
    services.job_handlers[CLEAN_JOB] = lambda payload: clean_job(services, payload)
    services.ingest.follow_ups.append(_write_vault_rows)


def _write_vault_rows(conn: Connection, stored: Any) -> None:
    if stored.vault_rows:
        records.write(conn, stored.site_id, stored.vault_rows)
