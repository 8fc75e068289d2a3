"""A STOW-RS client: N threads, each with its own keep-alive connection, K instances a request."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

# The same headers for every server: JSON responses, and no compression of them.
_HEADERS = {"Accept": "application/dicom+json", "Accept-Encoding": "identity"}
_REFERENCED = "00081199"  # ReferencedSOPSequence
_FAILED = "00081198"  # FailedSOPSequence
_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


@dataclass(frozen=True)
class Body:
    """One prepared multipart/related request body."""

    content: bytes
    content_type: str
    instances: int
    nbytes: int  # DICOM payload bytes, without the multipart framing


@dataclass
class StowResult:
    instances: int = 0
    nbytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    failed_requests: int = 0
    failed_instances: int = 0
    first_error: str | None = None

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.seconds else 0.0


def multipart_bodies(payloads: Sequence[bytes], per_request: int) -> list[Body]:
    """Bodies built once, before timing, and reused for every server."""
    boundary = f"connrad-bench-{uuid.uuid4().hex}"
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    bodies = []
    for start in range(0, len(payloads), per_request):
        batch = payloads[start : start + per_request]
        chunks: list[bytes] = []
        for payload in batch:
            chunks += [f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()]
            chunks.append(payload)
        chunks.append(f"\r\n--{boundary}--\r\n".encode())
        content = b"".join(chunks)[2:]  # the first delimiter needs no leading CRLF
        bodies.append(Body(content, content_type, len(batch), sum(len(p) for p in batch)))
    return bodies


def _failures(response: httpx.Response, expected: int) -> tuple[int, str | None]:
    """Instances not stored according to status and the response's SOP sequences."""
    if response.status_code != 200:
        return expected, f"HTTP {response.status_code}: {response.text[:300]}"
    try:
        body = response.json()
        referenced = len(body.get(_REFERENCED, {}).get("Value", []))
        failed = len(body.get(_FAILED, {}).get("Value", []))
    except ValueError:
        return expected, f"HTTP 200 without a JSON body: {response.text[:300]}"
    missing = max(expected - referenced, failed)
    return missing, (f"HTTP 200 but {missing} of {expected} not stored" if missing else None)


def stow(
    url: str, bodies: Sequence[Body], clients: int, headers: dict[str, str] | None = None
) -> StowResult:
    """POST every body once, `clients` at a time; wall time from first to last request."""
    result = StowResult()
    lock = threading.Lock()
    next_body = iter(bodies)
    # Connections are opened before the clock starts, so every run starts from keep-alive.
    sessions = [
        httpx.Client(headers={**_HEADERS, **(headers or {})}, timeout=_TIMEOUT)
        for _ in range(clients)
    ]
    start = threading.Barrier(clients + 1)

    def worker(session: httpx.Client) -> None:
        start.wait()
        while True:
            with lock:
                body = next(next_body, None)
            if body is None:
                return
            try:
                response = session.post(
                    url, content=body.content, headers={"Content-Type": body.content_type}
                )
                failed, error = _failures(response, body.instances)
            except httpx.HTTPError as exc:
                failed, error = body.instances, f"{type(exc).__name__}: {exc}"
            with lock:
                result.requests += 1
                result.instances += body.instances
                result.nbytes += body.nbytes
                result.failed_instances += failed
                result.failed_requests += bool(failed)
                result.first_error = result.first_error or error

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in sessions]
    try:
        for session in sessions:
            _connect(session, url)
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - began
    finally:
        for session in sessions:
            session.close()
    return result


def _connect(session: httpx.Client, url: str) -> None:
    # A cheap QIDO request opens the keep-alive connection outside the timed window.
    session.get(url, params={"limit": "1"})
