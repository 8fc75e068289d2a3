"""The site's de-identification policy applied at ingest, the vault, re-identification."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import func, select, update

from connrad.app import create_app
from connrad.audit.models import AuditEvent
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.deid import held
from connrad.deid.models import IdentityRecord
from connrad.identity import admin
from connrad.identity import sessions as session_store
from connrad.identity.caller import Role
from connrad.identity.models import User
from connrad.qc.response import findings_from
from connrad.services import Services
from connrad.settings import Settings
from tests.conftest import device_api_key, set_site_policy
from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes
from tests.peers import missing

NAME = "Zqxwvut^Mblrkq=洪^吉洞=홍^길동"
PATIENT_ID = "PID-77341-XQ"
ACCESSION = "ACC-5519-ZZ"
FONT = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _patient(**extra: Any) -> Dataset:
    return make_dataset(
        PatientName=NAME,
        PatientID=PATIENT_ID,
        AccessionNumber=ACCESSION,
        PatientBirthDate="19510203",
        SpecificCharacterSet="ISO_IR 192",
        **extra,
    )


class Clinic:
    """A clinic site with a device (uploads) and a clinic staff user (re-identifies)."""

    def __init__(self, services: Services, http: TestClient, code: str) -> None:
        with write_transaction(services.engine) as conn:
            self.site_id = int(admin.create_site(conn, code, f"Clinic {code}")["id"])
        self.device = {"Authorization": f"Bearer {device_api_key(services, self.site_id)}"}
        self.staff = _user_headers(services, f"staff-{code}", Role.CLINIC_STAFF, self.site_id)
        self.admin = _user_headers(services, f"admin-{code}", Role.SITE_ADMIN, self.site_id)
        self.http = http

    def stow(self, *datasets: Dataset) -> Any:
        return self.http.post(
            "/dicomweb/studies",
            content=stow_body(*(to_bytes(ds) for ds in datasets)),
            headers={"Content-Type": STOW_TYPE, **self.device},
        )


def _user_headers(services: Services, name: str, role: Role, site: int | None) -> dict[str, str]:
    with write_transaction(services.engine) as conn:
        view, _ = admin.create_user(conn, name, role, site)
        conn.execute(
            update(User.__table__)
            .where(User.__table__.c.id == view["id"])
            .values(must_change_password=False)
        )
        new = session_store.create(conn, view["id"], "tests", timedelta(hours=1), utcnow())
    return {
        "Cookie": f"{session_store.COOKIE}={new.token}",
        session_store.CSRF_HEADER: new.csrf_token,
    }


@pytest.fixture
def http(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services)) as client:
        yield client


@pytest.fixture
def clinic(services: Services, http: TestClient) -> Clinic:
    return Clinic(services, http, "islet")


def _stored_uids(response: Any) -> list[tuple[str, str, str]]:
    items = response.json()["00081199"]["Value"]
    return [tuple(i["00081190"]["Value"][0].split("/")[-5::2]) for i in items]


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_new_sites_pseudonymize_by_default(clinic: Clinic, services: Services) -> None:
    ds = _patient()
    response = clinic.stow(ds)
    assert response.status_code == 200, response.text
    item = response.json()["00081199"]["Value"][0]
    # The answer names the instance the clinic sent; its URL is where the archive holds it.
    assert item["00081155"]["Value"] == [ds.SOPInstanceUID]
    ((study, series, sop),) = _stored_uids(response)
    assert study.startswith("2.25.") and study != ds.StudyInstanceUID
    assert sop.startswith("2.25.") and series != ds.SeriesInstanceUID

    found = clinic.http.get("/dicomweb/studies", headers=clinic.device).json()
    assert [s["0020000D"]["Value"][0] for s in found] == [study]
    assert found[0]["00100020"]["Value"][0].startswith("CR")
    assert found[0]["00100010"]["Value"][0]["Alphabetic"].startswith("ANON^")
    stored = clinic.http.get(
        f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata",
        headers=clinic.device,
    ).json()[0]
    assert stored["00120062"]["Value"] == ["YES"]  # Patient Identity Removed
    assert stored["00100040"]["Value"] == [ds.PatientSex]  # kept (Retain Patient Characteristics)


def test_nothing_identifying_is_kept_in_clear_anywhere(
    clinic: Clinic, services: Services, settings: Settings
) -> None:
    """Blobs, database (with its WAL) and audit trail: no original identifier, in any form."""
    response = clinic.stow(_patient(), _patient(SOPInstanceUID=generate_uid()))
    assert response.status_code == 200, response.text
    everything = _all_bytes(settings.data_dir)
    for secret in ("Zqxwvut", "Mblrkq", "洪", "홍길동", PATIENT_ID, ACCESSION, "19510203"):
        assert secret.encode("utf-8") not in everything, secret
    assert "홍".encode("euc-kr") not in everything


def test_reupload_lands_on_the_same_pseudonym(clinic: Clinic, services: Services) -> None:
    ds = _patient()
    first = _stored_uids(clinic.stow(ds))
    again = clinic.stow(ds)
    assert again.status_code == 200
    assert _stored_uids(again) == first
    later = _patient(StudyInstanceUID=generate_uid(), SOPInstanceUID=generate_uid())
    clinic.stow(later)
    patients = clinic.http.get("/dicomweb/studies", headers=clinic.device).json()
    assert len({p["00100020"]["Value"][0] for p in patients}) == 1
    with services.engine.connect() as conn:
        kinds = conn.execute(
            select(IdentityRecord.kind, func.count()).group_by(IdentityRecord.kind)
        ).all()
    assert dict(kinds) == {"patient": 1, "study": 2, "instance": 2}


def test_sites_are_unlinkable(services: Services, http: TestClient) -> None:
    one, other = Clinic(services, http, "one"), Clinic(services, http, "other")
    ds = _patient()
    ((study_1, _, sop_1),) = _stored_uids(one.stow(ds))
    ((study_2, _, sop_2),) = _stored_uids(other.stow(_patient(StudyInstanceUID=generate_uid())))
    assert study_1 != study_2 and sop_1 != sop_2
    pid_1 = http.get("/dicomweb/studies", headers=one.device).json()[0]["00100020"]
    pid_2 = http.get("/dicomweb/studies", headers=other.device).json()[0]["00100020"]
    assert pid_1 != pid_2


def test_identified_site_stores_as_received(clinic: Clinic, services: Services) -> None:
    set_site_policy(services, clinic.site_id, "identified")
    ds = _patient()
    ((study, _, sop),) = _stored_uids(clinic.stow(ds))
    assert (study, sop) == (ds.StudyInstanceUID, ds.SOPInstanceUID)
    found = clinic.http.get("/dicomweb/studies", headers=clinic.device).json()
    assert found[0]["00100020"]["Value"] == [PATIENT_ID]


def test_anonymized_site_keeps_no_way_back(clinic: Clinic, services: Services) -> None:
    set_site_policy(services, clinic.site_id, "anonymized")
    ((study, _, _),) = _stored_uids(clinic.stow(_patient()))
    assert study.startswith("2.25.")
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IdentityRecord)).scalar() == 0
    response = clinic.http.get(f"/api/identity/studies/{study}", headers=clinic.staff)
    assert response.status_code == 404
    assert "no identity" in response.json()["detail"]


def test_reidentify_study_and_instance(clinic: Clinic, services: Services) -> None:
    ds = _patient()
    ((study, _, sop),) = _stored_uids(clinic.stow(ds))
    response = clinic.http.get(f"/api/identity/studies/{study}", headers=clinic.staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["patient"]["PatientID"] == PATIENT_ID
    assert body["patient"]["PatientName"] == NAME
    assert body["patient"]["PatientBirthDate"] == "19510203"
    assert body["study"]["AccessionNumber"] == ACCESSION
    assert body["study"]["StudyInstanceUID"] == ds.StudyInstanceUID

    instance = clinic.http.get(f"/api/identity/instances/{sop}", headers=clinic.staff).json()
    assert instance["uids"][sop] == ds.SOPInstanceUID
    assert instance["uids"][study] == ds.StudyInstanceUID
    assert instance["originals"]["PatientID"] == PATIENT_ID

    with services.engine.connect() as conn:
        events = AuditEvent.__table__
        audited = conn.execute(
            select(events.c.resource, events.c.outcome, events.c.actor).where(
                events.c.action == "reidentify"
            )
        ).all()
    assert {(r.resource, r.outcome) for r in audited} == {("study", 200), ("instance", 200)}


def test_reidentification_is_for_the_sending_site_only(
    clinic: Clinic, services: Services, http: TestClient
) -> None:
    ((study, _, _),) = _stored_uids(clinic.stow(_patient()))
    other = Clinic(services, http, "elsewhere")
    radiologist = _user_headers(services, "reader", Role.RADIOLOGIST, None)
    with write_transaction(services.engine) as conn:
        reader = conn.execute(
            select(User.__table__.c.id).where(User.__table__.c.username == "reader")
        ).scalar_one()
        admin.set_reading_grants(conn, reader, [clinic.site_id])
    # The radiologist reads the study but may not learn who the patient is.
    assert http.get(f"/dicomweb/studies/{study}/metadata", headers=radiologist).status_code == 200
    assert http.get(f"/api/identity/studies/{study}", headers=radiologist).status_code == 403
    hidden = http.get(f"/api/identity/studies/{study}", headers=other.staff)
    missing_study = http.get(f"/api/identity/studies/{generate_uid()}", headers=other.staff)
    assert hidden.status_code == missing_study.status_code == 404
    assert hidden.json() == missing_study.json()
    assert http.get(f"/api/identity/studies/{study}", headers=clinic.device).status_code == 403


def test_search_by_real_identifiers(clinic: Clinic, services: Services) -> None:
    ((study, _, _),) = _stored_uids(clinic.stow(_patient()))
    clinic.stow(make_dataset(PatientName="Other^Person", PatientID="OTHER-1"))
    pseudonym = None

    def search(**query: str) -> dict[str, Any]:
        response = clinic.http.post("/api/identity/search", json=query, headers=clinic.staff)
        assert response.status_code == 200, response.text
        return dict(response.json())

    by_id = search(patient_id=PATIENT_ID)
    assert [p["studies"] for p in by_id["patients"]] == [[study]]
    pseudonym = by_id["patients"][0]["patient_id"]
    assert pseudonym.startswith("CR")
    for name in ("Zqxwvut^Mblrkq", "ZQXWVUT^MBLRKQ", "홍^길동", "洪^吉洞", "Zqxwvut"):
        found = search(patient_name=name)["patients"]
        assert [p["patient_id"] for p in found] == [pseudonym], name
    assert search(patient_id=PATIENT_ID, patient_name="Other^Person")["patients"] == []
    assert search(accession_number=ACCESSION)["studies"] == [
        {"site_id": clinic.site_id, "study_uid": study}
    ]
    assert search(patient_id="NOBODY")["patients"] == []
    # A query without an identifier is refused, and the identifiers never go in a URL.
    assert (
        clinic.http.post("/api/identity/search", json={}, headers=clinic.staff).status_code == 400
    )
    assert clinic.http.get("/api/identity/search", headers=clinic.staff).status_code == 405


# --- images at risk of burned-in text ------------------------------------------------------


@pytest.fixture
def tesseract() -> None:
    if shutil.which("tesseract") is None:
        missing("the tesseract binary is not installed (apt-get install tesseract-ocr)")


def _screenshot(text: str = "ZQXWVUT 77341") -> Dataset:
    """A secondary capture with the patient's name and ID burned in."""
    image = Image.new("L", (512, 512), 20)
    ImageDraw.Draw(image).text((40, 60), text, fill=250, font=ImageFont.truetype(FONT, 40))
    ds = _patient(
        SOPClassUID=SECONDARY_CAPTURE,
        SOPInstanceUID=generate_uid(),
        Modality="OT",
        Rows=512,
        Columns=512,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelRepresentation=0,
        BurnedInAnnotation="YES",
    )
    for keyword in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = np.asarray(image, dtype=np.uint8).tobytes()
    return ds


def test_burned_in_text_is_held_then_cleaned(
    clinic: Clinic, services: Services, tesseract: None
) -> None:
    response = clinic.stow(_screenshot())
    assert response.status_code == 202, response.text  # stored, with a warning
    item = response.json()["00081199"]["Value"][0]
    assert item["00081196"]["Value"] == [0xB000]
    # Not in the archive until cleaned: not searchable, not readable.
    assert clinic.http.get("/dicomweb/studies", headers=clinic.device).json() == []
    (waiting,) = held.list_held(services, None)
    assert waiting.state == "cleaning"

    assert services.worker().run_once() >= 1
    assert held.list_held(services, None) == []
    (study,) = clinic.http.get("/dicomweb/studies", headers=clinic.device).json()
    study_uid = study["0020000D"]["Value"][0]
    part10 = clinic.http.get(
        f"/dicomweb/studies/{study_uid}",
        headers={**clinic.device, "Accept": 'multipart/related; type="application/dicom"'},
    )
    assert part10.status_code == 200
    boundary = part10.headers["content-type"].split("boundary=")[1].strip('"')
    body = part10.content.split(f"--{boundary}".encode())[1].split(b"\r\n\r\n", 1)[1]
    cleaned = pydicom.dcmread(io.BytesIO(body.rsplit(b"\r\n", 1)[0]))
    assert cleaned.BurnedInAnnotation == "NO"
    pixels = cleaned.pixel_array
    assert pixels[60:110, 40:400].max() <= 20  # the text's rows are masked


def test_hold_policy_waits_for_a_person(
    clinic: Clinic, services: Services, tesseract: None
) -> None:
    set_site_policy(services, clinic.site_id, "pseudonymized", "hold")
    stored = clinic.stow(_screenshot())
    assert stored.status_code == 202
    (item,) = stored.json()["00081199"]["Value"]
    assert "deid.burned-in-suspected" in {f["code"] for f in findings_from(item)}
    listed = clinic.http.get("/api/held", headers=clinic.admin)
    assert listed.status_code == 200
    (entry,) = listed.json()
    assert entry["state"] == "held" and entry["reason"] == "pixel-risk"
    assert services.worker().run_once() == 0  # nothing is cleaned without a decision
    released = clinic.http.post(
        f"/api/held/{entry['id']}/release", json={"clean": False}, headers=clinic.admin
    )
    assert released.json()["state"] == "released"
    (study,) = clinic.http.get("/dicomweb/studies", headers=clinic.device).json()
    qc = clinic.http.get(f"/api/studies/{study['0020000D']['Value'][0]}/qc", headers=clinic.device)
    assert "deid.burned-in-suspected" in {f["code"] for f in qc.json()["findings"]}


def test_discarded_held_image_is_gone(clinic: Clinic, services: Services) -> None:
    set_site_policy(services, clinic.site_id, "pseudonymized", "hold")
    clinic.stow(_screenshot())
    (entry,) = held.list_held(services, None)
    assert services.blobs.exists(_blob_key(services, entry.id))
    response = clinic.http.delete(f"/api/held/{entry.id}", headers=clinic.admin)
    assert response.status_code == 200
    assert [h.state for h in held.list_held(services, None)] == ["discarded"]
    assert not services.blobs.exists(_blob_key(services, entry.id))
    again = clinic.http.post(f"/api/held/{entry.id}/release", json={}, headers=clinic.admin)
    assert again.status_code == 409


def test_pass_policy_stores_at_once(clinic: Clinic, services: Services) -> None:
    set_site_policy(services, clinic.site_id, "pseudonymized", "pass")
    assert clinic.stow(_screenshot()).status_code == 200
    assert held.list_held(services, None) == []


def _blob_key(services: Services, held_id: int) -> str:
    with services.engine.connect() as conn:
        return str(
            conn.execute(select(held.held.c.blob_key).where(held.held.c.id == held_id)).scalar_one()
        )


def test_egress_copy_restores_the_identity(clinic: Clinic, services: Services) -> None:
    """What a trusted PACS receives: the clinic's UIDs, identifiers and dates."""
    from connrad.archive.models import Instance
    from connrad.deid.reidentify import egress_bytes

    ds = _patient(
        StudyDate="20240305", ContentDate="20240305", AcquisitionDateTime="20240305101500"
    )
    ((_, _, sop),) = _stored_uids(clinic.stow(ds))
    with services.engine.connect() as conn:
        blob_key = conn.execute(
            select(Instance.blob_key).where(Instance.sop_uid == sop)
        ).scalar_one()
    stored = pydicom.dcmread(services.blobs.local_path(blob_key))
    assert stored.StudyDate != "20240305"
    data = egress_bytes(services, clinic.site_id, sop, blob_key)
    assert data is not None
    restored = pydicom.dcmread(io.BytesIO(data))
    for keyword in (
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "PatientID",
        "AccessionNumber",
        "PatientBirthDate",
        "StudyDate",
        "ContentDate",
        "AcquisitionDateTime",
    ):
        assert restored.get(keyword) == ds.get(keyword), keyword
    assert str(restored.PatientName) == NAME
    assert restored.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert "PatientIdentityRemoved" not in restored
    assert restored.PixelData == ds.PixelData
