"""DICOM association acceptor: every association is identified before anything else.

The calling AE title (and, when the device lists hosts, the peer's address) must belong to
an enabled DICOM device of an enabled site; otherwise the request is refused with
A-ASSOCIATE-RJ (rejected-permanent, service-user, calling-AE-title-not-recognized). The
identified Caller rides on the association for every service that follows, so the same
policy decides DIMSE requests as HTTP ones.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pynetdicom import AE, evt
from pynetdicom import association as pynetdicom_association
from pynetdicom.acse import ACSE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from connrad.audit.log import AuditRecord
from connrad.identity.authenticate import dicom_caller
from connrad.identity.caller import Caller
from connrad.services import Services
from connrad.settings import Settings

log = logging.getLogger(__name__)

Identify = Callable[[str, str], Caller | None]

# PS3.8 Table 9-21: rejected-permanent, DICOM UL service-user, calling AE title not recognized
_REJECT_UNKNOWN_CALLER = (0x01, 0x01, 0x03)
_DUL_POLL_SECONDS = 0.0002
# Largest PDU we accept: peers send whole large fragments instead of 16 KB pieces, and each
# PDU costs a round of pynetdicom's Python-level decoding.
MAX_PDU_BYTES = 4 * 1024 * 1024


class _IdentifyingACSE(ACSE):
    def __init__(self, assoc: Association, identify: Identify) -> None:
        super().__init__(assoc)
        self._identify = identify

    def _negotiate_as_acceptor(self) -> None:
        calling = str(getattr(self.requestor.primitive, "calling_ae_title", "")).strip()
        address = self.requestor.address
        caller = self._identify(calling, address)
        if caller is None:
            self.send_reject(*_REJECT_UNKNOWN_CALLER)
            evt.trigger(self.assoc, evt.EVT_REJECTED, {})
            self.assoc.kill()
            return
        self.assoc.connrad_caller = caller  # type: ignore[attr-defined]
        super()._negotiate_as_acceptor()


class _ShortNaps:
    """pynetdicom's association reactor polls for each DIMSE message with a fixed 1 ms
    sleep, a delay every C-STORE of a one-at-a-time modality pays twice (request in,
    response out). This stands in for the ``time`` module inside pynetdicom.association and
    shortens that one poll; every other sleep there is unchanged.
    """

    _REACTOR_POLL = 0.001

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(_DUL_POLL_SECONDS if seconds == _ShortNaps._REACTOR_POLL else seconds)


def shorten_reactor_polls() -> None:
    pynetdicom_association.time = _ShortNaps()  # type: ignore[assignment]


class _IdentifyingHandler(RequestHandler):
    server: _Server

    def handle(self) -> None:
        # Without it each small PDU waits for the peer's delayed ACK (about 40 ms).
        if isinstance(self.request, socket.socket):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        assoc.acse = _IdentifyingACSE(assoc, self.server.identify)
        # pynetdicom's transport reactor polls, sleeping this long whenever the socket has
        # nothing yet: at its 1 ms default, a 512 KB CT slice in 16 KB PDUs waits for it
        # dozens of times. A shorter nap costs a little idle CPU per open association.
        assoc.dul._run_loop_delay = _DUL_POLL_SECONDS
        return assoc


class _Server(ThreadedAssociationServer):
    identify: Identify


def caller_of(event: Any) -> Caller:
    """The device an established association was identified as."""
    return event.assoc.connrad_caller  # type: ignore[no-any-return]


class DimseServer:
    """The SCP: started by `connrad serve` (or `connrad dimse`), stopped with it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.ae = AE(ae_title=settings.ae_title)
        self.ae.require_called_aet = False  # clinics often configure the peer loosely
        self.ae.maximum_associations = settings.dimse_max_associations
        self.ae.maximum_pdu_size = MAX_PDU_BYTES
        shorten_reactor_polls()
        self.ae.add_supported_context(Verification)
        # Each DIMSE service lives in its own module: it adds its presentation contexts to
        # the AE and returns its event handlers.
        self.handlers: list[tuple[Any, Callable[..., Any]]] = [(evt.EVT_C_ECHO, _echo)]
        finds: dict[str, Callable[..., Any]] = {}
        for service in _service_modules():
            before = _abstract_syntaxes(self.ae)
            for event, handler in service.register(self.ae, services):
                if event is evt.EVT_C_FIND:
                    # pynetdicom binds one handler per intervention event: C-FIND goes to
                    # the service whose information model (SOP class) the request names.
                    finds.update(dict.fromkeys(_abstract_syntaxes(self.ae) - before, handler))
                else:
                    self.handlers.append((event, handler))
        if finds:
            self.handlers.append((evt.EVT_C_FIND, partial(_route_find, finds)))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def identify(self, calling_ae: str, address: str) -> Caller | None:
        with self.services.engine.connect() as conn:
            caller = dicom_caller(conn, calling_ae, address)
        self.services.audit.record(
            AuditRecord(
                actor=caller.actor if caller else "anonymous",
                actor_site_id=caller.site_id if caller else None,
                source=address,
                action="associate",
                resource="association",
                outcome=200 if caller else 401,
                detail={"door": "dimse", "calling_ae": calling_ae[:16]},
            )
        )
        if caller is None:
            log.warning("association refused: calling AE title not registered from that host")
        return caller

    def start(self, host: str, port: int) -> int:
        """Listen in a background thread; returns the bound port."""
        server = self.ae.make_server(
            (host, port),
            server_class=_Server,
            request_handler=_IdentifyingHandler,
            ssl_context=tls_context(self.services.settings),
            evt_handlers=self.handlers,
        )
        server.identify = self.identify
        self.ae._servers.append(server)  # as AE.start_server does; shutdown() removes it
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="connrad-dimse", daemon=True
        )
        self._thread.start()
        return int(server.server_address[1])

    def stop(self) -> None:
        self.ae.shutdown()  # every server of the AE, and its associations


def _abstract_syntaxes(ae: AE) -> set[str]:
    return {str(context.abstract_syntax) for context in ae.supported_contexts}


def _route_find(finds: dict[str, Callable[..., Any]], event: Any) -> Any:
    return finds[str(event.request.AffectedSOPClassUID)](event)


def _service_modules() -> list[Any]:
    from connrad.dimse import commitment, query, storage, worklist

    return [storage, commitment, query, worklist]


def _echo(event: Any) -> int:
    caller_of(event)  # only identified associations get this far
    return 0x0000


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """DICOM TLS (PS3.15 B.9 BCP 195): server certificate, optionally client certificates."""
    if settings.dimse_tls_certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.dimse_tls_certfile, settings.dimse_tls_keyfile)
    if settings.dimse_tls_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(settings.dimse_tls_ca_file)
    return context
