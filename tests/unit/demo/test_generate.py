"""The synthetic study generator: files, charsets, geometry, pixels and determinism."""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.valuerep import PersonName

from connrad.demo.generate import (
    CR_IMAGE_STORAGE,
    CT_IMAGE_STORAGE,
    DEMO_PATIENTS,
    IMPLEMENTATION_CLASS_UID,
    US_MULTIFRAME_IMAGE_STORAGE,
    DemoPatient,
    StudyInfo,
    cr_chest,
    ct_series,
    demo_studies,
    demo_uid,
    to_part10_bytes,
    us_cine,
)

KIM, PARK, MUELLER = DEMO_PATIENTS[:3]


def _read(raw: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(raw))


def _raw_value(raw: bytes, tag: bytes, vr: bytes) -> bytes:
    """The undecoded value of a short-VR element in an Explicit VR Little Endian file."""
    start = raw.index(tag + vr) + 6
    (length,) = struct.unpack("<H", raw[start : start + 2])
    return raw[start + 2 : start + 2 + length]


@pytest.fixture(scope="module")
def ct_files() -> list[bytes]:
    return [to_part10_bytes(ds) for ds in ct_series(8, patient=KIM, seed=7)]


@pytest.fixture(scope="module")
def ct_read(ct_files: list[bytes]) -> list[Dataset]:
    return [_read(raw) for raw in ct_files]


def test_demo_patients_cover_the_three_charsets() -> None:
    charsets = {p.charset for p in DEMO_PATIENTS}
    assert {"\\ISO 2022 IR 149", "ISO_IR 192", "ISO_IR 100"} <= charsets
    assert KIM.specific_character_set == ["", "ISO 2022 IR 149"]


def test_part10_file_meta(ct_files: list[bytes]) -> None:
    raw = ct_files[0]
    assert raw[:128] == b"\x00" * 128 and raw[128:132] == b"DICM"
    ds = _read(raw)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE == ds.SOPClassUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.ImplementationVersionName.startswith("CONNRAD_")


@pytest.mark.parametrize("patient", DEMO_PATIENTS, ids=lambda p: p.charset)
def test_names_round_trip(patient: DemoPatient) -> None:
    latin = patient.charset == "ISO_IR 100"
    study = StudyInfo(description="Schädel-CT" if latin else "두부 CT (Head)")
    ds = next(ct_series(1, rows=64, columns=64, patient=patient, study=study))
    back = _read(to_part10_bytes(ds))
    expected = PersonName(patient.name)
    assert str(back.PatientName) == patient.name
    assert back.PatientName.alphabetic == expected.alphabetic
    assert back.PatientName.ideographic == expected.ideographic
    assert back.PatientName.phonetic == expected.phonetic
    assert back.StudyDescription == study.description


def test_ir149_name_uses_iso2022_escapes() -> None:
    raw = to_part10_bytes(next(ct_series(1, rows=64, columns=64, patient=KIM)))
    back = _read(raw)
    assert list(back.SpecificCharacterSet) == ["", "ISO 2022 IR 149"]
    name = _raw_value(raw, b"\x10\x00\x10\x00", b"PN")
    assert name.startswith(b"Kim^Minji=")
    assert b"\x1b$)C" in name
    assert back.PatientName.ideographic == "金^旼志"
    assert back.PatientName.phonetic == "김^민지"


def test_utf8_and_latin1_bytes() -> None:
    utf8 = to_part10_bytes(next(ct_series(1, rows=64, columns=64, patient=PARK)))
    assert "박^지수".encode() in _raw_value(utf8, b"\x10\x00\x10\x00", b"PN")
    latin = to_part10_bytes(next(ct_series(1, rows=64, columns=64, patient=MUELLER)))
    assert "Müller^José".encode("latin-1") in _raw_value(latin, b"\x10\x00\x10\x00", b"PN")


def test_ct_slice_size(ct_files: list[bytes]) -> None:
    for raw in ct_files:
        assert 520_000 < len(raw) < 530_000


CT_TYPE_1 = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "Modality",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelData",
    "ImageType",
    "RescaleIntercept",
    "RescaleSlope",
]
CT_TYPE_2 = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "SeriesNumber",
    "PatientPosition",
    "PositionReferenceIndicator",
    "Manufacturer",
    "InstanceNumber",
    "SliceThickness",
    "KVP",
    "AcquisitionNumber",
    "ContentDate",
    "ContentTime",
]


def test_ct_iod_attributes(ct_read: list[Dataset]) -> None:
    ds = ct_read[0]
    for keyword in CT_TYPE_1:
        assert ds.get(keyword) not in (None, ""), keyword
    for keyword in CT_TYPE_2:
        assert keyword in ds, keyword
    assert ds.Modality == "CT" and ds.Manufacturer == "connrad demo"
    assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and ds.HighBit == 11
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert ds.BodyPartExamined and ds.SeriesDescription and ds.StudyDescription
    assert ds.WindowCenter and ds.WindowWidth


def test_ct_geometry_advances_along_the_normal(ct_read: list[Dataset]) -> None:
    orientation = np.array(ct_read[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    thickness = float(ct_read[0].SliceThickness)
    positions = np.array([ds.ImagePositionPatient for ds in ct_read], dtype=float)
    steps = np.diff(positions, axis=0)
    assert np.allclose(steps, thickness * normal, atol=1e-3)
    assert [ds.InstanceNumber for ds in ct_read] == list(range(1, len(ct_read) + 1))
    assert [float(ds.SliceLocation) for ds in ct_read] == pytest.approx(positions @ normal)
    assert len({ds.SeriesInstanceUID for ds in ct_read}) == 1
    assert len({ds.FrameOfReferenceUID for ds in ct_read}) == 1
    assert len({ds.SOPInstanceUID for ds in ct_read}) == len(ct_read)


def test_ct_hounsfield_units(ct_read: list[Dataset]) -> None:
    ds = ct_read[len(ct_read) // 2]
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert hu.shape == (512, 512)
    assert abs(hu[236:276, 236:276].mean()) < 10  # water at the centre
    assert abs(hu[:40, :40].mean() + 1000) < 15  # air in the corner
    assert hu.max() > 800  # the bone ring
    assert ds.pixel_array.min() >= 0 and ds.pixel_array.max() < 4096


def test_cr_chest_is_monochrome1() -> None:
    ds = _read(to_part10_bytes(cr_chest(patient=PARK, rows=512, columns=512)))
    assert ds.SOPClassUID == CR_IMAGE_STORAGE and ds.Modality == "CR"
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.BitsStored == 12 and ds.ViewPosition == "PA" and ds.BodyPartExamined == "CHEST"
    ei, target = float(ds.ExposureIndex), float(ds.TargetExposureIndex)
    assert float(ds.DeviationIndex) == pytest.approx(10 * np.log10(ei / target), abs=0.01)
    pixels = ds.pixel_array.astype(np.float64)
    lung = pixels[220:240, 160:180].mean()  # right lung (image left)
    spine = pixels[160:180, 250:262].mean()
    # MONOCHROME1: more exposure means higher values and a darker display.
    assert lung > spine + 300
    assert pixels[:, :8].mean() > lung  # direct exposure outside the body is darkest


def test_us_cine_frames() -> None:
    ds = _read(to_part10_bytes(us_cine(patient=MUELLER, n_frames=6)))
    assert ds.SOPClassUID == US_MULTIFRAME_IMAGE_STORAGE
    assert ds.NumberOfFrames == 6 and ds.SamplesPerPixel == 3
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
    assert ds.FrameIncrementPointer == 0x00181063 and float(ds.FrameTime) > 0
    assert ds.BurnedInAnnotation == "YES"
    frames = ds.pixel_array
    assert frames.shape == (6, 480, 640, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])  # the tissue moves
    assert (frames[..., 0] != frames[..., 2]).any()  # real colour, not only gray
    assert str(ds.PatientName) == MUELLER.name


def _uids(studies: list[list[Dataset]]) -> list[tuple[str, str, str]]:
    return [
        (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        for study in studies
        for ds in study
    ]


def test_demo_studies_deterministic_and_unique() -> None:
    first, second = demo_studies(), demo_studies()
    assert _uids(first) == _uids(second)
    uids = _uids(first)
    assert len({sop for _, _, sop in uids}) == len(uids)
    assert len({study[0].StudyInstanceUID for study in first}) == len(first)
    for study in first:
        assert len({ds.StudyInstanceUID for ds in study}) == 1
    assert all(UID(uid).is_valid for triple in uids for uid in triple)
    other = {sop for _, _, sop in _uids(demo_studies(seed=1))}
    assert other.isdisjoint(sop for _, _, sop in uids)


def test_demo_studies_content() -> None:
    studies = demo_studies()
    modalities = [study[0].Modality for study in studies]
    assert modalities.count("CT") >= 1 and "CR" in modalities and "US" in modalities
    ct = studies[0]
    assert len(ct) >= 32 and ct[0].Rows == 512 and ct[0].PatientID == KIM.patient_id
    by_patient = {study[0].Modality: study[0].PatientID for study in studies[2:]}
    assert by_patient == {"CR": PARK.patient_id, "US": MUELLER.patient_id}
    ct_studies = [s for s in studies if s[0].Modality == "CT" and s[0].PatientID == KIM.patient_id]
    assert len({s[0].StudyDate for s in ct_studies}) == len(ct_studies)  # a prior


def test_demo_uid_is_stable() -> None:
    assert demo_uid("a", 1) == demo_uid("a", 1) != demo_uid("a1")
    assert demo_uid("x").startswith("2.25.") and len(demo_uid("x")) <= 64


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    sizes = [len(to_part10_bytes(ds)) for ds in ct_series(200, patient=KIM)]
    elapsed = time.perf_counter() - start
    assert len(sizes) == 200
    assert elapsed < 10, f"200 slices took {elapsed:.1f} s"


def test_pixels_decode_before_writing() -> None:
    ds = next(ct_series(1, rows=64, columns=48, patient=KIM))
    assert ds.pixel_array.shape == (64, 48)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
