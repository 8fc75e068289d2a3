"""Pixel module consistency: the pixel description, the stored length, a decodable frame.

Native (uncompressed) pixel data is never read: its element's declared length and file
position are compared with what the Image Pixel attributes imply, and with the file size.
Encapsulated data is loaded (pydicom loads undefined-length values anyway) to walk its
items and decode the first frame with pydicom's decoders, as a viewer would. A syntax no
installed decoder handles only warns: the archive can store and forward what it cannot
show. Everything that makes the image unreadable fails: a wrong or truncated length, an
undecodable first frame, attributes that contradict each other or are missing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from connrad.dicom.uids import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    is_known_transfer_syntax,
)
from connrad.qc.fast._elements import UNDEFINED_LENGTH, Element, as_text, as_us, get, is_empty
from connrad.qc.findings import Finding, Severity, fail, warn

EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
NATIVE_SYNTAXES = frozenset(
    {
        IMPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_BIG_ENDIAN,
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    }
)
PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA = 0x7FE00010, 0x7FE00008, 0x7FE00009
_FLOAT_BITS = {FLOAT_PIXEL_DATA: 32, DOUBLE_PIXEL_DATA: 64}
_KEYWORDS = {PIXEL_DATA: "PixelData", FLOAT_PIXEL_DATA: "FloatPixelData"}
_KEYWORDS[DOUBLE_PIXEL_DATA] = "DoubleFloatPixelData"

SAMPLES_PER_PHOTOMETRIC = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_PARTIAL_422": 3,
    "YBR_PARTIAL_420": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
    "XYB": 3,
    "HSV": 3,  # retired
    "ARGB": 4,  # retired
    "CMYK": 4,  # retired
}
"""PS3.3 C.7.6.3.1.2: the Samples per Pixel each Photometric Interpretation implies."""

_US_TAGS = {
    "Rows": 0x00280010,
    "Columns": 0x00280011,
    "SamplesPerPixel": 0x00280002,
    "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101,
    "HighBit": 0x00280102,
    "PixelRepresentation": 0x00280103,
}
_INTEGER_PIXEL_ONLY = ("BitsStored", "HighBit", "PixelRepresentation")
_PHOTOMETRIC = 0x00280004
_NUMBER_OF_FRAMES = 0x00280008
_ITEM, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE0DD
_POSITIVE = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored")


@dataclass(frozen=True)
class Geometry:
    """The Image Pixel description the stored pixel data must match."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int | None
    high_bit: int | None
    photometric: str
    frames: int


def check_pixels(
    ds: Dataset,
    *,
    transfer_syntax_uid: str,
    file_size: int | None,
    decode_first_frame: bool = True,
    max_decode_pixels: int = 0,
) -> list[Finding]:
    """Findings about the pixel data; ``max_decode_pixels`` > 0 bounds the decoded frame."""
    for tag in (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA):
        element = get(ds, tag)
        if element is not None:
            break
    else:
        return []  # whether pixel data is required is the attribute check's business
    findings: list[Finding] = []
    geometry = _geometry(ds, tag, findings)
    if geometry is None:
        return findings
    findings += _bits(geometry, tag)
    findings += _photometric(geometry)
    encapsulated = _undefined_length(element)
    native = tag != PIXEL_DATA or transfer_syntax_uid in NATIVE_SYNTAXES
    if not native and not is_known_transfer_syntax(transfer_syntax_uid):
        native = not encapsulated  # a syntax unknown here: the element says which it is
    if native:
        if encapsulated:
            return [*findings, _encapsulation_mismatch(tag, native=True)]
        deflated = transfer_syntax_uid == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
        return findings + _native_length(element, geometry, tag, None if deflated else file_size)
    if not encapsulated:
        return [*findings, _encapsulation_mismatch(tag, native=False)]
    decode = decode_first_frame and not any(f.severity is Severity.FAIL for f in findings)
    return findings + _encapsulated(
        ds, element, geometry, transfer_syntax_uid, decode, max_decode_pixels
    )


# --- the pixel description -----------------------------------------------------------------


def _geometry(ds: Dataset, tag: int, findings: list[Finding]) -> Geometry | None:
    """The description, or None after reporting what is missing or unreadable."""
    values: dict[str, int | None] = {}
    for keyword, us_tag in _US_TAGS.items():
        element = get(ds, us_tag)
        if element is None or is_empty(element):
            if tag == PIXEL_DATA or keyword not in _INTEGER_PIXEL_ONLY:
                findings.append(_missing(keyword, tag))
            values[keyword] = None
            continue
        value = as_us(element)
        if value is None or (value == 0 and keyword in _POSITIVE):
            findings.append(_invalid(keyword, "not one positive unsigned short"))
        values[keyword] = value
    photometric_element = get(ds, _PHOTOMETRIC)
    photometric = None if photometric_element is None else as_text(photometric_element)
    photometric = (photometric or "").strip(" \x00")
    if not photometric:
        findings.append(_missing("PhotometricInterpretation", tag))
    frames = _frames(get(ds, _NUMBER_OF_FRAMES), findings)
    if findings or frames is None:
        return None
    return Geometry(
        rows=values["Rows"] or 0,
        columns=values["Columns"] or 0,
        samples=values["SamplesPerPixel"] or 0,
        bits_allocated=values["BitsAllocated"] or 0,
        bits_stored=values["BitsStored"],
        high_bit=values["HighBit"],
        photometric=photometric,
        frames=frames,
    )


def _frames(element: Element | None, findings: list[Finding]) -> int | None:
    """Number of Frames (1 when absent); None, reported, when it is not a positive integer."""
    if element is None or is_empty(element):
        return 1
    text = (as_text(element) or "").strip(" \x00")
    try:
        frames = int(text)
    except ValueError:
        try:  # "2.0" is no IS (the value check warns) but readers take it
            number = float(text)
            frames = int(number) if number.is_integer() else 0
        except ValueError:
            frames = 0
    if frames < 1:
        findings.append(
            _invalid("NumberOfFrames", "not a positive integer; the pixel data cannot be checked")
        )
        return None
    return frames


def _bits(g: Geometry, tag: int) -> list[Finding]:
    if tag in _FLOAT_BITS:
        if g.bits_allocated != _FLOAT_BITS[tag]:
            return [
                _bits_finding(
                    fail,
                    f"BitsAllocated must be {_FLOAT_BITS[tag]} for {_KEYWORDS[tag]}",
                    "BitsAllocated",
                    g,
                )
            ]
        return []
    if g.bits_allocated != 1 and g.bits_allocated % 8:
        why = "BitsAllocated is neither 1 nor a multiple of 8"
        return [_bits_finding(fail, why, "BitsAllocated", g)]
    stored = g.bits_stored or 0
    if stored > g.bits_allocated:
        return [_bits_finding(fail, "BitsStored exceeds BitsAllocated", "BitsStored", g)]
    if g.high_bit is not None and g.high_bit >= g.bits_allocated:
        return [_bits_finding(fail, "HighBit lies outside BitsAllocated", "HighBit", g)]
    if g.high_bit != stored - 1:
        return [_bits_finding(warn, "HighBit is not BitsStored - 1", "HighBit", g)]
    return []


Report = Callable[..., Finding]


def _bits_finding(report: Report, message: str, keyword: str, g: Geometry) -> Finding:
    return report(
        "pixel.bits-inconsistent",
        message,
        keyword,
        bits_allocated=g.bits_allocated,
        bits_stored=g.bits_stored,
        high_bit=g.high_bit,
    )


def _photometric(g: Geometry) -> list[Finding]:
    expected = SAMPLES_PER_PHOTOMETRIC.get(g.photometric)
    if expected is None:
        return [
            warn(
                "pixel.photometric-inconsistent",
                "PhotometricInterpretation is not a defined term",
                "PhotometricInterpretation",
                samples_per_pixel=g.samples,
            )
        ]
    if expected != g.samples:
        return [
            fail(
                "pixel.photometric-inconsistent",
                f"PhotometricInterpretation {g.photometric} needs {expected} sample(s) per "
                f"pixel, SamplesPerPixel is {g.samples}",
                "PhotometricInterpretation",
                photometric_interpretation=g.photometric,
                samples_per_pixel=g.samples,
                expected_samples_per_pixel=expected,
            )
        ]
    return []


def _missing(keyword: str, tag: int) -> Finding:
    return fail(
        "pixel.attribute-missing",
        f"{keyword} is missing or empty, so {_KEYWORDS[tag]} cannot be interpreted",
        keyword,
    )


def _invalid(keyword: str, why: str) -> Finding:
    return fail("pixel.attribute-invalid", f"{keyword} is {why}", keyword)


# --- native pixel data ----------------------------------------------------------------------


def expected_native_length(g: Geometry, tag: int) -> int:
    """Bytes of all frames: bit-packed for 1-bit data, 2 values a pixel for YBR_FULL_422."""
    bits = _FLOAT_BITS.get(tag, g.bits_allocated)
    pixels = g.rows * g.columns * g.frames
    per_pixel = 2 if g.photometric == "YBR_FULL_422" and tag == PIXEL_DATA else g.samples
    return (pixels * per_pixel * bits + 7) // 8


def _undefined_length(element: Element) -> bool:
    if isinstance(element, RawDataElement):
        return element.length == UNDEFINED_LENGTH
    return bool(getattr(element, "is_undefined_length", False))


def _native_length(element: Element, g: Geometry, tag: int, file_size: int | None) -> list[Finding]:
    keyword = _KEYWORDS[tag]
    findings: list[Finding] = []
    value = element.value
    if isinstance(element, RawDataElement):
        declared = element.length
        tell = element.value_tell
        if file_size is not None and tell is not None and tell + declared > file_size:
            findings.append(_truncated(keyword, declared, max(file_size - tell, 0)))
        elif isinstance(value, bytes) and len(value) < declared:
            findings.append(_truncated(keyword, declared, len(value)))
    elif isinstance(value, bytes):
        declared = len(value)
    else:
        return findings
    expected = expected_native_length(g, tag)
    padded = expected + expected % 2
    if declared < expected:
        findings.append(_length(fail, keyword, expected, declared, "shorter than"))
    elif declared > padded:
        findings.append(_length(warn, keyword, expected, declared, "longer than"))
    return findings


def _truncated(keyword: str, declared: int, available: int) -> Finding:
    return fail(
        "pixel.truncated",
        f"{keyword} extends past the end of the file: the file is truncated",
        keyword,
        declared=declared,
        available=available,
    )


def _length(report: Report, keyword: str, expected: int, actual: int, how: str) -> Finding:
    return report(
        "pixel.length-mismatch",
        f"{keyword} is {how} Rows x Columns x SamplesPerPixel x BitsAllocated x "
        "NumberOfFrames implies",
        keyword,
        expected=expected,
        actual=actual,
    )


def _encapsulation_mismatch(tag: int, *, native: bool) -> Finding:
    stored, expected = ("encapsulated", "native") if native else ("native", "encapsulated")
    return fail(
        "pixel.encapsulation-mismatch",
        f"{_KEYWORDS[tag]} is {stored} but the transfer syntax is {expected}",
        _KEYWORDS[tag],
    )


# --- encapsulated pixel data ----------------------------------------------------------------


def fragments(value: bytes) -> tuple[list[int], list[tuple[int, int]]]:
    """(Basic Offset Table, [(offset, length)] of each fragment); ValueError if malformed."""
    end = len(value)
    position = 0
    items: list[tuple[int, int]] = []
    while position + 8 <= end:
        group, element, length = struct.unpack_from("<HHL", value, position)
        tag = group << 16 | element
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM or length == UNDEFINED_LENGTH:
            raise ValueError("an item of the encapsulated pixel data is malformed")
        if position + 8 + length > end:
            raise ValueError("a fragment extends past the end of the pixel data")
        items.append((position + 8, length))
        position += 8 + length
    if not items:
        raise ValueError("the encapsulated pixel data has no Basic Offset Table item")
    bot_at, bot_length = items[0]
    if bot_length % 4:
        raise ValueError("the Basic Offset Table length is not a multiple of 4")
    table = list(struct.unpack_from(f"<{bot_length // 4}L", value, bot_at))
    return table, items[1:]


def _encapsulated(
    ds: Dataset,
    element: Element,
    g: Geometry,
    transfer_syntax_uid: str,
    decode: bool,
    max_pixels: int,
) -> list[Finding]:
    findings: list[Finding] = []
    value = element.value
    if value is None:  # deferred (pydicom defers undefined lengths too): read it now
        loaded = ds.get_item(element.tag)
        value = None if loaded is None else loaded.value
    if not isinstance(value, bytes):
        return findings
    try:
        table, items = fragments(value)
    except (ValueError, struct.error) as exc:
        return [_undecodable(str(exc), "encapsulation")]
    if not items:
        return [_undecodable("the encapsulated pixel data has no fragment", "encapsulation")]
    if table and len(table) != g.frames:
        findings.append(_frame_count("Basic Offset Table entries", len(table), g.frames))
    elif len(items) < g.frames:
        findings.append(_frame_count("fragments", len(items), g.frames))
    if not decode:
        return findings
    if max_pixels > 0 and g.rows * g.columns > max_pixels:
        return [*findings, _unavailable(transfer_syntax_uid, "the frame is too large to decode")]
    try:
        decoder = get_decoder(transfer_syntax_uid)
    except NotImplementedError:
        return [*findings, _unavailable(transfer_syntax_uid, "no decoder for this syntax")]
    if not decoder.is_available:
        return [*findings, _unavailable(transfer_syntax_uid, "no decoding plugin installed")]
    try:
        decoder.as_array(ds, index=0)
    except Exception as exc:  # every plugin raises its own types
        findings.append(_undecodable(f"{type(exc).__name__}: {exc}", "codestream"))
    return findings


def _frame_count(what: str, found: int, frames: int) -> Finding:
    return warn(
        "pixel.frame-count-mismatch",
        f"the encapsulated pixel data has {found} {what} for {frames} frame(s)",
        "NumberOfFrames",
        found=found,
        number_of_frames=frames,
    )


def _undecodable(error: str, stage: str) -> Finding:
    return fail(
        "pixel.undecodable",
        "the first frame of the pixel data cannot be decoded"
        if stage == "codestream"
        else "the encapsulated pixel data is malformed",
        "PixelData",
        stage=stage,
        error=" ".join(error.split())[:300],
    )


def _unavailable(transfer_syntax_uid: str, why: str) -> Finding:
    return warn(
        "pixel.decoder-unavailable",
        f"the first frame was not decoded: {why}",
        "PixelData",
        transfer_syntax_uid=transfer_syntax_uid,
    )
