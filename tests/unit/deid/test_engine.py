"""The engine on a synthetic dataset: actions, nesting, options, private tags, marking."""

from __future__ import annotations

import copy

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from connrad.deid.engine import CID7050, Policy, deidentify, mapping_rows
from connrad.deid.profiles import Option

KEY = b"site-secret-for-tests-0123456789"
STUDY_UID = "1.2.3.4.100"
SOP_UID = "1.2.3.4.100.1.1"
FOR_UID = "1.2.3.4.100.9"
CREATOR = "ACME 1.0"


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def make_dataset() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = "1.2.3.4.100.1"
    ds.FrameOfReferenceUID = FOR_UID
    ds.Modality = "CT"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN123"
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19400101"
    ds.PatientAge = "095Y"
    ds.PatientSex = "F"
    ds.StudyDate = "20240301"
    ds.StudyTime = "101010"
    ds.AcquisitionDateTime = "20240301101010.5+0100"
    ds.AccessionNumber = "ACC42"
    ds.InstitutionName = "General Hospital"
    ds.ReferringPhysicianName = "House^Greg"
    ds.StationName = "CT01"
    ds.DeviceSerialNumber = "SN999"
    ds.StudyDescription = "Head with Jane"
    ds.BodyPartExamined = "HEAD"
    ds.Rows = 2
    ds.Columns = 2
    ds.PixelData = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    ds.ReferencedImageSequence = Sequence(
        [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=SOP_UID)]
    )
    ds.SourceImageSequence = Sequence(
        [_item(ReferencedSOPInstanceUID=SOP_UID, StudyInstanceUID=STUDY_UID, StudyDate="20240301")]
    )
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID="OTHER1")])
    ds.ProcedureCodeSequence = Sequence(
        [_item(CodeValue="X", CodingSchemeDesignator="L", CodeMeaning="Jane's scan")]
    )
    ds.private_block(0x0009, CREATOR, create=True).add_new(0x01, "LO", "secret")
    ds.private_block(0x0009, CREATOR).add_new(0x02, "LO", "safe")
    ds.private_block(0x0011, "OTHER", create=True).add_new(0x01, "LO", "x")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    return ds


def run(options: Option = Option.NONE, **policy: object) -> Dataset:
    return deidentify(make_dataset(), Policy(options, **policy), KEY).dataset  # type: ignore[arg-type]


def test_input_is_not_mutated() -> None:
    ds = make_dataset()
    ds.DeidentificationMethod = "earlier"
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    before = copy.deepcopy(ds)
    deidentify(ds, Policy(), KEY)
    assert ds == before
    assert ds.file_meta == before.file_meta


def test_basic_profile_actions() -> None:
    out = run()
    assert out.PatientName.family_name == "ANON"
    assert out.PatientID.startswith("CR")
    assert len(out.PatientID) == 18
    assert out.PatientBirthDate == ""  # Z
    assert "PatientAge" not in out  # X
    assert "IssuerOfPatientID" not in out
    assert out.StudyDate == ""  # Z
    assert out.AccessionNumber == ""
    assert out.InstitutionName == "ANONYMIZED"  # X/Z/D, Type unknown -> D
    assert "StudyDescription" not in out
    assert "BodyPartExamined" not in out
    assert "OtherPatientIDsSequence" not in out
    assert out.Modality == "CT"
    assert out.SOPClassUID == CTImageStorage
    assert out.PixelData == make_dataset().PixelData
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.PatientIdentityRemoved == "YES"


def test_uids_remapped_consistently_in_nested_items() -> None:
    result = deidentify(make_dataset(), Policy(), KEY)
    out = result.dataset
    assert out.SOPInstanceUID != SOP_UID
    assert out.SOPInstanceUID.startswith("2.25.")
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert out.SourceImageSequence[0].StudyInstanceUID == out.StudyInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.preamble == b"\0" * 128
    assert (SOP_UID, out.SOPInstanceUID) in result.uid_pairs
    again = deidentify(make_dataset(), Policy(), KEY).dataset
    assert again.SOPInstanceUID == out.SOPInstanceUID
    other_key = deidentify(make_dataset(), Policy(), b"another-site-key-0123456789abcde").dataset
    assert other_key.SOPInstanceUID != out.SOPInstanceUID


def test_type_of_resolves_compound_actions() -> None:
    types = {0x00080080: "3", 0x00081010: "2"}  # Institution Name, Station Name
    out = deidentify(make_dataset(), Policy(), KEY, type_of=types.get).dataset
    assert "InstitutionName" not in out
    assert out.StationName == ""


def test_private_removed_by_default() -> None:
    out = run()
    assert not any(elem.tag.is_private for elem in out)


def test_retain_safe_private_keeps_only_allow_listed() -> None:
    out = run(Option.RETAIN_SAFE_PRIVATE, safe_private={CREATOR: frozenset({0x02})})
    block = out.private_block(0x0009, CREATOR)
    assert block[0x02].value == "safe"
    assert 0x00091001 not in out
    assert 0x00110010 not in out and 0x00111001 not in out


def test_retain_patient_characteristics_caps_age() -> None:
    out = run(Option.RETAIN_PATIENT_CHARACTERISTICS)
    assert out.PatientAge == "090Y"
    assert out.PatientSex == "F"
    assert out.PatientBirthDate == ""


def test_retain_modified_dates_shifts_by_patient_offset() -> None:
    result = deidentify(make_dataset(), Policy(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES), KEY)
    out = result.dataset
    offset = result.date_offset_days
    assert offset is not None and -365 <= offset <= -1
    assert out.StudyDate != "20240301" and len(out.StudyDate) == 8
    assert out.StudyTime == "101010"
    assert out.AcquisitionDateTime.endswith("101010.5+0100")
    assert out.SourceImageSequence[0].StudyDate == out.StudyDate
    assert out.PatientBirthDate == ""  # the table keeps Z for birth date
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_retain_full_dates_keeps_dates() -> None:
    out = run(Option.RETAIN_LONGITUDINAL_FULL_DATES)
    assert out.StudyDate == "20240301"
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_full_and_modified_dates_exclude_each_other() -> None:
    both = Option.RETAIN_LONGITUDINAL_FULL_DATES | Option.RETAIN_LONGITUDINAL_MODIFIED_DATES
    with pytest.raises(ValueError, match="exclude each other"):
        Policy(both)


def test_retain_device_identity() -> None:
    out = run(Option.RETAIN_DEVICE_IDENTITY)
    assert out.StationName == "CT01"
    assert out.DeviceSerialNumber == "SN999"
    assert run().get("DeviceSerialNumber") != "SN999"


def test_retain_institution_identity() -> None:
    assert run(Option.RETAIN_INSTITUTION_IDENTITY).InstitutionName == "General Hospital"


def test_retain_uids() -> None:
    out = run(Option.RETAIN_UIDS)
    assert out.SOPInstanceUID == SOP_UID
    assert out.FrameOfReferenceUID == FOR_UID
    assert out.file_meta.MediaStorageSOPInstanceUID == SOP_UID


def test_clean_descriptors_replaces_text_with_dummy() -> None:
    out = run(Option.CLEAN_DESCRIPTORS)
    assert out.StudyDescription == "ANONYMIZED"


def test_clean_structured_content_walks_content_sequence() -> None:
    ds = make_dataset()
    ds.ContentSequence = Sequence([_item(TextValue="Jane Doe", ValueType="TEXT")])
    out = deidentify(ds, Policy(Option.CLEAN_STRUCTURED_CONTENT), KEY).dataset
    assert len(out.ContentSequence) == 1
    assert "TextValue" not in out.ContentSequence[0]


def test_clean_graphics_removes_overlay_bitmap_and_cleans_text() -> None:
    ds = make_dataset()
    ds.add_new(0x60003000, "OW", b"\xff" * 8)
    ds.add_new(0x60004000, "LT", "Jane")
    out = deidentify(ds, Policy(Option.CLEAN_GRAPHICS), KEY).dataset
    assert 0x60003000 not in out
    assert out[0x60004000].value == "ANONYMIZED"
    assert 0x60004000 not in run()


def test_codes_appended_to_existing_sequence() -> None:
    ds = make_dataset()
    ds.DeidentificationMethod = "earlier tool"
    ds.DeidentificationMethodCodeSequence = Sequence(
        [_item(CodeValue="113101", CodingSchemeDesignator="DCM", CodeMeaning="Clean Pixel")]
    )
    options = Option.RETAIN_UIDS | Option.CLEAN_DESCRIPTORS
    out = deidentify(ds, Policy(options), KEY).dataset
    values = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert values == ["113101", "113100", "113105", "113110"]
    assert out.DeidentificationMethod[0] == "earlier tool"


def test_every_option_has_a_cid7050_code() -> None:
    options = [o for o in Option if o is not Option.NONE]
    assert set(options) == set(CID7050)
    assert len({code for code, _ in CID7050.values()}) == len(CID7050)


def test_malformed_date_is_removed_and_reported() -> None:
    ds = make_dataset()
    ds.SeriesDate = "2024.03.01"
    result = deidentify(ds, Policy(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES), KEY)
    assert "SeriesDate" not in result.dataset
    assert any("(0008,0021)" in w for w in result.warnings)
    assert not any("2024.03.01" in w for w in result.warnings)


def test_pixel_risk_flags() -> None:
    ds = make_dataset()
    ds.Modality = "US"
    ds.BurnedInAnnotation = "YES"
    result = deidentify(ds, Policy(), KEY)
    assert result.pixel_risk
    assert len(result.pixel_risk_reasons) == 2
    assert not deidentify(make_dataset(), Policy(), KEY).pixel_risk


def test_originals_and_mapping_rows() -> None:
    result = deidentify(make_dataset(), Policy(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES), KEY)
    assert result.originals["PatientID"] == "MRN123"
    assert result.originals["AccessionNumber"] == "ACC42"
    assert result.originals["StudyInstanceUID"] == STUDY_UID
    rows = mapping_rows([result, result])
    assert ("patient_id", "MRN123", result.pseudonym_id) in rows
    assert ("uid", STUDY_UID, result.dataset.StudyInstanceUID) in rows
    assert len(rows) == len(set(rows))
    assert "MRN123" not in repr(result)


def test_empty_key_rejected() -> None:
    with pytest.raises(ValueError, match="key is empty"):
        deidentify(make_dataset(), Policy(), b"")


def test_keys_must_be_site_data_keys() -> None:
    # The engine derives its purpose keys from a 256-bit site data key (the vault's).
    with pytest.raises(ValueError):
        deidentify(make_dataset(), Policy(), b"too-short")
