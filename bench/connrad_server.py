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
    port, dimse_port = free_port(), free_port()
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
            env=clean_env(CONNRAD_DATA_DIR=str(data_dir), CONNRAD_DIMSE_PORT=str(dimse_port)),
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
                dimse=("CONNRAD", dimse_port),
                calling_aes={"identified": IDENTIFIED_AE, "pseudonymized": PSEUDONYMIZED_AE},
            )
        finally:
            stop_process(process)


IDENTIFIED_AE, PSEUDONYMIZED_AE = "BENCHMOD", "BENCHCLINIC"


def _bench_key(data_dir: Path) -> str:
    """Register the benchmark's devices, as an operator would; return the uploader's key.

    The local site stores as received, like Orthanc (like for like); a second site
    pseudonymizes, to show what de-identification costs at the C-STORE door.
    """
    connrad = str(REPO / ".venv" / "bin" / "connrad")
    env = clean_env(CONNRAD_DATA_DIR=str(data_dir))

    def run(*args: str) -> str:
        done = subprocess.run(
            [connrad, "admin", *args], cwd=REPO, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"connrad admin {' '.join(args)} failed: {done.stdout}")
        return done.stdout

    run("site", "policy", "local", "identified")
    run("device", "create", "local", "bench-modality", "--ae", IDENTIFIED_AE)
    run("site", "create", "bench-clinic", "Bench clinic")
    run("device", "create", "bench-clinic", "bench-modality", "--ae", PSEUDONYMIZED_AE)
    created = run("device", "create", "local", "bench-uploader", "--api")
    device_id = created.split("(id ")[1].split(",")[0].split(")")[0]
    return run("device", "key", device_id).strip().splitlines()[-1]
