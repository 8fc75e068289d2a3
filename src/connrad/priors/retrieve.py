"""Retrieving one study from the site's PACS into the archive: C-GET or WADO-RS.

Every instance received is staged and handed to the one ingest pipeline with the door
``prior``, so it is checked, de-identified by the site's policy (the same PatientID and site
key give the same pseudonym as the new study) and indexed like any other. C-GET rather than
C-MOVE: the instances come back on the association connrad opened, so the PACS needs no
route to connrad.

A PACS that cannot be reached, refuses or aborts raises DestinationUnavailable (the job is
retried; what arrived so far is stored, and deduplicated on the next attempt). Instances the
pipeline refuses (quality, policy) are counted, not retried: they would be refused again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import StoragePresentationContexts, build_role, evt
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet  # type: ignore[attr-defined]

from connrad.archive.ingest import IngestResult, Source
from connrad.archive.status import StoreStatus
from connrad.dicomweb.multipart import Event, MultipartError, MultipartParser, parse_media_type
from connrad.priors.peer import (
    association,
    check_status,
    http_client,
    http_failure,
    require_context,
)
from connrad.priors.relevance import Candidate
from connrad.routing.spec import DestinationSpec, DestinationUnavailable
from connrad.storage import StagedBlob, StagingWriter

if TYPE_CHECKING:
    from connrad.services import Services

log = logging.getLogger(__name__)

PRIOR_DOOR = "prior"
ACTOR = "system:priors"
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2
_UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
_CHUNK = 1 << 20
# C-GET final statuses that end a retrieval the PACS carried out (some sub-operations may
# have failed: those were refused by connrad's pipeline, or could not be sent).
_DONE = (0x0000, 0xB000, 0xA702)
_PENDING = (0xFF00,)


@dataclass
class Retrieved:
    """What one study's retrieval stored: the archive's study UIDs and the counts."""

    study_uids: set[str] = field(default_factory=set)
    stored: int = 0  # in the archive (new, or already there)
    held: int = 0  # held out of the archive until its pixels are cleaned or reviewed
    refused: int = 0  # refused by the pipeline (quality, policy): not retried
    remote_failed: int = 0  # sub-operations the PACS could not carry out

    def add(self, result: IngestResult) -> None:
        if result.status.is_failure:
            self.refused += 1
        elif result.held:
            self.held += 1
        else:
            self.stored += 1
            if result.study_uid:
                self.study_uids.add(result.study_uid)


def source_for(spec: DestinationSpec) -> Source:
    """Retrievals are system actions: each stored instance is audited with the PACS named."""
    address = f"{spec.host}:{spec.port}" if spec.kind == "dicom" else spec.url
    return Source(spec.site_id, None, PRIOR_DOOR, actor=ACTOR, address=address[:255])


def retrieve(services: Services, spec: DestinationSpec, study: Candidate) -> Retrieved:
    if spec.kind == "dicom":
        return c_get(services, spec, study)
    if spec.kind == "dicomweb":
        return wado(services, spec, study)
    raise DestinationUnavailable(f"unknown destination kind {spec.kind!r}")


# --- DIMSE C-GET ---------------------------------------------------------------------------


def storage_contexts(sop_classes: Sequence[str]) -> list[PresentationContext]:
    """Contexts the PACS may send the study on: its SOP classes when it said, else common ones.

    Uncompressed syntaxes only, so that any PACS can send anything (it decompresses): one
    context per compressed syntax would not fit 128 contexts for an unknown study.
    """
    classes = list(dict.fromkeys(c for c in sop_classes if c))
    if not classes:
        classes = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    return [build_context(c, _UNCOMPRESSED) for c in classes[: MAX_CONTEXTS - 1]]


def c_get(services: Services, spec: DestinationSpec, study: Candidate) -> Retrieved:
    source = source_for(spec)
    retrieved = Retrieved()
    storage = storage_contexts(study.sop_classes)
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in storage]
    contexts = [build_context(StudyRootQueryRetrieveInformationModelGet), *storage]

    def on_store(event: Any) -> int:
        # Never raise into pynetdicom: answer a failure status, counted as refused.
        try:
            staged = _stage_event(services, event)
            result = services.ingest.ingest(staged, source)
        except Exception as exc:
            log.error("prior instance not stored: %s", type(exc).__name__)
            retrieved.refused += 1
            return int(StoreStatus.OUT_OF_RESOURCES)
        retrieved.add(result)
        return int(result.status)

    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study.study_uid
    handlers: list[tuple[Any, Callable[..., Any]]] = [(evt.EVT_C_STORE, on_store)]
    final: Dataset | None = None
    with association(spec, services.settings, contexts, ext_neg=roles, handlers=handlers) as a:
        require_context(a, StudyRootQueryRetrieveInformationModelGet, "C-GET")
        for status, _ in a.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet):
            code = int(status.get("Status", -1)) if status else -1
            if code not in _PENDING:
                final = status if code != -1 else None
    if final is None:
        raise DestinationUnavailable("C-GET ended without a final status (aborted or timed out)")
    code = int(final.Status)
    if code not in _DONE:
        raise DestinationUnavailable(f"C-GET failed: 0x{code:04X}")
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
    retrieved.remote_failed = max(0, failed - retrieved.refused)
    return retrieved


def _stage_event(services: Services, event: Any) -> StagedBlob:
    """The received instance as a Part 10 staging file (pynetdicom may have spooled it)."""
    writer = services.blobs.stage()
    try:
        try:
            path = event.dataset_path  # STORE_RECV_CHUNKED_DATASET, set by the DIMSE server
        except AttributeError:
            path = None
        if path is None:
            writer.write(event.encoded_dataset(include_meta=True))
        else:
            with open(path, "rb") as received:
                while chunk := received.read(_CHUNK):
                    writer.write(chunk)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


# --- DICOMweb WADO-RS ----------------------------------------------------------------------

_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def wado(services: Services, spec: DestinationSpec, study: Candidate) -> Retrieved:
    source = source_for(spec)
    retrieved = Retrieved()
    try:
        with (
            http_client(spec) as client,
            client.stream("GET", f"studies/{study.study_uid}", headers={"Accept": _ACCEPT}) as r,
        ):
            check_status(r, "WADO-RS")
            if r.status_code in (204, 404):
                return retrieved  # gone from the PACS since the query
            media = parse_media_type(r.headers.get("content-type", ""))
            boundary = media.params.get("boundary", "")
            if media.type != "multipart/related" or not boundary:
                raise DestinationUnavailable("WADO-RS answer is not multipart/related")
            for staged in _parts(services, r.iter_bytes(_CHUNK), boundary):
                retrieved.add(services.ingest.ingest(staged, source))
    except httpx.HTTPError as exc:
        raise http_failure(exc) from None
    except MultipartError:
        raise DestinationUnavailable("WADO-RS answer is not well-formed multipart") from None
    return retrieved


def _parts(services: Services, chunks: Iterator[bytes], boundary: str) -> Iterator[StagedBlob]:
    """Each part of the body as a staging file, streamed (never a whole instance in memory)."""
    parser = MultipartParser(boundary)
    writer: StagingWriter | None = None
    try:
        for chunk in chunks:
            for event, payload in parser.feed(chunk):
                if event is Event.PART_BEGIN:
                    writer = services.blobs.stage()
                elif event is Event.DATA and writer is not None:
                    writer.write(payload)  # type: ignore[arg-type]
                elif event is Event.PART_END and writer is not None:
                    done, writer = writer, None
                    yield done.finish()
        parser.close()
    finally:
        if writer is not None:
            writer.abort()
