"""Fast pixel checks on synthetic instances: native lengths, bits, photometric, encapsulation.

Instances are written as Part 10 files and read back with ``defer_size`` like the ingest does:
native Pixel Data stays in the file and only its declared length and position are used.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from connrad.qc.fast import FastLimits, fast_checks
from connrad.qc.fast.pixels import expected_native_length, fragments
from connrad.qc.findings import Finding
from tests.factories import make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"  # not in the IOD tables: only pixel findings
JPEG_EXTENDED_6_8 = "1.2.840.10008.1.2.4.53"  # retired; no pydicom decoder


def write(tmp_path: Path, ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3")
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    path = tmp_path / "instance.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def check(
    tmp_path: Path,
    ds: Dataset,
    syntax: str = ExplicitVRLittleEndian,
    *,
    cut: int = 0,
    limits: FastLimits = FastLimits(),
) -> list[Finding]:
    """Pixel findings of the instance written with ``syntax`` (``cut`` bytes cut off the end)."""
    path = write(tmp_path, ds, syntax)
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    read = pydicom.dcmread(path, defer_size=64)
    findings = fast_checks(read, transfer_syntax_uid=syntax, path=path, limits=limits)
    return [f for f in findings if f.code.startswith("pixel.")]


def codes(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.code, f.severity.value, f.attribute) for f in findings}


def image(**attributes: Any) -> Dataset:
    """An 8x8 16-bit image of a SOP Class the tables do not know (pixel findings only)."""
    return make_dataset(SOPClassUID=PARAMETRIC_MAP, **attributes)


# --- native pixel data -----------------------------------------------------------------------


def test_consistent_native_pixel_data_passes(tmp_path: Path) -> None:
    assert check(tmp_path, image()) == []
    assert check(tmp_path, image(), ImplicitVRLittleEndian) == []


def test_short_pixel_data_fails_with_both_lengths(tmp_path: Path) -> None:
    findings = check(tmp_path, image(PixelData=bytes(100)))
    assert codes(findings) == {("pixel.length-mismatch", "fail", "PixelData")}
    assert findings[0].data == {"expected": 128, "actual": 100}


def test_excess_pixel_data_warns(tmp_path: Path) -> None:
    findings = check(tmp_path, image(PixelData=bytes(200)))
    assert codes(findings) == {("pixel.length-mismatch", "warn", "PixelData")}


def test_multi_frame_length_counts_every_frame(tmp_path: Path) -> None:
    assert check(tmp_path, image(NumberOfFrames="2", PixelData=bytes(256))) == []
    findings = check(tmp_path, image(NumberOfFrames="3", PixelData=bytes(256)))
    assert findings[0].data == {"expected": 384, "actual": 256}


def test_odd_length_is_padded_by_one_byte(tmp_path: Path) -> None:
    ds = image(Rows=3, Columns=3, BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=bytes(9))
    assert check(tmp_path, ds) == []  # stored as 10 bytes


def test_single_bit_pixels_are_packed(tmp_path: Path) -> None:
    bits = {"BitsAllocated": 1, "BitsStored": 1, "HighBit": 0}
    ds = image(Rows=5, Columns=5, NumberOfFrames="2", PixelData=bytes(7), **bits)
    assert check(tmp_path, ds) == []  # 50 bits: 7 bytes, 8 stored
    ds = image(Rows=5, Columns=5, NumberOfFrames="2", PixelData=bytes(6), **bits)
    assert codes(check(tmp_path, ds)) == {("pixel.length-mismatch", "fail", "PixelData")}


def test_ybr_full_422_stores_two_values_a_pixel(tmp_path: Path) -> None:
    colour = {"SamplesPerPixel": 3, "PhotometricInterpretation": "YBR_FULL_422"}
    bits = {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7, "PlanarConfiguration": 0}
    assert check(tmp_path, image(PixelData=bytes(128), **colour, **bits)) == []


def test_truncated_file_fails(tmp_path: Path) -> None:
    findings = check(tmp_path, image(), cut=10)
    assert codes(findings) == {("pixel.truncated", "fail", "PixelData")}
    assert findings[0].data == {"declared": 128, "available": 118}


def test_float_pixel_data_is_32_bits(tmp_path: Path) -> None:
    ds = image(BitsAllocated=32)
    for keyword in ("PixelData", "BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, keyword)
    ds.FloatPixelData = np.zeros(64, dtype=np.float32).tobytes()
    assert check(tmp_path, ds) == []
    ds.FloatPixelData = bytes(128)
    findings = check(tmp_path, ds)
    assert codes(findings) == {("pixel.length-mismatch", "fail", "FloatPixelData")}
    assert findings[0].data == {"expected": 256, "actual": 128}


# --- the pixel description -------------------------------------------------------------------


def test_bits_stored_above_bits_allocated_fails(tmp_path: Path) -> None:
    findings = check(tmp_path, image(BitsStored=17, HighBit=16))
    assert codes(findings) == {("pixel.bits-inconsistent", "fail", "BitsStored")}


def test_high_bit_not_below_bits_stored_warns(tmp_path: Path) -> None:
    findings = check(tmp_path, image(HighBit=15))
    assert codes(findings) == {("pixel.bits-inconsistent", "warn", "HighBit")}


def test_photometric_against_samples_fails(tmp_path: Path) -> None:
    findings = check(tmp_path, image(PhotometricInterpretation="RGB"))
    assert codes(findings) == {
        ("pixel.photometric-inconsistent", "fail", "PhotometricInterpretation")
    }
    assert findings[0].data["expected_samples_per_pixel"] == 3


def test_missing_rows_fails(tmp_path: Path) -> None:
    ds = image()
    del ds.Rows
    assert codes(check(tmp_path, ds)) == {("pixel.attribute-missing", "fail", "Rows")}


def test_missing_rows_is_reported_once_when_the_iod_requires_it(tmp_path: Path) -> None:
    ds = make_dataset()  # CT: the attribute check already fails Rows
    del ds.Rows
    path = write(tmp_path, ds)
    findings = fast_checks(pydicom.dcmread(path), transfer_syntax_uid=ExplicitVRLittleEndian)
    assert [f.code for f in findings if f.attribute == "Rows"] == ["attribute.type1-missing"]


def test_unreadable_number_of_frames_fails_the_pixel_check(tmp_path: Path) -> None:
    path = write(tmp_path, image(NumberOfFrames="99"))
    path.write_bytes(path.read_bytes().replace(b"IS\x02\x0099", b"IS\x02\x001A"))
    read = pydicom.dcmread(path, defer_size=64)
    findings = fast_checks(read, transfer_syntax_uid=ExplicitVRLittleEndian, path=path)
    assert codes(findings) >= {
        ("pixel.attribute-invalid", "fail", "NumberOfFrames"),
        ("value.bad-number", "warn", "NumberOfFrames"),
    }


def test_expected_native_length() -> None:
    from connrad.qc.fast.pixels import PIXEL_DATA, Geometry

    g = Geometry(512, 512, 1, 16, 12, 11, "MONOCHROME2", 1)
    assert expected_native_length(g, PIXEL_DATA) == 524288


# --- encapsulated pixel data -----------------------------------------------------------------


def jpeg_frame() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)).save(buffer, "JPEG")
    return buffer.getvalue()


def encapsulated(frames: list[bytes], *, frames_declared: int = 1, bot: bool = False) -> Dataset:
    ds = image(BitsAllocated=8, BitsStored=8, HighBit=7, NumberOfFrames=str(frames_declared))
    ds.PixelData = encapsulate(frames, has_bot=bot)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def test_decodable_jpeg_frame_passes(tmp_path: Path) -> None:
    assert check(tmp_path, encapsulated([jpeg_frame()]), JPEGBaseline8Bit) == []


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda frame: frame[: len(frame) // 3],  # cut short
        lambda frame: frame[:2] + bytes(len(frame) - 4) + frame[-2:],  # no markers left
    ],
)
def test_corrupt_jpeg_frame_fails(tmp_path: Path, corrupt: Any) -> None:
    findings = check(tmp_path, encapsulated([corrupt(jpeg_frame())]), JPEGBaseline8Bit)
    assert codes(findings) == {("pixel.undecodable", "fail", "PixelData")}
    assert findings[0].data["stage"] == "codestream" and findings[0].data["error"]


def rle_compressed() -> Dataset:
    ds = image()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.compress(RLELossless)
    return ds


def test_corrupt_rle_frame_fails(tmp_path: Path) -> None:
    assert check(tmp_path, rle_compressed(), RLELossless) == []
    ds = rle_compressed()
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:70]])  # the RLE header promises more segment bytes
    assert codes(check(tmp_path, ds, RLELossless)) == {("pixel.undecodable", "fail", "PixelData")}


def test_no_decoder_for_the_syntax_only_warns(tmp_path: Path) -> None:
    findings = check(tmp_path, encapsulated([jpeg_frame()]), JPEG_EXTENDED_6_8)
    assert codes(findings) == {("pixel.decoder-unavailable", "warn", "PixelData")}


def test_offset_table_against_number_of_frames_warns(tmp_path: Path) -> None:
    ds = encapsulated([jpeg_frame(), jpeg_frame()], frames_declared=3, bot=True)
    findings = check(tmp_path, ds, JPEGBaseline8Bit)
    assert codes(findings) == {("pixel.frame-count-mismatch", "warn", "NumberOfFrames")}
    assert findings[0].data == {"found": 2, "number_of_frames": 3}


def test_frames_too_large_are_not_decoded(tmp_path: Path) -> None:
    limits = FastLimits(max_decode_pixels=10)
    findings = check(tmp_path, encapsulated([jpeg_frame()[:50]]), JPEGBaseline8Bit, limits=limits)
    assert codes(findings) == {("pixel.decoder-unavailable", "warn", "PixelData")}


def test_malformed_items_fail() -> None:
    with pytest.raises(ValueError, match="malformed"):
        fragments(b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\x01\x02\x03\x04\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="past the end"):
        fragments(b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x10\x00\x00\x00ab")
    table, items = fragments(
        b"\xfe\xff\x00\xe0\x04\x00\x00\x00\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x02\x00\x00\x00ab"
    )
    assert table == [0] and items == [(20, 2)]


def test_encapsulated_data_under_a_native_syntax_fails() -> None:
    ds = encapsulated([jpeg_frame()])  # in memory: the element says undefined length
    findings = fast_checks(ds, transfer_syntax_uid=ExplicitVRLittleEndian)
    assert ("pixel.encapsulation-mismatch", "fail", "PixelData") in codes(findings)


def test_native_data_under_an_encapsulated_syntax_fails() -> None:
    findings = fast_checks(image(), transfer_syntax_uid=JPEGBaseline8Bit)
    assert ("pixel.encapsulation-mismatch", "fail", "PixelData") in codes(findings)


def test_without_a_known_syntax_the_element_says_native_or_encapsulated() -> None:
    assert not [
        f for f in fast_checks(image(), transfer_syntax_uid="") if f.code.startswith("pixel")
    ]


def test_an_integral_decimal_number_of_frames_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, image(NumberOfFrames="1234", PixelData=bytes(256)))
    path.write_bytes(path.read_bytes().replace(b"IS\x04\x001234", b"IS\x04\x002.0 "))
    findings = fast_checks(pydicom.dcmread(path), transfer_syntax_uid=ExplicitVRLittleEndian)
    assert codes(findings) == {
        ("iod.unknown-sop-class", "warn", "SOPClassUID"),
        ("value.bad-number", "warn", "NumberOfFrames"),
    }
