"""The deliveries outbox: written with the instance's index, drained by backup workers.

Every state change is a short write transaction. Claiming leases rows to one worker
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the database write lock on SQLite), so workers in
several processes or hosts never send the same instance at the same time; a worker killed
mid-batch leaves leases that expire, and the rows are claimed again (re-sending is harmless:
a PACS keeps one copy per SOP Instance UID).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, insert, or_, select, update

from connrad.archive.ingest import StoredInstance
from connrad.archive.models import Instance, Series, Study
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.routing.models import Delivery, Destination
from connrad.routing.rules import RuleCache

D = Delivery.__table__
T = Destination.__table__
S, R, N = Study.__table__, Series.__table__, Instance.__table__

QUEUED, SENDING, SENT, CONFIRMED, DEAD = "queued", "sending", "sent", "confirmed", "dead"
PRIOR_DOOR = "prior"


def enqueue_hook(cache: RuleCache) -> Any:
    """The ingest follow-up: one delivery per matching destination, in the index transaction."""

    def enqueue(conn: Connection, stored: StoredInstance) -> None:
        if stored.door == PRIOR_DOOR:
            return  # fetched from the site's PACS: never sent back
        rules = cache.for_site(conn, stored.site_id)
        if not rules:
            return
        modality = stored.header.modality.upper()
        gates: dict[int, str] = {}
        for rule in rules:
            if rule.modality and rule.modality != modality:
                continue
            present = gates.get(rule.destination_id)
            # Two rules to one destination: the more permissive gate wins.
            if present is None or _rank(rule.qc) < _rank(present):
                gates[rule.destination_id] = rule.qc
        if not gates:
            return
        now = utcnow()
        conn.execute(
            insert(D),
            [
                {
                    "destination_id": destination_id,
                    "instance_pk": stored.instance_pk,
                    "study_pk": stored.study_pk,
                    "state": QUEUED,
                    "qc": gate,
                    "attempts": 0,
                    "run_after": now,
                    "last_error": "",
                    "created_at": now,
                }
                for destination_id, gate in sorted(gates.items())
            ],
        )

    return enqueue


def _rank(gate: str) -> int:
    return {"any": 0, "checked": 1, "passed": 2}.get(gate, 3)


@dataclass(frozen=True)
class Claimed:
    id: int
    instance_pk: int
    study_pk: int
    site_id: int
    attempts: int
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_key: str
    study_uid: str
    remote_study_uid: str | None
    remote_sop_uid: str | None


def _qc_allows() -> Any:
    return or_(
        D.c.qc == "any",
        and_(D.c.qc == "checked", S.c.qc_status != "pending"),
        and_(D.c.qc == "passed", S.c.qc_status.in_(("pass", "warn"))),
    )


def _leasable(state: str, now: datetime) -> Any:
    free = or_(D.c.locked_until.is_(None), D.c.locked_until < now)
    if state == QUEUED:
        # A row leased for sending whose worker died is due again.
        return or_(
            and_(D.c.state == QUEUED, D.c.run_after <= now),
            and_(D.c.state == SENDING, D.c.locked_until < now),
        )
    return and_(D.c.state == state, D.c.run_after <= now, free)


def due_destinations(engine: Engine) -> list[int]:
    """Destinations with work due (sending or confirming), not paused, circuit closed."""
    now = utcnow()
    query = (
        select(D.c.destination_id)
        .join(T, T.c.id == D.c.destination_id)
        .where(
            or_(_leasable(QUEUED, now), _leasable(SENT, now)),
            T.c.paused.is_(False),
            or_(T.c.circuit_open_until.is_(None), T.c.circuit_open_until <= now),
        )
        .distinct()
    )
    with engine.connect() as conn:
        return [int(x) for x in conn.execute(query).scalars()]


def claim(
    engine: Engine,
    worker: str,
    destination_id: int,
    *,
    state: str,
    limit: int,
    lease: timedelta,
) -> list[Claimed]:
    """Lease up to ``limit`` due rows of one destination: to send (QUEUED) or confirm (SENT)."""
    now = utcnow()
    query = (
        select(
            D.c.id,
            D.c.instance_pk,
            D.c.study_pk,
            D.c.attempts,
            D.c.remote_study_uid,
            D.c.remote_sop_uid,
            N.c.site_id,
            N.c.sop_uid,
            N.c.sop_class_uid,
            N.c.transfer_syntax_uid,
            N.c.blob_key,
            S.c.study_uid,
        )
        .join(N, N.c.id == D.c.instance_pk)
        .join(S, S.c.id == D.c.study_pk)
        .where(
            D.c.destination_id == destination_id,
            _leasable(state, now),
            S.c.quarantined.is_(False),
            _qc_allows(),
        )
        .order_by(D.c.run_after, D.c.id)
        .limit(limit)
    )
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=D)
        rows = conn.execute(query).all()
        if not rows:
            return []
        values: dict[str, Any] = {"locked_by": worker, "locked_until": now + lease}
        if state == QUEUED:
            values.update(state=SENDING, attempts=D.c.attempts + 1)
        conn.execute(update(D).where(D.c.id.in_([r.id for r in rows])).values(**values))
    bump = 1 if state == QUEUED else 0
    return [
        Claimed(
            int(r.id),
            int(r.instance_pk),
            int(r.study_pk),
            int(r.site_id),
            int(r.attempts) + bump,
            r.sop_uid,
            r.sop_class_uid,
            r.transfer_syntax_uid,
            r.blob_key,
            r.study_uid,
            r.remote_study_uid,
            r.remote_sop_uid,
        )
        for r in rows
    ]


def mark_sent(engine: Engine, worker: str, sent: Sequence[tuple[int, str, str]]) -> None:
    """(delivery id, remote study UID, remote SOP UID) acknowledged by the destination."""
    if not sent:
        return
    now = utcnow()
    with write_transaction(engine) as conn:
        for delivery_id, study_uid, sop_uid in sent:
            conn.execute(
                update(D)
                .where(D.c.id == delivery_id, D.c.locked_by == worker)
                .values(
                    state=SENT,
                    remote_study_uid=study_uid,
                    remote_sop_uid=sop_uid,
                    sent_at=now,
                    run_after=now,  # due for confirmation
                    locked_by=None,
                    locked_until=None,
                    last_error="",
                )
            )


def mark_confirmed(engine: Engine, worker: str, ids: Iterable[int]) -> None:
    ids = list(ids)
    if not ids:
        return
    with write_transaction(engine) as conn:
        conn.execute(
            update(D)
            .where(D.c.id.in_(ids), D.c.locked_by == worker)
            .values(state=CONFIRMED, confirmed_at=utcnow(), locked_by=None, locked_until=None)
        )


def retry_later(
    engine: Engine,
    worker: str,
    failures: Sequence[tuple[Claimed, str]],
    *,
    max_attempts: int,
    backoff: Any,
    count_attempt: bool = True,
) -> None:
    """Back to the queue with backoff and jitter, or dead after ``max_attempts``.

    ``count_attempt=False`` when the destination was unreachable: a PACS down for hours
    must not turn its backlog into dead letters.
    """
    if not failures:
        return
    now = utcnow()
    with write_transaction(engine) as conn:
        for claimed, error in failures:
            attempts = claimed.attempts if count_attempt else max(0, claimed.attempts - 1)
            values: dict[str, Any] = {
                "locked_by": None,
                "locked_until": None,
                "last_error": error[:256],
                "attempts": attempts,
            }
            if count_attempt and attempts >= max_attempts:
                values["state"] = DEAD
            else:
                values.update(state=QUEUED, run_after=now + backoff(max(1, attempts)))
            conn.execute(
                update(D).where(D.c.id == claimed.id, D.c.locked_by == worker).values(**values)
            )


def release(engine: Engine, worker: str, ids: Iterable[int], *, delay: timedelta) -> None:
    """Give leased rows back untouched (confirmation to try again later)."""
    ids = list(ids)
    if not ids:
        return
    with write_transaction(engine) as conn:
        conn.execute(
            update(D)
            .where(D.c.id.in_(ids), D.c.locked_by == worker)
            .values(locked_by=None, locked_until=None, run_after=utcnow() + delay)
        )


def jittered_backoff(base: float, cap: float) -> Any:
    def backoff(attempts: int) -> timedelta:
        return timedelta(seconds=random.uniform(base / 2, min(cap, base * 2 ** (attempts - 1))))

    return backoff


# --- destination health: the circuit breaker -------------------------------------------


def destination_failed(engine: Engine, destination_id: int, error: str, backoff: Any) -> None:
    with write_transaction(engine) as conn:
        failures = conn.execute(select(T.c.failures).where(T.c.id == destination_id)).scalar_one()
        conn.execute(
            update(T)
            .where(T.c.id == destination_id)
            .values(
                failures=failures + 1,
                circuit_open_until=utcnow() + backoff(failures + 1),
                last_error=error[:256],
            )
        )


def destination_ok(engine: Engine, destination_id: int) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            update(T)
            .where(
                T.c.id == destination_id,
                or_(T.c.failures != 0, T.c.circuit_open_until.is_not(None)),
            )
            .values(failures=0, circuit_open_until=None, last_error="")
        )


# --- views -------------------------------------------------------------------------------

PENDING, PARTIAL, FAILED = "pending", "partial", "failed"


def study_backup(conn: Connection, study_pk: int) -> list[dict[str, Any]]:
    """Per destination: pending, partial, confirmed or failed, with counts."""
    counts = conn.execute(
        select(
            D.c.destination_id,
            T.c.name,
            D.c.state,
            func.count(),
        )
        .join(T, T.c.id == D.c.destination_id)
        .where(D.c.study_pk == study_pk)
        .group_by(D.c.destination_id, T.c.name, D.c.state)
    ).all()
    total = conn.execute(select(S.c.num_instances).where(S.c.id == study_pk)).scalar_one()
    by_destination: dict[int, dict[str, Any]] = {}
    for destination_id, name, state, count in counts:
        entry = by_destination.setdefault(
            int(destination_id), {"destination_id": int(destination_id), "name": name, "counts": {}}
        )
        entry["counts"][state] = int(count)
    for entry in by_destination.values():
        entry["status"] = backup_status(entry["counts"], int(total))
    return sorted(by_destination.values(), key=lambda e: e["destination_id"])


def backup_status(counts: dict[str, int], total: int) -> str:
    if counts.get(DEAD):
        return FAILED
    if (
        counts.get(CONFIRMED, 0) >= total
        and not counts.get(QUEUED)
        and not counts.get(SENDING)
        and not counts.get(SENT)
    ):
        return CONFIRMED
    if counts.get(CONFIRMED) or counts.get(SENT):
        return PARTIAL
    return PENDING


def backup_summary(conn: Connection, totals: dict[int, int]) -> dict[int, str]:
    """One backup status per study (worst over its destinations) for a page of studies."""
    if not totals:
        return {}
    rows = conn.execute(
        select(D.c.study_pk, D.c.destination_id, D.c.state, func.count())
        .where(D.c.study_pk.in_(list(totals)))
        .group_by(D.c.study_pk, D.c.destination_id, D.c.state)
    ).all()
    per: dict[tuple[int, int], dict[str, int]] = {}
    for study_pk, destination_id, state, count in rows:
        per.setdefault((int(study_pk), int(destination_id)), {})[state] = int(count)
    order = [CONFIRMED, PENDING, PARTIAL, FAILED]
    summary: dict[int, str] = {}
    for (study_pk, _), counts in per.items():
        status = backup_status(counts, totals[study_pk])
        present = summary.get(study_pk)
        if present is None or order.index(status) > order.index(present):
            summary[study_pk] = status
    return summary


def queue_stats(conn: Connection, site_ids: frozenset[int] | None) -> list[dict[str, Any]]:
    """Per destination: depth, oldest waiting, sent-but-unconfirmed, dead, health."""
    now = utcnow()
    waiting = D.c.state.in_((QUEUED, SENDING))
    query = (
        select(
            T.c.id,
            T.c.site_id,
            T.c.name,
            T.c.kind,
            T.c.paused,
            T.c.failures,
            T.c.circuit_open_until,
            T.c.last_error,
            func.count(case((waiting, 1))).label("depth"),
            func.min(case((waiting, D.c.created_at))).label("oldest"),
            func.count(case((D.c.state == SENT, 1))).label("unconfirmed"),
            func.count(case((D.c.state == DEAD, 1))).label("dead"),
            func.count(case((D.c.state == CONFIRMED, 1))).label("confirmed"),
        )
        .select_from(T.outerjoin(D, D.c.destination_id == T.c.id))
        .group_by(T.c.id)
        .order_by(T.c.site_id, T.c.name)
    )
    if site_ids is not None:
        query = query.where(T.c.site_id.in_(site_ids))
    out = []
    for row in conn.execute(query):
        oldest = row.oldest
        if isinstance(oldest, str):  # SQLite returns the aggregate as text
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        circuit = row.circuit_open_until
        out.append(
            {
                "destination_id": int(row.id),
                "site_id": int(row.site_id),
                "name": row.name,
                "kind": row.kind,
                "paused": bool(row.paused),
                "depth": int(row.depth),
                "oldest_age_seconds": None
                if oldest is None
                else round((now - oldest).total_seconds(), 1),
                "unconfirmed": int(row.unconfirmed),
                "confirmed": int(row.confirmed),
                "dead": int(row.dead),
                "failures": int(row.failures),
                "circuit_open": circuit is not None and circuit > now,
                "last_error": row.last_error,
            }
        )
    return out


def resubmit_dead(conn: Connection, destination_id: int) -> int:
    """Dead letters of a destination back to the queue, attempts reset."""
    return int(
        conn.execute(
            update(D)
            .where(D.c.destination_id == destination_id, D.c.state == DEAD)
            .values(state=QUEUED, attempts=0, run_after=utcnow(), last_error="")
        ).rowcount
    )


def purge(conn: Connection, destination_id: int, *, states: tuple[str, ...] = (DEAD,)) -> int:
    """Delete a destination's rows in these states (dead letters by default)."""
    from sqlalchemy import delete

    return int(
        conn.execute(
            delete(D).where(D.c.destination_id == destination_id, D.c.state.in_(states))
        ).rowcount
    )
