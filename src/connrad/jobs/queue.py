"""Enqueue, claim, finish and retry durable jobs.

Jobs are enqueued on the caller's connection, inside the caller's transaction (outbox):
the follow-up work exists if and only if the change that caused it was committed.
Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so many workers on many hosts never
take the same job; on SQLite the write lock serializes claimers. A claim is a lease: a worker
that dies leaves its job to be claimed again once ``locked_until`` has passed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.jobs.models import Job

jobs = Job.__table__

LEASE = timedelta(minutes=5)
_INSERT_JOB = insert(jobs)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def enqueue(
    conn: Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    delay: timedelta = timedelta(0),
    max_attempts: int = 8,
) -> None:
    now = utcnow()
    conn.execute(
        _INSERT_JOB,
        {
            "kind": kind,
            "payload": payload,
            "state": "queued",
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_after": now + delay,
            "created_at": now,
        },
    )


def claim(engine: Engine, worker: str, kinds: list[str], limit: int = 10) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs of the given kinds to ``worker``."""
    now = utcnow()
    due = or_(
        and_(jobs.c.state == "queued", jobs.c.run_after <= now),
        and_(jobs.c.state == "running", jobs.c.locked_until < now),  # expired lease
    )
    query = (
        select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts)
        .where(due, jobs.c.kind.in_(kinds))
        .order_by(jobs.c.run_after, jobs.c.id)
        .limit(limit)
    )
    # Idle workers poll: look before taking the write lock, which readers never wait for
    # but every writer (ingest, audit) does on SQLite.
    with engine.connect() as conn:
        if conn.execute(query.with_only_columns(jobs.c.id).limit(1)).first() is None:
            return []
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_([r.id for r in rows]))
            .values(
                state="running",
                locked_by=worker,
                locked_until=now + LEASE,
                attempts=jobs.c.attempts + 1,
            )
        )
    return [ClaimedJob(r.id, r.kind, r.payload, r.attempts + 1, r.max_attempts) for r in rows]


def complete(engine: Engine, job_id: int, worker: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.locked_by == worker)
            .values(state="done", locked_by=None, locked_until=None, finished_at=utcnow())
        )


def fail(engine: Engine, job: ClaimedJob, worker: str, error: str) -> None:
    """Schedule a retry with exponential backoff and jitter, or bury it as dead."""
    dead = job.attempts >= job.max_attempts
    values: dict[str, Any] = {"locked_by": None, "locked_until": None, "last_error": error[:2000]}
    if dead:
        values.update(state="dead", finished_at=utcnow())
    else:
        values.update(state="queued", run_after=utcnow() + backoff(job.attempts))
    with write_transaction(engine) as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job.id, jobs.c.locked_by == worker).values(**values)
        )


def backoff(attempts: int, base: float = 2.0, cap: float = 3600.0) -> timedelta:
    """Full jitter: a random delay up to base * 2**attempts, capped."""
    return timedelta(seconds=random.uniform(0, min(cap, base * 2**attempts)))
