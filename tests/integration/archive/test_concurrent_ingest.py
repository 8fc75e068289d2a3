"""Two index writers (as two processes would have) creating the same study at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from connrad.archive.ingest import IngestService, Source
from connrad.archive.models import Patient, Series, Study
from connrad.services import Services
from tests.factories import make_dataset, to_bytes


def test_same_new_study_from_two_writers(services: Services) -> None:
    other = IngestService(services.engine, services.blobs)  # its own committer and cache
    other.follow_ups.extend(services.ingest.follow_ups)
    first = make_dataset()
    datasets = [
        make_dataset(
            StudyInstanceUID=first.StudyInstanceUID,
            SeriesInstanceUID=first.SeriesInstanceUID,
            InstanceNumber=n,
        )
        for n in range(40)
    ]
    source = Source(services.local_site_id, None, "test")

    def ingest(n: int) -> bool:
        writer = services.blobs.stage()
        writer.write(to_bytes(datasets[n]))
        service = services.ingest if n % 2 else other
        return service.ingest(writer.finish(), source).stored

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(ingest, range(len(datasets))))
    with services.engine.connect() as conn:
        (study,) = conn.execute(select(Study.__table__)).all()
        (series,) = conn.execute(select(Series.__table__)).all()
        (patient,) = conn.execute(select(Patient.__table__)).all()
    assert (study.num_series, study.num_instances, series.num_instances) == (1, 40, 40)
    assert patient.num_studies == 1
