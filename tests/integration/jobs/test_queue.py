"""The durable job queue: outbox enqueue, leases, retries with backoff, dead letters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.jobs import queue
from connrad.jobs.models import Job
from connrad.jobs.worker import Worker
from connrad.services import Services
from tests.factories import make_instance

jobs = Job.__table__


def states(services: Services) -> list[tuple[str, int]]:
    with services.engine.connect() as conn:
        return [
            (r.state, r.attempts)
            for r in conn.execute(select(jobs.c.state, jobs.c.attempts).order_by(jobs.c.id))
        ]


def test_enqueue_is_part_of_the_callers_transaction(services: Services) -> None:
    with pytest.raises(RuntimeError), write_transaction(services.engine) as conn:
        queue.enqueue(conn, "test.kind", {"n": 1})
        raise RuntimeError("roll back")
    assert states(services) == []
    with write_transaction(services.engine) as conn:
        queue.enqueue(conn, "test.kind", {"n": 2})
    assert states(services) == [("queued", 0)]


def test_worker_runs_retries_and_buries(services: Services) -> None:
    seen: list[int] = []

    def flaky(payload: dict) -> None:  # type: ignore[type-arg]
        seen.append(payload["n"])
        if payload["n"] == 2:
            raise ValueError("always fails")

    with write_transaction(services.engine) as conn:
        queue.enqueue(conn, "test.kind", {"n": 1})
        queue.enqueue(conn, "test.kind", {"n": 2}, max_attempts=2)
    worker = Worker(services.engine, {"test.kind": flaky})
    assert worker.run_once() == 2
    assert states(services) == [("done", 1), ("queued", 1)]
    with services.engine.connect() as conn:
        retry_at = conn.execute(select(jobs.c.run_after).where(jobs.c.id == 2)).scalar_one()
        error = conn.execute(select(jobs.c.last_error).where(jobs.c.id == 2)).scalar_one()
    assert retry_at > utcnow() - timedelta(seconds=1)
    assert "always fails" in error
    assert worker.run_once() in (0, 1)  # not due yet, unless the jitter drew ~0
    with write_transaction(services.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.id == 2).values(run_after=utcnow()))
    worker.run_once()
    assert states(services)[1] == ("dead", 2)


def test_expired_lease_is_claimed_again(services: Services) -> None:
    with write_transaction(services.engine) as conn:
        queue.enqueue(conn, "test.kind", {})
    first = queue.claim(services.engine, "worker-a", ["test.kind"])
    assert len(first) == 1
    assert queue.claim(services.engine, "worker-b", ["test.kind"]) == []
    with write_transaction(services.engine) as conn:  # worker-a died long ago
        conn.execute(update(jobs).values(locked_until=utcnow() - timedelta(seconds=1)))
    second = queue.claim(services.engine, "worker-b", ["test.kind"])
    assert [j.id for j in second] == [first[0].id] and second[0].attempts == 2
    queue.complete(services.engine, first[0].id, "worker-a")  # stale worker: no effect
    assert states(services) == [("running", 2)]
    queue.complete(services.engine, second[0].id, "worker-b")
    assert states(services) == [("done", 2)]


def test_ingest_enqueues_thumbnail_and_worker_renders_it(services: Services) -> None:
    from connrad.archive.followups import THUMBNAIL_JOB, thumbnail_path
    from connrad.archive.ingest import Source

    data = make_instance()
    writer = services.blobs.stage()
    writer.write(data)
    result = services.ingest.ingest(writer.finish(), Source(services.local_site_id, None, "t"))
    assert result.stored
    with services.engine.connect() as conn:
        kinds = set(conn.execute(select(jobs.c.kind)).scalars().all())
    assert kinds == {THUMBNAIL_JOB, "qc.series"}  # the series' deep quality checks too
    with write_transaction(services.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.kind == THUMBNAIL_JOB).values(run_after=utcnow()))
    assert services.worker().run_once() == 1
    assert thumbnail_path(services, result.study_uid).read_bytes().startswith(b"\xff\xd8")
