"""Pixel quality of decoded frames: what a reader would see before reading.

The fast ingest checks only look at headers and byte counts; these checks decode frames and
look at the values, so they run as background jobs. Each check is deliberately conservative:
a false warning on every normal study trains people to ignore the worklist. What is checked:

- blank frame (stored values near constant) - fail;
- clipped histogram (a pile of pixels at the largest representable value) - warn;
- CT numbers: air outside the body near -1000 HU, a large uniform water region (a phantom)
  near 0 HU, and noise (standard deviation in air and in the quietest soft-tissue patches);
- DX/CR exposure per IEC 62494-1 (deviation index bands as in AAPM TG-116);
- blur (normalised Laplacian) on projection radiographs only: CT/MR content is smooth by
  nature and the metric cannot tell smooth from blurred there;
- a display window that shows none of the pixel values.

MONOCHROME1 images that are stored inverted are not detected: pixel statistics do not tell
it robustly. The low end of the histogram is never judged saturated: background, air,
padding and collimator masks legitimately sit there in every modality.

CT measurements are in :mod:`connrad.qc.deep.ct`, the exposure index check in
:mod:`connrad.qc.deep.exposure`. A 512 x 512 frame is judged
in a few milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from connrad.qc.deep.ct import CtMeasurement, ct_checks, measure_ct
from connrad.qc.deep.exposure import exposure_checks
from connrad.qc.deep.limits import PixelLimits
from connrad.qc.deep.values import get as _get
from connrad.qc.deep.values import integer as _integer
from connrad.qc.deep.values import number as _single
from connrad.qc.deep.values import numbers as _numbers
from connrad.qc.deep.values import strings as _strings
from connrad.qc.findings import Finding, Severity, fail, warn

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

__all__ = [
    "CtMeasurement",
    "PixelLimits",
    "frame_checks",
    "image_checks",
    "instance_pixel_checks",
    "measure_ct",
    "modality_values",
    "sharpness_index",
]


def image_checks(
    ds: Any,
    pixels: np.ndarray,
    *,
    limits: PixelLimits = PixelLimits(),
    frame_index: int = 0,
) -> list[Finding]:
    """Findings about one frame (``pixels``: stored values, as decoded) and its instance."""
    return exposure_checks(ds, limits) + frame_checks(
        ds, pixels, limits=limits, frame_index=frame_index
    )


def instance_pixel_checks(
    ds: Any, *, max_frames: int = 3, limits: PixelLimits = PixelLimits()
) -> list[Finding]:
    """Decode the first, middle and last frames and judge them; never raises.

    A frame that cannot be decoded is ``pixel.undecodable`` (fail). Findings repeated on
    several frames are reported once, with the 1-based frame numbers in ``data["frames"]``.
    """
    try:
        if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
            return []
        findings = exposure_checks(ds, limits)
    except Exception as exc:  # a header too broken to read: the pixels cannot be judged
        return [_undecodable(exc)]
    if "PixelData" not in ds:
        return findings  # float pixel data (parametric maps): derived values, not judged
    try:
        frames = _number_of_frames(ds)
        decoder = get_decoder(_transfer_syntax(ds))
    except Exception as exc:
        return [*findings, _undecodable(exc)]
    per_frame: list[tuple[int, list[Finding]]] = []
    for index in _pick_frames(frames, max_frames):
        try:
            pixels, _ = decoder.as_array(ds, index=index)
        except Exception as exc:
            per_frame.append((index, [_undecodable(exc)]))
            continue
        try:
            found = frame_checks(ds, pixels, limits=limits, frame_index=index)
        except Exception as exc:  # a defect the checks did not anticipate: say so, go on
            found = [
                warn(
                    "pixel.check-error",
                    "the pixel checks could not judge this frame",
                    error=type(exc).__name__,
                )
            ]
        per_frame.append((index, found))
    return findings + _merge(per_frame, multiframe=frames > 1)


def frame_checks(
    ds: Any,
    pixels: np.ndarray,
    *,
    limits: PixelLimits = PixelLimits(),
    frame_index: int = 0,
) -> list[Finding]:
    """The pixel-value checks of one frame (:func:`image_checks` without the exposure)."""
    modality = str(_get(ds, "Modality") or "").strip().upper()
    if modality in limits.skip_modalities or _integer(_get(ds, "BitsAllocated")) == 1:
        return []
    stored = np.asarray(pixels)
    if stored.ndim not in (2, 3) or stored.size == 0 or stored.dtype.kind not in "ui":
        return []
    bits = _bits_stored(ds, stored)
    blank = _blank(stored, bits, limits)
    if blank is not None:
        return [blank]  # nothing else means anything on a blank frame
    photometric = str(_get(ds, "PhotometricInterpretation") or "").strip().upper()
    if stored.ndim == 3 or not photometric.startswith("MONOCHROME"):
        return []  # colour and palette images: only blankness is judged
    padding = _padding_mask(ds, stored)
    findings: list[Finding] = []
    if modality in limits.saturation_modalities:
        findings += _saturation(ds, stored, bits, padding, limits)
    values = modality_values(ds, stored, frame_index)
    findings += _window(ds, values, padding, frame_index)
    image_type = _strings(_get(ds, "ImageType"))
    if modality == "CT" and "LOCALIZER" not in image_type:
        findings += ct_checks(values, padding, limits)
    if modality in limits.blur_modalities:
        findings += _blur(values, limits)
    return findings


def modality_values(ds: Any, stored: np.ndarray, frame_index: int = 0) -> np.ndarray:
    """Stored values through the Modality LUT or rescale (per frame for enhanced objects)."""
    if _get(ds, "ModalityLUTSequence"):
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    slope = _single(_get(ds, "RescaleSlope"))
    intercept = _single(_get(ds, "RescaleIntercept"))
    if slope is None or intercept is None:
        item = _functional_item(ds, "PixelValueTransformationSequence", frame_index)
        if item is not None:
            slope = _single(_get(item, "RescaleSlope"))
            intercept = _single(_get(item, "RescaleIntercept"))
    values = stored.astype(np.float64)
    if slope is not None and intercept is not None and slope != 0:
        values *= slope
        values += intercept
    return values


def _blank(stored: np.ndarray, bits: int, limits: PixelLimits) -> Finding | None:
    flat = stored.reshape(-1, stored.shape[-1]) if stored.ndim == 3 else stored.reshape(-1, 1)
    std = float(flat.astype(np.float64).std(axis=0).max())
    threshold = max(limits.blank_std_floor, limits.blank_std_fraction * (2 ** min(bits, 16) - 1))
    if std >= threshold:
        return None
    return fail(
        "pixel.blank",
        f"the frame is blank: pixel values barely vary (standard deviation {std:.2f} stored units)",
        "PixelData",
        std=round(std, 4),
        threshold=round(threshold, 4),
    )


def _saturation(
    ds: Any, stored: np.ndarray, bits: int, padding: np.ndarray, limits: PixelLimits
) -> list[Finding]:
    signed = _integer(_get(ds, "PixelRepresentation")) == 1
    top = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    counted = ~padding
    total = int(np.count_nonzero(counted))
    if total == 0:
        return []
    fraction = np.count_nonzero((stored == top) & counted) / total
    if fraction <= limits.saturated_fraction:
        return []
    return [
        warn(
            "pixel.saturated",
            f"{fraction:.1%} of the pixels sit at the largest representable value: the "
            "histogram is clipped",
            "PixelData",
            fraction=round(float(fraction), 4),
            value=int(top),
            threshold=limits.saturated_fraction,
        )
    ]


def _window(ds: Any, values: np.ndarray, padding: np.ndarray, frame_index: int) -> list[Finding]:
    centres = _numbers(_get(ds, "WindowCenter"))
    widths = _numbers(_get(ds, "WindowWidth"))
    if centres is None and widths is None:
        item = _functional_item(ds, "FrameVOILUTSequence", frame_index)
        if item is not None:
            centres = _numbers(_get(item, "WindowCenter"))
            widths = _numbers(_get(item, "WindowWidth"))
    if centres is None and widths is None:
        return []
    if centres is None or widths is None:
        return [
            warn(
                "display.window-implausible",
                "a window center is given without a width, or a width without a center",
                "WindowWidth" if widths is None else "WindowCenter",
            )
        ]
    sample = _sample(values, ~padding)
    if sample.size == 0:
        return []
    low, high = (float(v) for v in np.percentile(sample, [0.1, 99.9]))
    bad = []
    for i, (centre, width) in enumerate(zip(centres, widths, strict=False)):
        if width <= 0 or centre + width / 2 < low or centre - width / 2 > high:
            bad.append({"index": i, "center": centre, "width": width})
    if not bad:
        return []
    return [
        warn(
            "display.window-implausible",
            f"{len(bad)} of {min(len(centres), len(widths))} display windows show none of "
            f"the pixel values ({low:.6g} to {high:.6g}) or have no width",
            "WindowWidth",
            windows=bad,
            value_range=[round(low, 6), round(high, 6)],
        )
    ]


def _blur(values: np.ndarray, limits: PixelLimits) -> list[Finding]:
    sharpness = sharpness_index(values)
    if sharpness is None or sharpness >= limits.blur_min_sharpness:
        return []
    return [
        warn(
            "pixel.blurred",
            f"the image looks blurred (sharpness index {sharpness:.4f}, expected at least "
            f"{limits.blur_min_sharpness})",
            "PixelData",
            sharpness=round(sharpness, 6),
            threshold=limits.blur_min_sharpness,
        )
    ]


def sharpness_index(values: np.ndarray) -> float | None:
    """std of the 4-neighbour Laplacian over the p1..p99 contrast, at <= 512 px.

    Downsampling to a common size makes the index comparable across detector resolutions;
    dividing by the contrast makes it independent of the value scale.
    """
    v = np.asarray(values, dtype=np.float64)
    factor = math.ceil(max(v.shape) / 512)
    if factor > 1:
        h, w = v.shape[0] // factor * factor, v.shape[1] // factor * factor
        v = v[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    if min(v.shape) < 16:
        return None
    p1, p99 = np.percentile(_sample(v, None), [1, 99])
    contrast = float(p99 - p1)
    if contrast <= 0:
        return None
    lap = 4 * v[1:-1, 1:-1] - v[:-2, 1:-1] - v[2:, 1:-1] - v[1:-1, :-2] - v[1:-1, 2:]
    return float(lap.std()) / contrast


def _sample(values: np.ndarray, keep: np.ndarray | None, target: int = 65536) -> np.ndarray:
    """A strided subsample (about ``target`` values) for percentiles: fast, and enough."""
    step = max(1, int(math.sqrt(values.size / target)))
    sub = values[::step, ::step]
    return sub[keep[::step, ::step]] if keep is not None else sub.ravel()


def _padding_mask(ds: Any, stored: np.ndarray) -> np.ndarray:
    value = _integer(_get(ds, "PixelPaddingValue"))
    if value is None:
        return np.zeros(stored.shape, dtype=bool)
    limit = _integer(_get(ds, "PixelPaddingRangeLimit"))
    if limit is None:
        return stored == value
    low, high = min(value, limit), max(value, limit)
    return (stored >= low) & (stored <= high)


def _bits_stored(ds: Any, stored: np.ndarray) -> int:
    bits = _integer(_get(ds, "BitsStored"))
    if bits is None or not 1 <= bits <= stored.dtype.itemsize * 8:
        bits = stored.dtype.itemsize * 8
    return bits


def _functional_item(ds: Any, keyword: str, frame_index: int) -> Any:
    """The functional group macro item for a frame: per-frame first, then shared."""
    for groups, index in (
        (_get(ds, "PerFrameFunctionalGroupsSequence"), frame_index),
        (_get(ds, "SharedFunctionalGroupsSequence"), 0),
    ):
        try:
            items = _get(groups[index], keyword) if groups else None
            if items:
                return items[0]
        except (IndexError, TypeError):
            continue
    return None


def _merge(per_frame: list[tuple[int, list[Finding]]], *, multiframe: bool) -> list[Finding]:
    """One finding per code; for multi-frame objects the frames it was seen on.

    Some blank frames among others (the dark first frames of a cine run) only warn: the
    object is blank - a fail - when every judged frame is.
    """
    first: dict[str, Finding] = {}
    frames: dict[str, list[int]] = {}
    for index, findings in per_frame:
        for finding in findings:
            first.setdefault(finding.code, finding)
            frames.setdefault(finding.code, []).append(index + 1)
    if not multiframe:
        return list(first.values())
    merged: list[Finding] = []
    for code, f in first.items():
        severity, message = f.severity, f.message
        if code == "pixel.blank" and len(frames[code]) < len(per_frame):
            severity = Severity.WARN
            message = f"{len(frames[code])} of {len(per_frame)} frames checked are blank"
        merged.append(
            Finding(code, severity, message, f.attribute, {**f.data, "frames": frames[code]})
        )
    return merged


def _undecodable(exc: Exception) -> Finding:
    """The exception's type only: its message may quote header values."""
    return fail(
        "pixel.undecodable",
        "the pixel data could not be decoded",
        "PixelData",
        error=type(exc).__name__,
    )


def _pick_frames(frames: int, max_frames: int) -> list[int]:
    """First, middle and last (evenly spread when more are asked), 0-based."""
    if frames <= 0 or max_frames <= 0:
        return []
    if max_frames == 1:
        return [0]
    picks = np.linspace(0, frames - 1, min(frames, max_frames))
    return sorted({round(float(p)) for p in picks})


def _number_of_frames(ds: Any) -> int:
    if "NumberOfFrames" not in ds:
        return 1
    frames = _integer(ds.NumberOfFrames)  # a malformed value raises: the job reports it
    if frames is None:
        raise ValueError("NumberOfFrames is not an integer")
    return max(frames, 1)


def _transfer_syntax(ds: Any) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRBigEndian if little is False else ExplicitVRLittleEndian
