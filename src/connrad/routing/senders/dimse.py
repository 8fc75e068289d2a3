"""C-STORE SCU towards a DICOM destination, over one association kept open across batches.

Opening an association costs round trips and, at many PACS, a process or thread: a backup
PACS receiving study after study gets one association. It is opened again when a batch
needs presentation contexts it lacks (proposing what it had plus what is new, at most 128),
or when it was released or aborted (a restarted peer, an idle timeout). An association kept
from an earlier call that turns out dead at its first C-STORE is opened again once before
the destination counts as unavailable.

Per SOP class each compressed transfer syntax of the batch gets a context of its own and
Explicit + Implicit VR Little Endian one more, so that a peer preferring uncompressed data
cannot pick that for a context compressed data must travel on (as C-MOVE does, move.py).
A file in an accepted syntax is streamed from disk as stored; otherwise it is decoded to the
accepted uncompressed syntax (transcode.py), and an instance that cannot be fails alone.

TLS (``spec.tls``): the system trust store checks the destination's certificate and host
name, TLS 1.2 at least, no client certificate unless the caller passes its own context.

Not thread-safe: one sender per worker thread.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from connrad.dicom.transcode import TranscodeError, can_produce, transcode
from connrad.dimse.server import shorten_reactor_polls
from connrad.routing.senders.base import BatchInterrupted, CannotConfirm, Outgoing, Sent
from connrad.routing.spec import DestinationSpec, DestinationUnavailable

MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1-255
UIDS_PER_QUERY = 200  # SOP Instance UIDs per C-FIND (list of UID matching, PS3.4 C.2.2.2.2)
IDLE_SECONDS = 60.0  # an unused association is released after this long
_MAX_PDU_BYTES = 4 * 1024 * 1024  # what we accept; the peer's maximum sizes what we send
_DUL_POLL_SECONDS = 0.0002  # pynetdicom's 1 ms default delays every C-STORE response
_UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
_FIND = str(StudyRootQueryRetrieveInformationModelFind)
_PENDING = (0xFF00, 0xFF01)

ContextKey = tuple[str, tuple[str, ...]]  # abstract syntax, transfer syntaxes proposed
# Always proposed: C-FIND to confirm, and Verification, which nearly every SCP accepts, so
# that an instance of a SOP class the peer refuses fails alone instead of the association.
_ALWAYS: tuple[ContextKey, ...] = (
    (_FIND, _UNCOMPRESSED),
    (str(Verification), (str(ImplicitVRLittleEndian),)),
)


class _Lost(Exception):
    """The association died under a request: no answer, aborted or released."""


class _FindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"C-FIND status 0x{status:04X}")
        self.status = status


class DicomSender:
    """C-STORE (and C-FIND to confirm) to one DICOM destination."""

    def __init__(
        self,
        spec: DestinationSpec,
        *,
        calling_ae: str,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not (spec.host and spec.port and spec.ae_title):
            raise ValueError("a DICOM destination needs an AE title, a host and a port")
        self.spec = spec
        self.associations = 0  # opened so far: the tests check the association is reused
        self.uids_per_query = UIDS_PER_QUERY
        self._ae = _new_ae(calling_ae, timeout)
        self._tls = tls_context or (default_tls_context() if spec.tls else None)
        self._assoc: Association | None = None
        self._proposed: list[ContextKey] = []
        self._accepted: dict[str, list[str]] = {}  # SOP class -> accepted transfer syntaxes
        self._msg_id = 0
        # pynetdicom pauses its association reactor for each request, which polls every
        # 1 ms: shortened as for the server (about a quarter more tiny instances a second).
        shorten_reactor_polls()
        # Files in an accepted syntax go out from disk in PDU-sized reads, never decoded.
        # Process-wide, but only sends given a path use it (C-MOVE sends datasets).
        _config.STORE_SEND_CHUNKED_DATASET = True

    # --- Sender ---------------------------------------------------------------------------

    def send(self, batch: Sequence[Outgoing]) -> list[Sent]:
        results: list[Sent] = []
        try:
            for group in context_groups(batch):
                keys = contexts_for(group)
                fresh = self._ensure(keys)
                for item in group:
                    while True:
                        try:
                            results.append(self._store(item))
                            fresh = True  # this association works: a later loss is real
                            break
                        except _Lost as lost:
                            self._drop(graceful=False)
                            if fresh:
                                raise DestinationUnavailable(str(lost)) from None
                            # Kept from an earlier call, it may have died quietly meanwhile.
                            fresh = self._ensure(keys)
        except DestinationUnavailable as exc:
            raise BatchInterrupted(str(exc), results) from exc
        return results

    def held(self, study_uid: str, sop_uids: Collection[str]) -> set[str]:
        wanted = list(dict.fromkeys(str(uid) for uid in sop_uids))
        if not wanted:
            return set()
        fresh = self._ensure([])
        while True:
            try:
                return self._held(study_uid, wanted)
            except _FindRefused as refused:
                raise DestinationUnavailable(str(refused)) from None
            except _Lost as lost:
                self._drop(graceful=False)
                if fresh:
                    raise DestinationUnavailable(str(lost)) from None
                fresh = self._ensure([])

    def close(self) -> None:
        self._drop(graceful=True)

    # --- association ----------------------------------------------------------------------

    def _ensure(self, keys: Sequence[ContextKey]) -> bool:
        """An established association proposing `keys`; True if it had to be opened."""
        wanted = list(dict.fromkeys([*_ALWAYS, *keys]))
        alive = self._assoc is not None and self._assoc.is_established
        if alive and set(wanted) <= set(self._proposed):
            return False
        # What the last association proposed stays: batches alternating between SOP
        # classes do not re-associate each time.
        merged = list(dict.fromkeys([*self._proposed, *wanted]))
        self._drop(graceful=True)
        self._open(merged if len(merged) <= MAX_CONTEXTS else wanted)
        return True

    def _open(self, keys: list[ContextKey]) -> None:
        contexts = [build_context(sop, list(syntaxes)) for sop, syntaxes in keys]
        assoc, connected = _associate(self._ae, self.spec, contexts, self._tls)
        if not assoc.is_established:
            raise DestinationUnavailable(_refusal(self.spec, assoc, connected))
        assoc.dul._run_loop_delay = _DUL_POLL_SECONDS
        assoc.network_timeout_response = "A-RELEASE"
        self._assoc, self._proposed = assoc, keys
        self._accepted = {}
        for cx in assoc.accepted_contexts:
            syntaxes = self._accepted.setdefault(str(cx.abstract_syntax), [])
            syntaxes.append(str(cx.transfer_syntax[0]))
        self.associations += 1

    def _drop(self, *, graceful: bool) -> None:
        assoc, self._assoc = self._assoc, None
        if assoc is None or not assoc.is_established:
            return
        if graceful:
            assoc.release()
        else:
            assoc.abort()

    def _next_id(self) -> int:
        self._msg_id = self._msg_id % 0xFFFF + 1
        return self._msg_id

    # --- C-STORE --------------------------------------------------------------------------

    def _store(self, item: Outgoing) -> Sent:
        target = self._target_syntax(item)
        if target is None:
            return _failed(item, "the destination accepts this SOP class in no usable syntax")
        try:
            payload = _payload(item, target)
        except TranscodeError as exc:
            return _failed(item, f"cannot be sent as {UID(target).name}: {exc}")
        except Exception as exc:  # missing file, unreadable bytes: pydicom raises many kinds
            return _failed(item, f"instance unreadable ({type(exc).__name__})")
        assoc = self._assoc
        if assoc is None or not assoc.is_established:
            raise _Lost("association closed by the destination")
        try:
            with parked(assoc):
                status = assoc.send_c_store(payload, msg_id=self._next_id())
        except Exception as exc:  # no context, not encodable, or association gone
            if not assoc.is_established:
                raise _Lost("association closed during a C-STORE") from exc
            # pynetdicom's message may name the file: only the kind is kept.
            return _failed(item, f"C-STORE not sent ({type(exc).__name__})")
        if "Status" not in status:
            raise _Lost("no C-STORE response (timeout, or the association was aborted)")
        code = int(status.Status)
        if is_success(code):
            return Sent(item.key, True, code)
        return Sent(item.key, False, code, f"C-STORE status 0x{code:04X}")

    def _target_syntax(self, item: Outgoing) -> str | None:
        """The syntax to send `item` in: its own if accepted, else an uncompressed one."""
        accepted = self._accepted.get(item.sop_class_uid, [])
        if item.transfer_syntax_uid in accepted:
            return item.transfer_syntax_uid
        for syntax in _UNCOMPRESSED:
            if syntax in accepted and can_produce(item.transfer_syntax_uid, syntax):
                return syntax
        return None

    # --- C-FIND ---------------------------------------------------------------------------

    def _held(self, study_uid: str, wanted: list[str]) -> set[str]:
        if _FIND not in self._accepted:
            raise CannotConfirm("the destination does not accept Study Root C-FIND")
        found: set[str] = set()
        series: list[str] | None = None  # once the peer wants them
        step = self.uids_per_query
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            if series is None:
                try:
                    found |= self._find_images(study_uid, None, chunk)
                    continue
                except _FindRefused:
                    # A strictly hierarchical SCP wants the series too (PS3.4 C.4.1.3.1.1).
                    series = self._find_series(study_uid)
            for series_uid in series:
                found |= self._find_images(study_uid, series_uid, chunk)
        return found & set(wanted)

    def _find_images(self, study_uid: str, series_uid: str | None, uids: Sequence[str]) -> set[str]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        if series_uid is not None:
            ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = list(uids)
        return {str(i.get("SOPInstanceUID", "")) for i in self._find(ds)}

    def _find_series(self, study_uid: str) -> list[str]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = ""
        try:
            answers = self._find(ds)
        except _FindRefused as exc:
            raise DestinationUnavailable(str(exc)) from None
        return [str(a.SeriesInstanceUID) for a in answers if a.get("SeriesInstanceUID")]

    def _find(self, identifier: Dataset) -> list[Dataset]:
        assoc = self._assoc
        if assoc is None or not assoc.is_established:
            raise _Lost("association closed by the destination")
        try:
            with parked(assoc):
                return _collect(assoc.send_c_find(identifier, _FIND, msg_id=self._next_id()))
        except (_Lost, _FindRefused):
            raise
        except Exception as exc:
            if not assoc.is_established:
                raise _Lost("association closed during a C-FIND") from exc
            raise DestinationUnavailable(f"C-FIND failed ({type(exc).__name__})") from exc


def contexts_for(batch: Sequence[Outgoing]) -> list[ContextKey]:
    """Per SOP class: each compressed syntax alone, and Explicit + Implicit VR LE together."""
    keys: dict[ContextKey, None] = {}
    for item in batch:
        if item.transfer_syntax_uid not in _UNCOMPRESSED:
            keys[(item.sop_class_uid, (item.transfer_syntax_uid,))] = None
        keys[(item.sop_class_uid, _UNCOMPRESSED)] = None
    return list(keys)


def is_success(status: int) -> bool:
    """Success, or a warning (PS3.7 C.4: 0x0001, 0xBxxx): the instance is stored."""
    return status in (0x0000, 0x0001) or status & 0xF000 == 0xB000


def echo(
    spec: DestinationSpec,
    *,
    calling_ae: str,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> tuple[bool, str]:
    """C-ECHO over a new association: (reachable and answering, detail)."""
    if not (spec.host and spec.port and spec.ae_title):
        return False, "incomplete destination: AE title, host and port are needed"
    where = f"{spec.ae_title}@{spec.host}:{spec.port}"
    tls = tls_context or (default_tls_context() if spec.tls else None)
    start = time.perf_counter()
    assoc, connected = _associate(
        _new_ae(calling_ae, timeout), spec, [build_context(Verification)], tls
    )
    if not assoc.is_established:
        return False, _refusal(spec, assoc, connected)
    try:
        with parked(assoc):
            status: Dataset | None = assoc.send_c_echo()
    except ValueError:  # Verification not accepted
        status = None
    finally:
        if assoc.is_established:
            assoc.release()
    ms = (time.perf_counter() - start) * 1000
    if status is None:
        return True, f"{where} accepts the association but not Verification (C-ECHO)"
    if "Status" not in status:
        return False, f"{where} sent no C-ECHO response within {timeout:g} s"
    code = int(status.Status)
    if code != 0:
        return False, f"C-ECHO to {where}: status 0x{code:04X}"
    return True, f"C-ECHO to {where}: success in {ms:.0f} ms"


@contextmanager
def parked(assoc: Association) -> Iterator[None]:
    """Run a request once pynetdicom's association reactor is blocked, so its response is
    ours; the reactor runs again afterwards, even if the request raised before pausing it.

    A request pauses the reactor by clearing an Event and waiting for a flag the reactor
    raises just *before* blocking on it. A reactor just released by the previous request
    still shows that flag, then takes the next response off the queue itself ("Received
    unexpected C-STORE service message"): the request waits for the DIMSE timeout. Seen
    about once per thousand back-to-back C-STOREs on a busy host. A waiter not yet woken is
    in the condition's waiter list (CPython): only then is the reactor truly blocked.
    """
    checkpoint = assoc._reactor_checkpoint
    waiters = getattr(getattr(checkpoint, "_cond", None), "_waiters", None)
    if waiters is not None:  # else another Python: pynetdicom's own pause only
        checkpoint.clear()
        deadline = time.monotonic() + 1.0
        while not waiters and assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.00002)
    try:
        yield
    finally:
        checkpoint.set()


def default_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _new_ae(calling_ae: str, timeout: float) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.connection_timeout = timeout
    ae.network_timeout = IDLE_SECONDS
    ae.maximum_pdu_size = _MAX_PDU_BYTES
    return ae


def _associate(
    ae: AE, spec: DestinationSpec, contexts: list[Any], tls: ssl.SSLContext | None
) -> tuple[Association, bool]:
    """(association, whether TCP connected): a refused connection and a refused
    association need different fixes, and pynetdicom only logs which one it was."""
    connected = threading.Event()

    def opened(event: Any) -> None:
        connected.set()
        # A C-STORE is a command PDU then data PDUs: with Nagle's algorithm the next small
        # write waits for the peer's delayed ACK (about 40 ms per instance).
        sock = event.assoc.dul.socket.socket
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    options: dict[str, Any] = {"evt_handlers": [(evt.EVT_CONN_OPEN, opened)]}
    if tls is not None:
        options["tls_args"] = (tls, spec.host)
    assoc = ae.associate(spec.host, spec.port, contexts=contexts, ae_title=spec.ae_title, **options)
    return assoc, connected.is_set()


def _refusal(spec: DestinationSpec, assoc: Association, connected: bool) -> str:
    where = f"{spec.ae_title}@{spec.host}:{spec.port}"
    if not connected:
        return f"cannot connect to {where} (refused, unreachable or timed out)"
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        why = f"{rj.result_str}, {rj.source_str}: {rj.reason_str}" if rj is not None else ""
        return f"association rejected by {where} ({why})"
    if assoc.is_aborted and assoc.acceptor.primitive is not None:
        return f"{where} accepted no presentation context"
    return f"association with {where} aborted or not answered within the timeout"


def context_groups(batch: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
    """Consecutive parts of `batch` that each fit one association (with `_ALWAYS`)."""
    group: list[Outgoing] = []
    keys: set[ContextKey] = set()
    for item in batch:
        new = set(contexts_for([item])) - keys
        if group and len(keys) + len(new) > MAX_CONTEXTS - len(_ALWAYS):
            yield group
            group, keys = [], set()
            new = set(contexts_for([item]))
        group.append(item)
        keys |= new
    if group:
        yield group


def _payload(item: Outgoing, target: str) -> Path | Dataset:
    """What send_c_store takes: the file itself when it is in `target`, else a dataset."""
    if item.path is None and item.data is None:
        raise ValueError("an Outgoing needs data or a path")
    if target == item.transfer_syntax_uid:
        if item.path is not None:
            return item.path
        return dcmread(BytesIO(item.data or b""))
    if item.path is not None:
        return dcmread(BytesIO(transcode(item.path, target)))
    with tempfile.NamedTemporaryFile(suffix=".dcm") as spooled:  # transcode reads files
        spooled.write(item.data or b"")
        spooled.flush()
        return dcmread(BytesIO(transcode(Path(spooled.name), target)))


def _collect(responses: Iterator[tuple[Dataset, Dataset | None]]) -> list[Dataset]:
    found: list[Dataset] = []
    for status, identifier in responses:
        if "Status" not in status:
            raise _Lost("no C-FIND response (timeout, or the association was aborted)")
        code = int(status.Status)
        if code in _PENDING:
            if identifier is not None:
                found.append(identifier)
        elif code in (0x0000, 0xFE00):
            return found
        else:
            raise _FindRefused(code)
    return found


def _failed(item: Outgoing, error: str) -> Sent:
    return Sent(item.key, False, None, error)
