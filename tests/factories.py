"""Small, valid DICOM instances and multipart bodies built in the tests."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from connrad.demo.generate import tiny_ct, to_part10_bytes
from connrad.dicomweb.multipart import multipart_body


def make_dataset(**attributes: Any) -> Dataset:
    """An 8x8 CT image; keyword arguments override or add attributes."""
    return tiny_ct(**attributes)


def to_bytes(ds: Dataset) -> bytes:
    return to_part10_bytes(ds)


def make_instance(**attributes: Any) -> bytes:
    return to_bytes(make_dataset(**attributes))


BOUNDARY = "connrad-test-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def stow_body(*parts: bytes, content_type: str = "application/dicom") -> bytes:
    return b"".join(
        multipart_body([({"Content-Type": content_type}, [p]) for p in parts], BOUNDARY)
    )


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    from connrad.dicomweb.multipart import Event, MultipartParser, parse_media_type

    parser = MultipartParser(parse_media_type(content_type).params["boundary"])
    parts: list[tuple[dict[str, str], bytes]] = []
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    for event, payload in parser.feed(body):
        if event is Event.PART_BEGIN:
            headers, chunks = payload, []  # type: ignore[assignment]
        elif event is Event.DATA:
            chunks.append(payload)  # type: ignore[arg-type]
        else:
            parts.append((headers, b"".join(chunks)))
    parser.close()
    return parts
