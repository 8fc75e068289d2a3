"""QC tests run the pipeline with deep checks due at once (no quiet period)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connrad.archive.ingest import IngestResult, Source
from connrad.services import Services, build_services
from connrad.settings import Settings
from tests.conftest import set_site_policy


@pytest.fixture
def qc_services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings.model_copy(update={"qc_quiet_seconds": 0.0}), recover=True)
    set_site_policy(built, built.local_site_id, "identified")
    yield built
    built.close()


def ingest(services: Services, data: bytes, site_id: int | None = None) -> IngestResult:
    writer = services.blobs.stage()
    writer.write(data)
    staged = writer.finish()
    source = Source(site_id or services.local_site_id, None, "stow")
    return services.ingest.ingest(staged, source)


def ingest_files(
    services: Services, paths: list[Path], site_id: int | None = None
) -> list[IngestResult]:
    return [ingest(services, path.read_bytes(), site_id) for path in paths]


def run_jobs(services: Services) -> int:
    """Run due jobs until none is left; the number run."""
    worker = services.worker()
    total = 0
    for _ in range(200):
        ran = worker.run_once(limit=50)
        total += ran
        if not ran:
            return total
    raise AssertionError("jobs keep coming")
