"""Storage Commitment: the device asks whether the cloud holds its instances durably, with
pynetdicom as the modality (DCMTK has no storage commitment SCU).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StorageCommitmentPushModel,
)

from connrad.archive.ingest import Source
from connrad.db.transaction import write_transaction
from connrad.demo.generate import file_meta
from connrad.dimse.commitment import WELL_KNOWN_INSTANCE
from connrad.dimse.server import DimseServer
from connrad.identity import admin
from connrad.routing import destinations
from connrad.services import Services
from tests.conftest import free_port, set_site_policy
from tests.factories import make_dataset, to_bytes

AE_TITLE = "PORTCT"


@pytest.fixture
def scp(services: Services) -> Iterator[tuple[int, int]]:
    with write_transaction(services.engine) as conn:
        site = int(admin.create_site(conn, "island", "Island clinic")["id"])
        admin.create_device(conn, site, "portable-ct", "dicom", ae_title=AE_TITLE)
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    yield port, site
    server.stop()


class Modality:
    """A device that stores, then asks for commitment and waits for the report."""

    def __init__(self, port: int) -> None:
        self.reports: list[tuple[int, Dataset]] = []
        self.arrived = threading.Event()
        self.answered = threading.Event()  # our N-EVENT-REPORT response has left
        ae = AE(ae_title=AE_TITLE)
        ae.add_requested_context(CTImageStorage)
        ae.add_requested_context(StorageCommitmentPushModel)
        self.assoc = ae.associate(
            "127.0.0.1",
            port,
            ae_title="CONNRAD",
            evt_handlers=[
                (evt.EVT_N_EVENT_REPORT, self._on_report),
                (evt.EVT_DIMSE_SENT, self._on_sent),
            ],
        )
        assert self.assoc.is_established

    def _on_report(self, event: Any) -> tuple[int, None]:
        self.reports.append((event.request.EventTypeID, event.event_information))
        self.arrived.set()
        return 0x0000, None

    def _on_sent(self, event: Any) -> None:
        if type(event.message).__name__ == "N_EVENT_REPORT_RSP":
            self.answered.set()

    def release(self) -> None:
        # Releasing before the report's response is sent would leave the archive waiting.
        if self.arrived.is_set():
            assert self.answered.wait(10)
        self.assoc.release()

    def store(self, ds: Dataset) -> int:
        return int(self.assoc.send_c_store(ds).Status)

    def commit(self, uids: list[str]) -> tuple[int, Dataset]:
        action = Dataset()
        action.TransactionUID = generate_uid()
        action.ReferencedSOPSequence = Sequence()
        for uid in uids:
            item = Dataset()
            item.ReferencedSOPClassUID = CTImageStorage
            item.ReferencedSOPInstanceUID = uid
            action.ReferencedSOPSequence.append(item)
        status, _ = self.assoc.send_n_action(
            action, 1, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE
        )
        assert int(status.Status) == 0x0000
        assert self.arrived.wait(10), "no N-EVENT-REPORT"
        event_type, report = self.reports[-1]
        assert report.TransactionUID == action.TransactionUID
        return event_type, report


def _stored(modality: Modality, count: int) -> list[str]:
    uids = []
    for _ in range(count):
        ds = make_dataset()
        ds.file_meta = file_meta(ds)
        assert modality.store(ds) == 0x0000
        uids.append(str(ds.SOPInstanceUID))
    return uids


@pytest.mark.parametrize("policy", ["identified", "pseudonymized"])
def test_commitment_on_the_same_association(
    scp: tuple[int, int], services: Services, policy: str
) -> None:
    port, site = scp
    set_site_policy(services, site, policy)
    modality = Modality(port)
    try:
        sent = _stored(modality, 3)
        never_sent = generate_uid()
        event_type, report = modality.commit([*sent, never_sent])
    finally:
        modality.release()
    assert event_type == 2  # some failed
    assert [r.ReferencedSOPInstanceUID for r in report.ReferencedSOPSequence] == sent
    (failure,) = report.FailedSOPSequence
    assert failure.ReferencedSOPInstanceUID == never_sent
    assert failure.FailureReason == 0x0112


def test_another_sites_instances_are_not_committed(
    scp: tuple[int, int], services: Services
) -> None:
    port, site = scp
    set_site_policy(services, site, "identified")
    other = make_dataset()  # stored by the local site, not by this device's site
    writer = services.blobs.stage()
    writer.write(to_bytes(other))
    services.ingest.ingest(writer.finish(), Source(services.local_site_id, None, "test"))
    modality = Modality(port)
    try:
        event_type, report = modality.commit([str(other.SOPInstanceUID)])
    finally:
        modality.release()
    assert event_type == 2
    assert "ReferencedSOPSequence" not in report or not report.ReferencedSOPSequence


def test_report_on_a_new_association_after_release(
    scp: tuple[int, int], services: Services
) -> None:
    """The device releases at once; the report comes to its registered address."""
    port, site = scp
    set_site_policy(services, site, "identified")
    reports: list[Dataset] = []
    arrived = threading.Event()

    def on_report(event: Any) -> tuple[int, None]:
        reports.append(event.event_information)
        arrived.set()
        return 0x0000, None

    listener = AE(ae_title=AE_TITLE)
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    callback_port = free_port()
    server = listener.start_server(
        ("127.0.0.1", callback_port),
        block=False,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    with write_transaction(services.engine) as conn:
        destinations.create_dicom(
            conn, site, "portable-ct", ae_title=AE_TITLE, host="127.0.0.1", port=callback_port
        )
    try:
        modality = Modality(port)
        sent = _stored(modality, 2)
        action = Dataset()
        action.TransactionUID = generate_uid()
        action.ReferencedSOPSequence = Sequence()
        for uid in sent:
            item = Dataset()
            item.ReferencedSOPClassUID = CTImageStorage
            item.ReferencedSOPInstanceUID = uid
            action.ReferencedSOPSequence.append(item)
        status, _ = modality.assoc.send_n_action(
            action, 1, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE
        )
        modality.assoc.release()  # before the report can come on this association
        assert int(status.Status) == 0x0000
        assert arrived.wait(15), "no N-EVENT-REPORT on a new association"
    finally:
        server.shutdown()
    (report,) = reports
    assert report.TransactionUID == action.TransactionUID
    assert [r.ReferencedSOPInstanceUID for r in report.ReferencedSOPSequence] == sent
