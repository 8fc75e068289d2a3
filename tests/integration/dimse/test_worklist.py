"""Modality Worklist over DIMSE, queried by DCMTK's findscu and by pynetdicom: a modality finds
its own site's open orders, with the real (Korean) names, and nothing of other sites.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydicom import Dataset, dcmread
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from sqlalchemy import select

from connrad.audit.models import AuditEvent
from connrad.db.transaction import write_transaction
from connrad.dimse import worklist as mwl
from connrad.dimse.server import DimseServer
from connrad.identity import admin
from connrad.identity.authenticate import dicom_caller
from connrad.orders import service
from connrad.orders.service import NewOrder, Order, Procedure, Status
from connrad.services import Services
from tests.conftest import free_port
from tests.peers import missing

KST = timezone(timedelta(hours=9))
HONG_NAME, HONG_ID, HONG_ACCESSION = "홍^길동", "P-HONG-77", "ACC-HONG-1"


@dataclass
class Clinic:
    port: int
    site: int
    hong: Order
    kim: Order
    later: Order


def schedule(
    services: Services, site: int, name: str, pid: str, accession: str, modality: str, at: datetime
) -> Order:
    new = NewOrder(
        patient_id=pid,
        patient_name=name,
        accession_number=accession,
        modality=modality,
        scheduled_start=at,
        procedure=Procedure("CXR-PA", "흉부 X선 정면", "99LOCAL"),
        birth_date="19800101",
        sex="M",
        station_ae="PORTCR",
    )
    ring = service.keyring(services.site_keys, site)
    with write_transaction(services.engine) as conn:
        return service.create(conn, ring, new)


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    with write_transaction(services.engine) as conn:
        site = admin.create_site(conn, "island", "Island clinic")["id"]
        harbor = admin.create_site(conn, "harbor", "Harbor clinic")["id"]
        admin.create_device(conn, site, "portable-cr", "dicom", ae_title="PORTCR")
        admin.create_device(conn, harbor, "harbor-us", "dicom", ae_title="HARBORUS")
    now = datetime.now(KST).replace(microsecond=0)
    soon = now + timedelta(hours=2)
    hong = schedule(services, site, HONG_NAME, HONG_ID, HONG_ACCESSION, "CR", soon)
    kim = schedule(services, site, "Kim^Minji=金^旼志=김^민지", "P-KIM-2", "ACC-KIM-2", "US", soon)
    later = schedule(
        services, site, "Park^Jisoo", "P-PARK-3", "ACC-PARK-3", "CR", now + timedelta(30)
    )
    gone = schedule(services, site, "Lee^Gone", "P-LEE-4", "ACC-LEE-4", "CR", soon)
    schedule(services, harbor, "Secret^Person", "SECRET-42", "ACC-H-1", "CR", soon)
    with write_transaction(services.engine) as conn:
        service.set_status(conn, gone.id, Status.CANCELLED)
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    yield Clinic(port, site, hong, kim, later)
    server.stop()


def query(**keys: object) -> Dataset:
    """An MWL identifier; ``step`` holds the Scheduled Procedure Step item's keys."""
    ds = Dataset()
    step_keys = keys.pop("step", {})
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    step = Dataset()
    for keyword, value in dict(step_keys).items():  # type: ignore[call-overload]
        setattr(step, keyword, value)
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def c_find(port: int, identifier: Dataset, calling: str = "PORTCR") -> list[tuple[int, Dataset]]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="CONNRAD")
    assert assoc.is_established
    try:
        responses = [
            (int(status.Status), found)
            for status, found in assoc.send_c_find(identifier, ModalityWorklistInformationFind)
        ]
    finally:
        assoc.release()
    return responses


def matches(responses: list[tuple[int, Dataset]]) -> list[Dataset]:
    assert responses[-1][0] == 0x0000, responses[-1]
    assert all(status == 0xFF00 for status, _ in responses[:-1])
    return [found for _, found in responses[:-1]]


def local_date(order: Order, days: int = 0) -> str:
    return (order.scheduled_start + timedelta(days=days)).strftime("%Y%m%d")


def test_korean_name_query_returns_the_order_with_only_the_requested_keys(
    clinic: Clinic,
) -> None:
    identifier = query(
        SpecificCharacterSet="ISO_IR 192",
        PatientName="홍*",
        PatientID="",
        PatientBirthDate="",
        AccessionNumber="",
        StudyInstanceUID="",
        RequestedProcedureCodeSequence=[],
        PatientWeight="",  # not in the model: returned empty
        step={
            "Modality": "",
            "ScheduledStationAETitle": "",
            "ScheduledProcedureStepStartDate": "",
            "ScheduledProcedureStepStartTime": "",
            "ScheduledProcedureStepDescription": "",
            "ScheduledProcedureStepStatus": "",
        },
    )
    (found,) = matches(c_find(clinic.port, identifier))

    assert clinic.hong.identity is not None
    assert found.SpecificCharacterSet == "ISO_IR 192"
    assert str(found.PatientName) == HONG_NAME
    assert found.PatientID == HONG_ID
    assert found.PatientBirthDate == "19800101"
    assert found.AccessionNumber == HONG_ACCESSION
    assert found.StudyInstanceUID == clinic.hong.identity.study_uid
    assert found.PatientWeight in (None, "")
    code = found.RequestedProcedureCodeSequence[0]
    assert (code.CodeValue, code.CodeMeaning) == ("CXR-PA", "흉부 X선 정면")
    step = found.ScheduledProcedureStepSequence[0]
    start = clinic.hong.scheduled_start
    assert step.Modality == "CR"
    assert step.ScheduledStationAETitle == "PORTCR"
    assert step.ScheduledProcedureStepStartDate == start.strftime("%Y%m%d")  # KST, as given
    assert step.ScheduledProcedureStepStartTime == start.strftime("%H%M%S")
    assert step.ScheduledProcedureStepDescription == "흉부 X선 정면"
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"
    # Only what was asked for: no sex, no reason, no procedure ID.
    assert "PatientSex" not in found and "RequestedProcedureID" not in found
    assert "ScheduledProcedureStepID" not in step


def test_query_in_iso_2022_ir_149_is_decoded(clinic: Clinic) -> None:
    identifier = query(
        SpecificCharacterSet=["", "ISO 2022 IR 149"], PatientName="홍*", PatientID=""
    )
    (found,) = matches(c_find(clinic.port, identifier))
    assert found.PatientID == HONG_ID


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("김^민지", "P-KIM-2"),  # the Hangul group, third of the name
        ("KIM^MINJI", "P-KIM-2"),  # case-insensitive
        ("kim*", "P-KIM-2"),
        ("Hong^Gildong", None),  # the name is only in Hangul
    ],
)
def test_person_names_match_any_group_case_insensitively(
    clinic: Clinic, name: str, expected: str | None
) -> None:
    identifier = query(SpecificCharacterSet="ISO_IR 192", PatientName=name, PatientID="")
    found = matches(c_find(clinic.port, identifier))
    assert [f.PatientID for f in found] == ([expected] if expected else [])


def test_date_range_and_modality(clinic: Clinic) -> None:
    today = f"{local_date(clinic.hong, -1)}-{local_date(clinic.hong, 1)}"
    by_date_and_modality = query(
        PatientID="", step={"Modality": "CR", "ScheduledProcedureStepStartDate": today}
    )
    assert [f.PatientID for f in matches(c_find(clinic.port, by_date_and_modality))] == [HONG_ID]

    by_modality = query(PatientID="", step={"Modality": "US"})
    assert [f.PatientID for f in matches(c_find(clinic.port, by_modality))] == ["P-KIM-2"]

    # Park's order is 30 days away: outside the default window of 7 days...
    everything = query(PatientID="", step={"ScheduledProcedureStepStartDate": ""})
    found = {f.PatientID for f in matches(c_find(clinic.port, everything))}
    assert found == {HONG_ID, "P-KIM-2"}  # the cancelled order is not open either
    # ... and found when the query's range reaches it.
    reaching = query(
        PatientID="",
        step={"ScheduledProcedureStepStartDate": f"{local_date(clinic.hong)}-"},
    )
    found = {f.PatientID for f in matches(c_find(clinic.port, reaching))}
    assert found == {HONG_ID, "P-KIM-2", "P-PARK-3"}
    single_day = query(
        PatientID="", step={"ScheduledProcedureStepStartDate": local_date(clinic.later)}
    )
    assert [f.PatientID for f in matches(c_find(clinic.port, single_day))] == ["P-PARK-3"]


def test_device_of_another_site_sees_nothing(clinic: Clinic, services: Services) -> None:
    identifier = query(PatientName="홍*", SpecificCharacterSet="ISO_IR 192", PatientID="")
    assert matches(c_find(clinic.port, identifier, calling="HARBORUS")) == []
    # Its own site's order it does see; the island's never.
    assert [f.PatientID for f in matches(c_find(clinic.port, query(PatientID=""), "HARBORUS"))] == [
        "SECRET-42"
    ]

    with services.engine.connect() as conn:
        events = AuditEvent.__table__
        rows = conn.execute(
            select(events.c.actor, events.c.site_id, events.c.outcome, events.c.detail)
            .where(events.c.action == "search", events.c.resource == "worklist")
            .order_by(events.c.sequence)
        ).all()
    assert [(r.outcome, r.detail) for r in rows] == [
        (200, {"door": "dimse", "matches": 0}),
        (200, {"door": "dimse", "matches": 1}),
    ]
    assert all(r.actor.startswith("device:") and r.site_id != clinic.site for r in rows)


def test_identifier_the_model_cannot_process_is_a900(clinic: Clinic) -> None:
    two_steps = query(PatientID="")
    two_steps.ScheduledProcedureStepSequence.append(Dataset())
    assert [s for s, _ in c_find(clinic.port, two_steps)] == [0xA900]
    bad_date = query(PatientID="", step={"ScheduledProcedureStepStartDate": "2026-11-28"})
    assert [s for s, _ in c_find(clinic.port, bad_date)] == [0xA900]


def test_query_retrieve_finds_still_reach_their_own_handler(
    clinic: Clinic, services: Services
) -> None:
    ae = AE(ae_title="PORTCR")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", clinic.port, ae_title="CONNRAD")
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    try:
        statuses = [
            int(s.Status)
            for s, _ in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)
        ]
    finally:
        assoc.release()
    assert statuses and statuses[-1] not in (0xA900, 0xC311)
    events = AuditEvent.__table__
    with services.engine.connect() as conn:
        resources = conn.execute(
            select(events.c.resource).where(events.c.action == "search")
        ).scalars()
        assert list(resources) == ["study"]  # answered by the Query/Retrieve SCP


def test_cancel_stops_the_responses(clinic: Clinic, services: Services) -> None:
    with services.engine.connect() as conn:
        caller = dicom_caller(conn, "PORTCR", "127.0.0.1")
    event = SimpleNamespace(
        assoc=SimpleNamespace(connrad_caller=caller),
        identifier=query(PatientID=""),
        is_cancelled=True,
    )
    assert list(mwl.find(services, event)) == [(0xFE00, None)]


def test_findscu_worklist(clinic: Clinic, tmp_path: Path) -> None:
    if shutil.which("findscu") is None:
        missing("DCMTK findscu not installed (Debian dcmtk)")
    keys = [
        "SpecificCharacterSet=ISO_IR 192",
        "PatientName=홍*",
        "PatientID",
        "StudyInstanceUID",
        "(0040,0100)[0].Modality=CR",
        f"(0040,0100)[0].ScheduledProcedureStepStartDate={local_date(clinic.hong)}",
        "(0040,0100)[0].ScheduledProcedureStepStartTime",
    ]
    out = tmp_path / "responses"
    out.mkdir()
    done = subprocess.run(
        ["findscu", "-W", "-aet", "PORTCR", "-aec", "CONNRAD", "-X", "-od", str(out)]
        + [arg for key in keys for arg in ("-k", key)]
        + ["127.0.0.1", str(clinic.port)],
        capture_output=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    (response,) = [dcmread(p, force=True) for p in sorted(out.iterdir())]
    assert clinic.hong.identity is not None
    assert str(response.PatientName) == HONG_NAME
    assert response.StudyInstanceUID == clinic.hong.identity.study_uid
    start = response.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime
    assert start == clinic.hong.scheduled_start.strftime("%H%M%S")


def test_database_holds_no_identity_in_clear(
    clinic: Clinic, services: Services, database_url: str
) -> None:
    secrets = [HONG_NAME, "홍", HONG_ID, HONG_ACCESSION, "Kim^Minji", "P-KIM-2", "SECRET-42"]
    assert clinic.hong.identity is not None
    secrets.append(clinic.hong.identity.study_uid)
    with services.engine.connect() as conn:
        rows = conn.execute(select(service.orders)).all()
    assert len(rows) == 5
    text = repr(rows)
    assert not [s for s in secrets if s in text]
    if database_url.startswith("sqlite:///"):
        services.engine.dispose()
        db = Path(database_url.removeprefix("sqlite:///"))
        stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert not [s for s in secrets if s.encode() in stored]
