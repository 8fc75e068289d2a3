"""C-MOVE and C-GET SCP: the stored Part 10 files, sent as C-STORE sub-operations.

C-MOVE sends to a destination registered for the caller's site (``routing``), over a new
association from connrad's AE; an AE title the site has not registered (or has paused) is
0xA801, so no device can make the archive send data to an address of its choosing. C-GET
sends back over the requesting association, on the storage contexts the SCU proposed with
the SCP role.

pynetdicom runs the sub-operations and keeps the counts: it sends a pending response after
each, then 0x0000 (all completed), 0xB000 (some failed or warned) or 0xA702 (all failed),
with the Failed SOP Instance UID List. Refusals found before any sub-operation (0xA900,
0xC000, 0x0124) go out as the status of the one failed sub-operation pynetdicom expects.
Files are sent in their stored transfer syntax; uncompressed data may be re-encoded as
Explicit or Implicit VR Little Endian, compressed data is never transcoded: a destination
that does not accept its syntax gets a failed sub-operation and the others continue.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from sqlalchemy import Connection

from connrad.archive import query
from connrad.archive.attributes import Level
from connrad.archive.retrieve import NotFound, StoredObject, find_instances
from connrad.dimse import query_audit
from connrad.dimse.query_keys import (
    CANCELLED,
    NOT_AUTHORIZED,
    PENDING,
    UNABLE_TO_PROCESS,
    IdentifierError,
    RetrieveRequest,
    Root,
    decoded_identifier,
    parse_retrieve,
)
from connrad.dimse.server import caller_of
from connrad.identity.caller import Caller
from connrad.identity.policy import NO_SITE, Action, site_scope
from connrad.routing.destinations import dicom_by_ae
from connrad.services import Services
from connrad.settings import Settings

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1-255

MOVE_MODELS: dict[str, Root] = {
    str(PatientRootQueryRetrieveInformationModelMove): Root.PATIENT,
    str(StudyRootQueryRetrieveInformationModelMove): Root.STUDY,
}
GET_MODELS: dict[str, Root] = {
    str(PatientRootQueryRetrieveInformationModelGet): Root.PATIENT,
    str(StudyRootQueryRetrieveInformationModelGet): Root.STUDY,
}
_UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]

Yield = Any  # pynetdicom's protocol mixes destinations, counts and (status, dataset)


def register(ae: AE, services: Services) -> list[tuple[Any, Callable[..., Any]]]:
    for sop_class in (*MOVE_MODELS, *GET_MODELS):
        ae.add_supported_context(sop_class, _UNCOMPRESSED)
    # C-GET sends back on storage contexts the SCU proposed with the SCP role (PS3.7 D.3.3.4):
    # accept that role proposal; contexts (and syntaxes) already added by storage.py stay.
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(
            context.abstract_syntax, _UNCOMPRESSED, scu_role=True, scp_role=True
        )
    return [
        (evt.EVT_C_MOVE, partial(handle_move, services)),
        (evt.EVT_C_GET, partial(handle_get, services)),
    ]


@dataclass
class Plan:
    """What a retrieve sends, or the status that refuses it."""

    instances: list[StoredObject] = field(default_factory=list)
    failure: int | None = None


def handle_move(services: Services, event: Any) -> Iterator[Yield]:
    caller = caller_of(event)
    root = MOVE_MODELS[str(event.request.AffectedSOPClassUID)]
    target = str(event.move_destination or "").strip()
    destination = None
    if caller.site_id is not None and target:
        with services.engine.connect() as conn:
            destination = dicom_by_ae(conn, caller.site_id, target)
    if destination is None:
        query_audit.record(
            services,
            caller,
            event,
            action="read",
            resource="study",
            outcome=404,
            detail={"service": "C-MOVE", "destination": target[:16], "status": "0xA801"},
        )
        yield None, None  # pynetdicom answers 0xA801: Move Destination unknown
        return
    plan = _plan(services, caller, event, root, {"service": "C-MOVE", "destination": target})
    options: dict[str, Any] = {
        # A refusal still goes through an association (pynetdicom's order): give it one.
        "contexts": contexts_for(plan.instances) or [build_context(Verification)],
        "evt_handlers": [(evt.EVT_CONN_OPEN, _no_delay)],
    }
    if destination["tls"]:
        options["tls_args"] = (_client_tls(services.settings), destination["host"])
    yield destination["host"], destination["port"], options
    yield from _suboperations(services, event, plan)


def handle_get(services: Services, event: Any) -> Iterator[Yield]:
    caller = caller_of(event)
    root = GET_MODELS[str(event.request.AffectedSOPClassUID)]
    plan = _plan(services, caller, event, root, {"service": "C-GET"})
    yield from _suboperations(services, event, plan)


def _suboperations(services: Services, event: Any, plan: Plan) -> Iterator[Yield]:
    if plan.failure is not None:
        yield 1
        yield plan.failure, None
        return
    yield len(plan.instances)
    for stored in plan.instances:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        yield PENDING, _read(services, stored)


def _plan(
    services: Services, caller: Caller, event: Any, root: Root, detail: dict[str, Any]
) -> Plan:
    """Find what to send (audited per study before anything is sent) or why not."""
    sites = site_scope(caller, Action.READ)
    plan, resource = Plan(), "study"
    try:
        if sites == NO_SITE:
            raise IdentifierError("no right to read", NOT_AUTHORIZED)
        request = parse_retrieve(decoded_identifier(event), root)
        resource = "study" if request.level is Level.PATIENT else request.level.value
        with services.engine.connect() as conn:
            plan.instances = find_requested(conn, request, sites)
    except IdentifierError as exc:
        plan.failure = exc.status
    except query.QueryError:
        plan.failure = UNABLE_TO_PROCESS
    if plan.failure is not None:
        log.info("%s refused: 0x%04X", detail["service"], plan.failure)
        outcome = 403 if plan.failure == NOT_AUTHORIZED else 400
        status = {"status": f"0x{plan.failure:04X}"}
        query_audit.record(
            services,
            caller,
            event,
            action="read",
            resource=resource,
            outcome=outcome,
            detail=detail | status,
        )
        return plan
    if not plan.instances:
        query_audit.record(
            services,
            caller,
            event,
            action="read",
            resource=resource,
            outcome=404,
            detail=detail | {"instances": 0},
        )
    for study_uid, instances in _by_study(plan.instances).items():
        query_audit.record(
            services,
            caller,
            event,
            action="read",
            resource=resource,
            outcome=200,
            study_uid=study_uid,
            site_id=instances[0].site_id,
            detail=detail | {"instances": len(instances)},
        )
    return plan


def find_requested(
    conn: Connection, request: RetrieveRequest, site_ids: Sequence[int] | None
) -> list[StoredObject]:
    """The stored instances the identifier names, among the sites the caller may read."""
    filters = {"StudyInstanceUID": "\\".join(request.study_uids)} if request.study_uids else {}
    if request.patient_id is not None:
        filters["PatientID"] = request.patient_id  # also checks the hierarchy above studies
    search = query.Search(Level.STUDY, filters=filters, site_ids=site_ids)
    studies = [row["0020000D"]["Value"][0] for row in query.run(conn, search)]
    found: dict[str, StoredObject] = {}
    for study_uid in studies:
        for series_uid in request.series_uids or [None]:
            for sop_uid in request.sop_uids or [None]:
                try:
                    objects = find_instances(
                        conn, study_uid, series_uid, sop_uid, site_ids=site_ids
                    )
                except NotFound:
                    continue
                found.update((o.sop_uid, o) for o in objects)
    return list(found.values())


def contexts_for(instances: Sequence[StoredObject]) -> list[PresentationContext]:
    """Per SOP class: its stored syntaxes, and Explicit/Implicit VR Little Endian.

    Each compressed syntax gets a context of its own, so that a peer preferring
    uncompressed data cannot pick that for a context compressed data must travel on.
    """
    wanted: dict[tuple[str, tuple[str, ...]], None] = {}
    for stored in instances:
        if stored.transfer_syntax_uid not in _UNCOMPRESSED:
            wanted[(stored.sop_class_uid, (stored.transfer_syntax_uid,))] = None
        wanted[(stored.sop_class_uid, tuple(_UNCOMPRESSED))] = None
    if len(wanted) > MAX_CONTEXTS:
        # The instances of the contexts left out fail as sub-operations; the rest go.
        log.warning("C-MOVE needs %d presentation contexts, proposing 128", len(wanted))
    return [build_context(sop, list(syntaxes)) for sop, syntaxes in list(wanted)[:MAX_CONTEXTS]]


def _read(services: Services, stored: StoredObject) -> Dataset:
    try:
        return dcmread(services.blobs.local_path(stored.blob_key))
    except Exception as exc:  # missing or unreadable blob: pydicom raises many kinds
        log.error("stored instance unreadable for retrieve: %s", type(exc).__name__)
        # Without file meta pynetdicom cannot pick a context: it counts a failed
        # sub-operation and lists this SOP Instance UID as failed.
        stub = Dataset()
        stub.SOPClassUID = stored.sop_class_uid
        stub.SOPInstanceUID = stored.sop_uid
        return stub


def _by_study(instances: Sequence[StoredObject]) -> dict[str, list[StoredObject]]:
    studies: dict[str, list[StoredObject]] = {}
    for stored in instances:
        studies.setdefault(stored.study_uid, []).append(stored)
    return studies


def _no_delay(event: Any) -> None:
    # A C-STORE is a command PDU then data PDUs: with Nagle's algorithm the next small write
    # waits for the peer's delayed ACK (about 40 ms per instance). The server side sets it
    # in server.py; this is the socket of the association connrad opens to a destination.
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _client_tls(settings: Settings) -> ssl.SSLContext:
    """DICOM TLS towards a destination: its certificate checked, ours shown if we have one."""
    context = ssl.create_default_context(cafile=settings.dimse_tls_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.dimse_tls_certfile is not None:
        context.load_cert_chain(settings.dimse_tls_certfile, settings.dimse_tls_keyfile)
    return context
