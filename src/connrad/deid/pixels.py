"""Clean Pixel Data: find and blank burned-in text (PS3.15 E.3.1, Clean Pixel Data Option).

Text is found by OCR (Tesseract through pytesseract, Korean and English models) on an 8-bit
rendering of each frame, and every box found is filled with a value that displays as black.
OCR is a heuristic: it misses stylised, tiny or low-contrast text, so a cleaned instance still
needs the QC review that PS3.15 E.3.1 expects. The recognised text may be patient data: it is
returned for tests and QC only and never logged or put into error messages.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import numpy as np
import pytesseract
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from connrad.dicom.frames import FrameError, native_bytes, native_photometric
from connrad.dicom.render import display_pixels

# Tesseract's OpenMP threads make one small image 3-5x slower on a few cores, and the job
# workers already run OCR in parallel; the subprocess inherits this unless it is set.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

OCR_LANGUAGES = "kor+eng"
# Sparse text (PSM 11): burned-in annotations are scattered words, not a page; the default
# page segmentation misses short isolated words such as a three-syllable Korean name.
# Sauvola thresholding (method 2) is local: the default global Otsu threshold splits an
# image with a bright sector or gradient in two and loses text in the dark band beside it.
_TESSERACT_CONFIG = "--psm 11 -c thresholding_method=2"
MIN_CONFIDENCE = 40.0
PAD_PIXELS = 4
DEFAULT_MAX_OCR_FRAMES = 64


class PixelCleaningError(Exception):
    """The pixel data is missing or cannot be decoded, rendered or re-encoded."""


@dataclass(frozen=True)
class Box:
    """A word found by OCR: rows ``top:bottom`` and columns ``left:right`` (end-exclusive)."""

    top: int
    left: int
    bottom: int
    right: int
    text: str = field(repr=False)  # may be PHI: kept out of logs and tracebacks
    confidence: float


@dataclass(frozen=True)
class CleanResult:
    """The cleaned copy, the boxes masked on each frame (0-based) and the fill value."""

    dataset: Dataset
    boxes: list[list[Box]]
    fill_value: int | float
    cleaned: bool


def has_pixel_data(ds: Dataset) -> bool:
    """Whether `ds` holds (7FE0,0010) Pixel Data, the only pixel element cleaned here."""
    return "PixelData" in ds


def find_text(image: np.ndarray) -> list[Box]:
    """Words that Tesseract reads in `image`, padded by ``PAD_PIXELS`` and clipped to it.

    Parameters
    ----------
    image
        A frame as (rows, columns) gray or (rows, columns, 3) RGB, any numeric dtype; gray
        that is not ``uint8`` is scaled from its minimum to its maximum.

    Returns
    -------
    list[Box]
        Words with at least ``MIN_CONFIDENCE``, from the image and its inverse: Tesseract
        reads dark-on-light text best, while ultrasound and secondary captures usually carry
        light-on-dark text. Boxes that overlap across the two passes are merged.
    """
    gray = _to_gray8(image)
    rows, columns = gray.shape
    found = _ocr(gray) + _ocr(255 - gray)
    padded = [_pad(box, rows, columns) for box in found]
    return _merge(padded)


def clean_pixels(ds: Dataset, *, max_ocr_frames: int = DEFAULT_MAX_OCR_FRAMES) -> CleanResult:
    """A copy of `ds` with burned-in text blanked on every frame (PS3.15 E.3.1).

    Boxes are filled with the smallest stored value of the instance (the largest for
    MONOCHROME1; black for RGB). If text was found, Pixel Data is re-encoded as native
    Explicit VR Little Endian (decoded colour becomes RGB, colour-by-pixel); otherwise it is
    kept as it was. Burned In Annotation is set to NO either way.

    Parameters
    ----------
    max_ocr_frames
        Frames up to this count are each read and masked by their own boxes. Beyond it,
        ``max_ocr_frames`` frames spread evenly over the instance are read and the union of
        their boxes is masked on every frame.

    Raises
    ------
    PixelCleaningError
        No Pixel Data, pixel data that cannot be decoded, or a photometric interpretation
        that cannot be rendered for OCR.
    ValueError
        `max_ocr_frames` is less than 1.
    """
    if max_ocr_frames < 1:
        raise ValueError("max_ocr_frames must be at least 1")
    if not has_pixel_data(ds):
        raise PixelCleaningError("the instance has no Pixel Data (7FE0,0010) to clean")
    frames = _decoded_frames(ds)
    boxes = _boxes_per_frame(frames, ds, max_ocr_frames)
    fill = _fill_value(frames, native_photometric(ds))
    out = copy.deepcopy(ds)
    out.BurnedInAnnotation = "NO"
    cleaned = any(boxes)
    if cleaned:
        for frame, frame_boxes in zip(frames, boxes, strict=True):
            for box in frame_boxes:
                frame[box.top : box.bottom, box.left : box.right] = fill
        _store_native(out, frames)
    return CleanResult(dataset=out, boxes=boxes, fill_value=fill, cleaned=cleaned)


def _decoded_frames(ds: Dataset) -> np.ndarray:
    """All frames as a writable (frames, rows, columns[, samples]) array."""
    try:
        arr = np.array(ds.pixel_array)  # a copy: masking must not touch the input's cache
    except Exception as exc:  # pydicom and its plugins raise many types on bad data
        raise PixelCleaningError(
            f"the pixel data cannot be decoded ({type(exc).__name__}); "
            "install the decoder for its transfer syntax or check the Image Pixel module"
        ) from exc
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    single = arr.ndim == (3 if samples > 1 else 2)
    return arr[np.newaxis] if single else arr


def _boxes_per_frame(frames: np.ndarray, ds: Dataset, max_ocr_frames: int) -> list[list[Box]]:
    count = frames.shape[0]
    if count <= max_ocr_frames:
        return [find_text(_render(frame, ds, index)) for index, frame in enumerate(frames)]
    # Long cines are ultrasound or fluoroscopy loops whose annotations (name, ID, date,
    # scanner settings) are a static overlay drawn on every frame: reading a spread of frames
    # finds them at a fraction of the cost, and masking the union on every frame also covers
    # a word that OCR happened to miss on one frame.
    sample = np.unique(np.linspace(0, count - 1, max_ocr_frames).round().astype(int))
    union = _merge([box for i in sample for box in find_text(_render(frames[i], ds, int(i)))])
    return [list(union) for _ in range(count)]


def _render(frame: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    try:
        return display_pixels(frame, ds, index)
    except FrameError as exc:
        raise PixelCleaningError(f"the frame cannot be rendered for OCR: {exc}") from exc


def _fill_value(frames: np.ndarray, photometric: str) -> int | float:
    """A value that displays as black: RGB zero, else the darkest value present."""
    if photometric == "RGB":
        return 0
    extreme = frames.max() if photometric == "MONOCHROME1" else frames.min()
    return extreme.item()


def _store_native(ds: Dataset, frames: np.ndarray) -> None:
    """Replace Pixel Data with `frames` as native Explicit VR Little Endian."""
    bits_allocated = int(ds.BitsAllocated)
    data = native_bytes(frames, bits_allocated)
    if len(data) % 2:
        data += b"\x00"  # values have even length (PS3.5 7.1.1)
    if native_photometric(ds) == "RGB":
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0  # pydicom decodes colour-by-pixel
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)  # they index the encapsulated fragments that are gone
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if bits_allocated <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _to_gray8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if arr.ndim != 2:
        raise ValueError(f"expected a (rows, columns) or (rows, columns, 3) image, got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    values = arr.astype(np.float64)
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _ocr(gray: np.ndarray) -> list[Box]:
    try:
        data = pytesseract.image_to_data(
            Image.fromarray(gray),
            lang=OCR_LANGUAGES,
            config=_TESSERACT_CONFIG,
            output_type=pytesseract.Output.DICT,
        )
    except pytesseract.TesseractNotFoundError as exc:
        raise PixelCleaningError("the tesseract binary is not installed or not on PATH") from exc
    except pytesseract.TesseractError as exc:
        raise PixelCleaningError(
            f"tesseract failed (status {exc.status}); check that the '{OCR_LANGUAGES}' "
            "language data is installed"
        ) from None  # its message may quote recognised text
    boxes = []
    for i, text in enumerate(data["text"]):
        confidence = float(data["conf"][i])
        if not str(text).strip() or confidence < MIN_CONFIDENCE:
            continue
        top, left = int(data["top"][i]), int(data["left"][i])
        bottom, right = top + int(data["height"][i]), left + int(data["width"][i])
        boxes.append(Box(top, left, bottom, right, str(text).strip(), confidence))
    return boxes


def _pad(box: Box, rows: int, columns: int) -> Box:
    return Box(
        top=max(box.top - PAD_PIXELS, 0),
        left=max(box.left - PAD_PIXELS, 0),
        bottom=min(box.bottom + PAD_PIXELS, rows),
        right=min(box.right + PAD_PIXELS, columns),
        text=box.text,
        confidence=box.confidence,
    )


def _merge(boxes: list[Box]) -> list[Box]:
    """Boxes with overlapping ones joined: the extent of both, the surer reading's text."""
    merged: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.confidence):
        for i, kept in enumerate(merged):
            if _overlap(kept, box):
                merged[i] = Box(
                    top=min(kept.top, box.top),
                    left=min(kept.left, box.left),
                    bottom=max(kept.bottom, box.bottom),
                    right=max(kept.right, box.right),
                    text=kept.text,
                    confidence=kept.confidence,
                )
                break
        else:
            merged.append(box)
    return sorted(merged, key=lambda b: (b.top, b.left))


def _overlap(a: Box, b: Box) -> bool:
    """Whether the boxes share at least half of the smaller one's area (the same word)."""
    rows = min(a.bottom, b.bottom) - max(a.top, b.top)
    columns = min(a.right, b.right) - max(a.left, b.left)
    if rows <= 0 or columns <= 0:
        return False
    smaller = min((a.bottom - a.top) * (a.right - a.left), (b.bottom - b.top) * (b.right - b.left))
    return rows * columns * 2 >= smaller
