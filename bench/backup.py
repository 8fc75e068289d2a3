"""PACS backup: connrad's backup workers against a direct `storescu` push, to Orthanc.

The same CT series goes to two fresh Orthanc instances: once pushed by DCMTK's storescu in one
association (what a modality sending straight to the PACS achieves), once by connrad's backup
workers draining their outbox (the series is ingested first, untimed). Timed: from the first
claim until every delivery is acknowledged ("sent"), and until every one is confirmed by the
PACS (C-FIND). Target: connrad at least 0.8x the direct push.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import report
from bench.cstore import _folder, storescu
from bench.data import ct_payloads
from bench.orthanc import orthanc_server


def backup_phase(instances: int, results: dict[str, Any]) -> None:
    from connrad.archive.ingest import Source
    from connrad.db.transaction import write_transaction
    from connrad.identity import admin
    from connrad.routing import destinations
    from connrad.routing.backup import BackupWorker
    from connrad.routing.models import Delivery
    from connrad.services import build_services
    from connrad.settings import Settings

    deliveries = Delivery.__table__
    series = ct_payloads(instances, "backup", seed=41)
    with tempfile.TemporaryDirectory(prefix="connrad-bench-backup-") as tmp:
        root = Path(tmp)
        (root / "direct").mkdir()
        (root / "cloud").mkdir()
        with orthanc_server(root / "direct") as direct, orthanc_server(root / "cloud") as pacs:
            folder = _folder(root, "series", series.payloads)
            report.console.print(f"Backup: storescu {instances} -> Orthanc (direct) ...")
            stored, direct_seconds, error = storescu(direct, "BENCHMOD", folder)
            if stored != instances:
                results["problems"].append(f"backup bench: direct push stored {stored}; {error}")
            settings = Settings(
                data_dir=root / "connrad",
                run_workers=False,
                demo_data=False,
                backup_batch_size=64,
            )
            services = build_services(settings, recover=True)
            try:
                with write_transaction(services.engine) as conn:
                    admin.update_site(conn, services.local_site_id, deid_policy="identified")
                    assert pacs.dimse is not None
                    destinations.create_dicom(
                        conn,
                        services.local_site_id,
                        "pacs",
                        ae_title=pacs.dimse[0],
                        host="127.0.0.1",
                        port=pacs.dimse[1],
                        backup=True,
                    )
                source = Source(services.local_site_id, None, "bench")
                for payload in series.payloads:
                    writer = services.blobs.stage()
                    writer.write(payload)
                    services.ingest.ingest(writer.finish(), source)
                report.console.print(
                    f"Backup: connrad workers ({settings.backup_threads} threads) -> Orthanc ..."
                )
                workers = [BackupWorker(services) for _ in range(settings.backup_threads)]
                start = time.perf_counter()
                for worker in workers:
                    worker.start_thread()
                sent_at = confirmed_at = None
                deadline = start + 1800
                while time.perf_counter() < deadline and confirmed_at is None:
                    with services.engine.connect() as conn:
                        counts = dict(
                            conn.execute(
                                select(deliveries.c.state, func.count()).group_by(
                                    deliveries.c.state
                                )
                            ).all()
                        )
                    done = counts.get("sent", 0) + counts.get("confirmed", 0)
                    if sent_at is None and done >= instances:
                        sent_at = time.perf_counter()
                    if counts.get("confirmed", 0) >= instances:
                        confirmed_at = time.perf_counter()
                    time.sleep(0.02)
                for worker in workers:
                    worker.stop()
            finally:
                services.close()
    if sent_at is None or confirmed_at is None:
        results["problems"].append("backup bench: the backup did not complete")
        return
    direct_rate = stored / direct_seconds
    sent_rate = instances / (sent_at - start)
    confirmed_rate = instances / (confirmed_at - start)
    row = {
        "instances": instances,
        "direct_seconds": round(direct_seconds, 3),
        "direct_per_s": round(direct_rate, 1),
        "backup_sent_seconds": round(sent_at - start, 3),
        "backup_sent_per_s": round(sent_rate, 1),
        "backup_confirmed_seconds": round(confirmed_at - start, 3),
        "backup_confirmed_per_s": round(confirmed_rate, 1),
        "ratio_sent": round(sent_rate / direct_rate, 2),
        "ratio_confirmed": round(confirmed_rate / direct_rate, 2),
    }
    results["backup"] = row
    report.console.print(
        f"  direct {direct_rate:.1f} inst/s; connrad backup {sent_rate:.1f} inst/s sent "
        f"({row['ratio_sent']}x), {confirmed_rate:.1f} inst/s confirmed ({row['ratio_confirmed']}x)"
    )
