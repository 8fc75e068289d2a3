"""Deep QC as jobs after storage: real series, synthetic defects, quarantine, the worklist."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pydicom
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from sqlalchemy import select, update

from connrad.app import create_app
from connrad.archive.models import Series, Study
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.jobs.models import Job
from connrad.qc import service as qc_service
from connrad.services import Services
from tests.conftest import device_api_key, set_site_policy
from tests.factories import make_dataset, to_bytes
from tests.integration.qc.conftest import ingest, ingest_files, run_jobs
from tests.shared_data import public_dir

S, R = Study.__table__, Series.__table__


def philips_series() -> list[Path]:
    """The 140-slice Philips head CT, ordered along the slice normal."""
    paths = sorted((public_dir() / "ct_series_philips_head_1mm").iterdir())

    def position(path: Path) -> float:
        return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])

    return sorted(paths, key=position)


def study_row(services: Services, study_uid: str) -> Any:
    with services.engine.connect() as conn:
        return conn.execute(
            select(S.c.qc_status, S.c.quarantined, S.c.qc_checked_at).where(
                S.c.study_uid == study_uid
            )
        ).one()


def qc_view(services: Services, study_uid: str, headers: dict[str, str]) -> dict[str, Any]:
    with TestClient(create_app(services.settings, services)) as http:
        response = http.get(f"/api/studies/{study_uid}/qc", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def codes(view: dict[str, Any], severity: str | None = None) -> set[str]:
    return {f["code"] for f in view["findings"] if severity is None or f["severity"] == severity}


def test_the_clean_philips_series_passes(qc_services: Services) -> None:
    results = ingest_files(qc_services, philips_series())
    assert all(r.stored for r in results), {r.reason for r in results}
    assert not any(
        r.findings for r in results if r.findings and any(f.severity == "fail" for f in r.findings)
    )
    study_uid = results[0].study_uid
    assert study_row(qc_services, study_uid).qc_status == "pending"
    assert run_jobs(qc_services) >= 2  # the series check, then the study check
    row = study_row(qc_services, study_uid)
    assert (row.qc_status, row.quarantined) == ("pass", False), qc_view(
        qc_services, study_uid, {"Authorization": f"Bearer {device_api_key(qc_services)}"}
    )
    assert row.qc_checked_at is not None


def test_a_missing_slice_fails_and_quarantines(qc_services: Services) -> None:
    paths = philips_series()
    del paths[70]
    study_uid = ingest_files(qc_services, paths)[0].study_uid
    run_jobs(qc_services)
    row = study_row(qc_services, study_uid)
    assert (row.qc_status, row.quarantined) == ("fail", True)
    headers = {"Authorization": f"Bearer {device_api_key(qc_services)}"}
    view = qc_view(qc_services, study_uid, headers)
    assert "series.missing-slice" in codes(view, "fail")
    (series,) = view["series"]
    assert series["status"] == "fail"
    # Quarantined: off the worklist, on the quarantine list of the site's administrators.
    with TestClient(create_app(qc_services.settings, qc_services)) as http:
        listed = http.get("/api/worklist", headers=headers).json()["studies"]
        assert study_uid not in {s["study_uid"] for s in listed}
        admin_headers = _site_admin(qc_services, http)
        held = http.get("/api/worklist?quarantined=true", headers=admin_headers).json()
        assert [s["study_uid"] for s in held["studies"]] == [study_uid]
        assert held["studies"][0]["qc"]["status"] == "fail"
        assert held["studies"][0]["qc"]["fail"] >= 1
        released = http.post(f"/api/studies/{study_uid}/qc/release", headers=admin_headers)
        assert released.status_code == 200, released.text
        assert released.json()["quarantined"] is False
        http.cookies.clear()
        listed = http.get("/api/worklist", headers=headers).json()["studies"]
        assert study_uid in {s["study_uid"] for s in listed}


def _site_admin(services: Services, http: TestClient) -> dict[str, str]:
    """A signed-in administrator of the local site (session cookie and CSRF token)."""
    from connrad.db.base import utcnow
    from connrad.identity import sessions as session_store
    from connrad.identity.caller import Role
    from tests.integration.api.test_auth import add_user

    user_id = add_user(
        services, f"qc-admin-{generate_uid()[-6:]}", Role.SITE_ADMIN, services.local_site_id
    )
    with write_transaction(services.engine) as conn:
        new = session_store.create(conn, user_id, "testclient", timedelta(hours=1), utcnow())
    http.cookies.set(session_store.COOKIE, new.token)
    return {session_store.CSRF_HEADER: new.csrf_token}


def test_accept_policy_keeps_a_failed_study_on_the_worklist(qc_services: Services) -> None:
    with write_transaction(qc_services.engine) as conn:
        admin.update_site(conn, qc_services.local_site_id, qc_policy="accept")
    paths = philips_series()[:40]
    duplicate = pydicom.dcmread(paths[20])
    duplicate.SOPInstanceUID = generate_uid()  # a second image at the same position
    results = [*ingest_files(qc_services, paths), ingest(qc_services, to_bytes(duplicate))]
    study_uid = results[0].study_uid
    run_jobs(qc_services)
    row = study_row(qc_services, study_uid)
    assert (row.qc_status, row.quarantined) == ("fail", False)
    headers = {"Authorization": f"Bearer {device_api_key(qc_services)}"}
    assert "series.duplicate-slice" in codes(qc_view(qc_services, study_uid, headers), "fail")
    with TestClient(create_app(qc_services.settings, qc_services)) as http:
        listed = http.get("/api/worklist", headers=headers).json()["studies"]
    (entry,) = [s for s in listed if s["study_uid"] == study_uid]
    assert entry["qc"]["status"] == "fail"


def test_two_patients_in_one_study_fail_even_when_pseudonymized(qc_services: Services) -> None:
    set_site_policy(qc_services, qc_services.local_site_id, "pseudonymized", "pass")
    study = generate_uid()
    series = generate_uid()
    first = ingest(
        qc_services, to_bytes(make_dataset(StudyInstanceUID=study, SeriesInstanceUID=series))
    )
    ingest(
        qc_services,
        to_bytes(
            make_dataset(
                StudyInstanceUID=study,
                SeriesInstanceUID=series,
                PatientID="P-OTHER",
                InstanceNumber=2,
            )
        ),
    )
    run_jobs(qc_services)
    headers = {"Authorization": f"Bearer {device_api_key(qc_services)}"}
    view = qc_view(qc_services, first.study_uid, headers)
    assert "study.identity-mismatch" in codes(view, "fail")
    assert "P-OTHER" not in str(view) and "P-1" not in str(view)


def test_the_same_patient_twice_is_consistent(qc_services: Services) -> None:
    study, series = generate_uid(), generate_uid()
    for number in (1, 2):
        ingest(
            qc_services,
            to_bytes(
                make_dataset(
                    StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=number
                )
            ),
        )
    run_jobs(qc_services)
    view = qc_view(qc_services, study, {"Authorization": f"Bearer {device_api_key(qc_services)}"})
    assert "study.identity-mismatch" not in codes(view)


def test_a_series_still_receiving_is_checked_later(qc_services: Services) -> None:
    services = qc_services
    services.settings.qc_quiet_seconds = 3600.0  # nothing is quiet for an hour in this test
    study = generate_uid()
    result = ingest(services, to_bytes(make_dataset(StudyInstanceUID=study)))
    with services.engine.connect() as conn:
        series_pk = conn.execute(
            select(R.c.id).where(R.c.series_uid == result.series_uid)
        ).scalar_one()
    qc_service.check_series(services, {"series_pk": series_pk})
    with services.engine.connect() as conn:
        status = conn.execute(select(R.c.qc_status).where(R.c.id == series_pk)).scalar_one()
        queued = conn.execute(
            select(Job.__table__.c.run_after).where(Job.__table__.c.kind == qc_service.SERIES_JOB)
        ).all()
    assert status == "pending"
    assert len(queued) == 2  # the one ingest scheduled, and the one the check put off


def test_a_late_image_reopens_a_checked_series(qc_services: Services) -> None:
    study, series = generate_uid(), generate_uid()
    first = ingest(
        qc_services, to_bytes(make_dataset(StudyInstanceUID=study, SeriesInstanceUID=series))
    )
    run_jobs(qc_services)
    assert study_row(qc_services, first.study_uid).qc_status in ("pass", "warn")
    ingest(
        qc_services,
        to_bytes(make_dataset(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=2)),
    )
    assert study_row(qc_services, first.study_uid).qc_status == "pending"
    with qc_services.engine.connect() as conn:
        assert (
            conn.execute(select(R.c.qc_status).where(R.c.series_uid == series)).scalar_one()
            == "pending"
        )
    run_jobs(qc_services)
    assert study_row(qc_services, first.study_uid).qc_status in ("pass", "warn")


def test_a_study_that_does_not_match_its_order(qc_services: Services) -> None:
    view = _ordered_mr_received_ct(qc_services)
    assert "order.modality-mismatch" in codes(view, "fail")
    assert "order.body-part-mismatch" in codes(view, "warn")


def _ordered_mr_received_ct(qc_services: Services) -> dict[str, Any]:
    from datetime import datetime

    from connrad.orders import service as orders

    new = orders.NewOrder(
        patient_id="P-1",
        patient_name="Doe^Jane",
        accession_number="ACC-MR-9",
        modality="MR",
        scheduled_start=datetime.fromisoformat("2026-12-01T09:00:00+09:00"),
        procedure=orders.Procedure("MRBRAIN", "MR Brain"),
    )
    ring = orders.keyring(qc_services.site_keys, qc_services.local_site_id)
    with write_transaction(qc_services.engine) as conn:
        orders.create(conn, ring, new)
    result = ingest(
        qc_services, to_bytes(make_dataset(AccessionNumber="ACC-MR-9", BodyPartExamined="CHEST"))
    )
    run_jobs(qc_services)
    return qc_view(
        qc_services, result.study_uid, {"Authorization": f"Bearer {device_api_key(qc_services)}"}
    )


def test_the_order_is_found_through_the_vault(qc_services: Services) -> None:
    """Under pseudonymization the accession number is only in the vault (as a blind index)."""
    set_site_policy(qc_services, qc_services.local_site_id, "pseudonymized", "pass")
    view = _ordered_mr_received_ct(qc_services)
    assert "order.modality-mismatch" in codes(view, "fail")


def test_recheck_runs_the_checks_again(qc_services: Services) -> None:
    result = ingest(qc_services, to_bytes(make_dataset()))
    run_jobs(qc_services)
    with write_transaction(qc_services.engine) as conn:
        conn.execute(update(S).where(S.c.study_uid == result.study_uid).values(qc_status="fail"))
    with TestClient(create_app(qc_services.settings, qc_services)) as http:
        answer = http.post(
            f"/api/studies/{result.study_uid}/qc/recheck", headers=_site_admin(qc_services, http)
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "pending"
    run_jobs(qc_services)
    assert study_row(qc_services, result.study_uid).qc_status in ("pass", "warn")


def test_a_saturated_underexposed_dx_and_a_blank_ct_fail(qc_services: Services) -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    pixels = rng.integers(200, 3000, size=(64, 64), dtype=np.uint16)
    pixels[:, :20] = 4095  # a third of the detector clipped at the top of 12 bits
    dx = make_dataset(
        SOPClassUID="1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image, for presentation
        Modality="DX",
        Rows=64,
        Columns=64,
        PixelData=pixels.tobytes(),
        ExposureIndex=120,
        TargetExposureIndex=500,  # DI = 10 log10(120/500) = -6.2
    )
    blank = make_dataset(PixelData=np.full((8, 8), 1024, dtype=np.uint16).tobytes())
    dx_study = ingest(qc_services, to_bytes(dx)).study_uid
    ct_study = ingest(qc_services, to_bytes(blank)).study_uid
    run_jobs(qc_services)
    headers = {"Authorization": f"Bearer {device_api_key(qc_services)}"}
    dx_view = qc_view(qc_services, dx_study, headers)
    assert {"exposure.underexposed"} <= codes(dx_view, "fail")
    assert "pixel.saturated" in codes(dx_view, "warn")
    (finding,) = [f for f in dx_view["findings"] if f["code"] == "exposure.underexposed"]
    assert finding["level"] == "instance" and finding["stage"] == "deep"
    assert "pixel.blank" in codes(qc_view(qc_services, ct_study, headers), "fail")
    assert study_row(qc_services, dx_study).qc_status == "fail"
