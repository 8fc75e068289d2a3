"""Fast QC at the doors: rejected with the right status and the finding, warnings carried."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import func, select

from connrad.archive.models import Instance
from connrad.db.transaction import write_transaction
from connrad.dicomweb.multipart import multipart_body
from connrad.dimse.server import DimseServer
from connrad.identity import admin
from connrad.qc.digest import content_digest
from connrad.qc.response import findings_from
from connrad.services import Services
from tests.conftest import free_port
from tests.factories import BOUNDARY, STOW_TYPE, make_dataset, stow_body, to_bytes

N = Instance.__table__
FAILURE_REASON, WARNING_REASON = "00081197", "00081196"


def stored_count(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(N)).scalar_one())


def short_pixels() -> bytes:
    ds = make_dataset()
    ds.PixelData = ds.PixelData[:-16]  # 8x8x16 bits needs 128 bytes
    return to_bytes(ds)


def items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return body.get(tag, {}).get("Value", [])


def test_a_wrong_pixel_data_length_is_rejected_with_its_finding(
    client: TestClient, services: Services
) -> None:
    response = client.post(
        "/dicomweb/studies", content=stow_body(short_pixels()), headers={"Content-Type": STOW_TYPE}
    )
    assert response.status_code == 409, response.text
    (failed,) = items(response.json(), "00081198")
    assert failed[FAILURE_REASON]["Value"] == [0xA900]
    found = findings_from(failed)
    assert "pixel.length-mismatch" in {f["code"] for f in found}
    assert {f["severity"] for f in found if f["code"] == "pixel.length-mismatch"} == {"fail"}
    assert "pixel.length-mismatch" in response.headers["Warning"]
    assert stored_count(services) == 0


def test_warnings_are_stored_with_the_instance_and_reported(
    client: TestClient, services: Services
) -> None:
    ds = make_dataset()
    del ds.PatientSex  # Type 2 in the Patient module
    response = client.post(
        "/dicomweb/studies", content=stow_body(to_bytes(ds)), headers={"Content-Type": STOW_TYPE}
    )
    assert response.status_code == 200, response.text
    (stored,) = items(response.json(), "00081199")
    assert WARNING_REASON not in stored  # a QC warning is not a storage warning
    found = findings_from(stored)
    assert {
        "code": "attribute.type2-missing",
        "severity": "warn",
        "attribute": "PatientSex",
    }.items() <= next(f for f in found if f["attribute"] == "PatientSex").items()
    view = client.get(f"/api/studies/{ds.StudyInstanceUID}/qc").json()
    assert view["status"] == "pending"  # deep checks not run yet
    assert any(
        f["code"] == "attribute.type2-missing" and f["stage"] == "fast" for f in view["findings"]
    )
    instance = client.get(
        f"/api/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/qc"
    ).json()
    assert instance["status"] == "warn"


def _part(data: bytes, **headers: str) -> bytes:
    return b"".join(
        multipart_body([({"Content-Type": "application/dicom", **headers}, [data])], BOUNDARY)
    )


@pytest.mark.parametrize(
    "header",
    [
        lambda data: {"Content-Digest": content_digest(hashlib.sha256(data).hexdigest())},
        lambda data: {
            "Digest": "SHA-256=" + base64.b64encode(hashlib.sha256(data).digest()).decode()
        },
        lambda data: {
            "Repr-Digest": "sha-512=:AAAA:, sha-256="
            + content_digest(hashlib.sha256(data).hexdigest())[8:]
        },
    ],
    ids=["content-digest", "rfc3230-digest", "repr-digest-among-others"],
)
def test_a_matching_digest_is_accepted(client: TestClient, header: Any) -> None:
    data = to_bytes(make_dataset())
    response = client.post(
        "/dicomweb/studies",
        content=_part(data, **header(data)),
        headers={"Content-Type": STOW_TYPE},
    )
    assert response.status_code == 200, response.text


def test_a_digest_mismatch_fails_that_instance_only(client: TestClient, services: Services) -> None:
    good, bad = to_bytes(make_dataset()), to_bytes(make_dataset())
    wrong = content_digest(hashlib.sha256(b"something else").hexdigest())
    body = b"".join(
        multipart_body(
            [
                ({"Content-Type": "application/dicom"}, [good]),
                ({"Content-Type": "application/dicom", "Content-Digest": wrong}, [bad]),
            ],
            BOUNDARY,
        )
    )
    response = client.post("/dicomweb/studies", content=body, headers={"Content-Type": STOW_TYPE})
    assert response.status_code == 202, response.text
    (failed,) = items(response.json(), "00081198")
    assert failed[FAILURE_REASON]["Value"] == [0xC000]
    assert [f["code"] for f in findings_from(failed)] == ["transfer.digest-mismatch"]
    assert stored_count(services) == 1


@pytest.mark.parametrize("value", ["sha-256=:not base64!:", "sha-256=:AAAA:", "sha-256=abc"])
def test_a_malformed_digest_fails_the_part(
    client: TestClient, services: Services, value: str
) -> None:
    data = to_bytes(make_dataset())
    response = client.post(
        "/dicomweb/studies",
        content=_part(data, **{"Content-Digest": value}),
        headers={"Content-Type": STOW_TYPE},
    )
    assert response.status_code == 409, response.text
    (failed,) = items(response.json(), "00081198")
    assert failed[FAILURE_REASON]["Value"] == [0xC000]
    assert stored_count(services) == 0


def test_dimse_refuses_with_the_status_and_an_error_comment(services: Services) -> None:
    with write_transaction(services.engine) as conn:
        admin.create_device(conn, services.local_site_id, "portable-ct", "dicom", ae_title="QCMOD")
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    try:
        ae = AE(ae_title="QCMOD")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="CONNRAD")
        assert assoc.is_established
        try:
            broken = pydicom.dcmread(io.BytesIO(short_pixels()))
            status = assoc.send_c_store(broken)
            good: Dataset = pydicom.dcmread(io.BytesIO(to_bytes(make_dataset())))
            ok = assoc.send_c_store(good)
        finally:
            assoc.release()
    finally:
        server.stop()
    assert status.Status == 0xA900
    assert status.ErrorComment.startswith("pixel.length-mismatch")
    assert ok.Status == 0x0000
    assert stored_count(services) == 1
