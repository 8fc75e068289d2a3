"""`connrad vault export SITE`: the audit mapping of a site's pseudonymized data."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from sqlalchemy import select
from typer.testing import CliRunner

from connrad.app import create_app
from connrad.audit.models import AuditEvent
from connrad.cli import app
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.services import Services
from connrad.settings import Settings
from tests.conftest import device_api_key
from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes


def test_export_maps_every_replaced_identifier(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    with write_transaction(services.engine) as conn:
        site_id = int(admin.create_site(conn, "isle", "Isle clinic")["id"])
    headers = {"Authorization": f"Bearer {device_api_key(services, site_id)}"}
    first = make_dataset(PatientID="REAL-1", PatientName="Kim^Minjun", StudyDate="20240301")
    second = make_dataset(
        PatientID="REAL-1",
        PatientName="Kim^Minjun",
        StudyDate="20240301",
        SOPInstanceUID=generate_uid(),
    )
    with TestClient(create_app(settings, services)) as http:
        stored = http.post(
            "/dicomweb/studies",
            content=stow_body(to_bytes(first), to_bytes(second)),
            headers={"Content-Type": STOW_TYPE, **headers},
        )
    assert stored.status_code == 200, stored.text
    urls = [i["00081190"]["Value"][0] for i in stored.json()["00081199"]["Value"]]

    out = tmp_path / "mapping.csv"
    result = CliRunner().invoke(
        app,
        ["vault", "export", "isle", "--out", str(out)],
        env={
            "CONNRAD_DATA_DIR": str(settings.data_dir),
            "CONNRAD_DATABASE_URL": settings.database_url,
        },
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_kind: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    ((patient,),) = [by_kind["patient_id"]]
    assert patient["old"] == "REAL-1" and patient["new"].startswith("CR")
    assert by_kind["patient_name"][0]["old"] == "Kim^Minjun"
    uid_map = {r["old"]: r["new"] for r in by_kind["uid"]}
    for ds, url in zip((first, second), urls, strict=True):
        study, series, sop = url.split("/")[-5::2]
        assert uid_map[ds.StudyInstanceUID] == study
        assert uid_map[ds.SeriesInstanceUID] == series
        assert uid_map[ds.SOPInstanceUID] == sop
    (offset,) = by_kind["date_offset_days"]
    assert offset["old"] == patient["new"] and -365 <= int(offset["new"]) <= -1
    with services.engine.connect() as conn:
        events = AuditEvent.__table__
        audited = conn.execute(
            select(events.c.action, events.c.site_id).where(events.c.resource == "mapping")
        ).all()
    assert [(a.action, a.site_id) for a in audited] == [("reidentify", site_id)]


def test_export_of_an_unknown_site_fails(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["vault", "export", "nowhere", "--out", str(tmp_path / "m.csv")],
        env={
            "CONNRAD_DATA_DIR": str(settings.data_dir),
            "CONNRAD_DATABASE_URL": settings.database_url,
        },
    )
    assert result.exit_code == 1
    assert not (tmp_path / "m.csv").exists()
