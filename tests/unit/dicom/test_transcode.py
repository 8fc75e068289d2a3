from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from connrad.dicom.frames import native_photometric, read_header
from connrad.dicom.transcode import (
    TranscodeError,
    can_produce,
    to_explicit_little_endian,
    transcode,
)

Reference = Callable[[Path], tuple[Dataset, np.ndarray]]
DEFLATED_IMAGE_FRAMES = "1.2.840.10008.1.2.8.1"
JPEG_SPECTRAL_SELECTION = "1.2.840.10008.1.2.4.53"


def read_back(data: bytes) -> tuple[Dataset, np.ndarray | None]:
    ds = pydicom.dcmread(BytesIO(data))  # no force: it must be a Part 10 file
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        return ds, None
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return ds, (arr if frames > 1 else arr[np.newaxis])


def test_explicit_little_endian_keeps_the_pixels(
    public: Path, decodable: str, reference_frames: Reference
) -> None:
    original, frames = reference_frames(public / decodable)

    ds, pixels = read_back(to_explicit_little_endian(public / decodable))

    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(pixels, frames)
    assert ds.PhotometricInterpretation == native_photometric(read_header(public / decodable))
    assert ds.get("SOPInstanceUID") == original.get("SOPInstanceUID")


def test_implicit_little_endian_keeps_the_pixels(
    public: Path, encapsulated: str, reference_frames: Reference
) -> None:
    _, frames = reference_frames(public / encapsulated)

    ds, pixels = read_back(transcode(public / encapsulated, ImplicitVRLittleEndian))

    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    np.testing.assert_array_equal(pixels, frames)


@pytest.mark.parametrize(
    "name",
    [
        "pydicom__MR_small_bigendian.dcm",
        "pydicom__MR_small_implicit.dcm",
        "pydicom__MR_small_RLE.dcm",
        "pydicom__MR_small_jp2klossless.dcm",
    ],
)
def test_the_same_pixels_whatever_the_stored_syntax(public: Path, name: str) -> None:
    reference = pydicom.dcmread(public / "pydicom__MR_small.dcm").pixel_array

    ds, pixels = read_back(to_explicit_little_endian(public / name))

    assert pixels is not None
    np.testing.assert_array_equal(pixels[0], reference)
    assert ds["PixelData"].VR in ("OB", "OW")


def test_big_endian_binary_values_are_swapped(write_instance: Callable[..., Path]) -> None:
    pixels = np.array([[1, 2], [300, 40000]], dtype=">u2")
    overlay = np.array([0x0102, 0x0304], dtype=">u2").tobytes()  # OW words, big endian
    path = write_instance(
        pixels.tobytes(),
        transfer_syntax=ExplicitVRBigEndian,
        Rows=2,
        Columns=2,
        BitsAllocated=16,
        BitsStored=16,
        HighBit=15,
    )
    ds = pydicom.dcmread(path)
    ds.add_new(0x60003000, "OW", overlay)
    ds.save_as(path)

    out, arr = read_back(to_explicit_little_endian(path))

    assert arr is not None and arr[0].tolist() == [[1, 2], [300, 40000]]
    assert out[0x60003000].value == np.array([0x0102, 0x0304], dtype="<u2").tobytes()


def test_no_file_meta_becomes_part10(public: Path) -> None:
    path = public / "fo-dicom__CR-MONO1-10-chest"  # ACR-NEMA style: no preamble, no meta

    ds, _ = read_back(transcode(path, ImplicitVRLittleEndian))

    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_ambiguous_implicit_vrs_get_explicit_ones(public: Path) -> None:
    # RTIMAGE with retired curve data (5000,3000) "OB or OW" read from Implicit VR.
    ds, _ = read_back(to_explicit_little_endian(public / "fo-dicom__RI6XDosiGap.dcm"))
    assert ds[0x50003000].VR == "OW"


def test_extended_offset_table_is_dropped(write_instance: Callable[..., Path]) -> None:
    pixels = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    ds = Dataset()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.compress(RLELossless, pixels, encoding_plugin="pydicom", encapsulate_ext=True)
    path = write_instance(
        ds.PixelData,
        transfer_syntax=RLELossless,
        ExtendedOffsetTable=ds.ExtendedOffsetTable,
        ExtendedOffsetTableLengths=ds.ExtendedOffsetTableLengths,
        Rows=4,
        Columns=5,
        NumberOfFrames=3,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
    )

    out, arr = read_back(to_explicit_little_endian(path))

    np.testing.assert_array_equal(arr, pixels)
    assert "ExtendedOffsetTable" not in out and "ExtendedOffsetTableLengths" not in out


def test_files_without_pixels_are_re_encoded(public: Path, no_pixels: str) -> None:
    ds, _ = read_back(to_explicit_little_endian(public / no_pixels))

    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_identity_returns_the_stored_bytes(public: Path) -> None:
    path = public / "pydicom__examples_ybr_color.dcm"
    assert transcode(path, JPEGBaseline8Bit) == path.read_bytes()


def test_other_target_syntaxes_are_refused(public: Path) -> None:
    with pytest.raises(TranscodeError, match="cannot transcode"):
        transcode(public / "pydicom__MR_small.dcm", JPEG2000Lossless)


@pytest.mark.parametrize(
    ("stored", "requested", "expected"),
    [
        (JPEGBaseline8Bit, JPEGBaseline8Bit, True),
        (JPEGBaseline8Bit, ExplicitVRLittleEndian, True),
        (JPEGLSLossless, ImplicitVRLittleEndian, True),
        (RLELossless, ExplicitVRLittleEndian, True),
        (ExplicitVRBigEndian, ExplicitVRLittleEndian, True),
        (DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, True),
        (ImplicitVRLittleEndian, ExplicitVRLittleEndian, True),
        (JPEGBaseline8Bit, JPEG2000Lossless, False),
        (ExplicitVRLittleEndian, JPEGBaseline8Bit, False),
        (ExplicitVRLittleEndian, ExplicitVRBigEndian, False),
        (JPEG_SPECTRAL_SELECTION, ExplicitVRLittleEndian, False),
        (DEFLATED_IMAGE_FRAMES, ExplicitVRLittleEndian, False),
        (DEFLATED_IMAGE_FRAMES, DEFLATED_IMAGE_FRAMES, True),
    ],
)
def test_can_produce(stored: str, requested: str, expected: bool) -> None:
    assert can_produce(stored, requested) is expected


def test_broken_files_raise_transcode_error(public: Path, broken: str) -> None:
    with pytest.raises(TranscodeError) as raised:
        to_explicit_little_endian(public / broken)

    header = pydicom.dcmread(public / broken, force=True, stop_before_pixels=True)
    name = str(header.get("PatientName", "") or "")
    assert not name or name not in str(raised.value)


def test_truncated_pixel_data_is_refused(public: Path) -> None:
    with pytest.raises(TranscodeError, match="8130 of 8192 bytes"):
        to_explicit_little_endian(public / "pydicom__MR_truncated.dcm")


@pytest.mark.parametrize("target", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_any_file_transcodes_or_raises_transcode_error(
    public: Path, any_file: str, target: str
) -> None:
    try:
        data = transcode(public / any_file, target)
    except TranscodeError:
        return
    ds = pydicom.dcmread(BytesIO(data), force=True)
    assert ds.file_meta.get("TransferSyntaxUID") == target
