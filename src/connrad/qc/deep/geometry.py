"""Series completeness and geometry: is the stack of slices whole and regular?

A missing or duplicated slice in a CT or MR stack is invisible on a slice-by-slice read and
breaks multiplanar reformats, volume measurements and 3D planning, so the series is judged
as a stack. Slice positions are ImagePositionPatient projected on the slice normal (the
cross product of the ImageOrientationPatient row and column cosines): this is the distance
along the stacking direction whatever the patient orientation or gantry tilt.

Spacing analysis (on the sorted distinct positions):

- typical step = median step;
- a step within ``max(spacing_tolerance_ratio * typical, spacing_tolerance_mm)`` of the
  typical step is regular;
- a step of at least ``gap_ratio * typical`` whose neighbouring steps are regular is a gap
  (``round(step / typical) - 1`` slices missing): an isolated hole in a regular stack;
- every other irregular step (including runs of larger steps: a protocol that changes its
  spacing, as sequential head CT does) only warns ``series.irregular-spacing``.

Series whose every position holds the same number of images (n > 1: echoes, phases, b-values,
time points) are multi-volume: positions with more images than that are duplicates, fewer
are missing images. Localizers, multi-frame objects (enhanced CT/MR: their geometry is per
frame) and modalities other than ``GeometryLimits.modalities`` are not stacks: skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from connrad.qc.deep.limits import GeometryLimits
from connrad.qc.deep.values import get as _get
from connrad.qc.deep.values import integer as _integer
from connrad.qc.deep.values import number as _single
from connrad.qc.deep.values import numbers as _numbers
from connrad.qc.deep.values import strings as _strings
from connrad.qc.findings import Finding, fail, warn

__all__ = ["GeometryLimits", "SliceGeometry", "series_checks"]

MAX_LISTED = 20  # positions listed in a finding's data; the counts are always complete


@dataclass(frozen=True)
class SliceGeometry:
    """What the series checks need from one instance (None: absent or unreadable)."""

    sop_instance_uid: str
    instance_number: int | None = None
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, float] | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int | None = None
    images_in_acquisition: int | None = None
    acquisition_number: int | None = None
    slice_thickness: float | None = None
    image_type: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, ds: Any) -> SliceGeometry:
        """Read a (header-only is enough) dataset; bad values become None, never raise."""
        position = _numbers(_get(ds, "ImagePositionPatient"))
        orientation = _numbers(_get(ds, "ImageOrientationPatient"))
        spacing = _numbers(_get(ds, "PixelSpacing"))
        return cls(
            sop_instance_uid=str(_get(ds, "SOPInstanceUID") or ""),
            instance_number=_integer(_get(ds, "InstanceNumber")),
            image_position=tuple(position) if position and len(position) == 3 else None,  # type: ignore[arg-type]
            image_orientation=tuple(orientation) if orientation and len(orientation) == 6 else None,
            pixel_spacing=tuple(spacing) if spacing and len(spacing) == 2 else None,  # type: ignore[arg-type]
            rows=_integer(_get(ds, "Rows")),
            columns=_integer(_get(ds, "Columns")),
            number_of_frames=_integer(_get(ds, "NumberOfFrames")),
            images_in_acquisition=_integer(_get(ds, "ImagesInAcquisition")),
            acquisition_number=_integer(_get(ds, "AcquisitionNumber")),
            slice_thickness=_single(_get(ds, "SliceThickness")),
            image_type=_strings(_get(ds, "ImageType")),
        )

    @property
    def is_localizer(self) -> bool:
        return "LOCALIZER" in self.image_type

    @property
    def is_multiframe(self) -> bool:
        return (self.number_of_frames or 1) > 1

    def normal(self) -> np.ndarray | None:
        """Unit slice normal; None when the slice cannot be placed (no position, or an
        absent or degenerate orientation)."""
        if self.image_orientation is None or self.image_position is None:
            return None
        o = np.asarray(self.image_orientation, dtype=np.float64)
        n = np.cross(o[:3], o[3:])
        length = float(np.linalg.norm(n))
        return n / length if length > 1e-6 else None


def series_checks(
    slices: Sequence[SliceGeometry],
    *,
    modality: str,
    limits: GeometryLimits = GeometryLimits(),
) -> list[Finding]:
    """Findings about one series as a stack of slices (empty when it is not a stack)."""
    if (modality or "").strip().upper() not in limits.modalities:
        return []
    unique: dict[str, SliceGeometry] = {}
    for i, s in enumerate(slices):  # the same instance received twice is no duplicate slice
        unique.setdefault(s.sop_instance_uid or f"#{i}", s)
    records = list(unique.values())
    findings = _instance_number_checks(records)
    findings += _acquisition_checks(records)
    stack = [s for s in records if not s.is_localizer and not s.is_multiframe]
    if len(stack) < 2:
        return findings
    findings += _mixed_checks(stack, limits)
    findings += _stack_checks(stack, limits)
    return findings


def _stack_checks(stack: list[SliceGeometry], limits: GeometryLimits) -> list[Finding]:
    normals = [s.normal() for s in stack]
    placed = [(s, n) for s, n in zip(stack, normals, strict=True) if n is not None]
    findings: list[Finding] = []
    if len(placed) < len(stack) and placed:
        findings.append(
            warn(
                "series.missing-geometry",
                f"{len(stack) - len(placed)} of {len(stack)} slices have no usable position "
                "or orientation: they cannot be placed in the stack",
                "ImagePositionPatient",
                without_geometry=len(stack) - len(placed),
                slices=len(stack),
            )
        )
    if len(placed) < 2:
        return findings
    reference = _reference_normal([n for _, n in placed])
    cosines = np.abs(np.array([n for _, n in placed]) @ reference)
    angles = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
    off_plane = int(np.count_nonzero(angles > limits.orientation_tolerance_deg))
    if off_plane:
        findings.append(
            warn(
                "series.mixed-orientation",
                f"{off_plane} of {len(placed)} slices are not parallel to the others "
                f"(up to {float(angles.max()):.1f} degrees): the series is not one stack",
                "ImageOrientationPatient",
                off_plane=off_plane,
                slices=len(placed),
                max_angle_deg=round(float(angles.max()), 2),
            )
        )
        return findings  # spacing along one normal means nothing for other planes
    positions = np.array([np.dot(s.image_position, reference) for s, _ in placed])
    findings += _position_checks(np.sort(positions), limits)
    return findings


def _reference_normal(normals: list[np.ndarray]) -> np.ndarray:
    """The most common normal (sign-insensitive): the plane of most slices."""
    keys = [tuple(np.round(n * np.sign(n[np.argmax(np.abs(n))]), 3)) for n in normals]
    key, _ = Counter(keys).most_common(1)[0]
    return normals[keys.index(key)]


def _position_checks(positions: np.ndarray, limits: GeometryLimits) -> list[Finding]:
    """Duplicates, gaps and irregular steps of sorted positions along the normal."""
    findings: list[Finding] = []
    # cluster positions closer than the duplicate tolerance
    new_cluster = np.diff(positions) > limits.duplicate_tolerance_mm
    cluster_of = np.concatenate([[0], np.cumsum(new_cluster)])
    counts = np.bincount(cluster_of)
    centres = np.bincount(cluster_of, weights=positions) / counts
    per_position = Counter(counts.tolist()).most_common()
    modal = min(c for c, k in per_position if k == per_position[0][1])
    extra = counts > modal
    if extra.any():
        findings.append(
            fail(
                "series.duplicate-slice",
                f"{int(extra.sum())} slice positions hold more images than the others "
                f"({int((counts[extra] - modal).sum())} extra): duplicated slices",
                "ImagePositionPatient",
                duplicate_positions=int(extra.sum()),
                extra_images=int((counts[extra] - modal).sum()),
                images_per_position=int(modal),
                position_index=np.flatnonzero(extra)[:MAX_LISTED].tolist(),
            )
        )
    short = counts < modal
    if short.any():
        findings.append(
            fail(
                "series.missing-slice",
                f"{int(short.sum())} slice positions hold fewer images than the others "
                f"({int((modal - counts[short]).sum())} missing)",
                "ImagePositionPatient",
                missing=int((modal - counts[short]).sum()),
                expected_count=int(modal * len(counts)),
                actual_count=int(counts.sum()),
                images_per_position=int(modal),
                position_index=np.flatnonzero(short)[:MAX_LISTED].tolist(),
            )
        )
    if len(centres) < 3:
        return findings
    steps = np.diff(centres)
    typical = float(np.median(steps))
    tolerance = max(limits.spacing_tolerance_ratio * typical, limits.spacing_tolerance_mm)
    regular = np.abs(steps - typical) <= tolerance
    # a neighbour that does not exist (first/last step) counts as regular
    left = np.concatenate([[True], regular[:-1]])
    right = np.concatenate([regular[1:], [True]])
    gap = (steps >= limits.gap_ratio * typical) & left & right
    if gap.any():
        missing_per_gap = np.maximum(np.rint(steps[gap] / typical).astype(int) - 1, 1)
        missing = int(missing_per_gap.sum())
        where = np.flatnonzero(gap)
        findings.append(
            fail(
                "series.missing-slice",
                f"{missing} slices missing from the stack in {len(where)} gaps "
                f"(step {float(steps[gap].max()):.2f} mm where {typical:.2f} mm is typical)",
                "ImagePositionPatient",
                missing=missing,
                expected_count=int(len(centres) + missing),
                actual_count=len(centres),
                typical_step_mm=round(typical, 4),
                gaps=[
                    {
                        "after_position_index": int(i),
                        "step_mm": round(float(steps[i]), 4),
                        "missing": int(m),
                    }
                    for i, m in zip(where[:MAX_LISTED], missing_per_gap[:MAX_LISTED], strict=True)
                ],
            )
        )
    irregular = ~regular & ~gap
    if irregular.any():
        findings.append(
            warn(
                "series.irregular-spacing",
                f"slice spacing varies from {float(steps.min()):.2f} to "
                f"{float(steps.max()):.2f} mm ({int(irregular.sum())} of {len(steps)} steps "
                f"differ from the typical {typical:.2f} mm)",
                "ImagePositionPatient",
                min_step_mm=round(float(steps.min()), 4),
                max_step_mm=round(float(steps.max()), 4),
                typical_step_mm=round(typical, 4),
                irregular_steps=int(irregular.sum()),
                steps=len(steps),
            )
        )
    return findings


def _mixed_checks(stack: list[SliceGeometry], limits: GeometryLimits) -> list[Finding]:
    findings: list[Finding] = []
    spacings = sorted({s.pixel_spacing for s in stack if s.pixel_spacing is not None})
    distinct: list[tuple[float, float]] = []
    for value in spacings:
        if not any(_close(value, kept, limits.pixel_spacing_tolerance) for kept in distinct):
            distinct.append(value)
    if len(distinct) > 1:
        findings.append(
            warn(
                "series.mixed-pixel-spacing",
                f"{len(distinct)} different pixel spacings in one series",
                "PixelSpacing",
                values=[list(v) for v in distinct[:MAX_LISTED]],
            )
        )
    matrices = sorted(
        {(s.rows, s.columns) for s in stack if s.rows is not None and s.columns is not None}
    )
    if len(matrices) > 1:
        findings.append(
            warn(
                "series.mixed-matrix",
                f"{len(matrices)} different image matrices (rows x columns) in one series",
                "Rows",
                values=[list(m) for m in matrices[:MAX_LISTED]],
            )
        )
    return findings


def _instance_number_checks(records: list[SliceGeometry]) -> list[Finding]:
    numbers = [s.instance_number for s in records if s.instance_number is not None]
    if len(numbers) < 2:
        return []
    findings: list[Finding] = []
    counts = Counter(numbers)
    repeated = sorted(n for n, c in counts.items() if c > 1)
    if repeated:
        findings.append(
            warn(
                "series.instance-number-duplicate",
                f"{len(repeated)} instance numbers are used by more than one image",
                "InstanceNumber",
                duplicated=len(repeated),
                numbers=repeated[:MAX_LISTED],
            )
        )
    present = np.unique(np.array(numbers, dtype=np.int64))
    missing = int(present[-1] - present[0] + 1 - len(present))
    if missing:
        absent = np.setdiff1d(np.arange(present[0], present[0] + len(present) + missing), present)
        findings.append(
            warn(
                "series.instance-number-gap",
                f"{missing} instance numbers missing between {int(present[0])} and "
                f"{int(present[-1])}",
                "InstanceNumber",
                missing=missing,
                first=int(present[0]),
                last=int(present[-1]),
                numbers=absent[:MAX_LISTED].tolist(),
            )
        )
    return findings


def _acquisition_checks(records: list[SliceGeometry]) -> list[Finding]:
    """ImagesInAcquisition announces how many images an acquisition made; fewer arrived."""
    groups: dict[int | None, list[SliceGeometry]] = {}
    for s in records:
        groups.setdefault(s.acquisition_number, []).append(s)
    short = []
    for number, members in groups.items():
        announced = max((s.images_in_acquisition or 0) for s in members)
        if 0 < len(members) < announced:
            short.append(
                {"acquisition_number": number, "announced": announced, "received": len(members)}
            )
    if not short:
        return []
    missing = sum(g["announced"] - g["received"] for g in short)
    return [
        warn(
            "series.incomplete-acquisition",
            f"{missing} images fewer than ImagesInAcquisition announces "
            f"({len(short)} acquisitions)",
            "ImagesInAcquisition",
            missing=missing,
            acquisitions=short[:MAX_LISTED],
        )
    ]


def _close(a: tuple[float, ...], b: tuple[float, ...], tolerance: float) -> bool:
    return all(
        abs(x - y) <= tolerance * max(abs(x), abs(y), 1e-9) for x, y in zip(a, b, strict=True)
    )
