"""C-STORE SCP: DIMSE's door into the one ingest pipeline.

The status goes back only after the pipeline has stored the instance durably and indexed it
(with its audit record, in the same transaction), so an instance that got a success status
survives a ``kill -9`` of the server. Received data sets are streamed by pynetdicom into a
temporary Part 10 file (``STORE_RECV_CHUNKED_DATASET``), never held whole in memory, then
copied into a staging file of the blob store as it is hashed.

Status codes come from the pipeline (``archive/status.py``, the same codes STOW-RS reports):
0xA700 out of resources, 0xA900 data set does not match, 0xC000 cannot understand, 0x0110
processing failure, 0x0122 SOP class not supported, warnings 0xB000/0xB006; a device
without the right to store gets 0x0124 (refused: not authorized).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt

from connrad.archive.ingest import IngestResult, Source
from connrad.archive.status import StoreStatus
from connrad.audit.log import AuditRecord
from connrad.dimse.server import caller_of
from connrad.identity.policy import Action, allows
from connrad.qc.findings import Severity
from connrad.services import Services
from connrad.storage import StagedBlob

log = logging.getLogger(__name__)

NOT_AUTHORIZED = 0x0124
_CHUNK = 1 << 20
# Every syntax the archive takes over STOW-RS, plus the standard's newer ones.
TRANSFER_SYNTAXES = [str(uid) for uid in AllTransferSyntaxes] + ["1.2.840.10008.1.2.8.1"]


def register(ae: AE, services: Services) -> list[tuple[Any, Callable[..., Any]]]:
    """Storage contexts for every storage SOP class and transfer syntax; the handler."""
    # Process-wide pynetdicom settings: the server process is the only user of pynetdicom
    # as an SCP, and both choices are what any connrad SCP wants.
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.UNRESTRICTED_STORAGE_SERVICE = services.settings.accept_unknown_sop_classes
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    return [(evt.EVT_C_STORE, partial(handle_store, services))]


def handle_store(services: Services, event: Any) -> int | Dataset:
    caller = caller_of(event)
    address = str(event.assoc.requestor.address)
    if caller.site_id is None or not allows(caller, Action.STORE, caller.site_id):
        _audit_refusal(services, caller.actor, caller.site_id, address, NOT_AUTHORIZED)
        return NOT_AUTHORIZED
    try:
        staged = _stage(services, event)
    except OSError as exc:
        log.error("C-STORE staging failed: %s", type(exc).__name__)
        return int(StoreStatus.OUT_OF_RESOURCES)
    source = Source(caller.site_id, caller.device_id, "dimse", actor=caller.actor, address=address)
    result = services.ingest.ingest(staged, source)
    if result.status.is_failure:
        # Stored instances are audited in the index transaction; refusals here.
        _audit_refusal(services, caller.actor, caller.site_id, address, int(result.status))
        log.info("C-STORE refused: 0x%04X %s", int(result.status), result.reason)
    return _status(result)


def _status(result: IngestResult) -> int | Dataset:
    """The status, with the failing (or first) QC finding as Error Comment (PS3.7 C.4)."""
    if not result.findings or not (result.status.is_failure or result.status.is_warning):
        return int(result.status)
    status = Dataset()
    status.Status = int(result.status)
    failing = [f for f in result.findings if f.severity is Severity.FAIL]
    first = (failing or result.findings)[0]
    status.ErrorComment = f"{first.code}: {first.message}"[:64]
    return status


def _stage(services: Services, event: Any) -> StagedBlob:
    writer = services.blobs.stage()
    try:
        with open(event.dataset_path, "rb") as received:
            while chunk := received.read(_CHUNK):
                writer.write(chunk)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _audit_refusal(
    services: Services, actor: str, site_id: int | None, address: str, status: int
) -> None:
    services.audit.record(
        AuditRecord(
            actor=actor,
            actor_site_id=site_id,
            source=address,
            action="create",
            resource="instance",
            outcome=403 if status == NOT_AUTHORIZED else 409,
            site_id=site_id,
            detail={"door": "dimse", "status": f"0x{status:04X}"},
        )
    )
