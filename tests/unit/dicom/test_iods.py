"""IOD Type tables: spot checks against PS3.3, data integrity, and real files from ../shared."""

from __future__ import annotations

import csv
import json
import warnings
from importlib import resources
from pathlib import Path

import pydicom
import pytest
from pydicom import uid
from pydicom.datadict import RepeatersDictionary, tag_for_keyword
from pydicom.tag import BaseTag, Tag

from connrad.deid.profiles import Action, resolve_compound
from connrad.dicom.iods import (
    TYPES,
    attribute_type,
    iod_for,
    iod_name,
    known_sop_classes,
    modules,
    required_attributes,
    tag_for,
    type_of_for,
)
from tests.unit.dicom.conftest import ABSENT

CT = uid.CTImageStorage
MR = uid.MRImageStorage
SEG = uid.SegmentationStorage
SR = uid.ComprehensiveSRStorage
SC = uid.SecondaryCaptureImageStorage
RTSTRUCT = uid.RTStructureSetStorage


def t(keyword: str) -> BaseTag:
    found = tag_for_keyword(keyword)
    assert found is not None, keyword
    return Tag(found)


@pytest.mark.parametrize(
    ("sop_class", "keyword", "expected"),
    [
        # CT Image IOD: Image Plane is mandatory; CT Image tightens General Image's Image Type.
        (CT, "KVP", "2C"),  # 2C since Supplement 188 (required unless multi-energy)
        (CT, "ImagePositionPatient", "1"),
        (CT, "ImageOrientationPatient", "1"),
        (CT, "PixelSpacing", "1"),
        (CT, "SliceThickness", "2"),
        (CT, "ImageType", "1"),
        (CT, "RescaleIntercept", "1"),
        (CT, "AcquisitionNumber", "2"),
        (CT, "PatientName", "2"),
        (CT, "PatientID", "2"),
        (CT, "PatientBirthDate", "2"),
        (CT, "StudyDate", "2"),
        (CT, "AccessionNumber", "2"),
        (CT, "ReferringPhysicianName", "2"),
        (CT, "SeriesInstanceUID", "1"),
        (CT, "Laterality", "2C"),
        (CT, "Manufacturer", "2"),
        (CT, "InstitutionName", "3"),
        (CT, "SOPInstanceUID", "1"),
        (CT, "ClinicalTrialSponsorName", "1"),  # in the user-optional Clinical Trial Subject
        (CT, "ContentCreatorName", None),
        (MR, "ScanningSequence", "1"),
        (MR, "EchoTime", "2"),
        (MR, "RepetitionTime", "2C"),
        # Segmentation: Content Identification Macro, Segmentation Series, Enhanced Equipment.
        (SEG, "ContentCreatorName", "2"),
        (SEG, "ContentLabel", "1"),
        (SEG, "ContentDescription", "2"),
        (SEG, "SegmentSequence", "1"),
        (SEG, "SeriesNumber", "1"),
        (SEG, "InstanceNumber", "1"),
        (SEG, "Manufacturer", "1"),
        (SEG, "SharedFunctionalGroupsSequence", "1"),
        (SEG, "PerFrameFunctionalGroupsSequence", "1C"),
        # SR has no Content Identification Macro.
        (SR, "ContentCreatorName", None),
        (SR, "CompletionFlag", "1"),
        (SR, "VerificationFlag", "1"),
        (SR, "SeriesNumber", "1"),
        (SR, "ContentDate", "1"),
        (SR, "PerformedProcedureCodeSequence", "2"),
        (SR, "ImageType", None),
        (uid.PositronEmissionTomographyImageStorage, "SeriesDate", "1"),
        (uid.PositronEmissionTomographyImageStorage, "DecayCorrection", "1"),
        (uid.DigitalXRayImageStorageForPresentation, "PresentationIntentType", "1"),
        (uid.DigitalXRayImageStorageForPresentation, "ImagerPixelSpacing", "1"),
        (uid.DigitalMammographyXRayImageStorageForPresentation, "ViewCodeSequence", "1"),
        (uid.UltrasoundImageStorage, "ImageType", "2"),
        (uid.XRayAngiographicImageStorage, "KVP", "2"),
        (SC, "ConversionType", "1"),
        (SC, "Modality", "3"),  # SC Equipment overrides General Series (Type 1)
        (uid.MultiFrameTrueColorSecondaryCaptureImageStorage, "Modality", "3"),
        (uid.EncapsulatedPDFStorage, "Modality", "1"),  # no General Series to override
        (RTSTRUCT, "StructureSetLabel", "1"),
        (RTSTRUCT, "OperatorsName", "2"),
        (uid.RTDoseStorage, "DoseUnits", "1"),
        (uid.RTPlanStorage, "RTPlanGeometry", "1"),
        (uid.EncapsulatedPDFStorage, "MIMETypeOfEncapsulatedDocument", "1"),
        (uid.EncapsulatedPDFStorage, "DocumentTitle", "2"),
    ],
)
def test_attribute_type_matches_ps3_3(sop_class: str, keyword: str, expected: str | None) -> None:
    assert attribute_type(sop_class, t(keyword)) == expected


@pytest.mark.parametrize(
    ("sop_class", "path", "keyword", "expected"),
    [
        (SEG, ("SegmentSequence",), "SegmentLabel", "1"),
        (SEG, ("SegmentSequence",), "SegmentDescription", "3"),
        (SEG, ("SegmentSequence", "SegmentedPropertyCategoryCodeSequence"), "CodeMeaning", "1"),
        (
            SEG,
            ("SharedFunctionalGroupsSequence", "DerivationImageSequence", "SourceImageSequence"),
            "ReferencedSOPInstanceUID",
            "1",
        ),
        (
            SEG,
            ("PerFrameFunctionalGroupsSequence", "PlanePositionSequence"),
            "ImagePositionPatient",
            "1",
        ),
        (
            RTSTRUCT,
            (
                "ReferencedFrameOfReferenceSequence",
                "RTReferencedStudySequence",
                "RTReferencedSeriesSequence",
                "ContourImageSequence",
            ),
            "ReferencedSOPInstanceUID",
            "1",
        ),
        (RTSTRUCT, ("ROIContourSequence", "ContourSequence"), "ContourData", "1"),
        (CT, ("ReferencedPerformedProcedureStepSequence",), "ReferencedSOPClassUID", "1"),
        (CT, ("OtherPatientIDsSequence",), "PatientID", "1"),  # Type 2 at the top level
        (SR, ("VerifyingObserverSequence",), "VerifyingObserverName", "1"),
        (CT, ("OtherPatientIDsSequence",), "PatientName", None),
        (CT, ("PatientName",), "PatientID", None),  # not a sequence
        (CT, ("SegmentSequence",), "SegmentLabel", None),  # not in the CT IOD
    ],
)
def test_attribute_type_inside_sequences(
    sop_class: str, path: tuple[str, ...], keyword: str, expected: str | None
) -> None:
    steps = tuple(t(step) for step in path)
    assert attribute_type(sop_class, t(keyword), path=steps) == expected


def test_strongest_type_wins_across_modules() -> None:
    """General Image lists Image Type as 3; CT Image specializes it to 1."""
    assert modules()["General Image"][t("ImageType")].type == "3"
    assert modules()["CT Image"][t("ImageType")].type == "1"
    assert attribute_type(CT, t("ImageType")) == "1"
    # General Series says Series Number 2; Segmentation Series tightens it to 1.
    assert attribute_type(uid.SegmentationStorage, t("SeriesNumber")) == "1"


def test_unknown_iod_or_attribute_gives_none() -> None:
    assert attribute_type("1.2.3.4", t("PatientName")) is None
    assert attribute_type(uid.RTIonPlanStorage, t("PatientName")) is None
    assert attribute_type(CT, 0x00091010) is None  # private
    assert iod_name("1.2.3.4") is None
    assert iod_for("1.2.3.4") is None
    assert required_attributes("1.2.3.4") == []


def test_overlay_groups_fold_onto_6000() -> None:
    assert attribute_type(MR, 0x60000010) == "1"
    assert attribute_type(MR, 0x60020010) == "1"
    assert attribute_type(MR, 0x601E3000) == "1C"


def test_type_of_for_maps_conditional_types_for_the_engine() -> None:
    type_of = type_of_for(CT)
    assert type_of(t("KVP")) == "2"  # 2C
    assert type_of(t("PixelPaddingValue")) == "1"  # 1C
    assert type_of(t("PatientName")) == "2"
    assert type_of(t("InstitutionName")) == "3"
    assert type_of(t("ContentCreatorName")) is None
    assert type_of_for("1.2.3.4")(t("PatientName")) is None
    # The shapes resolve_compound expects: Z/D on a Type 2 attribute empties it, X/Z on a
    # Type 3 attribute removes it, and an unknown Type falls back to the safe default.
    assert resolve_compound(Action.Z_OR_D, type_of(t("PatientName"))) is Action.EMPTY
    assert resolve_compound(Action.X_OR_Z, type_of(t("InstitutionName"))) is Action.REMOVE
    assert resolve_compound(Action.X_Z_OR_D, type_of(t("StudyInstanceUID"))) is Action.DUMMY


def test_required_attributes_of_ct() -> None:
    required = {r.keyword: r for r in required_attributes(CT)}
    assert required["ImagePositionPatient"].type == "1"
    assert required["ImagePositionPatient"].module == "Image Plane"
    assert required["ImagePositionPatient"].tag == Tag(0x0020, 0x0032)
    assert required["PatientName"].type == "2"
    assert required["AccessionNumber"].type == "2"
    assert required["SeriesInstanceUID"].type == "1"
    assert required["ImageType"].module == "CT Image"
    assert "KVP" not in required  # conditional
    assert "ContrastBolusAgent" not in required  # Contrast/Bolus is a conditional module
    assert "InstitutionName" not in required  # Type 3


def test_required_attributes_respect_module_usage() -> None:
    sc = {r.keyword: r for r in required_attributes(SC)}
    assert "Manufacturer" not in sc  # General Equipment is user-optional in the SC IOD
    assert "Modality" not in sc  # Type 3 by SC Equipment's override
    assert sc["ConversionType"].type == "1"
    seg = {r.keyword: r for r in required_attributes(SEG)}
    assert seg["SeriesNumber"].type == "1"
    assert seg["SeriesNumber"].module == "Segmentation Series"
    assert seg["ContentCreatorName"].type == "2"


@pytest.mark.parametrize("sop_class", sorted(known_sop_classes()))
def test_required_attributes_are_unique_type_1_or_2(sop_class: str) -> None:
    required = required_attributes(sop_class)
    assert required, sop_class
    assert all(r.type in ("1", "2") for r in required)
    assert len({r.tag for r in required}) == len(required)
    keywords = {r.keyword for r in required}
    assert {"SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"} <= keywords


# --- data integrity ------------------------------------------------------------------------


def _data(name: str) -> str:
    return resources.files("connrad.dicom.iods").joinpath("data", name).read_text("utf-8")


def _csv_rows(name: str) -> list[list[str]]:
    lines = [line for line in _data(name).splitlines() if not line.startswith("#")]
    return list(csv.reader(lines))[1:]


_REPEATER_KEYWORDS = {entry[4] for entry in RepeatersDictionary.values()}


@pytest.mark.parametrize("name", ["modules.csv", "macros.csv"])
def test_every_keyword_and_type_is_real(name: str) -> None:
    rows = _csv_rows(name)
    assert rows
    for table, attribute, type_, *overrides in rows:
        assert all(module in modules() for module in overrides if module), (table, attribute)
        text = attribute.lstrip(">")
        if text.startswith("include:"):
            assert type_ == "", (table, attribute)
            continue
        known = tag_for_keyword(text) is not None or text in _REPEATER_KEYWORDS
        assert known, f"{table}: {text} is not a pydicom keyword"
        assert type_ in TYPES, (table, text, type_)


def test_every_sop_class_is_a_known_storage_uid() -> None:
    document = json.loads(_data("iods.json"))
    assert set(document["sop_classes"]) == known_sop_classes()
    for value in document["sop_classes"]:
        assert uid.UID(value).is_valid, value
        assert value in uid.UID_dictionary, value
        assert "Storage" in uid.UID_dictionary[value][0], value


def test_every_module_an_iod_names_exists() -> None:
    document = json.loads(_data("iods.json"))
    for name, entry in document["iods"].items():
        for module, usage in entry["modules"]:
            assert module in modules(), (name, module)
            assert usage in ("M", "C", "U"), (name, module, usage)
        mandatory = {module for module, usage in entry["modules"] if usage == "M"}
        assert {"Patient", "General Study", "SOP Common"} <= mandatory, name
        for module in entry["not_modelled"]:
            assert module not in modules(), (name, module)


def test_brief_coverage() -> None:
    wanted = {
        uid.CTImageStorage,
        uid.EnhancedCTImageStorage,
        uid.MRImageStorage,
        uid.EnhancedMRImageStorage,
        uid.ComputedRadiographyImageStorage,
        uid.DigitalXRayImageStorageForPresentation,
        uid.DigitalXRayImageStorageForProcessing,
        uid.DigitalMammographyXRayImageStorageForPresentation,
        uid.DigitalMammographyXRayImageStorageForProcessing,
        uid.UltrasoundImageStorage,
        uid.UltrasoundMultiFrameImageStorage,
        uid.XRayAngiographicImageStorage,
        uid.XRayRadiofluoroscopicImageStorage,
        uid.NuclearMedicineImageStorage,
        uid.PositronEmissionTomographyImageStorage,
        uid.SecondaryCaptureImageStorage,
        uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
        uid.BasicTextSRStorage,
        uid.EnhancedSRStorage,
        uid.ComprehensiveSRStorage,
        uid.XRayRadiationDoseSRStorage,
        uid.SegmentationStorage,
        uid.RTStructureSetStorage,
        uid.RTDoseStorage,
        uid.RTPlanStorage,
        uid.EncapsulatedPDFStorage,
    }
    assert wanted <= known_sop_classes()
    assert iod_name(uid.DigitalXRayImageStorageForProcessing) == "Digital X-Ray Image"


# --- real files ------------------------------------------------------------------------------


def _missing_type_1(path: Path) -> tuple[str, list[str], int] | None:
    """(SOP Class, Type 1 keywords absent or empty, Type 1 count); None if the IOD is unknown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in known_sop_classes():
        return None
    type_1 = [r for r in required_attributes(sop_class) if r.type == "1"]
    missing = [r.keyword for r in type_1 if r.tag not in ds or ds[r.tag].is_empty]
    return sop_class, missing, len(type_1)


def test_real_files_have_their_type_1_attributes(public: Path, any_file: str) -> None:
    """Files from real devices and toolkits mostly carry what their IOD requires.

    A handful of test files are deliberately stripped (no Study/Series UIDs) or come from
    devices that omit PET Series Date/Time, so the bar is "mostly"; the clean Philips CT
    series must be complete.
    """
    if any_file == ABSENT:
        pytest.skip("../shared/dicom-data/public/MANIFEST.tsv lists no files")
    found = _missing_type_1(public / any_file)
    if found is None:
        # An IOD the tables do not describe: the lookups answer "unknown", never guess.
        ds = pydicom.dcmread(public / any_file, force=True, stop_before_pixels=True)
        sop_class = str(ds.get("SOPClassUID", ""))
        assert iod_name(sop_class) is None
        assert required_attributes(sop_class) == []
        assert type_of_for(sop_class)(Tag(0x0010, 0x0010)) is None
        return
    sop_class, missing, count = found
    if any_file.startswith("ct_series_philips_head_1mm/"):
        assert missing == [], f"{any_file} ({sop_class}) lacks Type 1 {missing}"
    assert len(missing) <= count * 0.4, f"{any_file} ({sop_class}) lacks Type 1 {missing}"


def test_tag_for_rejects_unknown_keywords() -> None:
    assert tag_for("PatientName") == 0x00100010
    assert tag_for("OverlayRows") == 0x60000010
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        tag_for("PatientNmae")
