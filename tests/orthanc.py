"""Orthanc (Debian `orthanc` + `orthanc-dicomweb`) as the hospital PACS, started by tests.

The fixture's Orthanc can be stopped and started again on the same ports and storage (a PACS
that goes down for a while); it accepts C-STORE, C-FIND, C-GET and C-MOVE from any AE.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.orthanc import ORTHANC, dicomweb_plugin
from bench.procs import clean_env, free_port, stop_process, wait_http

from tests.peers import missing

AE_TITLE = "ORTHANC"


@dataclass
class Orthanc:
    workdir: Path
    http_port: int
    dicom_port: int
    process: subprocess.Popen[bytes] | None = None
    modalities: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    def config(self) -> dict[str, Any]:
        return {
            "Name": "connrad-test-pacs",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AE_TITLE,
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "StorageCompression": False,
            "RemoteAccessAllowed": True,
            "AuthenticationEnabled": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomCheckCalledAet": False,
            "DicomModalities": self.modalities,
            "Plugins": [dicomweb_plugin()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }

    def start(self) -> None:
        assert self.process is None, "already running"
        config = self.workdir / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        log = (self.workdir / "orthanc.log").open("ab")
        self.process = subprocess.Popen(
            [ORTHANC, str(config)],
            cwd=self.workdir,
            env=clean_env(TCP_NODELAY="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.base}/system", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def instances(self) -> list[str]:
        """Orthanc's ids of every instance it holds."""
        return list(httpx.get(f"{self.base}/instances", timeout=30).json())

    def sop_uids(self) -> list[str]:
        """The SOP Instance UIDs Orthanc holds (with repeats, if it held any twice)."""
        uids = []
        for orthanc_id in self.instances():
            tags = httpx.get(f"{self.base}/instances/{orthanc_id}/simplified-tags", timeout=30)
            uids.append(tags.json()["SOPInstanceUID"])
        return uids

    def file_of(self, sop_uid: str) -> bytes:
        found = httpx.post(f"{self.base}/tools/lookup", content=sop_uid, timeout=30).json()
        (instance,) = [f for f in found if f["Type"] == "Instance"]
        return httpx.get(f"{self.base}/instances/{instance['ID']}/file", timeout=30).content

    def upload(self, data: bytes) -> None:
        answer = httpx.post(f"{self.base}/instances", content=data, timeout=30)
        answer.raise_for_status()


def _installed() -> None:
    if shutil.which(ORTHANC) is None and not os.path.exists(ORTHANC):
        missing("Orthanc not installed (Debian orthanc, orthanc-dicomweb)")
    try:
        dicomweb_plugin()
    except (OSError, RuntimeError, subprocess.CalledProcessError):
        missing("the Orthanc DICOMweb plugin is not installed (Debian orthanc-dicomweb)")


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    """A running Orthanc PACS with its own storage; stopped at the end."""
    _installed()
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    workdir = tmp_path / "orthanc"
    workdir.mkdir()
    pacs = Orthanc(workdir, http_port, dicom_port)
    pacs.start()
    try:
        yield pacs
    finally:
        pacs.stop()
