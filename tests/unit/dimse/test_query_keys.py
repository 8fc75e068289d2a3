"""Q/R identifiers against the two information models: levels, unique keys, returned keys."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from connrad.archive.attributes import Level
from connrad.dimse.query_keys import (
    IdentifierError,
    Root,
    distinct_patients,
    parse_find,
    parse_retrieve,
    response,
)


def identifier(**keys: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


# (model, keys, refused): hierarchical unique keys above the level, one value each
LEVELS = [
    (Root.PATIENT, {"QueryRetrieveLevel": "PATIENT"}, False),
    (Root.STUDY, {"QueryRetrieveLevel": "PATIENT"}, True),  # no patients in Study Root
    (Root.STUDY, {"PatientName": "*"}, True),  # no level
    (Root.STUDY, {"QueryRetrieveLevel": "FRAME"}, True),
    (Root.STUDY, {"QueryRetrieveLevel": "study "}, False),  # padding and case forgiven
    (Root.PATIENT, {"QueryRetrieveLevel": "STUDY"}, True),
    (Root.PATIENT, {"QueryRetrieveLevel": "STUDY", "PatientID": "P1"}, False),
    (Root.PATIENT, {"QueryRetrieveLevel": "STUDY", "PatientID": "P*"}, True),
    (Root.STUDY, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": ""}, True),
    (Root.STUDY, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2\\1.3"}, True),
    (Root.STUDY, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2"}, False),
    (Root.STUDY, {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": "1.2"}, True),
    (
        Root.STUDY,
        {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.3"},
        False,
    ),
]


@pytest.mark.parametrize(("root", "keys", "refused"), LEVELS)
def test_levels_and_unique_keys_above_them(root: Root, keys: dict[str, str], refused: bool) -> None:
    if refused:
        with pytest.raises(IdentifierError) as caught:
            parse_find(identifier(**keys), root)
        assert caught.value.status == 0xA900
    else:
        parse_find(identifier(**keys), root)


def test_keys_below_the_level_are_returned_but_not_matched() -> None:
    request = parse_find(
        identifier(
            QueryRetrieveLevel="STUDY",
            PatientName="Hong*",
            StudyDate="20260101-20260131",
            Modality="CT",  # a series key: some SCUs send it with studies
            StudyInstanceUID="",
            ReferencedStudySequence=[],  # not indexed: returned empty
        ),
        Root.STUDY,
    )
    assert request.level is Level.STUDY
    assert request.params == [
        ("00080020", "20260101-20260131"),
        ("00100010", "Hong*"),
        ("0020000D", ""),
    ]
    assert request.keywords == ["PatientName", "StudyDate"]
    assert [f"{tag:08X}" for tag, _ in request.requested] == [
        "00080020", "00080060", "00081110", "00100010", "0020000D",
    ]  # fmt: skip


def test_a_response_holds_exactly_the_requested_keys() -> None:
    request = parse_find(
        identifier(
            QueryRetrieveLevel="STUDY",
            PatientName="",
            StudyInstanceUID="",
            Modality="",
            ReferencedStudySequence=[],
        ),
        Root.STUDY,
    )
    match = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Hong^Gildong", "Phonetic": "홍^길동"}]},
        "00100020": {"vr": "LO", "Value": ["P1"]},  # returned by the engine, not requested
        "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
        "00081190": {"vr": "UR", "Value": ["studies/1.2.3"]},
    }
    ds = response(request, match, "CONNRAD")
    assert set(ds.dir()) == {
        "Modality", "PatientName", "QueryRetrieveLevel", "ReferencedStudySequence",
        "RetrieveAETitle", "SpecificCharacterSet", "StudyInstanceUID",
    }  # fmt: skip
    assert str(ds.PatientName) == "Hong^Gildong==홍^길동"
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.Modality is None or ds.Modality == ""
    assert len(ds.ReferencedStudySequence) == 0
    ascii_only = response(request, {"0020000D": match["0020000D"]}, "CONNRAD")
    assert "SpecificCharacterSet" not in ascii_only


def test_patients_found_through_their_studies_come_once() -> None:
    patient = {"00100020": {"vr": "LO", "Value": ["P1"]}}
    rows = [
        {**patient, "0020000D": {"vr": "UI", "Value": ["1.1"]}},
        {**patient, "0020000D": {"vr": "UI", "Value": ["1.2"]}},
        {"00100020": {"vr": "LO", "Value": ["P2"]}, "0020000D": {"vr": "UI", "Value": ["1.3"]}},
    ]
    assert [r["0020000D"]["Value"] for r in distinct_patients(rows)] == [["1.1"], ["1.3"]]


@pytest.mark.parametrize(
    ("root", "keys", "expected"),
    [
        (Root.PATIENT, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"}, ("P1", [], [], [])),
        (
            Root.STUDY,
            {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ["1.1", "1.2"]},
            (None, ["1.1", "1.2"], [], []),
        ),
        (
            Root.PATIENT,
            {
                "QueryRetrieveLevel": "IMAGE",
                "PatientID": "P1",
                "StudyInstanceUID": "1.1",
                "SeriesInstanceUID": "1.1.1",
                "SOPInstanceUID": ["1.1.1.1", "1.1.1.2"],
            },
            ("P1", ["1.1"], ["1.1.1"], ["1.1.1.1", "1.1.1.2"]),
        ),
    ],
)
def test_what_a_retrieve_names(root: Root, keys: dict[str, Any], expected: tuple[Any, ...]) -> None:
    request = parse_retrieve(identifier(**keys), root)
    named = (request.patient_id, request.study_uids, request.series_uids, request.sop_uids)
    assert named == expected


@pytest.mark.parametrize(
    "keys",
    [
        {"QueryRetrieveLevel": "STUDY"},  # nothing named
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.*"},
        {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "1.2.3"},  # which study?
    ],
)
def test_retrieves_name_by_unique_keys_only(keys: dict[str, str]) -> None:
    with pytest.raises(IdentifierError):
        parse_retrieve(identifier(**keys), Root.STUDY)
