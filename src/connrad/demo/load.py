"""Loads the generated demo studies through the ingest pipeline, once (first start)."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from connrad.archive.ingest import Source
from connrad.archive.models import Study
from connrad.services import Services

log = logging.getLogger(__name__)


def ingest_bytes(services: Services, data: bytes, source: Source) -> None:
    writer = services.blobs.stage()
    writer.write(data)
    result = services.ingest.ingest(writer.finish(), source)
    if not result.stored:
        raise RuntimeError(f"demo instance rejected: {result.reason}")


def load_demo_if_empty(services: Services) -> int:
    """Returns the number of instances loaded (0 when the archive already holds studies)."""
    from connrad.demo.generate import demo_studies, to_part10_bytes

    with services.engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(Study.__table__)).scalar_one():
            return 0
    source = Source(services.local_site_id, None, "demo")
    loaded = 0
    for study in demo_studies():
        for ds in study:
            ingest_bytes(services, to_part10_bytes(ds), source)
            loaded += 1
    log.info("loaded %d demo instances", loaded)
    return loaded
