"""Reads what the index needs from a Part 10 file, and checks that the file is whole.

Values are decoded with the file's SpecificCharacterSet (ISO 2022 IR 149, ISO_IR 192, ...);
the index keeps Unicode. Error messages never quote patient data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from connrad.dicom.names import NameGroups
from connrad.dicom.uids import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    is_known_transfer_syntax,
    is_valid_uid,
)

# Stored data is kept as received; validation of values is QC's job, not the reader's.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

PIXEL_DATA_TAGS = (Tag(0x7FE0, 0x0010), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))
_DEFER = 2048  # values larger than this are not loaded while indexing

_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
)
_TAGS = {keyword: Tag(keyword) for keyword in _KEYWORDS}
# Only what the index needs is kept (the reader still walks, and so checks, every element).
_SPECIFIC_TAGS = [*_TAGS.values(), *PIXEL_DATA_TAGS]


class ParseError(Exception):
    """The file is not a readable, complete DICOM Part 10 instance."""


@dataclass(frozen=True)
class InstanceHeader:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    specific_character_set: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: NameGroups
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician: NameGroups
    modality: str
    series_number: int | None
    series_description: str
    body_part_examined: str
    performed_start_date: str
    performed_start_time: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    bits_allocated: int | None


def read_header(path: Path) -> InstanceHeader:
    return _read(path, _SPECIFIC_TAGS)[0]


def read_instance(path: Path) -> tuple[InstanceHeader, Dataset]:
    """The header and the whole data set (values over 2 KiB deferred, so pixels stay on disk).

    Parsing is lazy: elements are decoded when read, so a caller that looks at a few
    attributes pays for those only. The ingest pipeline's quality checks read the data set.
    """
    return _read(path, None)


def _read(path: Path, tags: list[Any] | None) -> tuple[InstanceHeader, Dataset]:
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER, specific_tags=tags)
    except InvalidDicomError:
        ds = _read_without_preamble(path, tags)
    except Exception as exc:  # pydicom raises many types for malformed input
        raise ParseError(f"unreadable DICOM data ({type(exc).__name__})") from exc
    try:
        transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        if not transfer_syntax or not is_known_transfer_syntax(transfer_syntax):
            raise ParseError("missing or unknown transfer syntax in the file meta")
        if transfer_syntax != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            # In a deflated file, value offsets refer to the inflated stream.
            _check_pixel_extent(ds, path)
        return _header(ds, transfer_syntax), ds
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"undecodable DICOM attributes ({type(exc).__name__})") from exc


def _read_without_preamble(path: Path, tags: list[Any] | None) -> Dataset:
    """Some writers omit the 128-byte preamble but keep the file meta: accept those."""
    with open(path, "rb") as handle:
        starts_with_meta = handle.read(2) == b"\x02\x00"  # group 0002, little endian
    if not starts_with_meta:
        raise ParseError("not a DICOM Part 10 file (no DICM prefix and no file meta)")
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER, force=True, specific_tags=tags)
    except Exception as exc:
        raise ParseError(f"unreadable DICOM data ({type(exc).__name__})") from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        raise ParseError("not a DICOM Part 10 file (file meta has no transfer syntax)")
    return ds


def _header(ds: Dataset, transfer_syntax: str) -> InstanceHeader:
    uids = {
        "SOPClassUID": _text(ds, "SOPClassUID"),
        "SOPInstanceUID": _text(ds, "SOPInstanceUID"),
        "StudyInstanceUID": _text(ds, "StudyInstanceUID"),
        "SeriesInstanceUID": _text(ds, "SeriesInstanceUID"),
    }
    for keyword, value in uids.items():
        if not value:
            raise ParseError(f"{keyword} is missing")
        if not is_valid_uid(value):
            raise ParseError(f"{keyword} is not a valid UID")
    charset = _value(ds, "SpecificCharacterSet") or ""
    if not isinstance(charset, str):
        charset = "\\".join(charset)
    return InstanceHeader(
        sop_class_uid=uids["SOPClassUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        specific_character_set=charset,
        patient_id=_text(ds, "PatientID"),
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID"),
        patient_name=NameGroups.from_value(_value(ds, "PatientName")),
        birth_date=_text(ds, "PatientBirthDate")[:8],
        sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate")[:8],
        study_time=_text(ds, "StudyTime"),
        accession_number=_text(ds, "AccessionNumber"),
        study_id=_text(ds, "StudyID"),
        study_description=_text(ds, "StudyDescription"),
        referring_physician=NameGroups.from_value(_value(ds, "ReferringPhysicianName")),
        modality=_text(ds, "Modality"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        body_part_examined=_text(ds, "BodyPartExamined"),
        performed_start_date=_text(ds, "PerformedProcedureStepStartDate")[:8],
        performed_start_time=_text(ds, "PerformedProcedureStepStartTime"),
        instance_number=_int(ds, "InstanceNumber"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        number_of_frames=_int(ds, "NumberOfFrames"),
        bits_allocated=_int(ds, "BitsAllocated"),
    )


def _value(ds: Dataset, keyword: str) -> Any:
    element = ds.get(_TAGS[keyword])
    return None if element is None else element.value


def _text(ds: Dataset, keyword: str) -> str:
    element = ds.get(_TAGS[keyword])
    value: Any = None if element is None else element.value
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return str(value).strip().replace("\x00", "")


def _int(ds: Dataset, keyword: str) -> int | None:
    element = ds.get(_TAGS[keyword])
    value: Any = None if element is None else element.value
    if value is None or value == "":
        return None
    try:
        if type(value).__name__ == "MultiValue":
            value = value[0]
        return int(value)
    except (TypeError, ValueError):
        return None


def _check_pixel_extent(ds: Dataset, path: Path) -> None:
    """A truncated file is not a complete instance: the pixel value must fit in the file."""
    for tag in PIXEL_DATA_TAGS:
        if tag not in ds._dict:
            continue
        raw = ds._dict[tag]
        length = getattr(raw, "length", None)
        tell = getattr(raw, "value_tell", None)
        if length is None or tell is None or length == 0xFFFFFFFF:
            return
        if tell + length > os.path.getsize(path):
            raise ParseError("pixel data is truncated (shorter than its declared length)")
        return
