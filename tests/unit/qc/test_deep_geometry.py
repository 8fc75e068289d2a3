"""Series geometry: real CT series (clean, gantry tilt) and synthetic defects."""

from __future__ import annotations

import dataclasses
import warnings
from functools import cache

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from connrad.qc.deep.geometry import GeometryLimits, SliceGeometry, series_checks
from connrad.qc.findings import Finding, Severity
from tests.shared_data import public_dir

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def codes(findings: list[Finding]) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}


def only(findings: list[Finding], code: str) -> Finding:
    [finding] = [f for f in findings if f.code == code]
    return finding


def stack(
    positions: list[float], orientation: tuple[float, ...] = AXIAL, **fields: object
) -> list[SliceGeometry]:
    """Slices at these distances along the normal of ``orientation`` (axial: z)."""
    o = np.asarray(orientation)
    normal = np.cross(o[:3], o[3:])
    return [
        SliceGeometry(
            sop_instance_uid=f"1.2.3.{i}",
            instance_number=i + 1,
            image_position=tuple(float(v) for v in normal * p),  # type: ignore[arg-type]
            image_orientation=orientation,
            pixel_spacing=(0.5, 0.5),
            rows=512,
            columns=512,
            **fields,  # type: ignore[arg-type]
        )
        for i, p in enumerate(positions)
    ]


@cache
def _real_series(folder: str) -> tuple[SliceGeometry, ...]:
    paths = sorted((public_dir() / folder).iterdir())
    slices = [
        SliceGeometry.from_dataset(pydicom.dcmread(p, stop_before_pixels=True)) for p in paths
    ]
    return tuple(sorted(slices, key=lambda s: s.instance_number or 0))


def philips() -> list[SliceGeometry]:
    return list(_real_series("ct_series_philips_head_1mm"))


def ge_tilt() -> list[SliceGeometry]:
    return list(_real_series("ct_series_ge_head_tilt_irregular"))


# --- real series ----------------------------------------------------------------------


def test_the_clean_philips_series_has_no_findings() -> None:
    slices = philips()
    assert len(slices) == 140
    assert series_checks(slices, modality="CT") == []


def test_the_ge_tilted_series_warns_irregular_spacing_only() -> None:
    slices = ge_tilt()
    assert len(slices) == 28
    findings = series_checks(slices, modality="CT")
    assert codes(findings) == {"series.irregular-spacing": Severity.WARN}
    data = only(findings, "series.irregular-spacing").data
    # 4 mm steps, one 1.08 mm step, then 7 mm steps (along the tilted normal)
    assert data["min_step_mm"] == pytest.approx(1.08, abs=0.01)
    assert data["max_step_mm"] == pytest.approx(7.0, abs=0.01)
    assert data["typical_step_mm"] == pytest.approx(4.0, abs=0.01)


def test_a_slice_dropped_from_the_philips_series_fails_as_missing() -> None:
    slices = philips()
    del slices[70]
    findings = series_checks(slices, modality="CT")
    assert codes(findings) == {
        "series.missing-slice": Severity.FAIL,
        "series.instance-number-gap": Severity.WARN,
    }
    data = only(findings, "series.missing-slice").data
    assert (data["missing"], data["expected_count"], data["actual_count"]) == (1, 140, 139)
    assert data["gaps"] == [{"after_position_index": 69, "step_mm": 2.0, "missing": 1}]
    assert only(findings, "series.instance-number-gap").data["numbers"] == [71]


def test_three_adjacent_slices_dropped_are_one_gap_of_three() -> None:
    slices = philips()
    del slices[30:33]
    data = only(series_checks(slices, modality="CT"), "series.missing-slice").data
    assert data["missing"] == 3 and len(data["gaps"]) == 1


def test_a_duplicated_slice_fails() -> None:
    slices = philips()
    copy = dataclasses.replace(slices[50], sop_instance_uid="2.25.1")
    findings = series_checks([*slices, copy], modality="CT")
    assert codes(findings) == {
        "series.duplicate-slice": Severity.FAIL,
        "series.instance-number-duplicate": Severity.WARN,
    }
    assert only(findings, "series.duplicate-slice").data["extra_images"] == 1


def test_the_same_instance_received_twice_is_not_a_duplicate() -> None:
    slices = philips()
    assert series_checks([*slices, slices[50]], modality="CT") == []


# --- synthetic stacks -------------------------------------------------------------------


def test_a_regular_stack_passes_in_any_orientation() -> None:
    for orientation in (AXIAL, SAGITTAL, CORONAL):
        assert series_checks(stack([i * 2.5 for i in range(20)], orientation), modality="MR") == []


def test_a_tilted_regular_stack_passes() -> None:
    """Gantry tilt moves positions in-plane too; the distance along the normal stays regular."""
    tilt = np.radians(20)
    orientation = (1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(-np.sin(tilt)))
    slices = [
        dataclasses.replace(s, image_position=(0.0, -100.0, 3.0 * i))
        for i, s in enumerate(stack([0.0] * 15, orientation))
    ]
    assert series_checks(slices, modality="CT") == []


def test_irregular_spacing_without_a_clear_gap_warns() -> None:
    positions = [0, 1, 2, 3, 4.4, 5.1, 6.3, 7.3, 8.3, 9.3]
    findings = series_checks(stack(positions), modality="CT")
    assert codes(findings) == {"series.irregular-spacing": Severity.WARN}


def test_a_change_of_spacing_is_irregular_not_missing() -> None:
    """Sequential head CT: thin slices at the skull base, thicker above."""
    positions = [i * 2.5 for i in range(15)] + [35 + 5 * i for i in range(1, 8)]
    findings = series_checks(stack(positions), modality="CT")
    assert codes(findings) == {"series.irregular-spacing": Severity.WARN}


def test_a_gap_at_the_end_of_the_stack_is_missing() -> None:
    positions = [float(i) for i in range(10)] + [11.0]
    data = only(series_checks(stack(positions), modality="CT"), "series.missing-slice").data
    assert data["gaps"] == [{"after_position_index": 9, "step_mm": 2.0, "missing": 1}]


def test_mixed_orientations_warn_and_stop_the_spacing_analysis() -> None:
    slices = stack([float(i) for i in range(10)]) + stack([50.0, 53.0], SAGITTAL)
    slices = [dataclasses.replace(s, sop_instance_uid=f"9.{i}") for i, s in enumerate(slices)]
    findings = series_checks(slices, modality="MR")
    assert "series.mixed-orientation" in codes(findings)
    assert "series.irregular-spacing" not in codes(findings)
    data = only(findings, "series.mixed-orientation").data
    assert (data["off_plane"], data["max_angle_deg"]) == (2, 90.0)


def test_a_small_obliquity_difference_is_one_orientation() -> None:
    wobble = (1.0, 0.0, 0.0, 0.0, float(np.cos(0.005)), float(np.sin(0.005)))  # 0.3 degrees
    slices = stack([float(i) for i in range(10)])
    slices[3] = dataclasses.replace(slices[3], image_orientation=wobble)
    assert series_checks(slices, modality="CT") == []


def test_a_localizer_series_is_not_a_stack() -> None:
    planes = [AXIAL, SAGITTAL, CORONAL]
    slices = [
        dataclasses.replace(
            stack([0.0], o)[0],
            sop_instance_uid=f"7.{i}",
            instance_number=i + 1,
            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        )
        for i, o in enumerate(planes)
    ]
    assert series_checks(slices, modality="MR") == []


def test_multi_volume_series_are_judged_per_position() -> None:
    """Diffusion, echoes, perfusion: every position holds the same number of images."""
    one = stack([float(i) for i in range(12)])
    two = [
        dataclasses.replace(
            s,
            sop_instance_uid=s.sop_instance_uid + ".2",
            instance_number=(s.instance_number or 0) + 12,
        )
        for s in one
    ]
    assert series_checks(one + two, modality="MR") == []

    extra = dataclasses.replace(one[4], sop_instance_uid="8.1", instance_number=25)
    assert codes(series_checks(one + two + [extra], modality="MR")) == {
        "series.duplicate-slice": Severity.FAIL
    }
    short = series_checks(one + two[:5] + two[6:], modality="MR")
    assert codes(short) == {
        "series.missing-slice": Severity.FAIL,
        "series.instance-number-gap": Severity.WARN,
    }
    assert only(short, "series.missing-slice").data["position_index"] == [5]


def test_mixed_pixel_spacing_and_matrix_warn() -> None:
    slices = stack([float(i) for i in range(6)])
    slices[2] = dataclasses.replace(slices[2], pixel_spacing=(0.7, 0.7), rows=256, columns=256)
    findings = series_checks(slices, modality="CT")
    assert codes(findings) == {
        "series.mixed-pixel-spacing": Severity.WARN,
        "series.mixed-matrix": Severity.WARN,
    }
    assert only(findings, "series.mixed-matrix").data["values"] == [[256, 256], [512, 512]]


def test_pixel_spacing_rounding_is_not_mixing() -> None:
    slices = stack([float(i) for i in range(6)])
    slices[2] = dataclasses.replace(slices[2], pixel_spacing=(0.5000001, 0.4999999))
    assert series_checks(slices, modality="CT") == []


def test_instance_number_gaps_and_duplicates_warn() -> None:
    slices = stack([float(i) for i in range(6)])
    slices[2] = dataclasses.replace(slices[2], instance_number=2)
    slices[5] = dataclasses.replace(slices[5], instance_number=9)
    findings = series_checks(slices, modality="CT")
    assert codes(findings) == {
        "series.instance-number-duplicate": Severity.WARN,
        "series.instance-number-gap": Severity.WARN,
    }
    assert only(findings, "series.instance-number-gap").data["numbers"] == [3, 6, 7, 8]


def test_fewer_images_than_images_in_acquisition_warns() -> None:
    slices = stack([float(i) for i in range(6)], images_in_acquisition=8, acquisition_number=1)
    findings = series_checks(slices, modality="CT")
    assert codes(findings) == {"series.incomplete-acquisition": Severity.WARN}
    assert only(findings, "series.incomplete-acquisition").data["acquisitions"] == [
        {"acquisition_number": 1, "announced": 8, "received": 6}
    ]
    complete = stack([float(i) for i in range(6)], images_in_acquisition=6)
    assert series_checks(complete, modality="CT") == []


def test_slices_without_position_warn() -> None:
    slices = stack([float(i) for i in range(6)])
    slices[5] = dataclasses.replace(slices[5], image_position=None)
    findings = series_checks(slices, modality="CT")
    assert codes(findings) == {"series.missing-geometry": Severity.WARN}
    assert only(findings, "series.missing-geometry").data == {"without_geometry": 1, "slices": 6}


def test_what_is_not_a_stack_is_skipped() -> None:
    broken = stack([0.0, 1.0, 5.0, 5.0])
    assert series_checks(broken, modality="DX") == []
    assert series_checks(broken, modality="ct") != []  # modality is case-insensitive
    assert series_checks(broken[:1], modality="CT") == []
    enhanced = [dataclasses.replace(s, number_of_frames=40) for s in broken]
    assert series_checks(enhanced, modality="CT") == []
    assert series_checks([], modality="CT") == []
    assert series_checks(broken, modality="CT", limits=GeometryLimits(modalities=frozenset())) == []


def test_limits_change_the_verdict() -> None:
    positions = [0.0, 1.0, 2.0, 3.3, 4.3, 5.3]
    assert codes(series_checks(stack(positions), modality="CT")) == {
        "series.irregular-spacing": Severity.WARN
    }
    lenient = GeometryLimits(spacing_tolerance_ratio=0.5)
    assert series_checks(stack(positions), modality="CT", limits=lenient) == []


def test_from_dataset_reads_bad_values_as_absent() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.InstanceNumber = "7"
    ds.ImageOrientationPatient = list(AXIAL)
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "localizer "]
    ds[Tag(0x00200032)] = RawDataElement(Tag(0x00200032), "DS", 5, b"a\\b\\c", 0, False, True)
    ds[Tag(0x00280008)] = RawDataElement(Tag(0x00280008), "IS", 2, b"1A", 0, False, True)
    ds[Tag(0x00280010)] = RawDataElement(Tag(0x00280010), "US", 1, b"\x01", 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid IS
        geometry = SliceGeometry.from_dataset(ds)
    assert geometry.image_position is None
    assert geometry.number_of_frames is None
    assert geometry.instance_number == 7
    assert geometry.image_orientation == AXIAL
    assert geometry.pixel_spacing == (0.5, 0.5)
    assert geometry.rows is None
    assert geometry.is_localizer


def test_from_dataset_reads_a_real_header() -> None:
    path = public_dir() / "ct_series_ge_head_tilt_irregular" / "01.dcm"
    geometry = SliceGeometry.from_dataset(pydicom.dcmread(path, stop_before_pixels=True))
    assert geometry.instance_number == 1
    assert geometry.rows == geometry.columns == 512
    assert geometry.image_orientation is not None and len(geometry.image_orientation) == 6
    assert geometry.slice_thickness == 4.0
    assert geometry.number_of_frames is None
