import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import as_pixel_options, pack_bits
from pydicom.uid import (
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from connrad.dicom.frames import (
    FrameError,
    native_frames,
    native_photometric,
    number_of_frames,
    read_header,
    stored_frames,
)

Reference = Callable[[Path], tuple[Dataset, np.ndarray]]


def little_endian_bytes(frame: np.ndarray, bits_allocated: int) -> bytes:
    if bits_allocated == 1:
        return pack_bits(frame, pad=False)
    return frame.astype(frame.dtype.newbyteorder("<")).tobytes()


def first_and_last(count: int) -> list[int]:
    return sorted({1, count})


def test_native_frames_equal_pydicom_pixels(
    public: Path, decodable: str, reference_frames: Reference
) -> None:
    ds, frames = reference_frames(public / decodable)
    wanted = first_and_last(len(frames))

    got = native_frames(public / decodable, wanted)

    expected = [little_endian_bytes(frames[i - 1], int(ds.BitsAllocated)) for i in wanted]
    assert got == expected


def test_native_photometric_is_what_the_decoder_reports(public: Path, decodable: str) -> None:
    ds = read_header(public / decodable)
    full = pydicom.dcmread(public / decodable, force=True)
    full.file_meta = ds.file_meta
    _, pixel = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(full, index=0)

    assert native_photometric(ds) == pixel["photometric_interpretation"]


def test_stored_frames_decode_to_the_same_pixels(
    public: Path, encapsulated: str, reference_frames: Reference
) -> None:
    ds, frames = reference_frames(public / encapsulated)
    wanted = first_and_last(len(frames))

    stored = stored_frames(public / encapsulated, wanted)

    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    options = as_pixel_options(ds, number_of_frames=1)
    options.pop("extended_offsets", None)
    for frame, index in zip(stored, wanted, strict=True):
        arr, _ = decoder.as_array(encapsulate([frame]), **options)
        np.testing.assert_array_equal(arr, frames[index - 1])


def test_stored_native_frames_are_the_stored_bytes(public: Path) -> None:
    path = public / "pydicom-data__emri_small.dcm"  # 10 frames of 64x64 uint16
    ds = pydicom.dcmread(path)
    frame_bytes = 64 * 64 * 2

    got = stored_frames(path, [1, 10, 3])

    assert got == [ds.PixelData[(i - 1) * frame_bytes : i * frame_bytes] for i in (1, 10, 3)]


def test_stored_big_endian_frames_are_returned_as_stored(public: Path) -> None:
    [little] = stored_frames(public / "pydicom__MR_small.dcm", [1])
    [big] = stored_frames(public / "pydicom__MR_small_bigendian.dcm", [1])

    assert big == np.frombuffer(little, "<i2").astype(">i2").tobytes()


def test_odd_length_native_pixel_data(public: Path) -> None:
    [frame] = stored_frames(public / "pydicom__SC_rgb_small_odd.dcm", [1])

    assert len(frame) == 3 * 3 * 3  # the pad byte is not part of the frame


def test_one_bit_frames_off_byte_boundaries_are_repacked(
    write_instance: Callable[..., Path],
) -> None:
    # Three 3x3 binary frames share bytes: frame 2 starts at bit 9 (PS3.5 8.1.1).
    frames = np.array([np.eye(3), np.ones((3, 3)), np.fliplr(np.eye(3))], dtype=np.uint8)
    path = write_instance(
        pack_bits(frames),
        Rows=3,
        Columns=3,
        NumberOfFrames=3,
        BitsAllocated=1,
        BitsStored=1,
        HighBit=0,
    )
    expected = [pack_bits(frame, pad=False) for frame in frames]

    assert stored_frames(path, [1, 2, 3]) == expected
    assert native_frames(path, [1, 2, 3]) == expected


def frame_codestreams(count: int) -> list[bytes]:
    """Distinct fake JPEG codestreams (SOI ... EOI) of different lengths.

    Big enough (30 kB each) that the reader leaves the pixel data on disk and reads the
    frames from the file in place.
    """
    return [b"\xff\xd8" + bytes([i]) * (30_000 + 2 * i) + b"\xff\xd9" for i in range(count)]


@pytest.mark.parametrize("basic_offset_table", [True, False])
def test_encapsulated_frames_one_fragment_each(
    write_instance: Callable[..., Path], basic_offset_table: bool
) -> None:
    frames = frame_codestreams(4)
    path = write_instance(
        encapsulate(frames, has_bot=basic_offset_table),
        transfer_syntax=JPEGBaseline8Bit,
        **image(frames=4),
    )

    assert stored_frames(path, [4, 1, 2]) == [frames[3], frames[0], frames[1]]


@pytest.mark.parametrize("basic_offset_table", [True, False])
def test_encapsulated_frames_of_several_fragments(
    write_instance: Callable[..., Path], basic_offset_table: bool
) -> None:
    # Without a Basic Offset Table the frame ends are found by their EOI markers.
    frames = frame_codestreams(3)
    path = write_instance(
        encapsulate(frames, fragments_per_frame=3, has_bot=basic_offset_table),
        transfer_syntax=JPEGBaseline8Bit,
        **image(frames=3),
    )

    assert stored_frames(path, [1, 2, 3]) == frames


def test_one_frame_in_many_fragments(write_instance: Callable[..., Path]) -> None:
    [frame] = frame_codestreams(1)
    path = write_instance(
        encapsulate([frame], fragments_per_frame=4, has_bot=False),
        transfer_syntax=JPEGBaseline8Bit,
        **image(frames=1),
    )

    assert stored_frames(path, [1]) == [frame]


def test_extended_offset_table(write_instance: Callable[..., Path]) -> None:
    frames = frame_codestreams(3)
    data, offsets, lengths = encapsulate_extended(frames)
    path = write_instance(
        data,
        transfer_syntax=JPEGBaseline8Bit,
        ExtendedOffsetTable=offsets,
        ExtendedOffsetTableLengths=lengths,
        **image(frames=3),
    )

    assert stored_frames(path, [3, 2]) == [frames[2], frames[1]]


def test_rle_extended_offset_table_round_trip(write_instance: Callable[..., Path]) -> None:
    pixels = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    ds = Dataset()
    for keyword, value in image(frames=5, rows=6, columns=7, bits=16).items():
        setattr(ds, keyword, value)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.compress(RLELossless, pixels, encoding_plugin="pydicom", encapsulate_ext=True)
    path = write_instance(
        ds.PixelData,
        transfer_syntax=RLELossless,
        ExtendedOffsetTable=ds.ExtendedOffsetTable,
        ExtendedOffsetTableLengths=ds.ExtendedOffsetTableLengths,
        **image(frames=5, rows=6, columns=7, bits=16),
    )

    assert native_frames(path, [2, 5]) == [pixels[1].tobytes(), pixels[4].tobytes()]


def test_deflated_image_frames_are_served_as_stored(public: Path) -> None:
    # No decoder knows 1.2.840.10008.1.2.8.1 yet, but its frames can be served as stored.
    frames = stored_frames(public / "pydicom-data__liver_deflate.dcm", [1, 3])

    assert [len(zlib.decompress(frame, -zlib.MAX_WBITS)) for frame in frames] == [32768] * 2


@pytest.mark.parametrize("index", [0, -1, 11, 2**40, True])
def test_frame_out_of_range(public: Path, index: int) -> None:
    path = public / "pydicom-data__emri_small.dcm"  # 10 frames
    with pytest.raises(FrameError, match="out of range"):
        stored_frames(path, [1, index])
    with pytest.raises(FrameError, match="out of range"):
        native_frames(path, [index])


def test_truncated_native_pixel_data(public: Path) -> None:
    with pytest.raises(FrameError, match="truncated"):
        stored_frames(public / "pydicom__MR_truncated.dcm", [1])


def test_no_pixel_data(public: Path, no_pixels: str) -> None:
    with pytest.raises(FrameError):
        native_frames(public / no_pixels, [1])


def test_files_pydicom_cannot_decode_raise_frame_error(public: Path, broken: str) -> None:
    with pytest.raises(FrameError) as raised:
        native_frames(public / broken, [1])

    assert_no_patient_data(str(raised.value), public / broken)


def test_any_file_gives_frames_or_frame_error(public: Path, any_file: str) -> None:
    for read in (stored_frames, native_frames):
        try:
            frames = read(public / any_file, [1])
        except FrameError as exc:
            assert_no_patient_data(str(exc), public / any_file)
        else:
            assert len(frames) == 1 and frames[0]


def test_frame_error_messages_hold_no_patient_data(write_instance: Callable[..., Path]) -> None:
    path = write_instance(b"\x00" * 10, **image(frames=4))  # frame 3 needs bytes 8..12

    with pytest.raises(FrameError) as raised:
        stored_frames(path, [3])

    assert "Doe" not in str(raised.value) and "SECRET" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 1), ("", 1), (1, 1), (30, 30), ("7", 7), (0, 1)]
)
def test_number_of_frames(value: object, expected: int) -> None:
    ds = Dataset()
    if value is not None:
        ds.NumberOfFrames = value
    assert number_of_frames(ds) == expected


def test_number_of_frames_not_an_integer(public: Path) -> None:
    with pytest.raises(FrameError, match="not an integer"):
        number_of_frames(read_header(public / "pydicom__badVR.dcm"))  # "1A"


@pytest.mark.parametrize(
    ("photometric", "samples", "expected"),
    [
        ("MONOCHROME1", 1, "MONOCHROME1"),
        ("PALETTE COLOR", 1, "PALETTE COLOR"),
        ("YBR_FULL_422", 3, "RGB"),
        ("YBR_FULL", 3, "RGB"),
        ("YBR_RCT", 3, "RGB"),
        ("YBR_ICT", 3, "RGB"),
        ("RGB", 3, "RGB"),
    ],
)
def test_native_photometric(photometric: str, samples: int, expected: str) -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = samples
    assert native_photometric(ds) == expected


def test_transfer_syntax_inferred_without_file_meta(public: Path) -> None:
    ds = read_header(public / "fo-dicom__CR-MONO1-10-chest")  # ACR-NEMA style, no meta
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian


def test_big_endian_synthetic_round_trip(write_instance: Callable[..., Path]) -> None:
    pixels = np.arange(-8, 8, dtype=">i2").reshape(4, 4)
    path = write_instance(
        pixels.tobytes(),
        transfer_syntax=ExplicitVRBigEndian,
        **image(rows=4, columns=4, bits=16, signed=True),
    )

    assert stored_frames(path, [1]) == [pixels.tobytes()]
    assert native_frames(path, [1]) == [pixels.astype("<i2").tobytes()]


def image(
    *, frames: int = 1, rows: int = 2, columns: int = 2, bits: int = 8, signed: bool = False
) -> dict[str, object]:
    """Image Pixel module attributes for a monochrome image."""
    return {
        "Rows": rows,
        "Columns": columns,
        "NumberOfFrames": frames,
        "BitsAllocated": bits,
        "BitsStored": bits,
        "HighBit": bits - 1,
        "PixelRepresentation": int(signed),
    }


def assert_no_patient_data(message: str, path: Path) -> None:
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # unreadable: there is no patient data to leak
        return
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
        value = str(ds.get(keyword, "") or "").strip()
        if len(value) > 2:
            assert value not in message
