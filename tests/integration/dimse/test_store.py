"""C-STORE into the ingest pipeline, with DCMTK's storescu as the modality."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import func, select

from connrad.archive.models import Instance, Study
from connrad.audit.models import AuditEvent
from connrad.db.transaction import write_transaction
from connrad.dimse.server import DimseServer
from connrad.identity import admin
from connrad.services import Services
from tests.conftest import free_port, set_site_policy
from tests.factories import make_dataset, to_bytes
from tests.peers import missing

AE_TITLE = "PORTCT"
PUBLIC = Path(__file__).resolve().parents[3].parent / "shared" / "dicom-data" / "public"
# File, and the storescu option proposing its transfer syntax (with the uncompressed ones).
COMPRESSED = (
    ("pydicom__MR_small_RLE.dcm", "-xr"),
    ("pydicom__MR_small_jpeg_ls_lossless.dcm", "-xt"),
    ("pydicom__MR_small_jp2klossless.dcm", "-xv"),
    ("pydicom-data__JPEG-LL.dcm", "-xs"),
    ("pylibjpeg-data__CT1_JLSN.dcm", "-xu"),
)


def storescu(port: int, *args: str, calling: str = AE_TITLE) -> subprocess.CompletedProcess[str]:
    if shutil.which("storescu") is None:
        missing("DCMTK storescu not installed (Debian dcmtk)")
    return subprocess.run(
        ["storescu", "-aet", calling, "-aec", "CONNRAD", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TCP_NODELAY": "1"},
    )


def public_files(*names: str) -> list[Path]:
    if not PUBLIC.is_dir():
        missing(f"{PUBLIC} is absent (the shared DICOM data of this workplace)")
    return [PUBLIC / name for name in names]


class Clinic:
    def __init__(self, services: Services, port: int, site_id: int) -> None:
        self.services, self.port, self.site_id = services, port, site_id

    def instances(self) -> int:
        with self.services.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(Instance)
                    .join(Study, Study.id == Instance.study_pk)
                    .where(Study.site_id == self.site_id)
                ).scalar_one()
            )


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    with write_transaction(services.engine) as conn:
        site = int(admin.create_site(conn, "island", "Island clinic")["id"])
        admin.create_device(conn, site, "portable-ct", "dicom", ae_title=AE_TITLE)
        admin.create_device(conn, site, "viewer", "dicom", ae_title="NOSTORE", device_scopes=[])
    set_site_policy(services, site, "identified")
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    yield Clinic(services, port, site)
    server.stop()


def _write(tmp_path: Path, datasets: list[Dataset]) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    for index, ds in enumerate(datasets):
        (folder / f"{index:04}.dcm").write_bytes(to_bytes(ds))
    return folder


def test_a_folder_in_one_association(clinic: Clinic, services: Services, tmp_path: Path) -> None:
    study = generate_uid()
    folder = _write(tmp_path, [make_dataset(StudyInstanceUID=study) for _ in range(12)])
    sent = storescu(clinic.port, "+sd", "-v", "127.0.0.1", str(clinic.port), str(folder))
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.count("Received Store Response (Success)") == 12, sent.stderr
    assert sent.stderr.count("Association Accepted") == 1
    assert clinic.instances() == 12
    with services.engine.connect() as conn:
        events = AuditEvent.__table__
        created = conn.execute(
            select(events.c.actor, events.c.study_uid, events.c.detail).where(
                events.c.action == "create"
            )
        ).all()
    assert len(created) == 12
    assert {(e.study_uid, e.detail["door"]) for e in created} == {(study, "dimse")}
    assert all(e.actor.startswith("device:") for e in created)


def test_resent_instances_are_idempotent(clinic: Clinic, tmp_path: Path) -> None:
    folder = _write(tmp_path, [make_dataset() for _ in range(3)])
    for _ in range(2):
        sent = storescu(clinic.port, "+sd", "127.0.0.1", str(clinic.port), str(folder))
        assert sent.returncode == 0, sent.stderr
    assert clinic.instances() == 3


@pytest.mark.parametrize(("name", "propose"), COMPRESSED)
def test_compressed_transfer_syntaxes_are_stored_as_sent(
    clinic: Clinic, services: Services, name: str, propose: str
) -> None:
    (path,) = public_files(name)
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    # Compressed first: storescu decompresses only when the SCP refuses the file's syntax.
    sent = storescu(clinic.port, propose, "-R", "127.0.0.1", str(clinic.port), str(path))
    assert sent.returncode == 0, sent.stderr
    with services.engine.connect() as conn:
        blob_key = conn.execute(select(Instance.blob_key)).scalar_one()
    stored = pydicom.dcmread(services.blobs.local_path(blob_key), stop_before_pixels=True)
    assert stored.file_meta.TransferSyntaxUID == syntax


def test_device_without_store_right_is_refused(clinic: Clinic, tmp_path: Path) -> None:
    folder = _write(tmp_path, [make_dataset()])
    sent = storescu(
        clinic.port, "+sd", "-v", "127.0.0.1", str(clinic.port), str(folder), calling="NOSTORE"
    )
    assert "Status: 0x124" in sent.stderr, sent.stderr  # PS3.7 C.5: Refused: Not Authorized
    assert clinic.instances() == 0


def _send(port: int, ds: Dataset, calling: str = AE_TITLE) -> int:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="CONNRAD")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status)
    finally:
        assoc.release()


def test_failures_map_to_dimse_status(clinic: Clinic) -> None:
    broken = make_dataset()
    broken.file_meta = pydicom.dcmread(pydicom.filebase.DicomBytesIO(to_bytes(broken))).file_meta
    broken.StudyInstanceUID = "1.2.3.04"  # not a valid UID (a component with a leading zero)
    assert _send(clinic.port, broken) == 0xC000
    assert clinic.instances() == 0


def test_pseudonymized_site_stores_under_new_uids(clinic: Clinic, services: Services) -> None:
    set_site_policy(services, clinic.site_id, "pseudonymized")
    ds = make_dataset(PatientName="Zqxwvut^Mblrkq", PatientID="PID-4411")
    ds.file_meta = pydicom.dcmread(pydicom.filebase.DicomBytesIO(to_bytes(ds))).file_meta
    assert _send(clinic.port, ds) == 0x0000
    with services.engine.connect() as conn:
        (sop,) = conn.execute(select(Instance.sop_uid)).scalars().all()
        (blob_key,) = conn.execute(select(Instance.blob_key)).scalars().all()
    assert sop != ds.SOPInstanceUID and sop.startswith("2.25.")
    data = services.blobs.local_path(blob_key).read_bytes()
    assert b"Zqxwvut" not in data and b"PID-4411" not in data
    assert _send(clinic.port, ds) == 0x0000  # the same instance again: the same pseudonym
    assert clinic.instances() == 1


PRIVATE_SOP_CLASS = "1.2.826.0.1.3680043.9.7433.1.1"  # a vendor's own storage class


def _send_private(port: int) -> int | None:
    """Status of storing an instance of a private SOP class; None if not negotiated."""
    ds = make_dataset(SOPClassUID=PRIVATE_SOP_CLASS)
    ds.file_meta = pydicom.dcmread(pydicom.filebase.DicomBytesIO(to_bytes(ds))).file_meta
    ae = AE(ae_title=AE_TITLE)
    ae.add_requested_context(PRIVATE_SOP_CLASS, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="CONNRAD")
    if not assoc.is_established:
        return None
    try:
        if not assoc.accepted_contexts:
            return None
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_unknown_sop_classes_only_when_allowed(clinic: Clinic, services: Services) -> None:
    assert _send_private(clinic.port) is None
    assert clinic.instances() == 0


def test_unknown_sop_classes_accepted_by_setting(services: Services) -> None:
    services.settings.accept_unknown_sop_classes = True
    services.ingest.accept_unknown_sop_classes = True
    with write_transaction(services.engine) as conn:
        site = int(admin.create_site(conn, "vendor", "Vendor clinic")["id"])
        admin.create_device(conn, site, "odd-device", "dicom", ae_title=AE_TITLE)
    set_site_policy(services, site, "identified")
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    try:
        assert _send_private(port) == 0x0000
    finally:
        server.stop()
    assert Clinic(services, port, site).instances() == 1
