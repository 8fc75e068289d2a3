"""Clean Pixel Data with real OCR on synthetic frames carrying burned-in text."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from connrad.deid.pixels import (
    Box,
    CleanResult,
    PixelCleaningError,
    clean_pixels,
    find_text,
    has_pixel_data,
)
from connrad.demo.generate import file_meta, tiny_ct
from connrad.dicom.render import display_pixels
from tests.peers import missing

FONT = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
SIZE = 512
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"

Region = tuple[int, int, int, int]  # top, left, bottom, right
Burned = tuple[Dataset, np.ndarray, Region]  # the instance, its text pixels and their extent


@pytest.fixture(scope="module", autouse=True)
def tesseract() -> Iterator[None]:
    if shutil.which("tesseract") is None:
        missing("the tesseract binary is not installed (apt-get install tesseract-ocr)")
    # Tesseract's OpenMP threads make one small image 3-5x slower on few cores; deployments
    # set this in the worker environment too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_THREAD_LIMIT", "1")
        yield


def _text_mask(
    text: str, at: tuple[int, int], size: int = 40, shape: tuple[int, int] = (SIZE, SIZE)
) -> tuple[np.ndarray, Region]:
    """A boolean mask of `text` drawn at (left, top), and its bounding region."""
    image = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, size)
    draw.text(at, text, fill=255, font=font)
    left, top, right, bottom = draw.textbbox(at, text, font=font)
    return np.asarray(image) > 127, (top, left, bottom, right)


def _gradient(rows: int = SIZE, columns: int = SIZE) -> np.ndarray:
    """A smooth diagonal ramp 0..1, standing in for anatomy."""
    y, x = np.mgrid[0:rows, 0:columns]
    return (y + x) / (rows + columns - 2)


def _base(sop_class: str, rows: int, columns: int, **attributes: object) -> Dataset:
    ds = tiny_ct(SOPClassUID=sop_class, SOPInstanceUID=generate_uid(), Rows=rows, Columns=columns)
    ds.BurnedInAnnotation = "YES"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta = file_meta(ds)
    return ds


def _gray(pixels: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 8) -> Dataset:
    dtype = np.uint8 if bits == 8 else np.uint16
    ds = _base(
        SECONDARY_CAPTURE,
        *pixels.shape,
        Modality="OT",
        PhotometricInterpretation=photometric,
        BitsAllocated=bits,
        BitsStored=8 if bits == 8 else 12,
        HighBit=7 if bits == 8 else 11,
    )
    ds.PixelData = pixels.astype(dtype).tobytes()
    return ds


def _rgb(frames: np.ndarray) -> Dataset:
    ds = _base(
        US_MULTIFRAME,
        *frames.shape[1:3],
        Modality="US",
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        NumberOfFrames=frames.shape[0],
    )
    ds.PixelData = frames.astype(np.uint8).tobytes()
    return ds


def white_on_black() -> Burned:
    mask, region = _text_mask("HONG GILDONG 12345", (40, 60))
    return _gray(np.where(mask, 4095, 0), bits=16), mask, region


def korean() -> Burned:
    mask, region = _text_mask("홍길동", (300, 400), size=48)
    return _gray(np.where(mask, 250, 10)), mask, region


def dark_on_light() -> Burned:
    # MONOCHROME1: high stored values display dark, so this renders as dark text on light.
    mask, region = _text_mask("PATIENT KIM 2024", (60, 220))
    return _gray(np.where(mask, 230, 20), photometric="MONOCHROME1"), mask, region


def _ultrasound_frame(text: str = "KIM MINJUN 45Y") -> tuple[np.ndarray, np.ndarray, Region]:
    mask, region = _text_mask(text, (10, 8), size=28)
    ramp = (_gradient() * 180 + 30).astype(np.uint8)
    ramp[:70, :] = 0  # the black band the scanner writes its header into
    frame = np.repeat(ramp[:, :, None], 3, axis=2)
    frame[mask] = (255, 255, 255)
    return frame, mask, region


def ultrasound_rle() -> Burned:
    frame, mask, region = _ultrasound_frame()
    ds = _rgb(frame[None])
    ds.compress(RLELossless)
    return ds, mask, region


@dataclass(frozen=True)
class Case:
    make: Callable[[], Burned]
    words: tuple[str, ...]
    fill: int


CASES = {
    "white_on_black": Case(white_on_black, ("HONG", "GILDONG", "12345"), 0),
    "korean": Case(korean, ("홍길동",), 10),
    "dark_on_light": Case(dark_on_light, ("PATIENT", "KIM", "2024"), 230),
    "ultrasound_rle": Case(ultrasound_rle, ("KIM", "MINJUN"), 0),
}


@dataclass(frozen=True)
class Cleaned:
    case: Case
    source: Dataset
    text: np.ndarray
    region: Region
    result: CleanResult


@pytest.fixture(scope="module", params=list(CASES))
def cleaned(request: pytest.FixtureRequest) -> Cleaned:
    case = CASES[request.param]
    source, text, region = case.make()
    return Cleaned(case, source, text, region, clean_pixels(source))


def _box_mask(boxes: list[Box], shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], dtype=bool)
    for box in boxes:
        mask[box.top : box.bottom, box.left : box.right] = True
    return mask


def _overlaps(box: Box, region: Region) -> bool:
    top, left, bottom, right = region
    return box.top < bottom and top < box.bottom and box.left < right and left < box.right


def _words(boxes: list[Box]) -> set[str]:
    return {box.text.casefold() for box in boxes}


def test_finds_the_burned_in_words(cleaned: Cleaned) -> None:
    [boxes] = cleaned.result.boxes
    expected = {word.casefold() for word in cleaned.case.words}
    assert expected <= _words(boxes)
    assert cleaned.result.fill_value == cleaned.case.fill
    assert all(box.confidence >= 40 for box in boxes)
    assert cleaned.result.cleaned


def test_masks_the_boxes_and_nothing_else(cleaned: Cleaned) -> None:
    before = cleaned.source.pixel_array
    after = cleaned.result.dataset.pixel_array
    inside = _box_mask(cleaned.result.boxes[0], before.shape)
    assert inside[cleaned.text].all()  # the padded word boxes cover every stroke
    assert (after[inside] == cleaned.result.fill_value).all()
    assert np.array_equal(after[~inside], before[~inside])


def test_ocr_finds_no_text_after_cleaning(cleaned: Cleaned) -> None:
    ds = cleaned.result.dataset
    rendered = display_pixels(ds.pixel_array, ds, 0)
    read = [box for box in find_text(rendered) if _overlaps(box, cleaned.region)]
    # A filled box is itself a dark block that OCR may report as a low-confidence "word";
    # what matters is that none of the burned-in words can be read any more.
    assert not _words(read) & {word.casefold() for word in cleaned.case.words}


def test_cleaned_instance_is_native_and_marked(cleaned: Cleaned) -> None:
    ds = cleaned.result.dataset
    assert ds.BurnedInAnnotation == "NO"
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert cleaned.source.BurnedInAnnotation == "YES"  # the input is left alone
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    assert np.array_equal(pydicom.dcmread(buffer).pixel_array, ds.pixel_array)


def test_cine_masks_the_overlay_on_every_frame_from_a_sample() -> None:
    frame, text, region = _ultrasound_frame("LEE SORA F")
    frames = np.stack([frame, np.roll(frame, 40, axis=1), frame])
    frames[1, :70] = frame[:70]  # the image moves, the overlay stays
    # Two of three frames are read (first and last); the middle one gets their union.
    result = clean_pixels(_rgb(frames), max_ocr_frames=2)
    assert len(result.boxes) == 3
    assert result.boxes[0] == result.boxes[1] == result.boxes[2]
    assert {"lee", "sora"} <= _words(result.boxes[1])
    after = result.dataset.pixel_array
    inside = _box_mask(result.boxes[1], frame.shape)
    assert inside[text].all()
    assert (after[:, inside] == 0).all()
    assert np.array_equal(after[:, ~inside], frames[:, ~inside])
    assert not [box for box in find_text(after[1]) if _overlaps(box, region)]


def test_textless_gradient_is_left_unchanged() -> None:
    source = _gray(_gradient() * 255)
    result = clean_pixels(source)
    assert result.boxes == [[]]
    assert not result.cleaned
    assert result.dataset.PixelData == source.PixelData
    assert result.dataset.BurnedInAnnotation == "NO"


def test_box_repr_hides_the_text() -> None:
    assert "HONG" not in repr(Box(1, 2, 3, 4, "HONG", 90.0))


def test_has_pixel_data() -> None:
    ds = tiny_ct()
    assert has_pixel_data(ds)
    del ds.PixelData
    assert not has_pixel_data(ds)


def test_no_pixel_data_is_an_error() -> None:
    ds = tiny_ct()
    del ds.PixelData
    with pytest.raises(PixelCleaningError, match="no Pixel Data"):
        clean_pixels(ds)


def test_undecodable_pixel_data_is_an_error() -> None:
    ds = tiny_ct()
    ds.PixelData = b"\x00" * 10  # 8x8 16-bit needs 128 bytes
    with pytest.raises(PixelCleaningError, match="cannot be decoded"):
        clean_pixels(ds)


def test_max_ocr_frames_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        clean_pixels(tiny_ct(), max_ocr_frames=0)
