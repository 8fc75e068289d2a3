"""C-STORE ingest: DCMTK's storescu sends a CT series in one association to each server.

The same files, the same client (with TCP_NODELAY=1, as both servers run), timed from the
association request to the release. connrad answers each C-STORE only after the instance is
fsynced and indexed; Orthanc runs with its defaults (like the STOW-RS phase).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.data import ct_payloads
from bench.procs import Server, wait_quiet

WARMUP = 20
_SUCCESS = "Received Store Response (Success)"


@dataclass(frozen=True)
class StoreRun:
    server: str
    label: str
    instances: int
    stored: int
    seconds: float
    error: str

    @property
    def per_second(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "label": self.label,
            "instances": self.instances,
            "stored": self.stored,
            "seconds": round(self.seconds, 3),
            "instances_per_s": round(self.per_second, 2),
            "error": self.error,
        }


def storescu(server: Server, calling: str, folder: Path) -> tuple[int, float, str]:
    """(successes, seconds, error) of one association sending every file of `folder`."""
    assert server.dimse is not None
    called, port = server.dimse
    command = ["storescu", "-aet", calling, "-aec", called, "+sd", "-v", "127.0.0.1", str(port)]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
        timeout=3600,
    )
    seconds = time.perf_counter() - start
    error = "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1][:300]
    return done.stderr.count(_SUCCESS), seconds, error


def _folder(root: Path, name: str, payloads: list[bytes]) -> Path:
    folder = root / name
    folder.mkdir()
    for index, payload in enumerate(payloads):
        (folder / f"{index:05}.dcm").write_bytes(payload)
    return folder


def cstore_phase(
    servers: list[Server], instances: int, results: dict[str, Any], quiet_timeout: float
) -> None:
    if shutil.which("storescu") is None:
        results["problems"].append("C-STORE: DCMTK storescu not installed (Debian dcmtk)")
        return
    with tempfile.TemporaryDirectory(prefix="connrad-bench-cstore-") as tmp:
        root = Path(tmp)
        warm = _folder(root, "warm", ct_payloads(WARMUP, "cstore-warm", seed=11).payloads)
        runs = [
            (server, label, ae) for server in servers for label, ae in server.calling_aes.items()
        ]
        for index, (server, label, ae) in enumerate(runs):
            # A new series per run: a re-sent instance would be a cheap duplicate.
            series = ct_payloads(instances, f"cstore-{index}", seed=20 + index)
            folder = _folder(root, f"run-{index}", series.payloads)
            storescu(server, ae, warm)  # imports, first association, cold caches: untimed
            wait_quiet(servers, timeout=quiet_timeout)
            report.console.print(f"C-STORE {instances} -> {server.name} ({label}) ...")
            stored, seconds, error = storescu(server, ae, folder)
            run = StoreRun(server.name, label, instances, stored, seconds, error)
            if stored != instances:
                results["problems"].append(
                    f"C-STORE {server.name} ({label}): {stored} of {instances} stored; {error}"
                )
            report.console.print(f"  {run.per_second:.1f} inst/s")
            results["cstore"].append(run.row())
            shutil.rmtree(folder)
