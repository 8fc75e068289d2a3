"""The audit trail: reads and changes are recorded without PHI, chained and append-only."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from connrad.audit.log import AuditRecord, verify
from connrad.audit.models import AuditEvent
from connrad.audit.syslog import format_event
from connrad.services import Services
from connrad.settings import Settings
from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes

events = AuditEvent.__table__


def all_events(services: Services) -> list[dict]:
    with services.engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(select(events).order_by(events.c.sequence)).mappings()
        ]


def lift_append_only(conn: Connection) -> None:
    """What an attacker with database rights could do; verification must still notice."""
    if conn.dialect.name == "sqlite":
        for verb in ("update", "delete"):
            conn.execute(text(f"DROP TRIGGER audit_events_no_{verb}"))
    else:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))


def test_reads_and_stores_are_recorded_without_phi(client: TestClient, services: Services) -> None:
    ds = make_dataset(PatientName="Secret^Person", PatientID="SECRET-42")
    client.post(
        "/dicomweb/studies", content=stow_body(to_bytes(ds)), headers={"Content-Type": STOW_TYPE}
    )
    client.get("/dicomweb/studies", params={"PatientName": "Secret*"})
    client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")
    client.get("/dicomweb/studies/1.2.3/metadata")
    client.get(
        "/wado",
        params={
            "requestType": "WADO",
            "studyUID": ds.StudyInstanceUID,
            "seriesUID": ds.SeriesInstanceUID,
            "objectUID": ds.SOPInstanceUID,
        },
    )
    recorded = all_events(services)
    summary = [(e["action"], e["resource"], e["outcome"], e["study_uid"]) for e in recorded]
    assert summary == [
        ("create", "study", 200, ds.StudyInstanceUID),
        ("search", "study", 200, None),
        ("read", "study", 200, ds.StudyInstanceUID),
        ("read", "study", 404, "1.2.3"),
        ("read", "instance", 200, ds.StudyInstanceUID),
    ]
    search = recorded[1]["detail"]
    assert search["keys"] == ["PatientName"]
    assert search["studies"] == [ds.StudyInstanceUID]
    assert recorded[2]["detail"]["route"] == "/dicomweb/studies/{study}/metadata"
    assert all(e["actor"].startswith("device:") and e["source"] for e in recorded)
    flat = str(recorded)
    assert "Secret" not in flat and "SECRET-42" not in flat
    assert verify(services.engine).intact


def test_chain_is_gapless_under_concurrency_and_detects_tampering(services: Services) -> None:
    def write(n: int) -> None:
        services.audit.record(
            AuditRecord(
                actor=f"device:{n}",
                source="127.0.0.1",
                action="read",
                resource="study",
                outcome=200,
            )
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(200)))
    recorded = all_events(services)
    assert [e["sequence"] for e in recorded] == list(range(1, 201))
    result = verify(services.engine)
    assert result.intact and result.events == 200

    with services.engine.begin() as conn, pytest.raises(DBAPIError), conn.begin_nested():
        conn.execute(events.update().where(events.c.sequence == 50).values(outcome=403))
    with services.engine.begin() as conn:
        lift_append_only(conn)
        conn.execute(events.update().where(events.c.sequence == 50).values(outcome=403))
    assert verify(services.engine).first_broken == 50


def test_cut_tail_is_detected(services: Services) -> None:
    for n in range(3):
        services.audit.record(
            AuditRecord(actor="a", source="s", action="read", resource="study", outcome=200 + n)
        )
    with services.engine.begin() as conn:
        lift_append_only(conn)
        conn.execute(events.delete().where(events.c.sequence == 3))
    assert verify(services.engine).first_broken == 3


def test_syslog_and_cli(services: Services, settings: Settings) -> None:
    services.audit.record(
        AuditRecord(
            actor='user:"7"',
            source="10.0.0.1",
            action="read",
            resource="study",
            outcome=200,
            study_uid="1.2.3",
        )
    )
    (event,) = all_events(services)
    line = format_event(event, hostname="host")
    assert line.startswith("<86>1 ") and " host connrad - audit [connrad@32473 " in line
    assert 'actor="user:\\"7\\""' in line and 'study_uid="1.2.3"' in line
    env = {
        "CONNRAD_DATA_DIR": str(settings.data_dir),
        "CONNRAD_DATABASE_URL": settings.effective_database_url,
        "PATH": "/usr/bin:/bin",
    }
    verified = subprocess.run(
        [sys.executable, "-m", "connrad.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0 and "1 events" in verified.stdout
    exported = subprocess.run(
        [sys.executable, "-m", "connrad.cli", "audit", "export"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert exported.stdout.count("<86>1 ") == 1


def test_reads_are_refused_when_the_trail_cannot_be_written(
    client: TestClient, services: Services
) -> None:
    ds = make_dataset()
    client.post(
        "/dicomweb/studies", content=stow_body(to_bytes(ds)), headers={"Content-Type": STOW_TYPE}
    )
    with services.engine.begin() as conn:  # the head row gone: appends fail
        conn.execute(text("DROP TABLE audit_head"))
    response = client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")
    assert response.status_code == 503
    assert ds.SOPInstanceUID not in response.text
