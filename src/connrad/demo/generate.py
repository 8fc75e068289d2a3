"""Realistic synthetic DICOM studies built from numpy arrays and pydicom only.

Used for the demo data loaded on first start, for benchmarks and for tests. Everything is
deterministic: the same arguments give the same pixels and the same UIDs, so loading the
demo twice stores nothing new.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from connrad import __version__

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
US_MULTIFRAME_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"

MANUFACTURER = "connrad demo"
INSTITUTION = "connrad Demo Clinic"

# A fixed namespace so every demo UID is a stable name-based UUID under the 2.25 arc.
_UID_NAMESPACE = uuid.UUID("6f1b7f0e-3c1a-5d2e-9b8a-c0a4d1c0de01")


def demo_uid(*parts: object) -> str:
    """A deterministic UID: ``2.25.`` + the integer of a name-based UUID (PS3.5 B.2).

    ``pydicom.uid.generate_uid(prefix=None, ...)`` ignores its entropy sources and is random,
    so it cannot make demo loading idempotent; a UUIDv5 of the parts can. The unit separator
    keeps ``("ab", "c")`` and ``("a", "bc")`` apart.
    """
    name = "\x1f".join(str(part) for part in parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


IMPLEMENTATION_CLASS_UID = demo_uid("connrad", "implementation-class")
IMPLEMENTATION_VERSION_NAME = f"CONNRAD_{__version__}"[:16]


@dataclass(frozen=True)
class DemoPatient:
    patient_id: str
    name: str  # DICOM PN: alphabetic[=ideographic[=phonetic]]
    birth_date: str  # DA, YYYYMMDD
    sex: str  # M, F or O
    charset: str  # SpecificCharacterSet, multiple values joined by a backslash

    @property
    def specific_character_set(self) -> str | list[str]:
        """The SpecificCharacterSet value as pydicom wants it (a list when multi-valued)."""
        values = self.charset.split("\\")
        return values if len(values) > 1 else values[0]


@dataclass(frozen=True)
class StudyInfo:
    """Study-level attributes shared by every instance of one study."""

    date: str = "20240314"
    time: str = "091500"
    accession_number: str = ""
    study_id: str = "1"
    description: str = ""
    referring_physician: str = ""


DEMO_PATIENTS: tuple[DemoPatient, ...] = (
    # The PS3.5 Annex H form: code extension, so names carry ESC $ ) C designations.
    DemoPatient("KR-0001", "Kim^Minji=金^旼志=김^민지", "19850412", "F", "\\ISO 2022 IR 149"),
    DemoPatient("KR-0002", "Park^Jisoo=朴^智秀=박^지수", "19720903", "M", "ISO_IR 192"),
    DemoPatient("DE-0003", "Müller^José", "19600117", "M", "ISO_IR 100"),
)


# --- shared modules -------------------------------------------------------------------


def _ds(value: float) -> str:
    """A DS string that always fits the 16-character limit."""
    text = f"{value:.8g}"
    return "0" if text == "-0" else text


def _age(birth_date: str, on: str) -> str:
    born = date(int(birth_date[:4]), int(birth_date[4:6]), int(birth_date[6:8]))
    seen = date(int(on[:4]), int(on[4:6]), int(on[6:8]))
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return f"{max(years, 0):03d}Y"


def _default_study(patient: DemoPatient, modality: str, seed: int) -> StudyInfo:
    number = uuid.uuid5(_UID_NAMESPACE, f"{patient.patient_id}/{modality}/{seed}").int
    return StudyInfo(
        accession_number=f"{modality}{number % 10**10:010d}",
        study_id=str(1 + number % 9999),
        description=f"{modality} demo",
    )


def _instance(
    sop_class: str,
    sop_uid: str,
    patient: DemoPatient,
    study: StudyInfo,
    study_uid: str,
) -> Dataset:
    """SOP Common, Patient, Patient Study and General Study modules."""
    ds = Dataset()
    # Set first: pydicom encodes every text value with it when writing.
    ds.SpecificCharacterSet = patient.specific_character_set
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = "CONNRAD-DEMO"
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = _age(patient.birth_date, study.date)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study.date
    ds.StudyTime = study.time
    ds.AccessionNumber = study.accession_number
    ds.StudyID = study.study_id
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = study.referring_physician
    ds.InstitutionName = INSTITUTION
    return ds


def _series(
    ds: Dataset,
    *,
    modality: str,
    series_uid: str,
    series_number: int,
    description: str,
    body_part: str,
    model: str,
) -> None:
    """General Series and General Equipment modules."""
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.BodyPartExamined = body_part
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = model
    ds.StationName = "DEMO01"
    ds.DeviceSerialNumber = "0001"
    ds.SoftwareVersions = __version__


def _pixel_module(
    ds: Dataset,
    pixels: npt.NDArray[np.uint8] | npt.NDArray[np.uint16],
    *,
    rows: int,
    columns: int,
    photometric: str,
    bits_stored: int,
    samples: int = 1,
) -> None:
    """Image Pixel module for native unsigned little-endian data."""
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0  # color-by-pixel: R G B R G B ...
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8 * pixels.dtype.itemsize
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.add_new(0x7FE00010, "OW" if pixels.dtype.itemsize > 1 else "OB", pixels.tobytes())
    # With file meta (hence a transfer syntax) ds.pixel_array works before any write.
    ds.file_meta = file_meta(ds)


# --- CT -------------------------------------------------------------------------------

# HU of the phantom's shells; the brain is water so "water ~0 HU" holds at the centre.
_AIR, _SCALP, _SKULL, _WATER = -1000, 40, 1000, 0
_HEAD_A_MM, _HEAD_B_MM = 72.0, 92.0  # outer-skull semi-axes, left-right and front-back
_CT_FOV_MM = 240.0
_NOISE_HU = 6.0
_NOISE_PAD = 61


@dataclass(frozen=True)
class _Lesion:
    x: float  # mm, patient coordinates (LPS) relative to the isocentre
    y: float
    z: float
    radius: float
    hu: int


_LESIONS = (
    _Lesion(30.0, -25.0, 10.0, 12.0, 65),  # hyperdense, like a fresh haematoma
    _Lesion(-32.0, 30.0, -5.0, 10.0, -90),  # fat density, like a lipoma
    _Lesion(12.0, 48.0, 18.0, 3.0, 450),  # calcification
    _Lesion(-20.0, -45.0, 25.0, 8.0, 22),  # subtle hypodensity
)


class _HeadPhantom:
    """Precomputes everything but the per-slice shell radii, lesions and noise."""

    def __init__(self, rows: int, columns: int, spacing: float, rng: np.random.Generator):
        self.rows, self.columns = rows, columns
        self.xs = (np.arange(columns) - (columns - 1) / 2) * spacing
        self.ys = (np.arange(rows) - (rows - 1) / 2) * spacing
        radius = np.hypot(self.xs[None, :] / _HEAD_A_MM, self.ys[:, None] / _HEAD_B_MM)
        # Normalised radius in 1/1000 steps: a slice is then one table lookup.
        self.ridx = np.minimum(radius * 1000, 4095).astype(np.uint16)
        shape = (rows + _NOISE_PAD, columns + _NOISE_PAD)
        # Two tiles at independent offsets give per-slice noise without drawing 262k samples.
        self.noise = [
            rng.normal(0, _NOISE_HU / math.sqrt(2), shape).round().astype(np.int16)
            for _ in range(2)
        ]

    @staticmethod
    def scale(z: float) -> float:
        """Cross-section size of the head at table position z (mm); 1 at the widest."""
        u = (z - 20.0) / 100.0
        u = u * 0.6 if u < 0 else u  # flatter towards the neck than towards the vertex
        return math.sqrt(max(0.0, 1.0 - u * u))

    def hu(self, z: float, rng: np.random.Generator) -> npt.NDArray[np.int16]:
        s = self.scale(z)
        lut = np.full(4096, _AIR, dtype=np.int16)
        if s > 0.05:
            lut[: int(1000 * (s + 0.06))] = _SCALP
            lut[: int(1000 * s)] = _SKULL
            lut[: int(1000 * max(s - 0.09, 0.0))] = _WATER
        image = lut[self.ridx]
        for lesion in _LESIONS:
            self._paint(image, lesion, z, s)
        for tile in self.noise:
            dy, dx = rng.integers(0, _NOISE_PAD, size=2)
            image += tile[dy : dy + self.rows, dx : dx + self.columns]
        return image

    def _paint(self, image: npt.NDArray[np.int16], lesion: _Lesion, z: float, s: float) -> None:
        dz = z - lesion.z
        if abs(dz) >= lesion.radius or s < 0.5:
            return
        r = math.sqrt(lesion.radius**2 - dz**2)
        cols = np.flatnonzero(np.abs(self.xs - lesion.x) < r)
        rows = np.flatnonzero(np.abs(self.ys - lesion.y) < r)
        if cols.size == 0 or rows.size == 0:
            return
        c0, c1, r0, r1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
        disk = (self.xs[None, c0:c1] - lesion.x) ** 2 + (self.ys[r0:r1, None] - lesion.y) ** 2
        image[r0:r1, c0:c1][disk < r * r] = lesion.hu


def ct_series(
    n_slices: int = 64,
    *,
    rows: int = 512,
    columns: int = 512,
    patient: DemoPatient,
    study_uid: str | None = None,
    series_uid: str | None = None,
    seed: int = 0,
    study: StudyInfo | None = None,
    series_number: int = 2,
    slice_thickness: float = 2.5,
    series_description: str = "Head axial 2.5 mm",
    body_part: str = "HEAD",
) -> Iterator[Dataset]:
    """A CT Image Storage series of a head phantom, one dataset per axial slice.

    Stored values are HU + 1024 in 12 unsigned bits (Rescale -1024/1), so a 512x512
    slice is 512 KiB of pixels and about 525 KB as a file.
    """
    study = study or _default_study(patient, "CT", seed)
    study_uid = study_uid or demo_uid("study", patient.patient_id, "CT", seed)
    series_uid = series_uid or demo_uid("series", study_uid, series_number, seed)
    frame_of_reference = demo_uid("frame-of-reference", series_uid)
    spacing = _CT_FOV_MM / max(rows, columns)
    rng = np.random.default_rng(seed)
    phantom = _HeadPhantom(rows, columns, spacing, rng)
    x0 = -(columns - 1) / 2 * spacing
    y0 = -(rows - 1) / 2 * spacing
    for index in range(n_slices):
        z = (index - (n_slices - 1) / 2) * slice_thickness
        stored = phantom.hu(z, rng)
        stored += 1024
        np.clip(stored, 0, 4095, out=stored)
        ds = _instance(
            CT_IMAGE_STORAGE, demo_uid("sop", series_uid, index), patient, study, study_uid
        )
        _series(
            ds,
            modality="CT",
            series_uid=series_uid,
            series_number=series_number,
            description=series_description,
            body_part=body_part,
            model="Phantom CT 64",
        )
        _ct_slice(ds, index=index, study=study, frame_of_reference=frame_of_reference)
        ds.ImagePositionPatient = [_ds(x0), _ds(y0), _ds(z)]
        ds.SliceLocation = _ds(z)
        ds.SliceThickness = _ds(slice_thickness)
        ds.PixelSpacing = [_ds(spacing), _ds(spacing)]
        ds.ReconstructionDiameter = _ds(_CT_FOV_MM)
        _pixel_module(
            ds,
            stored.view(np.uint16),
            rows=rows,
            columns=columns,
            photometric="MONOCHROME2",
            bits_stored=12,
        )
        yield ds


def _ct_slice(ds: Dataset, *, index: int, study: StudyInfo, frame_of_reference: str) -> None:
    """Frame of Reference, General Image, Image Plane (orientation), CT Image, VOI LUT."""
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate = study.date
    ds.AcquisitionTime = study.time
    ds.ContentDate = study.date
    ds.ContentTime = f"{study.time[:6]}.{index:06d}"  # distinct per slice, same second
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.KVP = "120"
    ds.XRayTubeCurrent = 250
    ds.ExposureTime = 1000
    ds.Exposure = 250
    ds.ConvolutionKernel = "H30s"
    ds.FilterType = "HEAD"
    ds.DataCollectionDiameter = "500"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ScanOptions = "HELICAL MODE"
    # The phantom's brain is water, which a 40/80 brain window would show as black.
    ds.WindowCenter = ["20", "500"]
    ds.WindowWidth = ["120", "2000"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "BONE"]
    ds.LossyImageCompression = "00"


# --- CR -------------------------------------------------------------------------------


def _chest_path(rows: int, columns: int) -> npt.NDArray[np.float64]:
    """Relative X-ray path length through a PA chest: 0 outside the body, ~1 at the spine.

    Image right is the patient's left (PatientOrientation L\\F), so the heart sits right
    of centre and the right hemidiaphragm (image left) is a little higher.
    """
    v, u = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, columns), indexing="ij")

    def dome(cu: float, cv: float, au: float, av: float) -> npt.NDArray[np.float64]:
        # Thickness profile of an ellipsoid seen end-on: smooth edges without a blur pass.
        return np.sqrt(np.clip(1 - ((u - cu) / au) ** 2 - ((v - cv) / av) ** 2, 0, None))

    body = np.sqrt(np.clip(1 - (u / 0.84) ** 2, 0, None)) * (v > -0.92 + 0.3 * u**2)
    path = 0.6 * body
    lungs = dome(-0.33, -0.1, 0.24, 0.56) + dome(0.35, -0.06, 0.23, 0.6)
    path -= 0.45 * lungs
    path += 0.2 * dome(0.17, 0.3, 0.3, 0.24)  # heart, to the patient's left
    path += 0.16 * dome(0.0, -0.3, 0.11, 0.6)  # mediastinum
    vertebrae = 0.7 + 0.3 * (np.cos(v * 38) > -0.6)
    path += 0.1 * (np.abs(u) < 0.055) * vertebrae * body  # spine, faint behind the heart
    in_cage = (np.abs(u) > 0.1) & (np.abs(u) < 0.72) & (v > -0.7) & (v < 0.42)
    ribs = np.mod(v + 0.5 * u**2 + 0.9, 0.13) < 0.02  # posterior arcs, curving downwards
    path += 0.1 * (ribs & in_cage) * (0.4 + lungs.clip(0, 1))
    clavicles = (np.abs(v + 0.7 - 0.15 * np.abs(u)) < 0.02) & (np.abs(u) > 0.06)
    path += 0.15 * clavicles * (np.abs(u) < 0.45)
    return np.clip(path * body.astype(bool), 0, None)


def cr_chest(
    *,
    patient: DemoPatient,
    rows: int = 1024,
    columns: int = 1024,
    study_uid: str | None = None,
    series_uid: str | None = None,
    seed: int = 0,
    study: StudyInfo | None = None,
    series_number: int = 1,
) -> Dataset:
    """A Computed Radiography PA chest radiograph, 12-bit MONOCHROME1.

    MONOCHROME1 shows the minimum as white, so stored values follow detector exposure:
    air in the lungs (much exposure) is high and displays dark, bone is low and white.
    """
    study = study or _default_study(patient, "CR", seed)
    study_uid = study_uid or demo_uid("study", patient.patient_id, "CR", seed)
    series_uid = series_uid or demo_uid("series", study_uid, series_number, seed)
    rng = np.random.default_rng(seed)
    log_exposure = 3700 - 3300 * _chest_path(rows, columns) + rng.normal(0, 25, (rows, columns))
    stored = np.clip(log_exposure, 0, 4095).astype(np.uint16)

    ds = _instance(CR_IMAGE_STORAGE, demo_uid("sop", series_uid, 0), patient, study, study_uid)
    _series(
        ds,
        modality="CR",
        series_uid=series_uid,
        series_number=series_number,
        description="Chest PA",
        body_part="CHEST",
        model="Phantom CR 1",
    )
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ContentDate = study.date
    ds.ContentTime = study.time
    spacing = 430.0 / max(rows, columns)  # a 43 cm plate
    ds.ImagerPixelSpacing = [_ds(spacing), _ds(spacing)]
    ds.KVP = "120"
    ds.ExposureTime = 10
    ds.XRayTubeCurrent = 320
    ds.Exposure = 3
    ds.DistanceSourceToDetector = "1800"
    ds.PlateID = "PLATE-01"
    ds.CassetteSize = "43CMX43CM"
    exposure_index, target = 420.0, 400.0
    ds.ExposureIndex = _ds(exposure_index)
    ds.TargetExposureIndex = _ds(target)
    ds.DeviationIndex = _ds(round(10 * math.log10(exposure_index / target), 2))  # IEC 62494-1
    ds.WindowCenter = "2100"
    ds.WindowWidth = "3400"
    ds.LossyImageCompression = "00"
    _pixel_module(ds, stored, rows=rows, columns=columns, photometric="MONOCHROME1", bits_stored=12)
    return ds


# --- US -------------------------------------------------------------------------------

_US_DEPTH_CM = 16.0


class _Sector:
    """Geometry and tissue of a curved-array abdominal scan, computed once per cine."""

    def __init__(self, rows: int, columns: int, pad: int, rng: np.random.Generator):
        self.rows, self.columns, self.pad = rows, columns, pad
        self.apex_row, self.apex_col = -0.08 * rows, columns / 2
        self.r_min, self.r_max = 0.18 * rows, 0.95 * rows
        y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
        radius = np.hypot(y - self.apex_row, x - self.apex_col)
        angle = np.arctan2(x - self.apex_col, y - self.apex_row)
        self.mask = (np.abs(angle) < math.radians(36)) & (radius > self.r_min)
        self.mask &= radius < self.r_max
        # Time-gain compensation is imperfect: a gentle fall-off with depth.
        self.gain = 1.0 - 0.35 * np.clip((radius - self.r_min) / (self.r_max - self.r_min), 0, 1)
        self.tissue = self._tissue(rows + 2 * pad, columns, rng)

    def _tissue(self, height: int, width: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
        """Log-compressed speckle of a liver with a vessel and a bright diaphragm."""
        y, x = np.mgrid[0:height, 0:width].astype(np.float64)
        echo = np.full((height, width), 0.55)
        echo[y < self.pad + 0.25 * self.rows] = 0.35  # subcutaneous fat
        vessel = ((x - 0.42 * width) / 38) ** 2 + ((y - self.pad - 0.5 * self.rows) / 26) ** 2
        echo[vessel < 1] = 0.03  # anechoic lumen
        diaphragm = np.abs(y - self.pad - 0.78 * self.rows - 0.0004 * (x - width / 2) ** 2)
        echo += 1.5 * np.exp(-((diaphragm / 5) ** 2))
        speckle = _speckle(height, width, rng)
        amplitude = echo * speckle
        decibels = 20 * np.log10(amplitude + 1e-3)
        return np.clip((decibels + 30) * 255 / 42, 0, 255).astype(np.uint8)

    def frame(self, shift: int, noise: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """One gray frame: tissue moved `shift` rows (breathing), fixed sector and gain."""
        top = self.pad - shift
        gray = self.tissue[top : top + self.rows] * self.gain + noise
        return np.where(self.mask, np.clip(gray, 0, 255), 0).astype(np.uint8)


def _speckle(height: int, width: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Fully developed speckle: the magnitude of a band-limited complex Gaussian field.

    Summing shifted copies stands in for the point-spread function, which is wider
    laterally than axially, so grains are elongated like real ones.
    """
    field = rng.normal(size=(height + 2, width + 6)) + 1j * rng.normal(size=(height + 2, width + 6))
    psf = sum(field[dy : dy + height, dx : dx + width] for dy in range(2) for dx in range(6))
    return np.abs(psf) / math.sqrt(12)


def _us_overlay(rgb: npt.NDArray[np.uint8], rows: int, columns: int) -> None:
    """Burned-in graphics on every frame: depth ticks, a gray bar and the probe marker."""
    for cm in range(int(_US_DEPTH_CM) + 1):
        row = int(0.18 * rows + cm * (0.77 * rows) / _US_DEPTH_CM)
        if row < rows:
            rgb[:, row, columns - 40 : columns - 32] = 220
    ramp = np.linspace(255, 0, rows // 2).astype(np.uint8)
    rgb[:, rows // 8 : rows // 8 + ramp.size, columns - 20 : columns - 10] = ramp[
        None, :, None, None
    ]
    rgb[:, 12:22, columns // 4 : columns // 4 + 10] = (255, 160, 0)  # orange orientation mark


def us_cine(
    *,
    patient: DemoPatient,
    n_frames: int = 30,
    rows: int = 480,
    columns: int = 640,
    frame_time_ms: float = 1000 / 30,
    study_uid: str | None = None,
    series_uid: str | None = None,
    seed: int = 0,
    study: StudyInfo | None = None,
    series_number: int = 1,
) -> Dataset:
    """An Ultrasound Multi-frame Image Storage cine: RGB, 8 bits, a breathing liver."""
    study = study or _default_study(patient, "US", seed)
    study_uid = study_uid or demo_uid("study", patient.patient_id, "US", seed)
    series_uid = series_uid or demo_uid("series", study_uid, series_number, seed)
    rng = np.random.default_rng(seed)
    pad = max(rows // 20, 1)
    sector = _Sector(rows, columns, pad, rng)
    noise = rng.normal(0, 6, (rows + pad, columns + pad)).astype(np.int16)
    rgb = np.empty((n_frames, rows, columns, 3), dtype=np.uint8)
    for index in range(n_frames):
        shift = round((pad - 1) * math.sin(2 * math.pi * index / max(n_frames, 1)))
        dy, dx = rng.integers(0, pad, size=2)
        gray = sector.frame(shift, noise[dy : dy + rows, dx : dx + columns])
        rgb[index] = gray[:, :, None]
    _us_overlay(rgb, rows, columns)

    ds = _instance(
        US_MULTIFRAME_IMAGE_STORAGE, demo_uid("sop", series_uid, 0), patient, study, study_uid
    )
    _series(
        ds,
        modality="US",
        series_uid=series_uid,
        series_number=series_number,
        description="Liver cine",
        body_part="ABDOMEN",
        model="Phantom US C5",
    )
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.ContentDate = study.date
    ds.ContentTime = study.time
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "00"
    ds.NumberOfFrames = n_frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = _ds(frame_time_ms)
    ds.CineRate = round(1000 / frame_time_ms)
    ds.RecommendedDisplayFrameRate = round(1000 / frame_time_ms)
    ds.TransducerType = "CURVED LINEAR"
    ds.SequenceOfUltrasoundRegions = [_us_region(rows, columns)]
    _pixel_module(ds, rgb, rows=rows, columns=columns, photometric="RGB", bits_stored=8, samples=3)
    return ds


def _us_region(rows: int, columns: int) -> Dataset:
    """US Region Calibration: lets viewers measure in cm inside the sector."""
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = columns - 50
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    cm_per_pixel = _US_DEPTH_CM / (0.77 * rows)
    region.PhysicalDeltaX = cm_per_pixel
    region.PhysicalDeltaY = cm_per_pixel
    return region


# --- the demo set and PS3.10 ----------------------------------------------------------


def demo_studies(*, seed: int = 0) -> list[list[Dataset]]:
    """The demo archive: a head CT with a prior, a chest CR and an abdominal US cine.

    Each inner list is one study. UIDs derive from `seed`, so calling twice gives the
    same UIDs (idempotent demo loading) and different seeds give disjoint sets.
    """
    kim, park, mueller = DEMO_PATIENTS[:3]
    current = StudyInfo(
        "20240314", "091500", "ACC24031401", "1001", "CT 두부 (Head)", "Lee^Sora=李^素羅=이^소라"
    )
    prior = StudyInfo(
        "20230302", "141000", "ACC23030207", "0871", "CT 두부 (Head)", "Lee^Sora=李^素羅=이^소라"
    )
    chest = StudyInfo(
        "20240320",
        "103000",
        "ACC24032011",
        "1042",
        "흉부 X선 (Chest)",
        "Choi^Yunseo=崔^允瑞=최^윤서",
    )
    abdomen = StudyInfo(
        "20240402", "080500", "ACC24040203", "2007", "Abdomen Sonographie", "Gómez^Lucía"
    )

    def uid(name: str) -> str:
        return demo_uid("demo", seed, name)

    return [
        list(ct_series(48, patient=kim, study=current, study_uid=uid("ct-current"), seed=seed)),
        list(
            ct_series(
                16,
                rows=256,
                columns=256,
                patient=kim,
                study=prior,
                study_uid=uid("ct-prior"),
                seed=seed + 1,
                slice_thickness=5.0,
                series_description="Head axial 5 mm",
            )
        ),
        [cr_chest(patient=park, study=chest, study_uid=uid("cr-chest"), seed=seed)],
        [us_cine(patient=mueller, study=abdomen, study_uid=uid("us-abdomen"), seed=seed)],
    ]


def tiny_ct(**attributes: Any) -> Dataset:
    """An 8x8 CT image with fresh UIDs and plausible identity; keywords override or add.

    The smallest valid storable instance: for tests and for filling an index quickly.
    """
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(64, dtype=np.uint16) * 60).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def file_meta(ds: Dataset) -> FileMetaDataset:
    """PS3.10 File Meta Information for a dataset, written as Explicit VR Little Endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def to_part10_bytes(ds: Dataset) -> bytes:
    """A PS3.10 file: preamble, DICM, connrad's file meta, then the dataset.

    Replaces ``ds.file_meta`` (the dataset itself is written unchanged).
    """
    ds.file_meta = file_meta(ds)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
