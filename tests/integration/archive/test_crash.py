"""kill -9 during large STOW-RS uploads: every acknowledged instance survives, intact, and
no index row points at a missing or partial file.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from connrad.archive.models import Instance
from connrad.demo.generate import DEMO_PATIENTS, ct_series, to_part10_bytes
from tests.factories import STOW_TYPE, parse_multipart, stow_body
from tests.servers import Server

KILLS = 5
PER_REQUEST = 8


def instances(count: int) -> list[bytes]:
    series = ct_series(count, rows=512, columns=512, patient=DEMO_PATIENTS[1], seed=7)
    return [to_part10_bytes(ds) for ds in series]


@pytest.mark.slow
def test_acknowledged_instances_survive_sigkill(
    connrad_process: Server, database_url: str, tmp_path: Path
) -> None:
    payloads = instances(160)
    digests = {hashlib.sha256(p).hexdigest() for p in payloads}
    acknowledged: dict[str, str] = {}  # SOP Instance UID -> sha256 of what was sent
    stop = threading.Event()
    errors: list[str] = []

    def upload() -> None:
        position = 0
        while not stop.is_set():
            batch = [payloads[(position + i) % len(payloads)] for i in range(PER_REQUEST)]
            position += PER_REQUEST
            try:
                response = httpx.post(
                    f"{connrad_process.root}/studies",
                    content=stow_body(*batch),
                    headers={"Content-Type": STOW_TYPE, **connrad_process.headers},
                    timeout=30,
                )
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:500]}")
                continue
            for ref in response.json()["00081199"]["Value"]:
                sop = ref["00081155"]["Value"][0]
                sent = next(p for p in batch if sop.encode() in p)
                acknowledged[sop] = hashlib.sha256(sent).hexdigest()

    client = threading.Thread(target=upload)
    client.start()
    rng = random.Random(1)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 1.5))
            connrad_process.kill()
            connrad_process.start()
        time.sleep(0.5)
    finally:
        stop.set()
        client.join(60)
    assert errors == []
    assert len(acknowledged) >= 3 * PER_REQUEST, "too few uploads acknowledged between kills"

    with httpx.Client(timeout=30, headers=connrad_process.headers) as http:
        for sop, digest in acknowledged.items():
            found = http.get(
                f"{connrad_process.root}/instances", params={"SOPInstanceUID": sop}
            ).json()
            assert len(found) == 1, sop
            response = http.get(
                found[0]["00081190"]["Value"][0],
                headers={
                    "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'
                },
            )
            ((_, body),) = parse_multipart(response.content, response.headers["content-type"])
            assert hashlib.sha256(body).hexdigest() == digest

    blobs = tmp_path / "var" / "blobs"
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Instance.__table__.c.blob_key,
                Instance.__table__.c.sha256,
                Instance.__table__.c.size_bytes,
            )
        ).all()
    engine.dispose()
    for key, sha, size in rows:
        data = (blobs / key).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha
        assert sha in digests
    assert not list((blobs / "tmp").glob("*.part")), "staging leftovers after restart"
