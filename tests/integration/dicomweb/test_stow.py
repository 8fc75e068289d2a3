"""STOW-RS: stored, duplicate, and every kind of bad input answered without a 500."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from connrad.archive.models import Instance, Series, Study
from connrad.services import Services
from tests.factories import STOW_TYPE, make_dataset, make_instance, stow_body, to_bytes


def post(client: TestClient, body: bytes, path: str = "/dicomweb/studies", ctype: str = STOW_TYPE):
    return client.post(path, content=body, headers={"Content-Type": ctype})


def count(services: Services, table) -> int:  # type: ignore[no-untyped-def]
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table.__table__)).scalar_one())


def blob_files(services: Services) -> list[Path]:
    root = Path(services.settings.data_dir) / "blobs"
    return [p for p in root.rglob("*") if p.is_file()]


def test_store_two_instances_of_one_study(client: TestClient, services: Services) -> None:
    first = make_dataset()
    second = make_dataset(
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
        InstanceNumber=2,
    )
    response = post(client, stow_body(to_bytes(first), to_bytes(second)))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    body = response.json()
    refs = body["00081199"]["Value"]
    assert [r["00081155"]["Value"][0] for r in refs] == [
        first.SOPInstanceUID,
        second.SOPInstanceUID,
    ]
    assert body["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{first.StudyInstanceUID}")
    assert refs[0]["00081190"]["Value"][0].endswith(f"/instances/{first.SOPInstanceUID}")
    with services.engine.connect() as conn:
        study = conn.execute(select(Study.__table__)).one()
        series = conn.execute(select(Series.__table__)).one()
    assert (study.num_series, study.num_instances, series.num_instances) == (1, 2, 2)
    assert study.modalities_in_study == "CT"


def test_resend_identical_is_success_and_stores_nothing_new(
    client: TestClient, services: Services
) -> None:
    data = make_instance()
    assert post(client, stow_body(data)).status_code == 200
    files_before = sorted(blob_files(services))
    again = post(client, stow_body(data))
    assert again.status_code == 200
    assert "00081196" not in again.json()["00081199"]["Value"][0]
    assert count(services, Instance) == 1
    assert sorted(blob_files(services)) == files_before


def test_resend_with_other_content_keeps_first_and_warns(
    client: TestClient, services: Services
) -> None:
    ds = make_dataset()
    first = to_bytes(ds)
    ds.StudyDescription = "changed"
    second = to_bytes(ds)
    assert post(client, stow_body(first)).status_code == 200
    response = post(client, stow_body(second))
    assert response.status_code == 202
    ref = response.json()["00081199"]["Value"][0]
    assert ref["00081196"]["Value"] == [0xB006]
    retrieved = client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert first in retrieved.content and second not in retrieved.content


def test_bad_parts_fail_individually(client: TestClient, services: Services) -> None:
    good = make_dataset()
    truncated = make_instance()[:-20]
    no_sop_uid = make_dataset()
    del no_sop_uid.SOPInstanceUID
    no_uid_bytes = to_bytes_without_meta_uid(no_sop_uid)
    response = post(client, stow_body(to_bytes(good), b"not dicom at all", truncated, no_uid_bytes))
    assert response.status_code == 202
    body = response.json()
    assert len(body["00081199"]["Value"]) == 1
    reasons = [item["00081197"]["Value"][0] for item in body["00081198"]["Value"]]
    assert reasons == [0xC000, 0xC000, 0xC000]
    assert "Warning" in response.headers
    assert count(services, Instance) == 1
    assert not list((Path(services.settings.data_dir) / "blobs" / "tmp").iterdir())


def to_bytes_without_meta_uid(ds):  # type: ignore[no-untyped-def]
    import io

    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


def test_all_failed_is_409(client: TestClient) -> None:
    assert post(client, stow_body(b"garbage")).status_code == 409


def test_study_in_url_must_match(client: TestClient, services: Services) -> None:
    ds = make_dataset()
    response = post(client, stow_body(to_bytes(ds)), path="/dicomweb/studies/1.2.3.4")
    assert response.status_code == 409
    item = response.json()["00081198"]["Value"][0]
    assert item["00081197"]["Value"] == [0xA900]
    assert item["00081155"]["Value"] == [ds.SOPInstanceUID]
    ok = post(client, stow_body(to_bytes(ds)), path=f"/dicomweb/studies/{ds.StudyInstanceUID}")
    assert ok.status_code == 200


def test_unsupported_sop_class(client: TestClient) -> None:
    response = post(client, stow_body(make_instance(SOPClassUID="1.2.3.4.5.6")))
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0122]


def test_malformed_requests(client: TestClient, services: Services) -> None:
    data = make_instance()
    assert post(client, data, ctype="application/dicom").status_code == 415
    assert (
        post(
            client, stow_body(data), ctype='multipart/related; type="application/dicom"'
        ).status_code
        == 400
    )
    assert (
        post(
            client,
            stow_body(data),
            ctype='multipart/related; type="application/dicom+json"; boundary=x',
        ).status_code
        == 415
    )
    # Broken boundary: the body never closes; the unfinished part is not stored.
    cut = stow_body(data)[:-40]
    assert post(client, cut).status_code == 400
    assert post(client, b"").status_code == 400
    assert count(services, Instance) == 0
    assert not list((Path(services.settings.data_dir) / "blobs" / "tmp").iterdir())


def test_wrong_part_content_type_fails_that_part(client: TestClient) -> None:
    response = post(client, stow_body(make_instance(), content_type="application/json"))
    assert response.status_code == 409


def test_no_phi_in_failure_responses(client: TestClient) -> None:
    ds = make_dataset(PatientName="Secret^Person", PatientID="SECRET-ID-42")
    del ds.StudyInstanceUID
    response = post(client, stow_body(to_bytes(ds)))
    assert response.status_code == 409
    text = response.text + str(response.headers)
    assert "Secret" not in text and "SECRET-ID-42" not in text
