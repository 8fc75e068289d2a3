"""Re-encoding whole instances into the uncompressed transfer syntaxes every peer accepts.

WADO-RS and C-GET must answer in a syntax the requester accepts (PS3.18 8.7.3.5); the
universal fallbacks are Explicit and Implicit VR Little Endian, which can be produced from
anything pydicom can decode. Error messages never quote attribute values.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import correct_ambiguous_vr
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from connrad.dicom.frames import PIXEL_KEYWORDS, native_bytes, transfer_syntax

UNCOMPRESSED_TARGETS = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
# Bytes per value of the binary VRs whose values pydicom keeps as raw bytes (PS3.5 6.2).
_WORD_BYTES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
_EXTENDED_OFFSETS = (0x7FE00001, 0x7FE00002)
_META_FROM_DATASET = {
    "MediaStorageSOPClassUID": "SOPClassUID",
    "MediaStorageSOPInstanceUID": "SOPInstanceUID",
}


class TranscodeError(Exception):
    """The instance cannot be re-encoded in the requested transfer syntax."""


def can_produce(stored_ts: str, requested_ts: str) -> bool:
    """True if an instance stored as `stored_ts` can be sent as `requested_ts`."""
    if stored_ts == requested_ts:
        return True
    return requested_ts in UNCOMPRESSED_TARGETS and is_decodable(stored_ts)


def is_decodable(ts: str) -> bool:
    """True if pydicom, with the installed plugins, can decode pixel data in `ts`."""
    uid = UID(ts)
    if uid == DeflatedExplicitVRLittleEndian:
        return True  # inflated on reading; the pixel data itself is native
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def transcode(path: Path, requested_ts: str) -> bytes:
    """The Part 10 file at `path` in `requested_ts`.

    The stored bytes come back unchanged when they already use `requested_ts` (files
    without file meta are always re-encoded, so the answer is a Part 10 file).

    Raises
    ------
    TranscodeError
        `requested_ts` is neither the stored syntax nor an uncompressed little endian one,
        or the instance cannot be decoded.
    """
    if _stored_syntax(path) == requested_ts:
        return path.read_bytes()
    if requested_ts not in UNCOMPRESSED_TARGETS:
        raise TranscodeError(f"cannot transcode to transfer syntax {requested_ts}")
    return _reencode(_read(path), UID(requested_ts))


def to_explicit_little_endian(path: Path) -> bytes:
    """The Part 10 file at `path` re-encoded as Explicit VR Little Endian.

    Encapsulated pixel data is decompressed (YCbCr colour becomes RGB, as pydicom decodes
    it), big endian values are byte-swapped, and the file meta's Transfer Syntax UID is
    updated. The SOP Instance UID is kept: the pixels are what the stored instance decodes to.

    Raises
    ------
    TranscodeError
        The file is unreadable, or its pixel data cannot be decoded or is truncated.
    """
    return _reencode(_read(path), ExplicitVRLittleEndian)


def _stored_syntax(path: Path) -> str:
    """The file meta's Transfer Syntax UID, read without the pixel data; "" if none."""
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, defer_size=1024)
    except OSError:
        raise
    except Exception:  # unreadable: _read reports it if re-encoding is attempted
        return ""
    return str(ds.file_meta.get("TransferSyntaxUID", ""))


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True)
    except OSError:
        raise
    except Exception as exc:  # pydicom raises many types for malformed input
        raise TranscodeError(f"unreadable DICOM data ({type(exc).__name__})") from exc


def _reencode(ds: Dataset, target: UID) -> bytes:
    try:
        _to_native_little_endian(ds, transfer_syntax(ds))
        if not target.is_implicit_VR:
            _settle_ambiguous_vrs(ds)
        ds.file_meta = _file_meta(ds, target)
        if not getattr(ds, "preamble", None):
            ds.preamble = b"\x00" * 128
        out = BytesIO()
        # Not enforce_file_format: an instance lacking SOP UIDs is still sent, as stored.
        pydicom.dcmwrite(out, ds, enforce_file_format=False)
        return out.getvalue()
    except TranscodeError:
        raise
    except Exception as exc:
        raise TranscodeError(f"cannot re-encode the instance ({type(exc).__name__})") from exc


def _file_meta(ds: Dataset, target: UID) -> FileMetaDataset:
    """File meta (PS3.10 7.1) for the re-encoded instance, kept from the stored one."""
    meta = FileMetaDataset(ds.get("file_meta", FileMetaDataset()))
    meta.FileMetaInformationGroupLength = 0  # the writer sets the real length
    if not meta.get("FileMetaInformationVersion"):
        meta.FileMetaInformationVersion = b"\x00\x01"
    for meta_keyword, keyword in _META_FROM_DATASET.items():
        if ds.get(keyword):
            setattr(meta, meta_keyword, ds[keyword].value)
    meta.TransferSyntaxUID = target
    if not meta.get("ImplementationClassUID"):
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _to_native_little_endian(ds: Dataset, stored: UID) -> None:
    """Decompress or byte-swap `ds` in place so its values are native little endian."""
    pixel_tag = next((tag for tag in PIXEL_KEYWORDS if tag in ds), None)
    if pixel_tag is not None and ds[pixel_tag].is_undefined_length:
        _decompress(ds, stored)
    elif pixel_tag is not None:
        _check_native_length(ds)
    if not stored.is_little_endian:
        _swap_binary_values(ds)
    _reject_nested_encapsulation(ds)


def _decompress(ds: Dataset, stored: UID) -> None:
    """Replace encapsulated Pixel Data with the frames pydicom decodes (as Dataset.decompress).

    Decoded here rather than with ``Dataset.decompress``: that one also makes a new SOP
    Instance UID by default, and its frame iterator fails on JPEG 2000 sign correction.
    """
    if not is_decodable(stored):
        raise TranscodeError(f"no decoder for transfer syntax {stored}")
    try:
        arr, pixel = get_decoder(stored).as_array(ds, as_rgb=True)
    except Exception as exc:  # plugins raise RuntimeError, ValueError, ... on bad data
        raise TranscodeError(f"pixel data cannot be decoded ({type(exc).__name__})") from exc
    value = native_bytes(arr, int(ds.BitsAllocated))
    ds.PixelData = value + b"\x00" * (len(value) % 2)
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.PhotometricInterpretation = pixel["photometric_interpretation"]
    if int(pixel.get("samples_per_pixel", 1)) > 1:
        ds.PlanarConfiguration = pixel.get("planar_configuration", 0)
    for tag in _EXTENDED_OFFSETS:  # they describe the encapsulated frames just replaced
        if tag in ds:
            del ds[tag]


def _settle_ambiguous_vrs(ds: Dataset) -> None:
    """Give explicit VRs to elements read from Implicit VR whose VR pydicom cannot resolve.

    pydicom resolves most from the Pixel Representation and Bits Allocated; the rest (e.g.
    retired curve data "OB or OW") get OW for raw bytes, as Implicit VR encodes them
    (PS3.5 A.1), and the first listed numeric VR otherwise.
    """
    correct_ambiguous_vr(ds, is_little_endian=True)
    for elem in ds.iterall():
        if " or " not in str(elem.VR):
            continue
        choices = str(elem.VR).split(" or ")
        raw = isinstance(elem.value, bytes | bytearray)
        elem.VR = "OW" if raw and "OW" in choices else choices[0]


def _check_native_length(ds: Dataset) -> None:
    """Refuse truncated native pixel data rather than write a corrupt instance."""
    keyword = next(kw for tag, kw in PIXEL_KEYWORDS.items() if tag in ds)
    try:
        expected = get_expected_length(ds)
        actual = len(ds[keyword].value or b"")
    except Exception as exc:
        raise TranscodeError(f"invalid Image Pixel module ({type(exc).__name__})") from exc
    if actual < expected:
        raise TranscodeError(f"pixel data holds {actual} of {expected} bytes")


def _swap_binary_values(ds: Dataset) -> None:
    """Byte-swap raw OW/OL/OF/OD/OV values, which pydicom keeps in the stored byte order.

    Numeric VRs (US, SS, FL, ...) are decoded to numbers on reading and re-encoded by the
    writer; raw binary values are not. Big endian Pixel Data holds values of Bits Allocated
    (8-bit values in OW are word-swapped too, PS3.5 A.3).
    """
    for elem in ds.iterall():
        width = _WORD_BYTES.get(str(elem.VR))
        if elem.tag == 0x7FE00010 and width:
            width = max(int(ds.get("BitsAllocated", 16) or 16) // 8, 2)
        if width and isinstance(elem.value, bytes | bytearray) and len(elem.value) % width == 0:
            elem.value = _swap(bytes(elem.value), width)


def _swap(value: bytes, width: int) -> bytes:
    return np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def _reject_nested_encapsulation(ds: Dataset) -> None:
    """Compressed icon images would stay encapsulated in an uncompressed file: refuse."""
    for elem in ds.iterall():
        if elem.tag == 0x7FE00010 and elem.is_undefined_length:
            raise TranscodeError("encapsulated pixel data inside a sequence item")
