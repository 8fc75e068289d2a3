"""Streaming multipart/related (RFC 2046, RFC 2387): parse request bodies chunk by chunk and
build response bodies part by part, never holding more than one chunk plus a small tail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum, auto

MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart (message safe to show to the client)."""


@dataclass(frozen=True)
class MediaType:
    type: str  # lower-cased "type/subtype"
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_media_type(value: str) -> MediaType:
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    return MediaType(main.strip().lower(), params)


class Event(Enum):
    PART_BEGIN = auto()  # payload: dict of lower-cased headers
    DATA = auto()  # payload: bytes
    PART_END = auto()  # payload: None


class _State(Enum):
    PREAMBLE = auto()
    AFTER_BOUNDARY = auto()
    HEADERS = auto()
    DATA = auto()
    EPILOGUE = auto()


class MultipartParser:
    """Incremental parser: ``feed(chunk)`` yields events; ``close()`` checks completeness."""

    def __init__(self, boundary: str) -> None:
        if not boundary or len(boundary) > 70:
            raise MultipartError("missing or invalid multipart boundary")
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        # The first boundary may start the body without a preceding CRLF.
        self._buffer = b"\r\n"
        self._state = _State.PREAMBLE
        self.parts_completed = 0

    @property
    def finished(self) -> bool:
        return self._state is _State.EPILOGUE

    def feed(self, chunk: bytes) -> Iterator[tuple[Event, object]]:
        if self._state is _State.EPILOGUE:
            return
        self._buffer += chunk
        while True:
            progressed, events = self._step()
            yield from events
            if not progressed:
                return

    def close(self) -> None:
        if self._state is not _State.EPILOGUE:
            if self._state is _State.DATA:
                raise MultipartError("multipart body ended inside a part (missing boundary)")
            raise MultipartError("multipart body ended before its closing boundary")

    def _step(self) -> tuple[bool, list[tuple[Event, object]]]:
        buf, delim = self._buffer, self._delimiter
        if self._state is _State.PREAMBLE:
            at = buf.find(delim)
            if at < 0:
                self._buffer = buf[-(len(delim) - 1) :]
                return False, []
            self._buffer = buf[at + len(delim) :]
            self._state = _State.AFTER_BOUNDARY
            return True, []
        if self._state is _State.AFTER_BOUNDARY:
            return self._after_boundary()
        if self._state is _State.HEADERS:
            return self._headers()
        if self._state is _State.DATA:
            at = buf.find(delim)
            if at < 0:
                keep = len(delim) - 1
                if len(buf) <= keep:
                    return False, []
                self._buffer = buf[-keep:]
                return False, [(Event.DATA, buf[:-keep])]
            self._buffer = buf[at + len(delim) :]
            self._state = _State.AFTER_BOUNDARY
            self.parts_completed += 1
            events: list[tuple[Event, object]] = []
            if at:
                events.append((Event.DATA, buf[:at]))
            events.append((Event.PART_END, None))
            return True, events
        return False, []

    def _after_boundary(self) -> tuple[bool, list[tuple[Event, object]]]:
        buf = self._buffer
        if len(buf) < 2:
            return False, []
        if buf.startswith(b"--"):
            self._state = _State.EPILOGUE
            self._buffer = b""
            return False, []
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > 1024:
                raise MultipartError("malformed multipart boundary line")
            return False, []
        if buf[:end].strip(b" \t"):
            raise MultipartError("malformed multipart boundary line")
        self._buffer = buf[end + 2 :]
        self._state = _State.HEADERS
        return True, []

    def _headers(self) -> tuple[bool, list[tuple[Event, object]]]:
        buf = self._buffer
        if buf.startswith(b"\r\n"):  # a part with no headers
            block, rest = b"", buf[2:]
        else:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise MultipartError("multipart part headers too large")
                return False, []
            block, rest = buf[:end], buf[end + 4 :]
        headers: dict[str, str] = {}
        for line in block.split(b"\r\n") if block else []:
            name, sep, value = line.partition(b":")
            if not sep:
                raise MultipartError("malformed multipart part header")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        self._buffer = rest
        self._state = _State.DATA
        return True, [(Event.PART_BEGIN, headers)]


def multipart_body(
    parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """Serialize parts (headers, chunks) as a multipart body, streaming each part's chunks."""
    dash = f"--{boundary}".encode("latin-1")
    for headers, chunks in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        yield dash + b"\r\n" + head.encode("latin-1") + b"\r\n"
        yield from chunks
        yield b"\r\n"
    yield dash + b"--\r\n"
