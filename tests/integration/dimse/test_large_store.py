"""A 320 MiB multi-frame instance over C-STORE: received without being held in memory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.factories import make_dataset, to_bytes
from tests.peers import missing
from tests.servers import MODALITY_AE, Server

FRAMES = 160


@pytest.mark.slow
def test_320_mib_c_store_with_bounded_memory(connrad_process: Server, tmp_path: Path) -> None:
    if shutil.which("storescu") is None:
        missing("DCMTK storescu not installed (Debian dcmtk)")
    ds = make_dataset(
        Rows=1024, Columns=1024, NumberOfFrames=FRAMES, BitsStored=16, HighBit=15, PixelData=b""
    )
    frame = (np.arange(1024 * 1024, dtype=np.uint32) % 65521).astype(np.uint16).tobytes()
    ds.PixelData = frame * FRAMES
    path = tmp_path / "large.dcm"
    path.write_bytes(to_bytes(ds))
    del ds.PixelData
    baseline = connrad_process.peak_rss_kib()
    sent = subprocess.run(
        [
            "storescu",
            "-aet",
            MODALITY_AE,
            "-aec",
            "CONNRAD",
            "127.0.0.1",
            str(connrad_process.dimse_port),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert sent.returncode == 0, sent.stderr
    growth_mib = (connrad_process.peak_rss_kib() - baseline) / 1024
    print(f"peak RSS growth: {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"server grew by {growth_mib:.0f} MiB for a 320 MiB instance"
    stored = list((tmp_path / "var" / "blobs").glob("??/*"))
    (blob,) = [p for p in stored if p.stat().st_size > 300 * 1024 * 1024]
    assert pydicom.dcmread(blob, stop_before_pixels=True).SOPInstanceUID == ds.SOPInstanceUID
