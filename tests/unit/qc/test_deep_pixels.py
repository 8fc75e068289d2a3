"""Pixel quality: synthetic phantoms and defects, real CT/CR images, the whole public corpus."""

from __future__ import annotations

import time
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from connrad.qc.deep.pixels import (
    PixelLimits,
    frame_checks,
    image_checks,
    instance_pixel_checks,
    measure_ct,
    modality_values,
    sharpness_index,
)
from connrad.qc.findings import Finding, Severity
from tests.shared_data import manifest, public_dir, public_files


def codes(findings: list[Finding]) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}


def only(findings: list[Finding], code: str) -> Finding:
    [finding] = [f for f in findings if f.code == code]
    return finding


def image(
    stored: np.ndarray, *, modality: str = "CT", bits: int = 16, signed: bool = True, **attrs: Any
) -> Dataset:
    """A native little-endian image dataset around ``stored`` (frames, rows, columns)."""
    frames = stored if stored.ndim == 3 else stored[np.newaxis]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = frames.shape[1:]
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.PixelData = frames.astype("<i2" if signed else "<u2").tobytes()
    return ds


def phantom(
    water_hu: float = 0.0, sd: float = 5.0, air_hu: float = -1000.0, seed: int = 1
) -> np.ndarray:
    """HU: a 36 cm water cylinder in air on a 512 x 512, 0.98 mm grid, gaussian noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:512, :512]
    inside = (y - 256) ** 2 + (x - 256) ** 2 <= 185**2
    hu = np.where(inside, water_hu, air_hu) + rng.normal(0.0, sd, (512, 512))
    return np.rint(hu)


def ct(hu: np.ndarray, **attrs: Any) -> tuple[Dataset, np.ndarray]:
    """A CT dataset storing ``hu`` with intercept -1024, and its stored frame."""
    stored = (hu + 1024).astype(np.int16)
    attrs = {"RescaleSlope": 1, "RescaleIntercept": -1024, **attrs}
    return image(stored, **attrs), stored


def blurred(values: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur (edge-padded), vectorised over rows then columns."""
    radius = int(3 * sigma) + 1
    kernel = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = np.pad(values.astype(np.float64), radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(out, len(kernel), axis=0)
    out = windows @ kernel
    windows = np.lib.stride_tricks.sliding_window_view(out, len(kernel), axis=1)
    return windows @ kernel


# --- CT numbers and noise on a synthetic water phantom ----------------------------------


def test_a_clean_water_phantom_passes_and_measures_right() -> None:
    ds, stored = ct(phantom())
    assert image_checks(ds, stored) == []
    m = measure_ct(modality_values(ds, stored))
    assert m.air_mean_hu == pytest.approx(-1000, abs=1)
    assert m.sd_air_hu == pytest.approx(5, abs=0.5)
    assert m.sd_soft_tissue_hu == pytest.approx(5, abs=0.8)  # quietest patches: a bit low
    assert m.water_mean_hu == pytest.approx(0, abs=0.5)
    assert m.water_area_fraction is not None and m.water_area_fraction > 0.3


def test_a_noisy_phantom_warns_noisy_with_both_estimates() -> None:
    ds, stored = ct(phantom(sd=40))
    findings = image_checks(ds, stored)
    assert codes(findings) == {"ct.noisy": Severity.WARN}
    data = only(findings, "ct.noisy").data
    assert data["sd_air"] == pytest.approx(40, rel=0.1)
    assert data["sd_soft_tissue"] == pytest.approx(40, rel=0.15)


def test_water_off_by_20_hu_warns() -> None:
    ds, stored = ct(phantom(water_hu=20))
    findings = image_checks(ds, stored)
    assert codes(findings) == {"ct.water-hu-off": Severity.WARN}
    assert only(findings, "ct.water-hu-off").data["mean_water_hu"] == pytest.approx(20, abs=0.5)


def test_water_within_tolerance_passes() -> None:
    ds, stored = ct(phantom(water_hu=5))
    assert image_checks(ds, stored) == []


def test_air_off_by_80_hu_warns() -> None:
    ds, stored = ct(phantom(air_hu=-920))
    findings = image_checks(ds, stored)
    assert codes(findings) == {"ct.air-hu-off": Severity.WARN}
    assert only(findings, "ct.air-hu-off").data["mean_air_hu"] == pytest.approx(-920, abs=1)


def test_padding_outside_the_reconstruction_circle_is_not_air() -> None:
    hu = phantom()
    y, x = np.mgrid[:512, :512]
    hu[(y - 256) ** 2 + (x - 256) ** 2 > 250**2] = -3024
    ds, stored = ct(hu, PixelPaddingValue=-2000)
    assert image_checks(ds, stored) == []
    assert measure_ct(modality_values(ds, stored)).air_mean_hu == pytest.approx(-1000, abs=1)


def test_rescale_from_the_functional_groups_of_an_enhanced_ct() -> None:
    hu = phantom(water_hu=20)
    stored = (hu + 1024).astype(np.int16)
    ds = image(stored)
    item = Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = 1, -1024, "HU"
    group = Dataset()
    group.PixelValueTransformationSequence = [item]
    ds.SharedFunctionalGroupsSequence = [group]
    assert codes(image_checks(ds, stored)) == {"ct.water-hu-off": Severity.WARN}


def test_a_ct_localizer_is_not_judged_in_hu() -> None:
    ds, stored = ct(phantom(water_hu=20), ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    assert image_checks(ds, stored) == []


def test_real_brain_slices_are_never_taken_for_a_water_phantom() -> None:
    """White matter is large and near 25 HU: the uniformity test must keep it out."""
    for path in sorted((public_dir() / "ct_series_ge_head_tilt_irregular").iterdir()):
        ds = pydicom.dcmread(path)
        m = measure_ct(modality_values(ds, ds.pixel_array), ds.pixel_array == -1500)
        assert m.water_mean_hu is None, path.name
        assert m.air_mean_hu == pytest.approx(-1000, abs=10)


def test_the_philips_middle_slice_passes_fast() -> None:
    path = public_dir() / "ct_series_philips_head_1mm" / "I700"
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    assert stored.shape == (512, 512)
    findings = instance_pixel_checks(ds)
    assert not [f for f in findings if f.severity is Severity.FAIL]
    assert findings == []
    image_checks(ds, stored)  # warm-up
    best = min(_timed(lambda: image_checks(ds, stored)) for _ in range(5))
    assert best < 0.1, f"{best * 1000:.1f} ms for one 512 x 512 CT frame"


def _timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# --- blank, saturated, exposure ----------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1000, 4095])
def test_a_blank_frame_fails(level: int) -> None:
    rng = np.random.default_rng(2)
    stored = np.full((256, 256), level, dtype=np.int32) + rng.integers(0, 2, (256, 256))
    ds = image(np.clip(stored, 0, 4095), modality="MR", bits=12, signed=False)
    findings = image_checks(ds, ds.pixel_array)
    assert codes(findings) == {"pixel.blank": Severity.FAIL}
    assert only(findings, "pixel.blank").data["std"] < 1


def test_blank_frames_in_a_multiframe_object_are_reported_once_with_their_frames() -> None:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 4000, (5, 64, 64))
    frames[2] = 7
    frames[4] = 7
    ds = image(frames, modality="XA", bits=12, signed=False)
    findings = instance_pixel_checks(ds)  # frames 1, 3, 5 (first, middle, last)
    assert codes(findings) == {"pixel.blank": Severity.WARN}  # some frames only
    blank = only(findings, "pixel.blank")
    assert blank.data["frames"] == [3, 5]
    assert blank.message == "2 of 3 frames checked are blank"
    assert instance_pixel_checks(ds, max_frames=1) == []
    assert only(instance_pixel_checks(ds, max_frames=5), "pixel.blank").data["frames"] == [3, 5]

    frames[0] = 7
    every = instance_pixel_checks(image(frames, modality="XA", bits=12, signed=False))
    assert codes(every) == {"pixel.blank": Severity.FAIL}
    assert only(every, "pixel.blank").data["frames"] == [1, 3, 5]


def dx(stored: np.ndarray, **attrs: Any) -> Dataset:
    return image(stored, modality="DX", bits=12, signed=False, **attrs)


def radiograph(seed: int = 4) -> np.ndarray:
    """12-bit texture: smooth anatomy-like gradients plus fine detail and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:400, :400] / 400.0
    base = 1500 + 800 * np.sin(6 * x) * np.cos(4 * y) + 300 * (((x * 40).astype(int) % 2) - 0.5)
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 4095).astype(np.uint16)


def test_a_saturated_underexposed_dx_warns_saturation_and_fails_exposure() -> None:
    stored = radiograph()
    stored[:, :40] = 4095  # 10 % of the pixels clipped
    ds = dx(stored, ExposureIndex=150, TargetExposureIndex=400)  # DI -4.3, computed
    findings = image_checks(ds, stored)
    assert codes(findings) == {
        "pixel.saturated": Severity.WARN,
        "exposure.underexposed": Severity.FAIL,
    }
    assert only(findings, "pixel.saturated").data["fraction"] == pytest.approx(0.1, abs=0.001)
    exposure = only(findings, "exposure.underexposed").data
    assert exposure["deviation_index"] == pytest.approx(-4.26, abs=0.01)
    assert exposure["computed"] is True


def test_a_clean_radiograph_passes() -> None:
    stored = radiograph()
    assert image_checks(dx(stored, DeviationIndex=0.4), stored) == []


@pytest.mark.parametrize(
    ("di", "code", "severity", "word"),
    [
        (0.9, None, None, ""),
        (-1.0, None, None, ""),
        (2.0, "exposure.deviation-index", Severity.WARN, "overexposed"),
        (-2.5, "exposure.deviation-index", Severity.WARN, "underexposed"),
        (3.0, "exposure.deviation-index", Severity.WARN, "overexposed"),
        (4.0, "exposure.overexposed", Severity.WARN, "overexposed"),
        (-3.5, "exposure.underexposed", Severity.FAIL, "underexposed"),
    ],
)
def test_deviation_index_bands(
    di: float, code: str | None, severity: Severity | None, word: str
) -> None:
    stored = radiograph()
    findings = image_checks(dx(stored, DeviationIndex=di, ExposureIndex=1), stored)
    if code is None:
        assert findings == []
        return
    assert codes(findings) == {code: severity}
    assert word in findings[0].message
    assert findings[0].data["computed"] is False  # the declared DI wins over EI / EI_T


def test_deviation_index_bands_are_configurable() -> None:
    stored = radiograph()
    ds = dx(stored, DeviationIndex=-3.5)
    limits = PixelLimits(deviation_index_warn=0.5, deviation_index_action=4.0)
    assert codes(image_checks(ds, stored, limits=limits)) == {
        "exposure.deviation-index": Severity.WARN
    }


def test_saturation_is_not_judged_on_secondary_captures() -> None:
    stored = radiograph()
    stored[:, :100] = 4095
    ds = image(stored, modality="OT", bits=12, signed=False)
    assert image_checks(ds, stored) == []


# --- blur ------------------------------------------------------------------------------


@cache
def _real_cr() -> tuple[Dataset, np.ndarray]:
    ds = pydicom.dcmread(public_dir() / "fo-dicom__CR-MONO1-10-chest", force=True)
    assert ds.original_encoding == (True, True)  # ACR-NEMA style: no file meta
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds, ds.pixel_array


def test_a_real_chest_radiograph_is_sharp_and_its_blurred_copy_is_not() -> None:
    ds, stored = _real_cr()
    assert frame_checks(ds, stored) == []
    smeared = np.rint(blurred(stored, 4.0)).astype(stored.dtype)
    findings = frame_checks(ds, smeared)
    assert codes(findings) == {"pixel.blurred": Severity.WARN}
    assert only(findings, "pixel.blurred").data["sharpness"] < 0.002
    assert sharpness_index(stored) > 5 * only(findings, "pixel.blurred").data["sharpness"]


def test_blur_is_not_judged_on_ct() -> None:
    hu = blurred(phantom(), 6.0)
    ds, stored = ct(np.rint(hu))
    assert "pixel.blurred" not in codes(image_checks(ds, stored))


# --- display ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("centre", "width", "bad"),
    [(2000, 4000, False), (-200, 100, True), (9000, 1000, True), (1500, 0, True), (1500, 1, False)],
)
def test_window_plausibility(centre: float, width: float, bad: bool) -> None:
    stored = radiograph()
    findings = image_checks(dx(stored, WindowCenter=centre, WindowWidth=width), stored)
    assert ("display.window-implausible" in codes(findings)) is bad


def test_the_window_applies_to_rescaled_values() -> None:
    ds, stored = ct(phantom(), WindowCenter=40, WindowWidth=400)
    assert image_checks(ds, stored) == []
    ds.WindowCenter = 1064  # a stored-value window: shows nothing of the HU range
    assert codes(image_checks(ds, stored)) == {"display.window-implausible": Severity.WARN}


def test_a_window_centre_without_width_warns() -> None:
    stored = radiograph()
    findings = image_checks(dx(stored, WindowCenter=1000), stored)
    assert codes(findings) == {"display.window-implausible": Severity.WARN}


# --- decoding, never raising -------------------------------------------------------------


def test_truncated_pixel_data_is_undecodable_not_an_exception() -> None:
    ds = image(radiograph(), modality="DX", bits=12, signed=False)
    ds.PixelData = ds.PixelData[:1000]
    findings = instance_pixel_checks(ds)
    assert codes(findings) == {"pixel.undecodable": Severity.FAIL}
    assert only(findings, "pixel.undecodable").data == {"error": "ValueError"}


def test_an_unknown_transfer_syntax_is_undecodable() -> None:
    ds = image(radiograph(), modality="DX", bits=12, signed=False)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5"
    assert codes(instance_pixel_checks(ds)) == {"pixel.undecodable": Severity.FAIL}


def test_no_pixel_data_no_findings() -> None:
    ds = image(radiograph(), modality="DX")
    del ds.PixelData
    assert instance_pixel_checks(ds) == []


def test_segmentations_and_dose_grids_are_not_judged() -> None:
    zeros = np.zeros((64, 64), dtype=np.uint16)
    for modality in ("SEG", "RTDOSE", "SM"):
        assert image_checks(image(zeros, modality=modality, signed=False), zeros) == []


# --- the public corpus ----------------------------------------------------------------


@cache
def corpus_findings() -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for path in public_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, force=True)
        except Exception:
            continue  # unreadable files are the fast checks' business
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[_name(path)] = instance_pixel_checks(ds)
    return out


def _name(path: Path) -> str:
    return path.name


def test_every_public_file_is_judged_without_raising() -> None:
    found = corpus_findings()
    assert len(found) >= 230  # 140 + 28 series slices and the single files


def test_undecodable_exactly_where_the_manifest_says_decoding_fails() -> None:
    rows = manifest()
    found = corpus_findings()
    undecodable = {name for name, f in found.items() if "pixel.undecodable" in codes(f)}
    expected = {
        name
        for name, row in rows.items()
        if row["pixel_decode_pydicom_pylibjpeg"].startswith("FAIL") and name in found
    }
    assert undecodable == expected


def test_clean_public_files_have_no_pixel_findings() -> None:
    """Only header-driven findings on decodable files: the DX sample declares DI -7."""
    found = corpus_findings()
    content = {
        name: sorted(codes(f))
        for name, f in found.items()
        if any(not c.startswith("exposure.") and c != "pixel.undecodable" for c in codes(f))
    }
    assert content == {}
    exposure = {
        name: codes(f)
        for name, f in found.items()
        if any(c.startswith("exposure.") for c in codes(f))
    }
    assert exposure == {"highdicom__dx_image.dcm": {"exposure.underexposed": Severity.FAIL}}
