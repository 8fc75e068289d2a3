"""QIDO-RS matching, Korean names in both character sets, includefield, paging and order."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.valuerep import PersonName

from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes

IR149 = ["", "ISO 2022 IR 149"]


def store(client: TestClient, *datasets: Any) -> None:
    response = client.post(
        "/dicomweb/studies",
        content=stow_body(*map(to_bytes, datasets)),
        headers={"Content-Type": STOW_TYPE},
    )
    assert response.status_code == 200, response.text


def search(client: TestClient, path: str = "/dicomweb/studies", **params: Any) -> list[dict]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def uids(results: list[dict], tag: str = "0020000D") -> list[str]:
    return [r[tag]["Value"][0] for r in results]


@pytest.fixture
def korean(client: TestClient) -> dict[str, Any]:
    hong = make_dataset(
        SpecificCharacterSet=IR149,
        PatientName="Hong^Gildong=洪^吉洞=홍^길동",
        PatientID="K-149",
        StudyDescription="흉부 CT",
    )
    kim = make_dataset(
        SpecificCharacterSet="ISO_IR 192",
        PatientName="Kim^Minji=金^旼志=김^민지",
        PatientID="K-192",
        StudyDate="20250510",
        Modality="MR",
    )
    latin = make_dataset(
        SpecificCharacterSet="ISO_IR 100",
        PatientName="Müller^José",
        PatientID="L-100",
        StudyDate="20240301",
        AccessionNumber="A-77",
    )
    store(client, hong)
    store(client, kim)
    store(client, latin)
    return {"hong": hong, "kim": kim, "latin": latin}


def name_of(result: dict) -> dict[str, str]:
    return result["00100010"]["Value"][0]


def test_korean_names_returned_intact(client: TestClient, korean: dict[str, Any]) -> None:
    by_id = {r["00100020"]["Value"][0]: r for r in search(client)}
    assert name_of(by_id["K-149"]) == {
        "Alphabetic": "Hong^Gildong",
        "Ideographic": "洪^吉洞",
        "Phonetic": "홍^길동",
    }
    assert name_of(by_id["K-192"]) == {
        "Alphabetic": "Kim^Minji",
        "Ideographic": "金^旼志",
        "Phonetic": "김^민지",
    }
    assert name_of(by_id["L-100"]) == {"Alphabetic": "Müller^José"}
    # Retrieved files keep the original encoding.
    ds = korean["hong"]
    response = client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
        f"{ds.SOPInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert b"\x1b$)C" in response.content


@pytest.mark.parametrize(
    ("query", "fuzzy", "expected"),
    [
        ("Hong^Gildong", False, ["K-149"]),
        ("hong*", False, ["K-149"]),
        ("洪^吉洞", False, ["K-149"]),
        ("홍*", False, ["K-149"]),
        ("김^민지", False, ["K-192"]),
        ("Hong^Gildong=洪^吉洞", False, ["K-149"]),
        ("Hong^Gildong=金*", False, []),
        ("길동", True, ["K-149"]),
        ("홍길동", True, ["K-149"]),
        ("gil", True, ["K-149"]),
        ("민지", True, ["K-192"]),
        ("muller", True, ["L-100"]),
        ("JOSE", True, ["L-100"]),
        ("MÜLLER^josé", True, ["L-100"]),
        ("muller", False, []),
        ("*", False, ["K-149", "K-192", "L-100"]),
    ],
)
def test_person_name_matching(
    client: TestClient, korean: dict[str, Any], query: str, fuzzy: bool, expected: list[str]
) -> None:
    params: dict[str, Any] = {"PatientName": query}
    if fuzzy:
        params["fuzzymatching"] = "true"
    found = sorted(r["00100020"]["Value"][0] for r in search(client, **params))
    assert found == expected


def test_order_is_most_recently_received_first(client: TestClient, korean: dict[str, Any]) -> None:
    assert uids(search(client)) == [korean[k].StudyInstanceUID for k in ("latin", "kim", "hong")]


def test_dates_wildcards_lists_and_paging(client: TestClient, korean: dict[str, Any]) -> None:
    ids = lambda results: sorted(r["00100020"]["Value"][0] for r in results)  # noqa: E731
    assert ids(search(client, StudyDate="20250101-")) == ["K-149", "K-192"]
    assert ids(search(client, StudyDate="-20241231")) == ["L-100"]
    assert ids(search(client, StudyDate="20240301")) == ["L-100"]
    assert ids(search(client, StudyDate="20240101-20251231")) == ["K-192", "L-100"]
    assert ids(search(client, PatientID="K-*")) == ["K-149", "K-192"]
    assert ids(search(client, PatientID="K-19?")) == ["K-192"]
    assert ids(search(client, AccessionNumber="A-77")) == ["L-100"]
    assert ids(search(client, ModalitiesInStudy="MR")) == ["K-192"]
    assert ids(search(client, ModalitiesInStudy="CT")) == ["K-149", "L-100"]
    assert ids(search(client, StudyDescription="흉부*")) == ["K-149"]
    listed = f"{korean['kim'].StudyInstanceUID},{korean['latin'].StudyInstanceUID}"
    assert ids(search(client, StudyInstanceUID=listed)) == ["K-192", "L-100"]
    assert len(search(client, limit=2)) == 2
    assert uids(search(client, limit=1, offset=2)) == [korean["hong"].StudyInstanceUID]
    assert search(client, PatientID="nobody") == []


def test_study_attributes_counts_and_includefield(client: TestClient) -> None:
    first = make_dataset(StudyDescription="Brain")
    second = make_dataset(
        StudyInstanceUID=first.StudyInstanceUID,
        Modality="SR",
        StudyDescription="Brain",
        SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11",
    )
    store(client, first, second)
    (study,) = search(client)
    assert study["00201206"]["Value"] == [2]
    assert study["00201208"]["Value"] == [2]
    assert study["00080061"]["Value"] == ["CT", "SR"]
    assert study["00080056"]["Value"] == ["ONLINE"]
    assert study["00081190"]["Value"][0] == (
        f"http://testserver/dicomweb/studies/{first.StudyInstanceUID}"
    )
    assert "00201200" not in study
    (full,) = search(client, includefield="NumberOfPatientRelatedStudies")
    assert full["00201200"]["Value"] == [1]
    (everything,) = search(client, includefield="all")
    assert everything["00081030"]["Value"] == ["Brain"]
    series = search(client, f"/dicomweb/studies/{first.StudyInstanceUID}/series")
    assert sorted(s["00080060"]["Value"][0] for s in series) == ["CT", "SR"]
    assert all(s["00201209"]["Value"] == [1] for s in series)
    instances = search(client, f"/dicomweb/studies/{first.StudyInstanceUID}/instances")
    assert sorted(uids(instances, "00080018")) == sorted(
        [first.SOPInstanceUID, second.SOPInstanceUID]
    )
    by_class = search(client, "/dicomweb/instances", SOPClassUID=second.SOPClassUID)
    assert uids(by_class, "00080018") == [second.SOPInstanceUID]
    assert by_class[0]["00100010"]["Value"][0]["Alphabetic"] == "Doe^Jane"
    all_series = search(client, "/dicomweb/series", Modality="SR")
    assert uids(all_series, "0020000E") == [second.SeriesInstanceUID]


@pytest.mark.parametrize(
    "params",
    [
        {"StudyDate": "2020-01-01"},
        {"limit": "-1"},
        {"offset": "x"},
        {"NoSuchKeyword": "1"},
        {"includefield": "NotAnAttribute"},
        {"SOPInstanceUID": "1.2"},
        {"StudyDate": "-"},
    ],
)
def test_bad_queries_are_400(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/dicomweb/studies", params=params)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_person_name_value_object_is_standard_json(client: TestClient) -> None:
    store(client, make_dataset(PatientName=PersonName("A^B")))
    (study,) = search(client)
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]}
