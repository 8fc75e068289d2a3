"""PACS backup with Orthanc as the hospital PACS: DIMSE and DICOMweb, trusted re-identification,
a PACS that goes down, dead letters, a worker killed mid-batch, two workers on one queue.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from sqlalchemy import func, select

from connrad.app import create_app
from connrad.archive.ingest import IngestResult, Source
from connrad.db.transaction import write_transaction
from connrad.routing import destinations, outbox
from connrad.routing.backup import BackupWorker
from connrad.routing.models import Delivery
from connrad.services import Services, build_services
from connrad.settings import Settings
from tests.conftest import device_api_key, free_port, set_site_policy
from tests.factories import make_dataset, to_bytes
from tests.orthanc import AE_TITLE, Orthanc

D = Delivery.__table__


@pytest.fixture
def backup_services(settings: Settings) -> Iterator[Services]:
    """Short waits: retries and the circuit breaker in fractions of a second."""
    fast = settings.model_copy(
        update={
            "backup_backoff_base_seconds": 0.2,
            "backup_backoff_cap_seconds": 0.5,
            "backup_batch_size": 25,
            "backup_max_attempts": 3,
        }
    )
    built = build_services(fast, recover=True)
    set_site_policy(built, built.local_site_id, "identified")
    yield built
    built.close()


def add_pacs(services: Services, pacs: Orthanc, *, trusted: bool = False, web: bool = False) -> int:
    with write_transaction(services.engine) as conn:
        if web:
            view = destinations.create_dicomweb(
                conn,
                services.local_site_id,
                "pacs-web",
                url=pacs.dicomweb,
                trusted=trusted,
                backup=True,
            )
        else:
            view = destinations.create_dicom(
                conn,
                services.local_site_id,
                "pacs",
                ae_title=AE_TITLE,
                host="127.0.0.1",
                port=pacs.dicom_port,
                trusted=trusted,
                backup=True,
            )
    assert services.routing_rules is not None
    services.routing_rules.forget()
    return int(view["id"])


def ingest(services: Services, data: bytes) -> IngestResult:
    writer = services.blobs.stage()
    writer.write(data)
    result = services.ingest.ingest(writer.finish(), Source(services.local_site_id, None, "stow"))
    assert result.stored, result.reason
    return result


def study_of(n: int, **attributes: Any) -> tuple[str, list[bytes]]:
    study, series = generate_uid(), generate_uid()
    files = [
        to_bytes(
            make_dataset(
                StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=i + 1, **attributes
            )
        )
        for i in range(n)
    ]
    return study, files


def drain(worker: BackupWorker, *, until: float = 60.0) -> None:
    """Run rounds until nothing is due (waits out the short backoffs)."""
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        if not worker.run_once():
            with worker.services.engine.connect() as conn:
                open_rows = conn.execute(
                    select(func.count())
                    .select_from(D)
                    .where(D.c.state.in_(("queued", "sending", "sent")))
                ).scalar_one()
            if not open_rows:
                return
            time.sleep(0.1)
    raise AssertionError("the backup did not drain")


def states(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter(
            dict(conn.execute(select(D.c.state, func.count()).group_by(D.c.state)).all())
        )


def backup_view(services: Services, study_uid: str) -> dict[str, Any]:
    with TestClient(create_app(services.settings, services)) as http:
        answer = http.get(
            f"/api/studies/{study_uid}/backup",
            headers={"Authorization": f"Bearer {device_api_key(services)}"},
        )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_backup_over_dimse(backup_services: Services, orthanc: Orthanc) -> None:
    add_pacs(backup_services, orthanc)
    study, files = study_of(30)
    for data in files:
        ingest(backup_services, data)
    worker = BackupWorker(backup_services)
    drain(worker)
    assert states(backup_services) == {"confirmed": 30}
    sent = {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID: d for d in files}
    held = orthanc.sop_uids()
    assert sorted(held) == sorted(sent)
    for uid in list(sent)[:5]:  # what arrived is what was stored
        original = pydicom.dcmread(io.BytesIO(sent[uid]))
        arrived = pydicom.dcmread(io.BytesIO(orthanc.file_of(uid)))
        assert arrived == original
        assert arrived.PixelData == original.PixelData
    (entry,) = backup_view(backup_services, study)["destinations"]
    assert entry["status"] == "confirmed" and entry["counts"] == {"confirmed": 30}


def test_backup_over_dicomweb(backup_services: Services, orthanc: Orthanc) -> None:
    add_pacs(backup_services, orthanc, web=True)
    study, files = study_of(12)
    for data in files:
        ingest(backup_services, data)
    drain(BackupWorker(backup_services))
    assert states(backup_services) == {"confirmed": 12}
    assert len(set(orthanc.sop_uids())) == 12
    assert backup_view(backup_services, study)["destinations"][0]["status"] == "confirmed"


def test_trusted_pacs_gets_the_identity_back(backup_services: Services, orthanc: Orthanc) -> None:
    set_site_policy(backup_services, backup_services.local_site_id, "pseudonymized", "pass")
    add_pacs(backup_services, orthanc, trusted=True)
    _, files = study_of(3, PatientID="SECRET-42", PatientName="Hong^Gildong")
    stored = [ingest(backup_services, data) for data in files]
    assert all(r.sop_instance_uid != r.received_sop_instance_uid for r in stored)
    drain(BackupWorker(backup_services))
    assert states(backup_services) == {"confirmed": 3}
    originals = {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for d in files}
    assert set(orthanc.sop_uids()) == originals
    arrived = pydicom.dcmread(io.BytesIO(orthanc.file_of(sorted(originals)[0])))
    assert arrived.PatientID == "SECRET-42"
    assert str(arrived.PatientName) == "Hong^Gildong"


def test_untrusted_destination_gets_the_pseudonymized_copy(
    backup_services: Services, orthanc: Orthanc
) -> None:
    set_site_policy(backup_services, backup_services.local_site_id, "pseudonymized", "pass")
    add_pacs(backup_services, orthanc, trusted=False)
    _, files = study_of(2, PatientID="SECRET-42")
    stored = [ingest(backup_services, data) for data in files]
    drain(BackupWorker(backup_services))
    assert set(orthanc.sop_uids()) == {r.sop_instance_uid for r in stored}
    arrived = pydicom.dcmread(io.BytesIO(orthanc.file_of(stored[0].sop_instance_uid)))
    assert arrived.PatientID != "SECRET-42"


def test_pacs_down_for_a_while(backup_services: Services, orthanc: Orthanc) -> None:
    destination = add_pacs(backup_services, orthanc)
    worker = BackupWorker(backup_services)
    study, files = study_of(500)
    for data in files[:100]:
        ingest(backup_services, data)
    worker.run_once()  # the first batch goes out
    orthanc.stop()
    for data in files[100:]:  # the clinic keeps sending while the PACS is down
        ingest(backup_services, data)
    for _ in range(5):
        worker.run_once()
        time.sleep(0.3)
    with backup_services.engine.connect() as conn:
        (health,) = outbox.queue_stats(conn, None)
    assert health["destination_id"] == destination
    assert health["failures"] >= 1 and health["last_error"]
    assert health["depth"] > 0 and health["dead"] == 0  # waiting, not given up
    orthanc.start()
    drain(worker, until=120)
    assert states(backup_services) == {"confirmed": 500}
    held = orthanc.sop_uids()
    assert len(held) == 500 and len(set(held)) == 500  # every instance exactly once
    assert backup_view(backup_services, study)["destinations"][0]["status"] == "confirmed"


class RecordingPacs:
    """A pynetdicom storage SCP that records every C-STORE (and refuses chosen UIDs)."""

    def __init__(self, refuse: frozenset[str] = frozenset(), delay: float = 0.0) -> None:
        self.received: list[tuple[str, float]] = []
        self.refuse = refuse
        self.delay = delay
        self.ae = AE(ae_title="RECORDER")
        self.ae.supported_contexts = AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        self.ae.add_supported_context(Verification)
        self.port = free_port()
        self._lock = threading.Lock()
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.received.append((uid, time.monotonic()))
        return 0xA700 if uid in self.refuse else 0x0000

    def stop(self) -> None:
        self.server.shutdown()


def add_recorder(services: Services, pacs: RecordingPacs) -> int:
    with write_transaction(services.engine) as conn:
        view = destinations.create_dicom(
            conn,
            services.local_site_id,
            "recorder",
            ae_title="RECORDER",
            host="127.0.0.1",
            port=pacs.port,
            backup=True,
        )
    assert services.routing_rules is not None
    services.routing_rules.forget()
    return int(view["id"])


def test_refused_instances_become_dead_letters_and_can_be_resubmitted(
    backup_services: Services,
) -> None:
    _, files = study_of(5)
    refused = str(pydicom.dcmread(io.BytesIO(files[2])).SOPInstanceUID)
    pacs = RecordingPacs(refuse=frozenset({refused}))
    try:
        destination = add_recorder(backup_services, pacs)
        for data in files:
            ingest(backup_services, data)
        worker = BackupWorker(backup_services)
        deadline = time.monotonic() + 30
        while states(backup_services).get("dead", 0) < 1 and time.monotonic() < deadline:
            worker.run_once()
            time.sleep(0.1)
        # The recorder cannot answer C-FIND: the four it took stay "sent", unconfirmed.
        assert states(backup_services)["dead"] == 1
        assert [uid for uid, _ in pacs.received].count(refused) == 3  # backup_max_attempts
        with TestClient(create_app(backup_services.settings, backup_services)) as http:
            from tests.integration.qc.test_deep_qc import _site_admin

            headers = _site_admin(backup_services, http)
            queues = http.get("/api/queues", headers=headers).json()
            assert [q["dead"] for q in queues if q["destination_id"] == destination] == [1]
            retried = http.post(f"/api/queues/{destination}/retry", headers=headers)
            assert retried.json()["resubmitted"] == 1
        assert states(backup_services)["dead"] == 0
    finally:
        pacs.stop()


def test_two_workers_never_send_one_instance_twice_at_once(backup_services: Services) -> None:
    """Two workers with their own engines (as two processes), on SQLite and PostgreSQL."""
    pacs = RecordingPacs(delay=0.002)
    try:
        add_recorder(backup_services, pacs)
        _, files = study_of(300)
        for data in files:
            ingest(backup_services, data)
        second = build_services(backup_services.settings)
        workers = [BackupWorker(backup_services), BackupWorker(second)]
        threads = [threading.Thread(target=_send_all, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        second.close()
        counts = Counter(uid for uid, _ in pacs.received)
        assert len(counts) == 300
        assert max(counts.values()) == 1, [u for u, c in counts.items() if c > 1][:3]
    finally:
        pacs.stop()


def _send_all(worker: BackupWorker) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with worker.services.engine.connect() as conn:
            waiting = conn.execute(
                select(func.count()).select_from(D).where(D.c.state.in_(("queued", "sending")))
            ).scalar_one()
        if not waiting:
            return
        worker.run_once()


def test_a_worker_killed_mid_batch_loses_nothing(
    backup_services: Services, orthanc: Orthanc, tmp_path: Path
) -> None:
    add_pacs(backup_services, orthanc)
    _, files = study_of(200)
    for data in files:
        ingest(backup_services, data)
    settings = backup_services.settings
    env = {
        **os.environ,
        "CONNRAD_DATA_DIR": str(settings.data_dir),
        "CONNRAD_DATABASE_URL": settings.effective_database_url,
        "CONNRAD_BACKUP_BATCH_SIZE": "10",
        "CONNRAD_BACKUP_LEASE_SECONDS": "2",
        "CONNRAD_BACKUP_THREADS": "1",
        "CONNRAD_DEMO_DATA": "false",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "connrad.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = states(backup_services)
            if done.get("sent", 0) + done.get("confirmed", 0) >= 30:
                break
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(10)
    before = states(backup_services)
    assert 0 < before.get("confirmed", 0) + before.get("sent", 0) < 200, before
    time.sleep(2.5)  # the dead worker's leases expire
    drain(BackupWorker(backup_services), until=120)
    assert states(backup_services) == {"confirmed": 200}
    held = orthanc.sop_uids()
    assert len(set(held)) == 200 and len(held) == 200


def test_rules_wait_for_quality_control_and_skip_quarantine(
    settings: Settings, orthanc: Orthanc
) -> None:
    import numpy as np

    from connrad.routing import rules

    services = build_services(
        settings.model_copy(update={"qc_quiet_seconds": 0.0, "backup_backoff_base_seconds": 0.2}),
        recover=True,
    )
    try:
        set_site_policy(services, services.local_site_id, "identified")
        with write_transaction(services.engine) as conn:
            pacs = destinations.create_dicom(
                conn,
                services.local_site_id,
                "pacs",
                ae_title=AE_TITLE,
                host="127.0.0.1",
                port=orthanc.dicom_port,
            )
            rules.create(conn, int(pacs["id"]), qc="checked")
        good = ingest(services, to_bytes(make_dataset()))
        blank = ingest(
            services, to_bytes(make_dataset(PixelData=np.full(64, 7, np.uint16).tobytes()))
        )
        worker = BackupWorker(services)
        worker.run_once()
        assert orthanc.sop_uids() == []  # QC has not run: nothing leaves yet
        jobs = services.worker()
        while jobs.run_once(limit=50):
            pass
        for _ in range(20):
            worker.run_once()
        # The clean study went out; the blank one failed QC and is quarantined.
        assert orthanc.sop_uids() == [good.sop_instance_uid]
        assert states(services)["queued"] == 1
        with TestClient(create_app(services.settings, services)) as http:
            from tests.integration.qc.test_deep_qc import _site_admin

            released = http.post(
                f"/api/studies/{blank.study_uid}/qc/release", headers=_site_admin(services, http)
            )
            assert released.status_code == 200
        drain(worker)
        assert sorted(orthanc.sop_uids()) == sorted([good.sop_instance_uid, blank.sop_instance_uid])
    finally:
        services.close()
