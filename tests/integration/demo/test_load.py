"""Demo data: loaded once, finished after an interrupted first start, never into a real archive."""

from __future__ import annotations

from sqlalchemy import func, select

from connrad.archive.ingest import Source
from connrad.archive.models import Instance, Study
from connrad.demo.generate import demo_studies, to_part10_bytes
from connrad.demo.load import ingest_bytes, load_demo_if_empty
from connrad.services import Services
from tests.factories import make_instance


def count(services: Services, table) -> int:  # type: ignore[no-untyped-def]
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table.__table__)).scalar_one())


def test_interrupted_demo_load_is_completed_then_not_repeated(services: Services) -> None:
    expected = sum(len(study) for study in demo_studies())
    first = demo_studies()[0][0]  # as if the first start died after one instance
    ingest_bytes(services, to_part10_bytes(first), Source(services.local_site_id, None, "demo"))
    assert load_demo_if_empty(services) == expected
    assert count(services, Instance) == expected
    assert count(services, Study) == len(demo_studies())
    assert load_demo_if_empty(services) == 0


def test_real_archive_gets_no_demo(services: Services) -> None:
    ingest_bytes(services, make_instance(), Source(services.local_site_id, None, "stow"))
    assert load_demo_if_empty(services) == 0
    assert count(services, Instance) == 1
