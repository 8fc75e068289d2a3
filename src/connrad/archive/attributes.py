"""The indexed attributes: their tag, VR, level and column, in one table.

QIDO-RS matching, includefield and the DICOM JSON of search results all read this table;
adding an indexed attribute means adding a column and a row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement

from connrad.archive.models import Instance, Patient, Series, Study


class Level(StrEnum):
    PATIENT = "patient"
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


class Match(StrEnum):
    TEXT = "text"  # single value or wildcard, case-sensitive
    UID = "uid"  # single value or list
    DATE = "date"  # single value or range
    TIME = "time"
    NAME = "name"  # person name: any component group, case-insensitive, fuzzy
    INT = "int"
    MULTI = "multi"  # a backslash-joined multi-valued column (ModalitiesInStudy)


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: str  # 8 upper-case hex digits, as in DICOM JSON
    vr: str
    level: Level
    match: Match
    columns: tuple[ColumnElement[object], ...]  # three for PN, else one
    default: bool = True  # returned without includefield


def _attr(
    keyword: str, vr: str, level: Level, match: Match, *columns: object, default: bool = True
) -> Attribute:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return Attribute(keyword, f"{tag:08X}", vr, level, match, tuple(columns), default)  # type: ignore[arg-type]


P, S, R, N = Patient.__table__.c, Study.__table__.c, Series.__table__.c, Instance.__table__.c
L, M = Level, Match

ATTRIBUTES: tuple[Attribute, ...] = (
    _attr(
        "PatientName",
        "PN",
        L.PATIENT,
        M.NAME,
        P.name_alphabetic,
        P.name_ideographic,
        P.name_phonetic,
    ),
    _attr("PatientID", "LO", L.PATIENT, M.TEXT, P.patient_id),
    _attr("IssuerOfPatientID", "LO", L.PATIENT, M.TEXT, P.issuer_of_patient_id),
    _attr("PatientBirthDate", "DA", L.PATIENT, M.DATE, P.birth_date),
    _attr("PatientSex", "CS", L.PATIENT, M.TEXT, P.sex),
    _attr("NumberOfPatientRelatedStudies", "IS", L.PATIENT, M.INT, P.num_studies, default=False),
    _attr("StudyInstanceUID", "UI", L.STUDY, M.UID, S.study_uid),
    _attr("StudyDate", "DA", L.STUDY, M.DATE, S.study_date),
    _attr("StudyTime", "TM", L.STUDY, M.TIME, S.study_time),
    _attr("AccessionNumber", "SH", L.STUDY, M.TEXT, S.accession_number),
    _attr("StudyID", "SH", L.STUDY, M.TEXT, S.study_id),
    _attr("StudyDescription", "LO", L.STUDY, M.TEXT, S.study_description),
    _attr(
        "ReferringPhysicianName",
        "PN",
        L.STUDY,
        M.NAME,
        S.referring_physician_alphabetic,
        S.referring_physician_ideographic,
        S.referring_physician_phonetic,
    ),
    _attr("ModalitiesInStudy", "CS", L.STUDY, M.MULTI, S.modalities_in_study),
    _attr("NumberOfStudyRelatedSeries", "IS", L.STUDY, M.INT, S.num_series),
    _attr("NumberOfStudyRelatedInstances", "IS", L.STUDY, M.INT, S.num_instances),
    _attr("SeriesInstanceUID", "UI", L.SERIES, M.UID, R.series_uid),
    _attr("Modality", "CS", L.SERIES, M.TEXT, R.modality),
    _attr("SeriesNumber", "IS", L.SERIES, M.INT, R.series_number),
    _attr("SeriesDescription", "LO", L.SERIES, M.TEXT, R.series_description),
    _attr("BodyPartExamined", "CS", L.SERIES, M.TEXT, R.body_part_examined),
    _attr("PerformedProcedureStepStartDate", "DA", L.SERIES, M.DATE, R.performed_start_date),
    _attr("PerformedProcedureStepStartTime", "TM", L.SERIES, M.TIME, R.performed_start_time),
    _attr("NumberOfSeriesRelatedInstances", "IS", L.SERIES, M.INT, R.num_instances),
    _attr("SOPInstanceUID", "UI", L.INSTANCE, M.UID, N.sop_uid),
    _attr("SOPClassUID", "UI", L.INSTANCE, M.UID, N.sop_class_uid),
    _attr("InstanceNumber", "IS", L.INSTANCE, M.INT, N.instance_number),
    _attr("Rows", "US", L.INSTANCE, M.INT, N.rows),
    _attr("Columns", "US", L.INSTANCE, M.INT, N.columns),
    _attr("BitsAllocated", "US", L.INSTANCE, M.INT, N.bits_allocated),
    _attr("NumberOfFrames", "IS", L.INSTANCE, M.INT, N.number_of_frames),
    _attr(
        "AvailableTransferSyntaxUID", "UI", L.INSTANCE, M.UID, N.transfer_syntax_uid, default=False
    ),
)

BY_KEYWORD = {a.keyword: a for a in ATTRIBUTES}
BY_TAG = {a.tag: a for a in ATTRIBUTES}


class UnknownAttribute(ValueError):
    pass


def resolve(name: str) -> tuple[str, Attribute | None]:
    """Map a keyword or 8-hex-digit tag to (tag, indexed attribute or None)."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        tag = name.upper()
        if keyword_for_tag(int(tag, 16)) == "" and BY_TAG.get(tag) is None:
            # Private or unknown tags are valid keys, just never indexed.
            return tag, None
        return tag, BY_TAG.get(tag)
    number = tag_for_keyword(name)
    if number is None:
        raise UnknownAttribute(f"unknown attribute {name!r}")
    tag = f"{number:08X}"
    return tag, BY_TAG.get(tag)
