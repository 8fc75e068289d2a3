"""The senders of the PACS backup against real peers: Orthanc (DIMSE and DICOMweb), a
pynetdicom storage SCP standing in for a picky PACS, and a small HTTP server for the
STOW-RS answers Orthanc never gives (auth failures, 409s, 503s).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from bench.procs import free_port
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from connrad.routing.senders.base import BatchInterrupted, Outgoing, Sent, probe, sender_for
from connrad.routing.senders.dicomweb import DicomwebSender
from connrad.routing.senders.dimse import DicomSender, context_groups, contexts_for
from connrad.routing.spec import DestinationSpec, DestinationUnavailable
from tests.factories import make_dataset, parse_multipart, to_bytes
from tests.orthanc import Orthanc  # the `orthanc` fixture comes from conftest.py
from tests.shared_data import public_dir

CALLING = "CONNRAD"
COMPRESSED = {
    "pydicom__MR_small_jp2klossless.dcm": JPEG2000Lossless,
    "pydicom__MR_small_RLE.dcm": RLELossless,
    "pydicom__MR_small_jpeg_ls_lossless.dcm": JPEGLSLossless,
}


# --- helpers ---------------------------------------------------------------------------------


def dicom_spec(port: int, ae_title: str = "ORTHANC") -> DestinationSpec:
    return DestinationSpec(
        1, 1, "pacs", "dicom", ae_title=ae_title, host="127.0.0.1", port=port, trusted=True
    )


def web_spec(url: str, auth_kind: str = "", secret: str = "") -> DestinationSpec:
    return DestinationSpec(
        2, 1, "web", "dicomweb", url=url, auth_kind=auth_kind, auth_secret=secret
    )


def tiny_cts(
    count: int, study_uid: str, folder: Path | None = None, first_key: int = 0
) -> list[tuple[Outgoing, Dataset]]:
    """Tiny CTs of one series, as Part 10 files in `folder` or else as bytes."""
    made = []
    series_uid = generate_uid()
    for index in range(count):
        ds = make_dataset(
            StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, InstanceNumber=index + 1
        )
        data = to_bytes(ds)
        path = None
        if folder is not None:
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            path.write_bytes(data)
        outgoing = Outgoing(
            key=first_key + index,
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            data=None if path else data,
            path=path,
        )
        made.append((outgoing, ds))
    return made


def outgoing_file(key: int, path: Path) -> Outgoing:
    meta = pydicom.dcmread(path, stop_before_pixels=True)
    return Outgoing(
        key=key,
        sop_class_uid=str(meta.SOPClassUID),
        sop_instance_uid=str(meta.SOPInstanceUID),
        transfer_syntax_uid=str(meta.file_meta.TransferSyntaxUID),
        path=path,
    )


def renamed_copy(source: Path, folder: Path, **attributes: Any) -> Path:
    """`source` with a new SOP Instance UID (the shared MR files all share one), written in
    its own transfer syntax: compressed pixel data stays as it was."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds["PixelData"].is_undefined_length = True
    target = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(target, enforce_file_format=True)
    return target


def stored_at(pacs: Orthanc, sop_uid: str) -> Dataset:
    return pydicom.dcmread(BytesIO(pacs.file_of(sop_uid)))


def oks(results: list[Sent]) -> list[bool]:
    return [r.ok for r in results]


@dataclass
class StoragePeer:
    """A pynetdicom storage SCP: records what arrives, answers scripted statuses."""

    port: int
    received: list[tuple[str, Dataset]] = field(default_factory=list)  # (syntax, dataset)
    statuses: dict[str, int] = field(default_factory=dict)  # SOP Instance UID -> status
    abort_on: set[str] = field(default_factory=set)  # abort the association on these
    connections: int = 0
    queries: list[tuple[str, int]] = field(default_factory=list)  # (level, UIDs asked)


@contextmanager
def storage_peer(syntaxes: list[str]) -> Iterator[StoragePeer]:
    peer = StoragePeer(free_port())

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        uid = str(ds.SOPInstanceUID)
        if uid in peer.abort_on:
            event.assoc.abort()
            return 0xA700
        peer.received.append((str(event.context.transfer_syntax), ds))
        return peer.statuses.get(uid, 0x0000)

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        yield from strict_find(peer, event.identifier)

    def on_open(_event: Any) -> None:
        peer.connections += 1

    ae = AE(ae_title="PICKY")
    for sop_class in (CTImageStorage, MRImageStorage):
        ae.add_supported_context(sop_class, syntaxes)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(Verification)
    handlers = [
        (evt.EVT_C_STORE, on_store),
        (evt.EVT_C_FIND, on_find),
        (evt.EVT_CONN_OPEN, on_open),
    ]
    server = ae.start_server(("127.0.0.1", peer.port), block=False, evt_handlers=handlers)
    try:
        yield peer
    finally:
        server.shutdown()


def strict_find(peer: StoragePeer, query: Dataset) -> Iterator[tuple[int, Dataset | None]]:
    """A strictly hierarchical Study Root C-FIND: IMAGE level wants the series UID too."""
    level = str(query.QueryRetrieveLevel)
    asked = query.get("SOPInstanceUID") or []
    asked = [asked] if isinstance(asked, str) else [str(uid) for uid in asked]
    peer.queries.append((level, len(asked)))
    study = [ds for _, ds in peer.received if ds.StudyInstanceUID == query.StudyInstanceUID]
    if level == "SERIES":
        for series_uid in sorted({str(ds.SeriesInstanceUID) for ds in study}):
            answer = Dataset()
            answer.QueryRetrieveLevel = "SERIES"
            answer.SeriesInstanceUID = series_uid
            yield 0xFF00, answer
        return
    if level != "IMAGE" or not query.get("SeriesInstanceUID"):
        yield 0xA900, None  # identifier does not match SOP class
        return
    for ds in study:
        if ds.SeriesInstanceUID == query.SeriesInstanceUID and ds.SOPInstanceUID in asked:
            answer = Dataset()
            answer.QueryRetrieveLevel = "IMAGE"
            answer.SOPInstanceUID = ds.SOPInstanceUID
            yield 0xFF00, answer


@dataclass
class HttpPeer:
    """A STOW-RS endpoint answering scripted (status, JSON body or None) responses."""

    url: str
    answers: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def http_peer() -> Iterator[HttpPeer]:
    port = free_port()
    peer = HttpPeer(f"http://127.0.0.1:{port}/dicom-web")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            peer.requests.append((dict(self.headers.items()), body))
            status, answer = peer.answers.pop(0)
            payload = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()


def sop_item(uid: str, reason: tuple[str, int] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"00081155": {"vr": "UI", "Value": [uid]}}
    if reason is not None:
        item[reason[0]] = {"vr": "US", "Value": [reason[1]]}
    return item


# --- DIMSE -----------------------------------------------------------------------------------


def test_batches_share_one_association_and_orthanc_holds_the_bytes(
    orthanc: Orthanc, tmp_path: Path
) -> None:
    study = generate_uid()
    made = tiny_cts(10, study, tmp_path) + tiny_cts(10, study, first_key=10)  # files, bytes
    sender = sender_for(dicom_spec(orthanc.dicom_port), calling_ae=CALLING)
    try:
        first = sender.send([o for o, _ in made[::2]])
        second = sender.send([o for o, _ in made[1::2]])
        uids = [o.sop_instance_uid for o, _ in made]
        held = sender.held(study, [*uids, generate_uid()])
        assert isinstance(sender, DicomSender) and sender.associations == 1
    finally:
        sender.close()
    assert [r.key for r in first + second] == [o.key for o, _ in made[::2] + made[1::2]]
    assert all(r.ok and r.status == 0 and r.error == "" for r in first + second)
    assert sorted(orthanc.sop_uids()) == sorted(uids)
    assert held == set(uids)
    for outgoing, ds in (made[0], made[-1]):  # one sent from its file, one from bytes
        stored = stored_at(orthanc, outgoing.sop_instance_uid)
        assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert stored.PixelData == ds.PixelData
        assert stored.StudyInstanceUID == study


def test_compressed_files_travel_in_their_own_syntax(orthanc: Orthanc, tmp_path: Path) -> None:
    sources = {name: renamed_copy(public_dir() / name, tmp_path) for name in COMPRESSED}
    batch = [outgoing_file(i, path) for i, path in enumerate(sources.values())]
    sender = sender_for(dicom_spec(orthanc.dicom_port), calling_ae=CALLING)
    try:
        results = sender.send(batch)
    finally:
        sender.close()
    assert oks(results) == [True] * len(batch)
    for (name, path), outgoing in zip(sources.items(), batch, strict=True):
        original = pydicom.dcmread(path)
        stored = stored_at(orthanc, outgoing.sop_instance_uid)
        assert stored.file_meta.TransferSyntaxUID == COMPRESSED[name]
        assert stored.PixelData == original.PixelData  # the same encapsulated bytes


def test_a_peer_taking_only_uncompressed_data_gets_it_decoded(tmp_path: Path) -> None:
    sources = [renamed_copy(public_dir() / name, tmp_path) for name in COMPRESSED]
    broken = renamed_copy(  # a JPEG 2000 codestream that cannot be decoded
        public_dir() / "pydicom__MR_small_jp2klossless.dcm",
        tmp_path,
        PixelData=encapsulate([b"\xff\x4f\xff\x51" + bytes(60)]),
    )
    batch = [outgoing_file(i, path) for i, path in enumerate([*sources, broken])]
    jp2k_bytes = sources[0].read_bytes()
    batch.append(
        Outgoing(  # in memory, e.g. re-identified for a trusted destination
            key=9,
            sop_class_uid=batch[0].sop_class_uid,
            sop_instance_uid=batch[0].sop_instance_uid,
            transfer_syntax_uid=JPEG2000Lossless,
            data=jp2k_bytes,
        )
    )
    with storage_peer([ExplicitVRLittleEndian, ImplicitVRLittleEndian]) as peer:
        sender = DicomSender(dicom_spec(peer.port, "PICKY"), calling_ae=CALLING)
        try:
            results = sender.send(batch)
        finally:
            sender.close()
        assert (sender.associations, peer.connections) == (1, 1)
    assert oks(results) == [True, True, True, False, True]
    assert results[3].status is None
    assert results[3].error.startswith("cannot be sent as Explicit VR Little Endian")
    assert "pixel data cannot be decoded" in results[3].error
    arrived = {str(ds.SOPInstanceUID): (syntax, ds) for syntax, ds in peer.received}
    assert len(peer.received) == 4  # the in-memory copy arrived again under its UID
    for path in sources:
        original = pydicom.dcmread(path)
        syntax, ds = arrived[str(original.SOPInstanceUID)]
        assert syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        assert not ds["PixelData"].is_undefined_length
        assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_new_contexts_reassociate_and_proposals_are_kept(tmp_path: Path) -> None:
    rle = outgoing_file(50, renamed_copy(public_dir() / "pydicom__MR_small_RLE.dcm", tmp_path))
    with storage_peer([RLELossless, ExplicitVRLittleEndian]) as peer:
        sender = DicomSender(dicom_spec(peer.port, "PICKY"), calling_ae=CALLING)
        try:
            for batch in ([o for o, _ in tiny_cts(2, generate_uid())], [rle]) * 2:
                assert oks(sender.send(batch)) == [True] * len(batch)
        finally:
            sender.close()
        # CT, then MR in RLE (new contexts: the CT ones are proposed again), CT, MR: 2.
        assert (sender.associations, peer.connections) == (2, 2)
    assert [syntax for syntax, _ in peer.received].count(RLELossless) == 2


def test_batches_needing_over_128_contexts_go_in_parts() -> None:
    batch = [
        Outgoing(i, f"1.2.826.0.1.3680043.10.1.{i}", f"1.2.3.{i}", ExplicitVRLittleEndian)
        for i in range(130)
    ]
    parts = list(context_groups(batch))
    assert [len(p) for p in parts] == [126, 4]  # two are kept for C-FIND and C-ECHO
    assert all(len(contexts_for(p)) <= 126 for p in parts)


def test_a_refused_instance_fails_alone_and_warnings_count_as_stored() -> None:
    made = tiny_cts(5, generate_uid())
    capture = make_dataset(SOPClassUID=SecondaryCaptureImageStorage)  # the peer takes none
    unwanted = Outgoing(
        5,
        str(capture.SOPClassUID),
        str(capture.SOPInstanceUID),
        ExplicitVRLittleEndian,
        data=to_bytes(capture),
    )
    with storage_peer([ExplicitVRLittleEndian]) as peer:
        peer.statuses[made[1][0].sop_instance_uid] = 0xA700  # out of resources
        peer.statuses[made[3][0].sop_instance_uid] = 0xB000  # coercion of data elements
        sender = DicomSender(dicom_spec(peer.port, "PICKY"), calling_ae=CALLING)
        try:
            results = sender.send([o for o, _ in made] + [unwanted])
            alone = sender.send([unwanted])  # the association stands on C-FIND and C-ECHO
        finally:
            sender.close()
    assert results[1] == Sent(1, False, 0xA700, "C-STORE status 0xA700")
    assert results[3] == Sent(3, True, 0xB000)
    assert [r.ok for r in results] == [True, False, True, True, True, False]
    refused = Sent(5, False, None, "the destination accepts this SOP class in no usable syntax")
    assert results[5] == refused and alone == [refused]


def test_held_asks_a_strictly_hierarchical_peer_series_by_series() -> None:
    study = generate_uid()
    made = tiny_cts(5, study) + tiny_cts(4, study, first_key=5)  # two series
    uids = [o.sop_instance_uid for o, _ in made]
    with storage_peer([ExplicitVRLittleEndian]) as peer:
        sender = DicomSender(dicom_spec(peer.port, "PICKY"), calling_ae=CALLING)
        sender.uids_per_query = 4
        try:
            assert oks(sender.send([o for o, _ in made])) == [True] * 9
            held = sender.held(study, [*uids, generate_uid()])
            assert sender.held(study, []) == set()
        finally:
            sender.close()
        assert (sender.associations, peer.connections) == (1, 1)
    assert held == set(uids)
    # Refused without the series, then asked per series: 10 UIDs in chunks of 4.
    per_series = [("IMAGE", 4)] * 4 + [("IMAGE", 2)] * 2
    assert peer.queries == [("IMAGE", 4), ("SERIES", 0), *per_series]


def test_an_abort_mid_batch_keeps_the_answers_received_before_it() -> None:
    made = tiny_cts(5, generate_uid())
    with storage_peer([ExplicitVRLittleEndian]) as peer:
        peer.abort_on.add(made[2][0].sop_instance_uid)
        sender = DicomSender(dicom_spec(peer.port, "PICKY"), calling_ae=CALLING, timeout=5)
        try:
            with pytest.raises(BatchInterrupted) as interrupted:
                sender.send([o for o, _ in made])
            peer.abort_on.clear()
            again = sender.send([o for o, _ in made[2:]])  # the lead resends the rest
        finally:
            sender.close()
    assert [r.key for r in interrupted.value.results] == [0, 1]
    assert all(r.ok for r in interrupted.value.results)
    assert oks(again) == [True, True, True] and sender.associations == 2


def test_a_stopped_pacs_is_unavailable_and_the_same_sender_recovers(
    orthanc: Orthanc, tmp_path: Path
) -> None:
    study = generate_uid()
    made = tiny_cts(6, study, tmp_path)
    sender = sender_for(dicom_spec(orthanc.dicom_port), calling_ae=CALLING, timeout=5)
    try:
        assert oks(sender.send([o for o, _ in made[:2]])) == [True, True]
        orthanc.stop()
        with pytest.raises(DestinationUnavailable, match="cannot connect"):
            sender.send([o for o, _ in made[2:4]])
        with pytest.raises(DestinationUnavailable):
            sender.held(study, [made[0][0].sop_instance_uid])
        orthanc.start()
        assert oks(sender.send([o for o, _ in made[2:]])) == [True] * 4
        assert sender.held(study, [o.sop_instance_uid for o, _ in made]) == {
            o.sop_instance_uid for o, _ in made
        }
        assert isinstance(sender, DicomSender) and sender.associations == 2
    finally:
        sender.close()


def test_probe_answers_without_raising(orthanc: Orthanc) -> None:
    dicom, web = dicom_spec(orthanc.dicom_port), web_spec(orthanc.dicomweb)
    ok, detail = probe(dicom, calling_ae=CALLING)
    assert ok and detail.startswith("C-ECHO to ORTHANC@127.0.0.1") and "success" in detail
    ok, detail = probe(web, calling_ae=CALLING)
    assert ok and "HTTP 200" in detail
    nowhere = free_port()
    ok, detail = probe(dicom_spec(nowhere), calling_ae=CALLING, timeout=3)
    assert not ok and detail.startswith(f"cannot connect to ORTHANC@127.0.0.1:{nowhere}")
    ok, detail = probe(web_spec(f"http://127.0.0.1:{nowhere}/dicom-web"), calling_ae=CALLING)
    assert not ok and "cannot reach" in detail and "ConnectError" in detail
    orthanc.stop()
    assert not probe(dicom, calling_ae=CALLING, timeout=3)[0]
    assert not probe(web, calling_ae=CALLING, timeout=3)[0]


# --- DICOMweb --------------------------------------------------------------------------------


def test_stow_sends_in_size_bounded_requests_and_qido_confirms(
    orthanc: Orthanc, tmp_path: Path
) -> None:
    study = generate_uid()
    made = tiny_cts(5, study, tmp_path) + tiny_cts(5, study, first_key=5)
    size = len(to_bytes(made[0][1]))
    sender = DicomwebSender(web_spec(orthanc.dicomweb), max_request_bytes=4 * size)
    sender.qido_page = 3  # QIDO-RS answers in pages of 3 (limit, offset)
    try:
        results = sender.send([o for o, _ in made])
        uids = [o.sop_instance_uid for o, _ in made]
        held = sender.held(study, [*uids, generate_uid()])
        nothing = sender.held(generate_uid(), uids)
    finally:
        sender.close()
    assert sender.requests == 3  # 4 + 4 + 2 instances
    assert [(r.key, r.ok, r.status) for r in results] == [(i, True, 0) for i in range(10)]
    assert sorted(orthanc.sop_uids()) == sorted(uids)
    assert held == set(uids) and nothing == set()
    for outgoing, ds in (made[0], made[-1]):
        assert stored_at(orthanc, outgoing.sop_instance_uid).PixelData == ds.PixelData


def test_stow_answers_map_to_instances(tmp_path: Path) -> None:
    made = tiny_cts(2, generate_uid(), tmp_path) + tiny_cts(1, generate_uid(), first_key=2)
    batch = [o for o, _ in made]
    uids = [o.sop_instance_uid for o in batch]
    with http_peer() as peer:
        basic = sender_for(web_spec(peer.url, "basic", "backup:s3cret"), calling_ae=CALLING)
        bearer = sender_for(web_spec(peer.url, "bearer", "tok-123"), calling_ae=CALLING)
        try:
            peer.answers.append((401, None))
            refused = basic.send(batch)
            peer.answers.append(
                (
                    409,
                    {
                        "00081198": {
                            "vr": "SQ",
                            "Value": [sop_item(uids[0], ("00081197", 0xA700))],
                        },
                        "00081199": {
                            "vr": "SQ",
                            "Value": [sop_item(uids[1], ("00081196", 0xB000))],
                        },
                    },
                )
            )
            mixed = bearer.send(batch)
            peer.answers.append((200, None))
            stored = bearer.send(batch)
            peer.answers.append((503, None))
            with pytest.raises(DestinationUnavailable, match="HTTP 503"):
                bearer.send(batch)
        finally:
            basic.close()
            bearer.close()
    assert refused == [Sent(i, False, 401, "STOW-RS answered HTTP 401") for i in range(3)]
    assert mixed == [
        Sent(0, False, 0xA700, "STOW-RS failure reason 0xA700"),
        Sent(1, True, 0xB000),
        Sent(2, False, 409, "not listed in the STOW-RS response"),
    ]
    assert oks(stored) == [True, True, True]
    credentials = base64.b64encode(b"backup:s3cret").decode()
    assert peer.requests[0][0]["Authorization"] == f"Basic {credentials}"
    assert peer.requests[1][0]["Authorization"] == "Bearer tok-123"
    headers, body = peer.requests[1]
    assert headers["Content-Length"] == str(len(body))
    parts = parse_multipart(body, headers["Content-Type"])
    assert [h["content-type"] for h, _ in parts] == ["application/dicom"] * 3
    assert [p for _, p in parts] == [to_bytes(ds) for _, ds in made]


def test_stow_to_a_stopped_pacs_is_unavailable_then_recovers(
    orthanc: Orthanc, tmp_path: Path
) -> None:
    made = tiny_cts(3, generate_uid(), tmp_path)
    sender = sender_for(web_spec(orthanc.dicomweb), calling_ae=CALLING, timeout=5)
    try:
        assert oks(sender.send([made[0][0]])) == [True]
        orthanc.stop()
        with pytest.raises(DestinationUnavailable, match="ConnectError"):
            sender.send([made[1][0]])
        with pytest.raises(DestinationUnavailable, match="QIDO-RS"):
            sender.held(generate_uid(), [made[0][0].sop_instance_uid])
        orthanc.start()
        assert oks(sender.send([o for o, _ in made[1:]])) == [True, True]
    finally:
        sender.close()


# --- throughput (printed, not asserted) --------------------------------------------------------


def test_throughput_over_one_association(orthanc: Orthanc, tmp_path: Path) -> None:
    tiny = [o for o, _ in tiny_cts(200, generate_uid(), tmp_path)]
    slices = sorted((public_dir() / "ct_series_philips_head_1mm").iterdir())[:100]
    real = [outgoing_file(i, path) for i, path in enumerate(slices)]
    sender = sender_for(dicom_spec(orthanc.dicom_port), calling_ae=CALLING)
    try:
        sender.send([tiny_cts(1, generate_uid(), tmp_path)[0][0]])  # association, warm-up
        for label, batch in (("200 tiny CTs", tiny), ("100 CT slices of 525 KB", real)):
            start = time.perf_counter()
            results = sender.send(batch)
            seconds = time.perf_counter() - start
            assert all(r.ok for r in results)
            print(f"\nC-STORE {label}: {len(batch) / seconds:.0f} inst/s ({seconds:.2f} s)")
        assert isinstance(sender, DicomSender) and sender.associations == 1
    finally:
        sender.close()
