"""Rendered frames and thumbnails (WADO-RS ``/rendered``, ``/thumbnail``; PS3.18 8.3.5.1).

The grayscale pipeline is the standard's (PS3.3 C.11): stored values, then the Modality LUT
(rescale slope/intercept or a LUT), then the VOI window, then MONOCHROME1 inversion. Colour
frames are shown in RGB; palette colour goes through its lookup tables. The pixel maths are
pure functions on numpy arrays.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut

from connrad.dicom.frames import (
    FrameError,
    decode_frames,
    native_photometric,
    number_of_frames,
    read_header,
)

_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}
WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

Window = tuple[float, float, str]


def render_frame(
    path: Path,
    frame: int,
    *,
    media_type: str = "image/jpeg",
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    quality: int = 90,
) -> bytes:
    """The 1-based `frame` of `path` as an 8-bit JPEG, PNG or GIF.

    Parameters
    ----------
    window
        (center, width, function) overriding the file's VOI; function is one of
        ``WINDOW_FUNCTIONS`` (PS3.3 C.11.2.1.2). Without it the file's first window is used,
        else the frame's minimum to maximum.
    viewport
        (rows, columns) to fit the image within, keeping its aspect ratio.

    Raises
    ------
    ValueError
        Unsupported media type, or an invalid window or viewport.
    FrameError
        The frame is out of range or cannot be decoded or displayed.
    """
    image_format = _image_format(media_type)  # bad requests fail before any decoding
    if window is not None:
        _check_window(*window)
    if viewport is not None:
        fit_within(1, 1, viewport)
    ds, [arr] = decode_frames(path, [frame])
    pixels = display_pixels(arr, ds, frame - 1, window)
    image = Image.fromarray(pixels)
    if viewport is not None:
        rows, columns = fit_within(pixels.shape[0], pixels.shape[1], viewport)
        image = image.resize((columns, rows), Image.Resampling.LANCZOS)
    return encode_image(image, image_format, quality)


def thumbnail(path: Path, *, size: int = 128, media_type: str = "image/jpeg") -> bytes:
    """The middle frame of `path`, fitted within `size` x `size`."""
    middle = (number_of_frames(read_header(path)) + 1) // 2
    return render_frame(path, middle, media_type=media_type, viewport=(size, size))


def display_pixels(
    arr: np.ndarray, ds: Dataset, index: int, window: Window | None = None
) -> np.ndarray:
    """The decoded frame at 0-based `index` as 8-bit gray (rows, columns) or RGB (.., 3)."""
    photometric = native_photometric(ds)
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        values = modality_values(arr, ds, index)
        center, width, function = window or file_window(ds, index) or min_max_window(values)
        gray = apply_window(values, center, width, function)
        return 255 - gray if photometric == "MONOCHROME1" else gray
    if photometric == "PALETTE COLOR":
        return _palette_rgb(arr, ds)
    if photometric == "RGB":
        return to_8bit(arr, int(ds.get("BitsStored", 8) or 8))
    raise FrameError(f"photometric interpretation {photometric or '(none)'} is not displayable")


def modality_values(arr: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    """Stored values through the Modality LUT (PS3.3 C.11.1), as float64."""
    if "ModalityLUTSequence" in ds:
        try:
            return np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
        except Exception as exc:
            raise FrameError("the Modality LUT cannot be applied") from exc
    slope = _frame_value(ds, index, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_value(ds, index, "PixelValueTransformationSequence", "RescaleIntercept")
    return apply_rescale(arr, _number(slope, 1.0), _number(intercept, 0.0))


def apply_rescale(arr: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Output units = stored value * slope + intercept (PS3.3 C.7.6.16.2.9)."""
    return arr.astype(np.float64) * slope + intercept


def file_window(ds: Dataset, index: int) -> Window | None:
    """The first VOI window of the frame (functional groups first), if valid."""
    seq = "FrameVOILUTSequence"
    center = _number(_frame_value(ds, index, seq, "WindowCenter"), None)
    width = _number(_frame_value(ds, index, seq, "WindowWidth"), None)
    function = str(_frame_value(ds, index, seq, "VOILUTFunction") or "LINEAR").strip().upper()
    if center is None or width is None or function not in WINDOW_FUNCTIONS:
        return None
    if not (width >= 1 if function == "LINEAR" else width > 0):
        return None  # a window the standard forbids: fall back to the data's range
    return center, width, function


def min_max_window(values: np.ndarray) -> Window:
    """A LINEAR_EXACT window spanning the frame's values: min maps to 0, max to 255."""
    if values.size == 0:
        return 0.0, 1.0, "LINEAR_EXACT"
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return (low + high) / 2, max(high - low, 1e-6), "LINEAR_EXACT"


def apply_window(
    values: np.ndarray, center: float, width: float, function: str = "LINEAR"
) -> np.ndarray:
    """VOI window to 8 bits (y in 0..255) as PS3.3 C.11.2.1.2 defines each function.

    Raises
    ------
    ValueError
        Unknown function, or width < 1 for LINEAR, or width <= 0 otherwise.
    """
    function = function.strip().upper()
    _check_window(center, width, function)
    x = np.asarray(values, dtype=np.float64)
    if function == "LINEAR" and width == 1:
        y = np.where(x <= center - 0.5, 0.0, 255.0)
    elif function == "LINEAR":
        y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    elif function == "LINEAR_EXACT":
        y = ((x - center) / width + 0.5) * 255.0
    else:
        with np.errstate(over="ignore"):
            y = 255.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    return np.rint(np.clip(np.nan_to_num(y), 0.0, 255.0)).astype(np.uint8)


def to_8bit(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """Colour samples of `bits_stored` bits scaled to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    top = float(2 ** min(max(bits_stored, 1), 32) - 1)
    scaled = np.clip(arr.astype(np.float64), 0, top) * (255.0 / top)
    return np.rint(scaled).astype(np.uint8)


MAX_VIEWPORT = 4096  # rendered images are for screens; larger would cost memory, not detail


def fit_within(rows: int, columns: int, viewport: tuple[int, int]) -> tuple[int, int]:
    """(rows, columns) scaled to fit within `viewport` (rows, columns), aspect kept."""
    max_rows, max_columns = viewport
    if not (1 <= max_rows <= MAX_VIEWPORT and 1 <= max_columns <= MAX_VIEWPORT):
        raise ValueError(f"viewport rows and columns must be 1 to {MAX_VIEWPORT}")
    scale = min(max_rows / rows, max_columns / columns)
    return max(1, round(rows * scale)), max(1, round(columns * scale))


def encode_image(image: Image.Image, image_format: str, quality: int = 90) -> bytes:
    out = BytesIO()
    if image_format == "JPEG":
        image.save(out, "JPEG", quality=quality)
    elif image_format == "GIF" and image.mode == "RGB":
        image.quantize(colors=256).save(out, "GIF")
    else:
        image.save(out, image_format)
    return out.getvalue()


def _image_format(media_type: str) -> str:
    image_format = _FORMATS.get(media_type.split(";")[0].strip().lower())
    if image_format is None:
        raise ValueError(f"unsupported rendered media type {media_type!r}")
    return image_format


def _check_window(center: float, width: float, function: str) -> None:
    function = function.strip().upper()
    if function not in WINDOW_FUNCTIONS:
        raise ValueError(f"VOI LUT function must be one of {', '.join(WINDOW_FUNCTIONS)}")
    if not np.isfinite(center) or not np.isfinite(width):
        raise ValueError("window center and width must be finite")
    if function == "LINEAR" and width < 1:
        raise ValueError("LINEAR window width must be >= 1 (PS3.3 C.11.2.1.2.1)")
    if width <= 0:
        raise ValueError(f"{function} window width must be > 0 (PS3.3 C.11.2.1.3)")


def _palette_rgb(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    try:
        rgb = apply_color_lut(arr, ds)
    except Exception as exc:
        raise FrameError("the palette colour lookup tables cannot be applied") from exc
    if rgb.dtype == np.uint8:
        return rgb
    # 16-bit LUT entries; some writers declare 16 bits but store 8-bit values.
    return rgb.astype(np.uint8) if rgb.max() <= 255 else (rgb >> 8).astype(np.uint8)


def _frame_value(ds: Dataset, index: int, sequence: str, keyword: str) -> Any:
    """A value from the frame's functional group, the shared group, or the top level."""
    for groups, item in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        found = _group_value(ds, groups, item, sequence, keyword)
        if found is not None:
            return found
    return ds.get(keyword)


def _group_value(ds: Dataset, groups: str, item: int, sequence: str, keyword: str) -> Any:
    group_items = ds.get(groups) or []
    if len(group_items) <= item:
        return None
    inner = group_items[item].get(sequence) or []
    return inner[0].get(keyword) if len(inner) else None


def _number(value: Any, default: float | None) -> float | None:
    """First value of a DS/IS/FD attribute as float, or `default` if absent or invalid."""
    if value is None or value == "":
        return default
    if not isinstance(value, str | bytes) and hasattr(value, "__getitem__"):
        value = value[0] if len(value) else None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) else default
