"""Server processes: free ports, readiness, CPU quiescence and a firm stop."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A running DICOMweb peer under test."""

    name: str
    dicomweb: str  # DICOMweb root without a trailing slash; STOW and QIDO at {root}/studies
    process: subprocess.Popen[bytes]
    log_path: Path
    version: str
    facts: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # credentials for every request
    dimse: tuple[str, int] | None = None  # called AE title and DICOM port
    calling_aes: dict[str, str] = field(default_factory=dict)  # label -> registered AE title

    @property
    def studies_url(self) -> str:
        return f"{self.dicomweb}/studies"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> httpx.Response:
    """Poll `url` until it answers 200; fail early when the process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was up")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not up after {timeout:.0f} s")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Terminate, then kill: a hung server must never outlive the benchmark."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (uvicorn's worker processes)."""
    return sum(_own_cpu_seconds(p) for p in (pid, *_children(pid)))


def _own_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may contain spaces; fields after its closing parenthesis are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _children(pid: int) -> list[int]:
    children = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(proc.name))
    return children


def wait_quiet(
    servers: list[Server],
    *,
    busy: float = 0.05,
    window: float = 1.0,
    settle: int = 3,
    timeout: float = 120.0,
) -> tuple[float, bool]:
    """Wait until the servers together use < `busy` of a core for `settle` windows in a row.

    Background work left over from one phase (connrad renders a thumbnail per new study two
    seconds after it arrives) would otherwise steal CPU from the next measured phase on 2
    cores; a single quiet window could fall before such delayed jobs start.
    Returns (seconds waited, whether quiet was reached).
    """
    start = time.monotonic()
    quiet_windows = 0
    while True:
        before = sum(cpu_seconds(s.process.pid) for s in servers)
        time.sleep(window)
        used = sum(cpu_seconds(s.process.pid) for s in servers) - before
        quiet_windows = quiet_windows + 1 if used < busy * window else 0
        waited = time.monotonic() - start
        if quiet_windows >= settle:
            return waited, True
        if waited > timeout:
            return waited, False


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment minus any CONNRAD_* a developer may have exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNRAD_")}
    env.update(extra)
    return env
