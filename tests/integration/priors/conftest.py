"""Priors tests: a real Orthanc as the site's PACS, holding studies of the test patients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import select, update

from connrad.archive.ingest import IngestResult, Source
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.jobs.models import Job
from connrad.jobs.worker import Worker
from connrad.priors import service
from connrad.routing import destinations
from connrad.services import Services
from tests.factories import make_dataset, to_bytes
from tests.orthanc import Orthanc, orthanc  # noqa: F401 - the fixture, for this package

PATIENT_ID, PATIENT_NAME = "SECRET-42", "Secret^Person"
OTHER_ID, OTHER_NAME = "OTHER-7", "Doe^Jane"
NEW_DATE = "20260301"
J = Job.__table__


@dataclass
class PacsStudy:
    study_uid: str
    date: str
    datasets: list[Any] = field(default_factory=list)


def study_files(
    date: str,
    *,
    instances: int = 1,
    modality: str = "CT",
    patient_id: str = PATIENT_ID,
    name: str = PATIENT_NAME,
    study_uid: str | None = None,
) -> PacsStudy:
    """One single-series study of the patient (tiny CT images, fresh UIDs)."""
    study = PacsStudy(study_uid or generate_uid(), date)
    series_uid = generate_uid()
    for number in range(1, instances + 1):
        study.datasets.append(
            make_dataset(
                StudyInstanceUID=study.study_uid,
                SeriesInstanceUID=series_uid,
                PatientID=patient_id,
                PatientName=name,
                StudyDate=date,
                SeriesDate=date,
                Modality=modality,
                InstanceNumber=number,
                AccessionNumber=f"A{date}",
                BodyPartExamined="CHEST",
            )
        )
    return study


def upload(pacs: Orthanc, study: PacsStudy) -> PacsStudy:
    for ds in study.datasets:
        pacs.upload(to_bytes(ds))
    return study


def ingest(services: Services, data: bytes, door: str = "stow") -> IngestResult:
    writer = services.blobs.stage()
    writer.write(data)
    result = services.ingest.ingest(writer.finish(), Source(services.local_site_id, None, door))
    assert result.stored, result.reason
    return result


def add_pacs(
    services: Services, pacs: Orthanc, *, kind: str = "dicom", trusted: bool = True
) -> None:
    with write_transaction(services.engine) as conn:
        if kind == "dicom":
            destinations.create_dicom(
                conn,
                services.local_site_id,
                "pacs",
                ae_title="ORTHANC",
                host="127.0.0.1",
                port=pacs.dicom_port,
                trusted=trusted,
            )
        else:
            destinations.create_dicomweb(
                conn, services.local_site_id, "pacs-web", url=pacs.dicomweb, trusted=trusted
            )


def fetch_jobs(services: Services) -> list[Any]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(J).where(J.c.kind == service.FETCH_JOB)).mappings())


def run_fetch_jobs(services: Services) -> int:
    """Make the queued fetches due and run them (only them) through the worker."""
    with write_transaction(services.engine) as conn:
        conn.execute(
            update(J)
            .where(J.c.kind == service.FETCH_JOB, J.c.state == "queued")
            .values(run_after=utcnow() - timedelta(seconds=1))
        )
    worker = Worker(services.engine, {service.FETCH_JOB: services.job_handlers[service.FETCH_JOB]})
    return worker.run_once()
