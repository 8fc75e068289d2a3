"""Fast checks on synthetic instances: required attributes, UIDs, dates and numbers, charsets.

Every instance is written as a Part 10 file and read back the way the ingest reads it
(``defer_size``), so the checks see stored bytes, not values built in memory.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from connrad.qc import fast
from connrad.qc.fast import FastLimits, fast_checks
from connrad.qc.fast.charset import decodes, encodings_for
from connrad.qc.fast.values import valid_da, valid_ds, valid_dt, valid_is, valid_tm
from connrad.qc.findings import Finding, Severity
from tests.factories import make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on invalid values

COMPLETE_CT = {
    "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.1",
    "PositionReferenceIndicator": "",
    "Manufacturer": "connrad",
    "PixelSpacing": [0.5, 0.5],
    "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
    "ImagePositionPatient": [0, 0, 0],
    "SliceThickness": "1",
    "RescaleIntercept": "-1024",
    "RescaleSlope": "1",
    "AcquisitionNumber": "1",
}


def complete_ct(**attributes: Any) -> Dataset:
    """An 8x8 CT instance with every Type 1 and Type 2 attribute its IOD requires."""
    return make_dataset(**{**COMPLETE_CT, **attributes})


def write(tmp_path: Path, ds: Dataset, name: str = "instance.dcm") -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path = tmp_path / name
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def patch_value(path: Path, tag: int, value: bytes) -> None:
    """Overwrite an explicit-VR element's stored value with bytes of the same length."""
    data = path.read_bytes()
    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    at = data.rindex(header)
    length = struct.unpack_from("<H", data, at + 6)[0]
    assert len(value) == length, (len(value), length)
    path.write_bytes(data[: at + 8] + value + data[at + 8 + length :])


def check_file(path: Path, limits: FastLimits = FastLimits()) -> list[Finding]:
    ds = pydicom.dcmread(path, defer_size=1024)  # longer values stay in the file, unread
    return fast_checks(ds, transfer_syntax_uid=ExplicitVRLittleEndian, path=path, limits=limits)


def check(tmp_path: Path, ds: Dataset, limits: FastLimits = FastLimits()) -> list[Finding]:
    return check_file(write(tmp_path, ds), limits)


def codes(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.code, f.severity.value, f.attribute) for f in findings}


# --- a clean instance ------------------------------------------------------------------------


def test_a_complete_instance_has_no_finding(tmp_path: Path) -> None:
    assert check(tmp_path, complete_ct()) == []


def test_the_dataset_is_not_converted_nor_its_pixels_read(tmp_path: Path) -> None:
    ds = pydicom.dcmread(write(tmp_path, complete_ct()), defer_size=64)  # Pixel Data: 128 B
    fast_checks(ds, transfer_syntax_uid=ExplicitVRLittleEndian)
    pixels = ds.get_item(0x7FE00010, keep_deferred=True)
    assert type(pixels).__name__ == "RawDataElement" and pixels.value is None


# --- required attributes ---------------------------------------------------------------------


def test_missing_critical_type_1_fails(tmp_path: Path) -> None:
    ds = complete_ct()
    del ds.Modality
    findings = check(tmp_path, ds)
    assert codes(findings) == {("attribute.type1-missing", "fail", "Modality")}
    assert findings[0].data == {"module": "General Series"}


def test_empty_critical_type_1_fails(tmp_path: Path) -> None:
    assert codes(check(tmp_path, complete_ct(Modality=""))) == {
        ("attribute.type1-empty", "fail", "Modality")
    }


def test_missing_minor_type_1_warns(tmp_path: Path) -> None:
    ds = complete_ct()
    del ds.ImageType
    assert codes(check(tmp_path, ds)) == {("attribute.type1-missing", "warn", "ImageType")}


def test_missing_type_2_warns_unless_turned_off(tmp_path: Path) -> None:
    ds = complete_ct()
    del ds.PatientID
    assert codes(check(tmp_path, ds)) == {("attribute.type2-missing", "warn", "PatientID")}
    quiet = FastLimits(type2_missing_warns=False)
    assert check_file(tmp_path / "instance.dcm", quiet) == []


def test_empty_type_2_is_fine(tmp_path: Path) -> None:
    assert check(tmp_path, complete_ct(PatientID="", PatientBirthDate="")) == []


def test_unknown_sop_class_warns_and_still_needs_the_identifying_uids(tmp_path: Path) -> None:
    ds = complete_ct(SOPClassUID="1.2.826.0.1.3680043.8.498.99")
    del ds.PatientID  # Type 2 of CT: not checked for an IOD the tables do not know
    del ds.SeriesInstanceUID
    findings = check(tmp_path, ds)
    assert codes(findings) == {
        ("iod.unknown-sop-class", "warn", "SOPClassUID"),
        ("attribute.type1-missing", "fail", "SeriesInstanceUID"),
    }
    unknown = next(f for f in findings if f.code == "iod.unknown-sop-class")
    assert unknown.data["sop_class_uid"] == "1.2.826.0.1.3680043.8.498.99"


def test_sop_class_from_the_file_meta_when_the_data_set_lacks_it(tmp_path: Path) -> None:
    ds = complete_ct()
    path = write(tmp_path, ds)  # the meta keeps the CT SOP Class
    del ds.SOPClassUID
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    assert codes(check_file(path)) == {("attribute.type1-missing", "fail", "SOPClassUID")}


# --- UIDs ------------------------------------------------------------------------------------


def test_bad_key_uid_fails_without_quoting_it(tmp_path: Path) -> None:
    findings = check(tmp_path, complete_ct(SOPInstanceUID="1.2.03.4"))
    assert codes(findings) == {
        ("uid.invalid", "warn", "MediaStorageSOPInstanceUID"),  # the file meta copies it
        ("uid.invalid", "fail", "SOPInstanceUID"),
    }
    assert all(f.data["reason"] == "leading-zero" for f in findings)
    assert all("1.2.03.4" not in f.message for f in findings)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1." + "2" * 63, "too-long"),
        ("1.2.840.a", "characters"),
        ("1..2", "empty-component"),
        ("1.2.", "empty-component"),
    ],
)
def test_uid_defects_are_named(tmp_path: Path, value: str, reason: str) -> None:
    findings = check(tmp_path, complete_ct(StudyInstanceUID=value))
    assert [(f.code, f.severity, f.data["reason"]) for f in findings] == [
        ("uid.invalid", Severity.FAIL, reason)
    ]


def test_bad_uid_in_a_sequence_warns_with_its_path(tmp_path: Path) -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.04"
    findings = check(tmp_path, complete_ct(ReferencedImageSequence=Sequence([item])))
    assert codes(findings) == {("uid.invalid", "warn", "ReferencedSOPInstanceUID")}
    assert findings[0].data["path"] == "ReferencedImageSequence[0].ReferencedSOPInstanceUID"


# --- dates, times, numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "value", "code"),
    [
        ("StudyDate", "20260230", "value.bad-date"),
        ("StudyDate", "2026.01.01", "value.bad-date"),
        ("StudyDate", "20260101-20260102", "value.bad-date"),
        ("StudyTime", "251500", "value.bad-time"),
        ("StudyTime", "10:15:00", "value.bad-time"),
        ("AcquisitionDateTime", "20260101101500+1500", "value.bad-datetime"),
        ("SeriesNumber", "1A", "value.bad-number"),
        ("SliceThickness", "thin", "value.bad-number"),
    ],
)
def test_malformed_values_warn(tmp_path: Path, keyword: str, value: str, code: str) -> None:
    ds = complete_ct()
    ds.add_new(keyword, pydicom.datadict.dictionary_VR(keyword), "0" * len(value))
    path = write(tmp_path, ds)
    padded = value.encode() + b" " * (len(value) % 2)
    patch_value(path, pydicom.datadict.tag_for_keyword(keyword), padded)
    findings = check_file(path)
    assert codes(findings) == {(code, "warn", keyword)}
    assert value not in findings[0].message


def test_bad_date_inside_a_sequence_warns(tmp_path: Path) -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.InstanceCreationDate = "20261301"
    findings = check(tmp_path, complete_ct(ReferencedImageSequence=Sequence([item])))
    assert codes(findings) == {("value.bad-date", "warn", "InstanceCreationDate")}
    assert findings[0].data["path"] == "ReferencedImageSequence[0].InstanceCreationDate"


@pytest.mark.parametrize(
    ("valid", "value", "expected"),
    [
        (valid_da, b"20240229", True),
        (valid_da, b"20230229", False),
        (valid_da, b"00000000", False),
        (valid_tm, b"23", True),
        (valid_tm, b"2359", True),
        (valid_tm, b"235960.123456", True),
        (valid_tm, b"235960.1234567", False),
        (valid_tm, b"2360", False),
        (valid_dt, b"2026", True),
        (valid_dt, b"20260101101500.5-0500", True),
        (valid_dt, b"20260101+1400", True),
        (valid_dt, b"20260101-1300", False),
        (valid_dt, b"2026013", False),
        (valid_is, b"-2147483648", True),
        (valid_is, b"2147483648", False),
        (valid_is, b"+12", True),
        (valid_is, b"1.0", False),
        (valid_ds, b"-1.5e-3", True),
        (valid_ds, b".5", True),
        (valid_ds, b"5.", True),
        (valid_ds, b"nan", False),
        (valid_ds, b"1,5", False),
    ],
)
def test_value_rules(valid: Any, value: bytes, expected: bool) -> None:
    assert valid(value) is expected


# --- character sets --------------------------------------------------------------------------


def test_unknown_charset_term_warns(tmp_path: Path) -> None:
    findings = check(tmp_path, complete_ct(SpecificCharacterSet="ISO_IR 999"))
    assert codes(findings) == {("charset.unknown", "warn", "SpecificCharacterSet")}


def test_code_extensions_with_a_stand_alone_term_warn(tmp_path: Path) -> None:
    charset = ["ISO_IR 192", "ISO 2022 IR 87"]
    findings = check(tmp_path, complete_ct(SpecificCharacterSet=charset))
    assert codes(findings) == {("charset.invalid-extension", "warn", "SpecificCharacterSet")}


def test_text_that_does_not_decode_warns_without_quoting_it(tmp_path: Path) -> None:
    ds = complete_ct(SpecificCharacterSet="ISO_IR 192", PatientName=b"Doe^J\xe9r\xf4me")
    findings = check(tmp_path, ds)
    assert codes(findings) == {("charset.undecodable", "warn", "PatientName")}
    assert "Doe" not in findings[0].message and findings[0].data["charset_declared"]


def test_text_the_reader_already_decoded_is_still_judged(tmp_path: Path) -> None:
    ds = complete_ct(
        SpecificCharacterSet="ISO_IR 192",
        PatientName=b"Doe^J\xe9r\xf4me",
        StudyDescription=b"T\xeate",
    )
    read = pydicom.dcmread(write(tmp_path, ds), defer_size=1024)
    assert str(read.PatientName) and "\ufffd" in read.StudyDescription  # decoded, leniently
    findings = fast_checks(read, transfer_syntax_uid=ExplicitVRLittleEndian)
    assert codes(findings) == {
        ("charset.undecodable", "warn", "PatientName"),
        ("charset.undecodable", "warn", "StudyDescription"),
    }


def test_non_ascii_text_without_a_charset_warns(tmp_path: Path) -> None:
    findings = check(tmp_path, complete_ct(StudyDescription=b"T\xeate"))
    assert codes(findings) == {("charset.undecodable", "warn", "StudyDescription")}
    assert findings[0].data["charset_declared"] is False


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("ISO_IR 192", "Wang^XiaoDong=王^小東".encode()),
        ("ISO_IR 100", b"Buc^J\xe9r\xf4me"),
        ("GB18030", "Wang^XiaoDong=王^小东".encode("gb18030")),
        (
            ["", "ISO 2022 IR 149"],
            b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7="
            b"\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf",
        ),
        (
            ["ISO 2022 IR 13", "ISO 2022 IR 87"],
            b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J="
            b"\x1b$B$d$^$@\x1b(J^\x1b$B$?$m$&\x1b(J",
        ),
    ],
)
def test_text_in_its_declared_charset_passes(tmp_path: Path, charset: Any, name: bytes) -> None:
    assert check(tmp_path, complete_ct(SpecificCharacterSet=charset, PatientName=name)) == []


def test_an_item_may_declare_its_own_charset(tmp_path: Path) -> None:
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 100"
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.add_new("PatientName", "PN", b"Buc^J\xe9r\xf4me")  # Latin-1, fine in the item
    ds = complete_ct(ReferencedImageSequence=Sequence([item]))
    assert check(tmp_path, ds) == []


def test_strict_decoding_rules() -> None:
    korean = encodings_for(("", "ISO 2022 IR 149"))
    assert korean is not None
    assert decodes(b"\x1b$)C\xfb\xf3^Hong", korean, frozenset({0x5E}))
    assert not decodes(b"\x1b$B;3ED", korean, frozenset({0x5E}))  # JIS X 0208 undeclared
    assert not decodes(b"\x1b%Zabc", korean, frozenset())  # unknown escape
    ascii_only = encodings_for(())
    assert ascii_only is not None and not decodes(b"\xe9", ascii_only, frozenset())
    assert encodings_for(("ISO_IR 999",)) is None


# --- robustness ------------------------------------------------------------------------------


def test_a_broken_check_becomes_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(fast, "check_uids", broken)
    ds = complete_ct()
    del ds.Modality
    findings = check(tmp_path, ds)
    assert codes(findings) == {
        ("parse.undecodable", "fail", ""),
        ("attribute.type1-missing", "fail", "Modality"),
    }
    assert next(f for f in findings if f.code == "parse.undecodable").data == {
        "check": "uids",
        "error": "RuntimeError",
    }


def test_an_empty_data_set_gets_findings_not_an_exception() -> None:
    findings = fast_checks(Dataset(), transfer_syntax_uid="")
    assert ("attribute.type1-missing", "fail", "SOPInstanceUID") in codes(findings)


def test_findings_of_one_code_are_capped(tmp_path: Path) -> None:
    items = []
    for index in range(25):
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = f"1.2.0{index}"
        items.append(item)
    findings = check(tmp_path, complete_ct(ReferencedImageSequence=Sequence(items)))
    assert len(findings) == 10
    assert findings[-1].data["more"] == 15 and "15 more" in findings[-1].message
    assert len(check_file(tmp_path / "instance.dcm", FastLimits(max_findings_per_code=0))) == 25
