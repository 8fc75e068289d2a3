"""kill -9 of the server during a storescu run: every instance that got a success status is
present, whole, after the restart (the main complaint about cloud DIMSE gateways).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import create_engine, select

from connrad.archive.models import Instance
from connrad.demo.generate import DEMO_PATIENTS, ct_series, to_part10_bytes
from tests.peers import missing
from tests.servers import MODALITY_AE, Server

KILLS = 3
FILES = 240
_SENDING = re.compile(r"Sending file: (\S+)")


def _outbox(tmp_path: Path) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    series = ct_series(FILES, rows=128, columns=128, patient=DEMO_PATIENTS[1], seed=3)
    for index, ds in enumerate(series):
        (folder / f"{index:04}.dcm").write_bytes(to_part10_bytes(ds))
    return folder


def _acknowledged(log: str) -> list[Path]:
    """Files whose Store Response was Success, from storescu's verbose log."""
    done: list[Path] = []
    current: Path | None = None
    for line in log.splitlines():
        if match := _SENDING.search(line):
            current = Path(match.group(1))
        elif "Received Store Response (Success)" in line and current is not None:
            done.append(current)
            current = None
    return done


def _pixels_digest(path: Path) -> tuple[str, str]:
    ds = pydicom.dcmread(path)
    return str(ds.SOPInstanceUID), hashlib.sha256(ds.PixelData).hexdigest()


@pytest.mark.slow
def test_acknowledged_c_stores_survive_sigkill(
    connrad_process: Server, database_url: str, tmp_path: Path
) -> None:
    if shutil.which("storescu") is None:
        missing("DCMTK storescu not installed (Debian dcmtk)")
    folder = _outbox(tmp_path)
    acknowledged: set[Path] = set()
    for _ in range(KILLS):
        sender = subprocess.Popen(
            [
                "storescu",
                "-aet",
                MODALITY_AE,
                "-aec",
                "CONNRAD",
                "+sd",
                "-v",
                "127.0.0.1",
                str(connrad_process.dimse_port),
                str(folder),
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        time.sleep(1.5)  # well into the run: some acknowledged, some in flight
        connrad_process.kill()
        _, log = sender.communicate(timeout=60)
        acknowledged.update(_acknowledged(log))
        connrad_process.start()
    assert len(acknowledged) >= 10, "too few instances acknowledged before the kills"

    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = {
            row.sop_uid: row.blob_key
            for row in conn.execute(select(Instance.sop_uid, Instance.blob_key))
        }
    engine.dispose()
    blobs = tmp_path / "var" / "blobs"
    for path in acknowledged:
        sop, pixels = _pixels_digest(path)
        assert sop in stored, f"{path.name} was acknowledged but is not in the archive"
        assert _pixels_digest(blobs / stored[sop]) == (sop, pixels)
