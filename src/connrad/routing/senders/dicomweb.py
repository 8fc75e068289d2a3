"""STOW-RS to a DICOMweb destination, QIDO-RS to confirm what it holds.

One keep-alive HTTP client per destination; one POST per batch, split at about 64 MiB so a
proxy's body limit or a lost connection costs little. The body is streamed from the files
with a computed Content-Length (some servers refuse chunked request bodies).

Answers (PS3.18 10.5.3): the DICOM JSON response lists stored instances (Referenced SOP
Sequence) and failed ones with a reason (Failed SOP Sequence, Failure Reason); a 4xx with
no such body fails every instance of the request; 5xx, 408, 429, timeouts and connection
errors mean the destination is unavailable. https uses the system trust store unless the
caller passes its own SSL context.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import httpx

from connrad.routing.senders.base import BatchInterrupted, Outgoing, Sent
from connrad.routing.spec import DestinationSpec, DestinationUnavailable

MAX_REQUEST_BYTES = 64 * 1024 * 1024
QIDO_PAGE = 1000
_READ_BYTES = 1024 * 1024
_REFERENCED = "00081199"  # Referenced SOP Sequence
_FAILED = "00081198"  # Failed SOP Sequence
_SOP_UID = "00081155"  # Referenced SOP Instance UID
_FAILURE_REASON = "00081197"
_WARNING_REASON = "00081196"
_RETRY_LATER = (408, 429)
_JSON = "application/dicom+json"


class DicomwebSender:
    """STOW-RS (and QIDO-RS to confirm) to one DICOMweb destination."""

    def __init__(
        self,
        spec: DestinationSpec,
        *,
        timeout: float = 30.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not spec.url:
            raise ValueError("a DICOMweb destination needs a URL")
        self.spec = spec
        self.root = spec.url.rstrip("/")
        self.max_request_bytes = max_request_bytes
        self.requests = 0  # STOW-RS requests made so far
        self.qido_page = QIDO_PAGE
        self._client = _client(spec, timeout, tls_context)

    def send(self, batch: Sequence[Outgoing]) -> list[Sent]:
        answers: dict[int, Sent] = {}  # by position in the batch
        sized: list[tuple[int, Outgoing, int]] = []
        for index, item in enumerate(batch):
            try:
                sized.append((index, item, _size(item)))
            except (OSError, ValueError) as exc:
                answers[index] = Sent(item.key, False, None, f"not sent ({type(exc).__name__})")
        for part in _split(sized, self.max_request_bytes):
            try:
                sent = self._stow([(item, size) for _, item, size in part])
            except DestinationUnavailable as exc:
                done = [answers[i] for i in sorted(answers)]
                raise BatchInterrupted(str(exc), done) from exc
            for (index, _, _), answer in zip(part, sent, strict=True):
                answers[index] = answer
        return [answers[i] for i in range(len(batch))]

    def held(self, study_uid: str, sop_uids: Collection[str]) -> set[str]:
        wanted = {str(uid) for uid in sop_uids}
        if not wanted:
            return set()
        found: set[str] = set()
        url = f"{self.root}/studies/{study_uid}/instances"
        offset = 0
        while True:
            params = {"includefield": "00080018", "limit": self.qido_page, "offset": offset}
            page = self._qido(url, params)
            uids = {_first(row.get("00080018")) for row in page}
            new = uids - found
            found |= uids
            # A server ignoring limit/offset answers the same page again: stop there.
            if len(page) < self.qido_page or not new:
                return found & wanted
            offset += len(page)

    def close(self) -> None:
        self._client.close()

    # --- STOW-RS --------------------------------------------------------------------------

    def _stow(self, part: list[tuple[Outgoing, int]]) -> list[Sent]:
        boundary = f"connrad-{uuid.uuid4().hex}"
        head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        tail = f"--{boundary}--\r\n".encode("ascii")
        length = sum(len(head) + size + 2 for _, size in part) + len(tail)
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Content-Length": str(length),
            "Accept": _JSON,
        }
        try:
            try:
                response = self._client.post(
                    f"{self.root}/studies", content=_body(part, head, tail), headers=headers
                )
            except httpx.RemoteProtocolError:
                # A kept-alive connection the server closed meanwhile: once more, on a new
                # one (a repeated STOW of the same instances is harmless).
                response = self._client.post(
                    f"{self.root}/studies", content=_body(part, head, tail), headers=headers
                )
        except httpx.TimeoutException as exc:
            raise DestinationUnavailable(f"STOW-RS timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise DestinationUnavailable(f"STOW-RS failed ({type(exc).__name__})") from exc
        except OSError as exc:  # a file that vanished while its bytes were being sent
            return [Sent(i.key, False, None, f"not sent ({type(exc).__name__})") for i, _ in part]
        self.requests += 1
        return _stow_answers([item for item, _ in part], response)

    # --- QIDO-RS --------------------------------------------------------------------------

    def _qido(self, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            response = self._client.get(url, params=params, headers={"Accept": _JSON})
        except httpx.HTTPError as exc:
            raise DestinationUnavailable(f"QIDO-RS failed ({type(exc).__name__})") from exc
        code = response.status_code
        if code in (204, 404):
            return []
        if code != 200:
            raise DestinationUnavailable(f"QIDO-RS answered HTTP {code}")
        try:
            rows = response.json()
        except ValueError:
            raise DestinationUnavailable("QIDO-RS answered no JSON") from None
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def qido_probe(
    spec: DestinationSpec, *, timeout: float = 10.0, tls_context: ssl.SSLContext | None = None
) -> tuple[bool, str]:
    """`GET {url}/studies?limit=1`: reachable, and the credentials let us search."""
    if not spec.url:
        return False, "incomplete destination: no URL"
    url = f"{spec.url.rstrip('/')}/studies"
    start = time.perf_counter()
    try:
        with _client(spec, timeout, tls_context) as client:
            response = client.get(url, params={"limit": 1}, headers={"Accept": _JSON})
    except httpx.HTTPError as exc:
        return False, f"cannot reach {url} ({type(exc).__name__}: {exc})"
    ms = (time.perf_counter() - start) * 1000
    if response.status_code in (200, 204):
        return True, f"QIDO-RS {url}: HTTP {response.status_code} in {ms:.0f} ms"
    return False, f"QIDO-RS {url}: HTTP {response.status_code}"


def _client(
    spec: DestinationSpec, timeout: float, tls_context: ssl.SSLContext | None
) -> httpx.Client:
    headers: dict[str, str] = {}
    auth: httpx.Auth | None = None
    if spec.auth_kind == "basic":
        user, _, password = spec.auth_secret.partition(":")
        auth = httpx.BasicAuth(user, password)
    elif spec.auth_kind == "bearer":
        headers["Authorization"] = f"Bearer {spec.auth_secret}"
    return httpx.Client(
        auth=auth,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        verify=tls_context if tls_context is not None else True,
        follow_redirects=False,
    )


def _size(item: Outgoing) -> int:
    if item.data is not None:
        return len(item.data)
    if item.path is not None:
        return item.path.stat().st_size
    raise ValueError("an Outgoing needs data or a path")


def _split(
    sized: list[tuple[int, Outgoing, int]], limit: int
) -> Iterator[list[tuple[int, Outgoing, int]]]:
    """Consecutive requests of at most `limit` bytes (an instance larger goes alone)."""
    part: list[tuple[int, Outgoing, int]] = []
    total = 0
    for entry in sized:
        if part and total + entry[2] > limit:
            yield part
            part, total = [], 0
        part.append(entry)
        total += entry[2]
    if part:
        yield part


def _body(part: list[tuple[Outgoing, int]], head: bytes, tail: bytes) -> Iterator[bytes]:
    for item, size in part:
        yield head
        if item.data is not None:
            yield item.data
        else:
            yield from _read(item, size)
        yield b"\r\n"
    yield tail


def _read(item: Outgoing, size: int) -> Iterator[bytes]:
    assert item.path is not None
    with item.path.open("rb") as file:
        left = size
        while left:
            chunk = file.read(min(_READ_BYTES, left))
            if not chunk:
                raise OSError("file shorter than when the request began")
            left -= len(chunk)
            yield chunk


def _stow_answers(batch: list[Outgoing], response: httpx.Response) -> list[Sent]:
    code = response.status_code
    if code >= 500 or code in _RETRY_LATER:
        raise DestinationUnavailable(f"STOW-RS answered HTTP {code}")
    if not 200 <= code < 500 or 300 <= code < 400:
        raise DestinationUnavailable(f"STOW-RS answered unexpected HTTP {code}")
    listed = _listed(response)
    if listed is None:
        if code in (200, 204):  # "stored all instances" (PS3.18 Table 10.5.3-1)
            return [Sent(item.key, True, 0) for item in batch]
        error = f"STOW-RS answered HTTP {code}" + ("" if code >= 400 else " without a response")
        return [Sent(item.key, False, code, error) for item in batch]
    stored, failed = listed
    answers = []
    for item in batch:
        uid = item.sop_instance_uid
        if uid in failed:
            reason = failed[uid]
            status = reason if reason is not None else code
            error = f"STOW-RS failure reason 0x{reason:04X}" if reason is not None else ""
            answers.append(Sent(item.key, False, status, error or f"STOW-RS HTTP {code}"))
        elif uid in stored:
            answers.append(Sent(item.key, True, stored[uid]))
        else:
            answers.append(Sent(item.key, False, code, "not listed in the STOW-RS response"))
    return answers


def _listed(response: httpx.Response) -> tuple[dict[str, int], dict[str, int | None]] | None:
    """(stored UID -> warning reason or 0, failed UID -> failure reason), None if unreadable."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not (_REFERENCED in body or _FAILED in body):
        return None
    stored: dict[str, int] = {}
    for entry in _items(body, _REFERENCED):
        stored[_first(entry.get(_SOP_UID))] = _number(entry.get(_WARNING_REASON)) or 0
    failed: dict[str, int | None] = {}
    for entry in _items(body, _FAILED):
        failed[_first(entry.get(_SOP_UID))] = _number(entry.get(_FAILURE_REASON))
    return stored, failed


def _items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    value = (body.get(tag) or {}).get("Value") or []
    return [item for item in value if isinstance(item, dict)]


def _first(element: Any) -> str:
    if not isinstance(element, dict):
        return ""
    values = element.get("Value") or [""]
    return str(values[0])


def _number(element: Any) -> int | None:
    if not isinstance(element, dict):
        return None
    values = element.get("Value") or []
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None
