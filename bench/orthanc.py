"""Start and stop the Debian Orthanc with its DICOMweb plugin, configured for the bench."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.procs import Server, clean_env, free_port, stop_process, wait_http

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PACKAGE = "orthanc-dicomweb"


def dicomweb_plugin() -> str:
    """Path of libOrthancDicomWeb.so as installed by the Debian package."""
    listing = subprocess.run(
        ["dpkg", "-L", DICOMWEB_PACKAGE], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    plugins = [line for line in listing if line.endswith("/libOrthancDicomWeb.so")]
    if not plugins:
        raise RuntimeError(f"libOrthancDicomWeb.so not found in `dpkg -L {DICOMWEB_PACKAGE}`")
    return plugins[0]


def orthanc_config(workdir: Path, http_port: int, dicom_port: int) -> dict[str, object]:
    # Defaults otherwise: SQLite index and synchronous (fsynced) storage, like connrad.
    return {
        "Name": "connrad-bench",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "StorageDirectory": str(workdir / "orthanc-storage"),
        "IndexDirectory": str(workdir / "orthanc-index"),
        "StorageCompression": False,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "KeepAlive": True,
        # As a hospital PACS that knows connrad: it may query (backup confirmation).
        "DicomAlwaysAllowFind": True,
        "Plugins": [dicomweb_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }


@contextmanager
def orthanc_server(workdir: Path) -> Iterator[Server]:
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:  # the kernel may hand the same free port out twice
        dicom_port = free_port()
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(orthanc_config(workdir, http_port, dicom_port), indent=2))
    log_path = workdir / "orthanc.log"
    base = f"http://127.0.0.1:{http_port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [ORTHANC, str(config_path)],
            cwd=workdir,
            env=clean_env(TCP_NODELAY="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            system = wait_http(f"{base}/system", process).json()
            plugin = httpx.get(f"{base}/plugins/dicom-web", timeout=5).json()
            yield Server(
                name="Orthanc",
                dicomweb=f"{base}/dicom-web",
                process=process,
                log_path=log_path,
                version=str(system.get("Version", "?")),
                facts={"dicomweb_plugin": str(plugin.get("Version", "?"))},
                dimse=("ORTHANC", dicom_port),
                calling_aes={"as received": "BENCHMOD"},
            )
        finally:
            stop_process(process)
