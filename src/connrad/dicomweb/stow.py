"""STOW-RS (PS3.18 10.5): a streamed multipart/related body, one instance per part.

Each part is written to a staging file as it arrives (hashed on the way) and handed to the
ingest pipeline in a worker thread while the next part is read, so memory stays at one chunk
plus a small tail whatever the body size, and disk, CPU and network overlap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from connrad.access import StoreCaller
from connrad.archive.ingest import IngestResult
from connrad.archive.status import StoreStatus
from connrad.dicomweb import audit
from connrad.dicomweb.deps import BaseDep, ServicesDep
from connrad.dicomweb.multipart import Event, MultipartError, MultipartParser, parse_media_type
from connrad.dicomweb.responses import dicom_json, problem
from connrad.identity.caller import Caller
from connrad.qc.digest import DigestError, expected_sha256
from connrad.qc.response import qc_elements
from connrad.services import Services
from connrad.storage import BlobStore, StagedBlob, StagingWriter

log = logging.getLogger(__name__)
router = APIRouter()

_IN_FLIGHT = 16  # parts of one request being ingested at once


@router.post("/studies", summary="STOW-RS: store instances")
async def store(
    request: Request, services: ServicesDep, caller: StoreCaller, base: BaseDep
) -> Response:
    return await _store(request, services, caller, base, None)


@router.post("/studies/{study}", summary="STOW-RS: store instances of one study")
async def store_study(
    study: str, request: Request, services: ServicesDep, caller: StoreCaller, base: BaseDep
) -> Response:
    return await _store(request, services, caller, base, study)


_FLUSH_BYTES = 1 << 20


class _PartSink:
    """One part on its way to a staging file.

    File system calls can block for milliseconds behind other threads' fsyncs, so none runs
    on the event loop: data collects in memory and goes to the file in 1 MiB blocks from a
    worker thread; a part smaller than that reaches the disk only in its ingest thread.
    """

    def __init__(self, blobs: BlobStore, declared_sha256: str | None = None) -> None:
        self._blobs = blobs
        self.declared_sha256 = declared_sha256
        self._buffer = bytearray()
        self._writer: StagingWriter | None = None
        self.size = 0

    def add(self, data: bytes) -> bool:
        """Buffer data; True when a flush is due."""
        self._buffer += data
        self.size += len(data)
        return len(self._buffer) >= _FLUSH_BYTES

    def flush(self) -> None:
        if self._writer is None:
            self._writer = self._blobs.stage()
        self._writer.write(self._buffer)
        self._buffer.clear()

    def finish(self) -> StagedBlob:
        self.flush()
        assert self._writer is not None
        return self._writer.finish()

    def abort(self) -> None:
        self._buffer.clear()
        if self._writer is not None:
            self._writer.abort()


class _Failure(Exception):
    def __init__(self, status: StoreStatus, reason: str) -> None:
        self.status, self.reason = status, reason


async def _store(
    request: Request, services: Services, caller: Caller, base: str, study: str | None
) -> Response:
    ingest, blobs, source = services.ingest, services.blobs, caller.source("stow")
    max_part = services.settings.max_stow_part_bytes
    media = parse_media_type(request.headers.get("content-type", ""))
    if media.type != "multipart/related":
        return problem(415, 'STOW-RS needs multipart/related; type="application/dicom"')
    if media.params.get("type", "application/dicom").lower() != "application/dicom":
        return problem(415, "only application/dicom parts are accepted")
    try:
        parser = MultipartParser(media.params.get("boundary", ""))
    except MultipartError as exc:
        return problem(400, str(exc))

    tasks: list[asyncio.Task[IngestResult]] = []
    gate = asyncio.Semaphore(_IN_FLIGHT)
    sink: _PartSink | None = None
    rejected: _Failure | None = None
    broken: str | None = None

    async def ingest_part(part: _PartSink) -> IngestResult:
        try:

            def run() -> IngestResult:
                return ingest.ingest(
                    part.finish(),
                    source,
                    expected_study_uid=study,
                    declared_sha256=part.declared_sha256,
                )

            return await to_thread.run_sync(run)
        finally:
            gate.release()

    try:
        async for chunk in request.stream():
            for event, payload in parser.feed(chunk):
                if event is Event.PART_BEGIN:
                    rejected, declared = _check_part(payload)  # type: ignore[arg-type]
                    sink = None if rejected else _PartSink(blobs, declared)
                elif event is Event.DATA:
                    if sink is not None and sink.add(payload):  # type: ignore[arg-type]
                        await to_thread.run_sync(sink.flush)
                        if sink.size > max_part:
                            sink.abort()
                            sink = None
                            rejected = _Failure(StoreStatus.OUT_OF_RESOURCES, "part too large")
                elif sink is not None:
                    await gate.acquire()
                    tasks.append(asyncio.create_task(ingest_part(sink)))
                    sink = None
                else:
                    assert rejected is not None
                    tasks.append(asyncio.create_task(_failed(rejected)))
        parser.close()
    except MultipartError as exc:
        broken = str(exc)
    except ClientDisconnect:
        broken = "client disconnected"
    finally:
        if sink is not None:
            sink.abort()  # an unfinished part is never stored
    results = await asyncio.gather(*tasks)
    await to_thread.run_sync(_audit, services, request, caller, results)
    if broken == "client disconnected" or not results:
        return problem(400, broken or "the multipart body holds no parts")
    return _response(results, base, study, broken)


def _audit(
    services: Services, request: Request, caller: Caller, results: list[IngestResult]
) -> None:
    by_study: dict[str, list[IngestResult]] = {}
    for result in results:
        by_study.setdefault(result.study_uid, []).append(result)
    for study_uid, items in by_study.items():
        stored = sum(r.stored for r in items)
        audit.record(
            services,
            request,
            caller,
            action="create",
            resource="study",
            outcome=200 if stored == len(items) else 202 if stored else 409,
            study_uid=study_uid or None,
            site_id=caller.site_id,
            detail={
                "stored": stored,
                "failed": len(items) - stored,
                "duplicates": sum(r.duplicate for r in items),
            },
        )


async def _failed(failure: _Failure) -> IngestResult:
    return IngestResult(failure.status, failure.reason)


def _check_part(headers: dict[str, str]) -> tuple[_Failure | None, str | None]:
    """A failure for a part that cannot be stored, else the SHA-256 it declares (if any)."""
    content_type = parse_media_type(headers.get("content-type", "application/dicom")).type
    if content_type != "application/dicom":
        return _Failure(StoreStatus.CANNOT_UNDERSTAND, "part is not application/dicom"), None
    try:
        return None, expected_sha256(headers)
    except DigestError as exc:
        return _Failure(StoreStatus.CANNOT_UNDERSTAND, str(exc)), None


def _response(
    results: list[IngestResult], base: str, study: str | None, broken: str | None
) -> Response:
    referenced: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for result in results:
        item = _sop_reference(result)
        if result.stored:
            url = (
                f"{base}/studies/{result.study_uid}/series/{result.series_uid}"
                f"/instances/{result.sop_instance_uid}"
            )
            item["00081190"] = {"vr": "UR", "Value": [url]}
            if result.status.is_warning:
                item["00081196"] = {"vr": "US", "Value": [int(result.status)]}
            referenced.append(item)
        else:
            item["00081197"] = {"vr": "US", "Value": [int(result.status)]}
            failed.append(item)
        item.update(qc_elements(result.findings))
    if broken:
        failed.append({"00081197": {"vr": "US", "Value": [int(StoreStatus.CANNOT_UNDERSTAND)]}})
    body: dict[str, Any] = {}
    studies = {r.study_uid for r in results if r.stored}
    if study or len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study or studies.pop()}"]}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    warnings = any(r.status.is_warning for r in results if r.stored)
    if not referenced:
        status = 409 if failed else 400
    elif failed or warnings:
        status = 202
    else:
        status = 200
    response = dicom_json(body, status)
    # Reasons as RFC 7234 Warning headers (PS3.18 8.7.7); they never quote patient data.
    reasons = dict.fromkeys(r.reason for r in results if r.reason)
    if broken:
        reasons[broken] = None
    for reason in reasons:
        response.headers.append("Warning", f'299 connrad: "{reason}"')
    return response


def _sop_reference(result: IngestResult) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if result.sop_class_uid:
        item["00081150"] = {"vr": "UI", "Value": [result.sop_class_uid]}
    # The instance as the sender named it (the archive may hold it under a new UID, which
    # the RetrieveURL carries).
    sent = result.received_sop_instance_uid or result.sop_instance_uid
    if sent:
        item["00081155"] = {"vr": "UI", "Value": [sent]}
    return item
