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
    headers = {"Authorization": f"Bearer {_bench_key(data_dir)}"}
    command = [
        str(REPO / ".venv" / "bin" / "connrad"),
        *("serve", "--port", str(port), "--no-demo", "--log-level", "warning"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=clean_env(CONNRAD_DATA_DIR=str(data_dir), CONNRAD_DIMSE_PORT="0"),
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
                headers=headers,
            )
        finally:
            stop_process(process)


def _bench_key(data_dir: Path) -> str:
    """Register the benchmark's uploading device, as an operator would, and return its key."""
    connrad = str(REPO / ".venv" / "bin" / "connrad")
    env = clean_env(CONNRAD_DATA_DIR=str(data_dir))

    def run(*args: str) -> str:
        done = subprocess.run(
            [connrad, "admin", *args], cwd=REPO, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"connrad admin {' '.join(args)} failed: {done.stdout}")
        return done.stdout

    created = run("device", "create", "local", "bench-uploader", "--api")
    device_id = created.split("(id ")[1].split(",")[0].split(")")[0]
    return run("device", "key", device_id).strip().splitlines()[-1]
