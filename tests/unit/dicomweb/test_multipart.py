import random

import pytest

from connrad.dicomweb.multipart import (
    Event,
    MultipartError,
    MultipartParser,
    multipart_body,
    parse_media_type,
)


def parse(body: bytes, boundary: str, chunk: int) -> list[tuple[dict[str, str], bytes]]:
    parser = MultipartParser(boundary)
    parts: list[tuple[dict[str, str], bytes]] = []
    current: list[bytes] = []
    headers: dict[str, str] = {}
    for at in range(0, len(body), chunk):
        for event, payload in parser.feed(body[at : at + chunk]):
            if event is Event.PART_BEGIN:
                headers, current = payload, []  # type: ignore[assignment]
            elif event is Event.DATA:
                current.append(payload)  # type: ignore[arg-type]
            else:
                parts.append((headers, b"".join(current)))
    parser.close()
    return parts


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 65536])
def test_round_trip_any_chunking(chunk: int) -> None:
    rng = random.Random(chunk)
    payloads = [bytes(rng.getrandbits(8) for _ in range(n)) for n in (0, 1, 500, 3000)]
    payloads.append(b"--b0undary\r\n--b0undar")  # near-delimiters (no CRLF, cut short)
    boundary = "b0undary"
    body = b"preamble\r\n" + b"".join(
        multipart_body([({"Content-Type": "application/dicom"}, [p]) for p in payloads], boundary)
    )
    parts = parse(body, boundary, chunk)
    assert [p for _, p in parts] == payloads
    assert all(h["content-type"] == "application/dicom" for h, _ in parts)


def test_part_without_headers() -> None:
    body = b"--x\r\n\r\nabc\r\n--x--\r\n"
    assert parse(body, "x", 4) == [({}, b"abc")]


@pytest.mark.parametrize(
    "body",
    [
        b"--x\r\nContent-Type: a\r\n\r\nabc",  # no closing delimiter
        b"--x\r\nContent-Type: a\r\n\r\nabc\r\n--x\r\n",  # last boundary not closed
        b"no boundary at all",
        b"--x\r\nbroken header line\r\n\r\nabc\r\n--x--",
    ],
)
def test_broken_bodies_raise(body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse(body, "x", 5)


def test_media_type_parameters() -> None:
    media = parse_media_type(
        'multipart/related; type="application/dicom"; boundary="a b;c"; transfer-syntax=*'
    )
    assert media.type == "multipart/related"
    assert media.params == {
        "type": "application/dicom",
        "boundary": "a b;c",
        "transfer-syntax": "*",
    }
