"""Follow-up work after an instance is stored, enqueued in the indexing transaction.

Now: the study thumbnail for the worklist is rendered in the background, once the study has
been quiet for a moment. Later domains (deep QC, PACS backup, CDM) add their hooks here.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from connrad.archive.ingest import StoredInstance
from connrad.archive.models import Instance, Series, Study
from connrad.jobs import queue

if TYPE_CHECKING:
    from connrad.services import Services

log = logging.getLogger(__name__)

THUMBNAIL_JOB = "study.thumbnail"
_QUIET = timedelta(seconds=2)


def enqueue_thumbnail(conn: Connection, stored: StoredInstance) -> None:
    # One job per new series is enough: the job renders whatever the study holds by then.
    if stored.new_series:
        queue.enqueue(conn, THUMBNAIL_JOB, {"study_pk": stored.study_pk}, delay=_QUIET)


def register_follow_ups(services: Services) -> None:
    services.ingest.follow_ups.append(enqueue_thumbnail)
    services.job_handlers[THUMBNAIL_JOB] = lambda payload: render_study_thumbnail(services, payload)


def thumbnail_path(services: Services, study_uid: str) -> Any:
    return services.cache_dir / "thumbnails" / f"{study_uid}.jpg"


def render_study_thumbnail(services: Services, payload: dict[str, Any]) -> None:
    from connrad.dicom.render import thumbnail

    S, R, N = Study.__table__, Series.__table__, Instance.__table__
    with services.engine.connect() as conn:
        study_uid = conn.execute(
            select(S.c.study_uid).where(S.c.id == payload["study_pk"])
        ).scalar()
        if study_uid is None:
            return
        # The middle image of the first series with images that render.
        keys = (
            conn.execute(
                select(N.c.blob_key)
                .join(R, R.c.id == N.c.series_pk)
                .where(N.c.study_pk == payload["study_pk"], N.c.rows.is_not(None))
                .order_by(R.c.series_number, R.c.id, N.c.instance_number)
            )
            .scalars()
            .all()
        )
    if not keys:
        return
    image = thumbnail(services.blobs.local_path(keys[len(keys) // 2]))
    target = thumbnail_path(services, study_uid)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(image)
    temporary.replace(target)
