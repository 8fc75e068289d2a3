"""Loads the generated demo studies through the ingest pipeline, once (first start)."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from connrad.archive.ingest import Source
from connrad.archive.models import Instance, Study
from connrad.services import Services

log = logging.getLogger(__name__)


def ingest_bytes(services: Services, data: bytes, source: Source) -> None:
    writer = services.blobs.stage()
    writer.write(data)
    result = services.ingest.ingest(writer.finish(), source)
    if not result.stored:
        raise RuntimeError(f"demo instance rejected: {result.reason}")


def load_demo_if_empty(services: Services) -> int:
    """Load the demo studies once; returns how many instances were sent (0 if not loaded).

    Skipped when the archive holds other studies. An interrupted load is finished at the
    next start: the demo UIDs are deterministic and re-sending an instance is harmless.
    """
    from connrad.demo.generate import demo_studies, to_part10_bytes

    marker = services.settings.data_dir / ".demo-loaded"
    if marker.exists():
        return 0
    with services.engine.connect() as conn:
        demo_ran = conn.execute(
            select(func.count())
            .select_from(Instance.__table__)
            .where(Instance.__table__.c.door == "demo")
        ).scalar_one()
        studies = conn.execute(select(func.count()).select_from(Study.__table__)).scalar_one()
    if studies and not demo_ran:
        return 0  # a real archive: leave it alone
    source = Source(services.local_site_id, None, "demo")
    loaded = 0
    for study in demo_studies():
        for ds in study:
            ingest_bytes(services, to_part10_bytes(ds), source)
            loaded += 1
    marker.touch()
    log.info("loaded %d demo instances", loaded)
    return loaded
