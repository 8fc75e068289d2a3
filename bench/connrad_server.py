"""Start and stop connrad as a real `connrad serve` process on a fresh data directory."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procs import REPO, Server, clean_env, free_port, stop_process, wait_http


@contextmanager
def connrad_server(workdir: Path) -> Iterator[Server]:
    """connrad with SQLite and file blobs under `workdir`, fsync on (the durable default)."""
    port = free_port()
    data_dir = workdir / "connrad-data"
    log_path = workdir / "connrad.log"
    command = [
        str(REPO / ".venv" / "bin" / "connrad"),
        *("serve", "--port", str(port), "--no-demo", "--log-level", "warning"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=clean_env(CONNRAD_DATA_DIR=str(data_dir)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            health = wait_http(f"http://127.0.0.1:{port}/healthz", process)
            yield Server(
                name="connrad",
                dicomweb=f"http://127.0.0.1:{port}/dicomweb",
                process=process,
                log_path=log_path,
                version=str(health.json().get("version", "?")),
            )
        finally:
            stop_process(process)
