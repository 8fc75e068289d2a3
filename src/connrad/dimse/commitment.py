"""Storage Commitment Push Model SCP (PS3.4 Annex J): "do you hold these durably?"

A modality asks (N-ACTION) before it deletes its local copies. The answer (N-EVENT-REPORT)
lists each referenced instance as committed only if the archive holds it durably: indexed,
or held durably for pixel cleaning (``held_instances``). Under de-identification the device
refers to the UIDs it sent; the archive holds them under the site key's HMAC remap, which
is computed, never stored.

The report goes on the same association when the device keeps it open (PS3.4 J.3.3);
otherwise on a new association to the device, at the address registered for its AE title
as a DICOM destination of its site, proposing the SCP role (SCP/SCU Role Selection). A
request whose report cannot be delivered is logged; the device will ask again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from sqlalchemy import select

from connrad.archive.models import Instance, Study
from connrad.audit.log import AuditRecord
from connrad.deid.held import held as held_table
from connrad.deid.pseudonyms import remap_uid
from connrad.dimse.server import caller_of
from connrad.identity.caller import Caller
from connrad.identity.models import Device
from connrad.routing import destinations
from connrad.services import Services

log = logging.getLogger(__name__)

# PS3.4 J.3.2.1.1 / Table J.3-2 and PS3.7 C
REQUEST_COMMITMENT = 1
ALL_COMMITTED, SOME_FAILED = 1, 2
NO_SUCH_OBJECT_INSTANCE = 0x0112
PROCESSING_FAILURE = 0x0110
CLASS_INSTANCE_CONFLICT = 0x0119
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
_REPORT_DELAY = 0.05  # let the N-ACTION response leave before the report is sent


def register(ae: AE, services: Services) -> list[tuple[Any, Callable[..., Any]]]:
    ae.add_supported_context(StorageCommitmentPushModel, _SYNTAXES)
    return [(evt.EVT_N_ACTION, partial(handle_action, services))]


def handle_action(services: Services, event: Any) -> tuple[int, Dataset | None]:
    request = event.request
    if request.ActionTypeID != REQUEST_COMMITMENT:
        return 0x0123, None  # No such action
    if str(request.RequestedSOPInstanceUID) != WELL_KNOWN_INSTANCE:
        return 0x0117, None  # Invalid object instance
    action = event.action_information
    transaction = str(action.get("TransactionUID", ""))
    references = list(action.get("ReferencedSOPSequence", []))
    if not transaction or not references:
        return 0x0120, None  # Missing attribute
    caller = caller_of(event)
    pairs = [(str(r.ReferencedSOPClassUID), str(r.ReferencedSOPInstanceUID)) for r in references]
    threading.Thread(
        target=_report,
        args=(services, event.assoc, caller, transaction, pairs),
        name="connrad-commitment",
        daemon=True,
    ).start()
    return 0x0000, None


def committed(services: Services, caller: Caller, sop_uids: list[str]) -> set[str]:
    """The sent SOP Instance UIDs that the caller's site holds durably."""
    if caller.site_id is None:
        return set()
    stored_as = _stored_uids(services, caller.site_id, sop_uids)
    with services.engine.connect() as conn:
        wanted = sorted({uid for candidates in stored_as.values() for uid in candidates})
        found = set(
            conn.execute(
                select(Instance.sop_uid)
                .join(Study, Study.id == Instance.study_pk)
                .where(Instance.sop_uid.in_(wanted), Study.site_id == caller.site_id)
            ).scalars()
        )
        found |= set(
            conn.execute(
                select(held_table.c.sop_uid).where(
                    held_table.c.sop_uid.in_(wanted), held_table.c.site_id == caller.site_id
                )
            ).scalars()
        )
    return {sent for sent, candidates in stored_as.items() if found & candidates}


def _stored_uids(services: Services, site_id: int, sop_uids: list[str]) -> dict[str, set[str]]:
    """The UIDs each sent UID may be stored under: as sent, or remapped by a site key.

    Both, whatever the site's policy now: instances stored before a policy change kept the
    form they were stored in. A site without a key has never de-identified anything.
    """
    keys = services.site_keys.all(site_id).values()
    return {uid: {uid, *(remap_uid(key, uid) for key in keys)} for uid in sop_uids}


def _report(
    services: Services,
    assoc: Any,
    caller: Caller,
    transaction: str,
    pairs: list[tuple[str, str]],
) -> None:
    time.sleep(_REPORT_DELAY)
    done = committed(services, caller, [uid for _, uid in pairs])
    report = Dataset()
    report.TransactionUID = transaction
    report.ReferencedSOPSequence = Sequence(
        [_reference(cls, uid) for cls, uid in pairs if uid in done]
    )
    failed = [(cls, uid) for cls, uid in pairs if uid not in done]
    if failed:
        report.FailedSOPSequence = Sequence(
            [_reference(cls, uid, NO_SUCH_OBJECT_INSTANCE) for cls, uid in failed]
        )
    event_type = SOME_FAILED if failed else ALL_COMMITTED
    _audit(services, caller, str(assoc.requestor.address), len(done), len(failed))
    if assoc.is_established and _send(assoc, report, event_type):
        return
    if not _send_on_new_association(services, caller, report, event_type):
        log.warning("storage commitment report undelivered (%d instances)", len(pairs))


def _reference(sop_class: str, sop_uid: str, failure: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    if failure is not None:
        item.FailureReason = failure
    return item


def _send(assoc: Any, report: Dataset, event_type: int) -> bool:
    try:
        status, _ = assoc.send_n_event_report(
            report, event_type, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE
        )
    except (RuntimeError, ValueError) as exc:  # released meanwhile, or no such context
        log.info("commitment report on the same association failed: %s", type(exc).__name__)
        return False
    return status is not None and int(status.get("Status", 0xFFFF)) == 0x0000


def _send_on_new_association(
    services: Services, caller: Caller, report: Dataset, event_type: int
) -> bool:
    target = _callback_address(services, caller)
    if target is None:
        return False
    ae_title, host, port = target
    ae = AE(ae_title=services.settings.ae_title)
    ae.add_requested_context(StorageCommitmentPushModel, _SYNTAXES)
    role = build_role(StorageCommitmentPushModel, scp_role=True)
    assoc = ae.associate(host, port, ae_title=ae_title, ext_neg=[role])
    if not assoc.is_established:
        return False
    try:
        return _send(assoc, report, event_type)
    finally:
        assoc.release()


def _callback_address(services: Services, caller: Caller) -> tuple[str, str, int] | None:
    """Where the device listens: the site's DICOM destination with the device's AE title."""
    if caller.site_id is None:
        return None
    with services.engine.connect() as conn:
        ae_title = conn.execute(
            select(Device.ae_title).where(Device.id == caller.device_id)
        ).scalar()
        target = destinations.dicom_by_ae(conn, caller.site_id, ae_title) if ae_title else None
    if target is None:
        return None
    return str(target["ae_title"]), str(target["host"]), int(target["port"])


def _audit(services: Services, caller: Caller, address: str, done: int, failed: int) -> None:
    services.audit.record(
        AuditRecord(
            actor=caller.actor,
            actor_site_id=caller.site_id,
            source=address,
            action="read",
            resource="commitment",
            outcome=200,
            site_id=caller.site_id,
            detail={"door": "dimse", "committed": done, "failed": failed},
        )
    )
