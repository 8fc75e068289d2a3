"""connrad as a real process, for tests that kill it or measure it."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

MODALITY_AE = "TESTMOD"  # a DICOM device of the local site, registered by prepare()


class Server:
    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        tls: tuple[Path, Path] | None = None,
        deid_policy: str = "identified",
    ) -> None:
        self.deid_policy = deid_policy
        self.port = free_port()
        self.env = {
            **os.environ,
            "CONNRAD_DATA_DIR": str(data_dir),
            "CONNRAD_DATABASE_URL": database_url,
            "CONNRAD_DEMO_DATA": "false",
            "CONNRAD_DIMSE_PORT": str(free_port()),
        }
        self.scheme = "http"
        self.verify: ssl.SSLContext | bool = True
        if tls is not None:
            certfile, keyfile = tls
            self.env |= {"CONNRAD_TLS_CERTFILE": str(certfile), "CONNRAD_TLS_KEYFILE": str(keyfile)}
            self.scheme = "https"
            self.verify = ssl.create_default_context(cafile=str(certfile))
        self.process: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}

    def prepare(self) -> None:
        """Migrate the fresh database and register a device whose key the test uses."""
        from connrad.services import build_services
        from connrad.settings import Settings
        from tests.conftest import device_api_key, set_site_policy

        settings = Settings(
            data_dir=Path(self.env["CONNRAD_DATA_DIR"]),
            database_url=self.env["CONNRAD_DATABASE_URL"],
        )
        services = build_services(settings)
        try:
            set_site_policy(services, services.local_site_id, self.deid_policy)
            from connrad.db.transaction import write_transaction
            from connrad.identity import admin

            with write_transaction(services.engine) as conn:
                admin.create_device(
                    conn, services.local_site_id, "modality", "dicom", ae_title=MODALITY_AE
                )
            self.headers = {"Authorization": f"Bearer {device_api_key(services)}"}
        finally:
            services.close()

    @property
    def dimse_port(self) -> int:
        return int(self.env["CONNRAD_DIMSE_PORT"])

    @property
    def root(self) -> str:
        return f"{self.base}/dicomweb"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connrad.cli",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill -9 takes every worker
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.base}/healthz", verify=self.verify)
                if health.status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("connrad did not start")

    def kill(self) -> None:
        """kill -9 of the supervisor and its worker processes, as a machine crash would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._wait_group_gone()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(15)
        self._wait_group_gone()

    def _wait_group_gone(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def peak_rss_kib(self) -> int:
        """The largest high-water resident set size (VmHWM) among the server's processes."""
        assert self.process is not None
        peaks = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                group = int(stat.rsplit(")", 1)[1].split()[2])
                if group != self.process.pid:
                    continue
                status = (proc / "status").read_text()
            except (OSError, IndexError, ValueError):
                continue
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]))
        return max(peaks)
