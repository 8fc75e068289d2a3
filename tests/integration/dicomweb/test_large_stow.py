"""A STOW-RS body far larger than the memory it may use is streamed, not buffered."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.factories import BOUNDARY, STOW_TYPE, make_dataset, parse_multipart, to_bytes
from tests.servers import Server

FRAMES = 160  # 160 x 1024 x 1024 x 2 bytes = 320 MiB of pixel data
CHUNK = 1 << 20


@pytest.mark.slow
def test_320_mib_instance_streams_with_bounded_memory(connrad_process: Server) -> None:
    ds = make_dataset(
        Rows=1024, Columns=1024, NumberOfFrames=FRAMES, BitsStored=16, HighBit=15, PixelData=b""
    )
    frame = (np.arange(1024 * 1024, dtype=np.uint32) % 65521).astype(np.uint16).tobytes()
    ds.PixelData = frame * FRAMES
    data = to_bytes(ds)
    del ds.PixelData
    digest = hashlib.sha256(data).hexdigest()
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    baseline = connrad_process.peak_rss_kib()

    def body() -> Iterator[bytes]:
        yield head
        view = memoryview(data)
        for at in range(0, len(view), CHUNK):
            yield bytes(view[at : at + CHUNK])
        yield tail

    response = httpx.post(
        f"{connrad_process.root}/studies",
        content=body(),
        headers={"Content-Type": STOW_TYPE, **connrad_process.headers},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    growth_mib = (connrad_process.peak_rss_kib() - baseline) / 1024
    print(f"peak RSS growth: {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"server grew by {growth_mib:.0f} MiB for a 320 MiB body"

    url = response.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    with httpx.stream(
        "GET",
        url,
        timeout=300,
        headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            **connrad_process.headers,
        },
    ) as got:
        received = b"".join(got.iter_bytes())
        ((_, stored),) = parse_multipart(received, got.headers["content-type"])
    assert hashlib.sha256(stored).hexdigest() == digest
