"""Frames of an instance: as stored (WADO-RS ``/frames``) and decoded to native pixels.

Frame numbers are 1-based, as in DICOMweb (PS3.18 8.3.5.1). Files are parsed with large
values left on disk, and only the requested frames are read and decoded, so a frame of a
big multi-frame instance costs one frame. Error messages never quote attribute values: they
may hold patient data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import as_pixel_options, pack_bits
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

PIXEL_KEYWORDS = {
    Tag(0x7FE0, 0x0010): "PixelData",
    Tag(0x7FE0, 0x0008): "FloatPixelData",
    Tag(0x7FE0, 0x0009): "DoubleFloatPixelData",
}
_DEFER_BYTES = 64 * 1024  # larger values stay on disk until a frame needs them
_UNDEFINED_LENGTH = 0xFFFFFFFF
# pydicom turns these into RGB when decoding (YBR_FULL*: colour conversion; YBR_ICT/RCT:
# the JPEG 2000 decoder reverses the component transform).
_DECODED_AS_RGB = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
_INFERRED_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


class FrameError(Exception):
    """A frame is out of range, or the pixel data cannot be read or decoded."""


def read_header(path: Path) -> Dataset:
    """Parse `path`, leaving large values on disk, with a transfer syntax in the file meta.

    Files without file meta (ACR-NEMA style) get the syntax their encoding implies, so
    pydicom's decoders can work on them.

    Raises
    ------
    FrameError
        If the file is not readable DICOM. ``OSError`` (e.g. a missing file) propagates.
    """
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=_DEFER_BYTES)
        if transfer_syntax(ds) == DeflatedExplicitVRLittleEndian:
            # Deferred offsets point into the inflated stream, not the file: read it all.
            ds = pydicom.dcmread(path, force=True)
    except OSError:
        raise
    except Exception as exc:  # pydicom raises many types for malformed input
        raise FrameError(f"unreadable DICOM data ({type(exc).__name__})") from exc
    if "TransferSyntaxUID" not in ds.get("file_meta", {}):
        meta = ds.file_meta if hasattr(ds, "file_meta") else FileMetaDataset()
        meta.TransferSyntaxUID = transfer_syntax(ds)
        ds.file_meta = meta
    return ds


def transfer_syntax(ds: Dataset) -> UID:
    """The file meta's transfer syntax, else the one the dataset's encoding implies."""
    meta = ds.get("file_meta", {})
    if meta.get("TransferSyntaxUID"):
        return UID(str(meta.TransferSyntaxUID))
    implicit, little = ds.original_encoding[:2]
    if implicit is None or little is None:  # built in memory, not read
        return ExplicitVRLittleEndian
    return _INFERRED_SYNTAX.get((implicit, little), ExplicitVRLittleEndian)


def number_of_frames(ds: Dataset) -> int:
    """(0028,0008) Number of Frames; absent, empty or 0 means one frame, as pydicom reads it."""
    value: Any = ds.get("NumberOfFrames")
    if value is None or value == "":
        return 1
    try:
        count = int(value)
    except (TypeError, ValueError) as exc:
        raise FrameError("Number of Frames is not an integer") from exc
    if count < 0:
        raise FrameError("Number of Frames is negative")
    return max(count, 1)


def native_photometric(ds: Dataset) -> str:
    """The photometric interpretation of the bytes that ``native_frames`` returns.

    pydicom converts YCbCr colour to RGB when it decodes (and a colour JPEG always ends up
    RGB, whatever its markers say), so three-sample colour comes out as RGB; everything else
    keeps the stored interpretation.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 3 and photometric in _DECODED_AS_RGB:
        return "RGB"
    return photometric


def stored_frames(path: Path, indices: list[int]) -> list[bytes]:
    """The frames at the 1-based `indices` exactly as stored.

    Native pixel data gives each frame's byte range in the stored byte order; 1-bit frames
    that do not start on a byte boundary are re-packed to start at bit 0 (PS3.5 8.1.1).
    Encapsulated pixel data gives each frame's codestream, joining its fragments and using
    the Basic or Extended Offset Table when present (PS3.5 A.4).

    Raises
    ------
    FrameError
        A frame index is out of range, or the pixel data is missing or truncated.
    """
    ds = read_header(path)
    count = _checked_count(ds, indices)
    tag = _pixel_tag(ds)
    with _pixel_value(path, ds, tag) as (fp, length):
        if length is None:
            offsets = _extended_offsets(ds)
            return [_encapsulated_frame(fp, i, count, offsets) for i in indices]
        frame_bits = _native_frame_bits(ds, tag)
        return [_native_frame(fp, length, i, frame_bits) for i in indices]


def native_frames(path: Path, indices: list[int]) -> list[bytes]:
    """The frames at the 1-based `indices` decoded to native little-endian bytes.

    The bytes are what Explicit VR Little Endian would hold: pydicom's decoded frame, in the
    photometric interpretation that ``native_photometric`` reports, with 1-bit pixels packed.

    Raises
    ------
    FrameError
        A frame index is out of range, or the pixel data cannot be decoded.
    """
    ds, arrays = decode_frames(path, indices)
    bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
    return [native_bytes(arr, bits_allocated) for arr in arrays]


def native_bytes(arr: np.ndarray, bits_allocated: int) -> bytes:
    """A decoded frame as Explicit VR Little Endian stores it."""
    if bits_allocated == 1:
        return pack_bits(arr, pad=False)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def decode_frames(path: Path, indices: list[int]) -> tuple[Dataset, list[np.ndarray]]:
    """The header of `path` and the frames at the 1-based `indices` as pydicom arrays.

    Raises
    ------
    FrameError
        A frame index is out of range, or the pixel data cannot be decoded.
    """
    ds = read_header(path)
    count = _checked_count(ds, indices)
    tag = _pixel_tag(ds)
    syntax = transfer_syntax(ds)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise FrameError(f"no decoder for transfer syntax {syntax}") from exc
    if not decoder.is_available:
        raise FrameError(f"the decoder for transfer syntax {syntax} is not installed")
    options = _decode_options(ds, tag, count)
    with _pixel_value(path, ds, tag) as (fp, _length):
        return ds, [_decode(decoder, fp, i, options) for i in indices]


def _decode(decoder: Any, fp: BinaryIO, index: int, options: dict[str, Any]) -> np.ndarray:
    try:
        arr, _ = decoder.as_array(fp, index=index - 1, validate=True, **options)
    except Exception as exc:  # plugins raise RuntimeError, ValueError, ... on bad data
        raise FrameError(f"frame {index} cannot be decoded ({type(exc).__name__})") from exc
    return arr


def _decode_options(ds: Dataset, tag: BaseTag, count: int) -> dict[str, Any]:
    try:
        options = as_pixel_options(ds, number_of_frames=count)
    except Exception as exc:
        raise FrameError(f"invalid Image Pixel module ({type(exc).__name__})") from exc
    options["pixel_keyword"] = PIXEL_KEYWORDS[tag]
    vr = ds.get_item(tag, keep_deferred=True).VR
    if vr:  # Explicit VR: decoders need it to undo big endian OW word swapping
        options["pixel_vr"] = str(vr)
    return options


def _checked_count(ds: Dataset, indices: list[int]) -> int:
    count = number_of_frames(ds)
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= count:
            raise FrameError(f"frame {index} is out of range 1..{count}")
    return count


def _pixel_tag(ds: Dataset) -> BaseTag:
    for tag in PIXEL_KEYWORDS:
        if tag in ds._dict:
            return tag
    raise FrameError("the instance has no pixel data")


@contextmanager
def _pixel_value(path: Path, ds: Dataset, tag: BaseTag) -> Iterator[tuple[BinaryIO, int | None]]:
    """Yield the pixel value as a file positioned at its first byte, and its length.

    The length is None for encapsulated (undefined length) values. A deferred value is read
    from `path` in place, so only the bytes of the requested frames are loaded.
    """
    elem = ds.get_item(tag, keep_deferred=True)
    length = _value_length(elem)
    if isinstance(elem, RawDataElement) and elem.value is None and elem.length:
        with path.open("rb") as fp:
            fp.seek(elem.value_tell)
            yield fp, length
        return
    yield BytesIO(bytes(elem.value or b"")), length


def _value_length(elem: DataElement | RawDataElement) -> int | None:
    if isinstance(elem, RawDataElement):
        return None if elem.length == _UNDEFINED_LENGTH else elem.length
    if elem.is_undefined_length:
        return None
    return len(elem.value or b"")


def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    try:
        offsets, lengths = ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths")
    except Exception as exc:
        raise FrameError("unreadable Extended Offset Table") from exc
    if offsets and lengths:
        return bytes(offsets), bytes(lengths)
    return None


def _encapsulated_frame(
    fp: BinaryIO, index: int, count: int, offsets: tuple[bytes, bytes] | None
) -> bytes:
    try:
        return get_frame(fp, index - 1, number_of_frames=count, extended_offsets=offsets)
    except Exception as exc:  # ValueError for missing frames, struct/EOF errors if cut short
        raise FrameError(f"frame {index} is missing from the encapsulated pixel data") from exc


def _native_frame_bits(ds: Dataset, tag: BaseTag) -> int:
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise FrameError("the Image Pixel module is incomplete") from exc
    if rows < 1 or columns < 1 or bits < 1:
        raise FrameError("the Image Pixel module has empty dimensions")
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        return rows * columns * 2 * bits  # two chroma samples are shared by two pixels
    return rows * columns * samples * bits


def _native_frame(fp: BinaryIO, length: int, index: int, frame_bits: int) -> bytes:
    first_bit = (index - 1) * frame_bits
    start, end = first_bit // 8, -(-(first_bit + frame_bits) // 8)
    if end > length:
        raise FrameError(f"frame {index} lies beyond the end of the pixel data")
    base = fp.tell()
    fp.seek(base + start)
    data = fp.read(end - start)
    fp.seek(base)
    if len(data) < end - start:
        raise FrameError(f"frame {index} is truncated")
    if first_bit % 8 == 0 and frame_bits % 8 == 0:
        return data
    return _repack_bits(data, first_bit % 8, frame_bits)


def _repack_bits(data: bytes, offset: int, nbits: int) -> bytes:
    """Bits [offset, offset + nbits) of `data` packed from bit 0 (PS3.5 8.1.1: LSB first)."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return np.packbits(bits[offset : offset + nbits], bitorder="little").tobytes()
