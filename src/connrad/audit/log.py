"""Appending to the audit trail (group-committed) and verifying its chain.

A read is audited before its data is returned: when the audit trail cannot be written, the
read fails (AuditUnavailable) rather than happen unrecorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from connrad.audit.chain import GENESIS, chained_record, link
from connrad.audit.models import AuditEvent, AuditHead
from connrad.db.base import utcnow
from connrad.db.batching import BatchWriter
from connrad.db.transaction import write_transaction

events = AuditEvent.__table__
head = AuditHead.__table__


class AuditUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    source: str
    action: str  # search | read | create | update | delete | login ...
    resource: str
    outcome: int
    actor_site_id: int | None = None
    study_uid: str | None = None
    site_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer: BatchWriter[AuditRecord, bool] = BatchWriter(
            "connrad-audit", self._append, lambda _: False
        )

    def record(self, record: AuditRecord) -> None:
        if not self._writer.submit(record):
            raise AuditUnavailable("the audit trail cannot be written")

    def _append(self, batch: list[AuditRecord]) -> list[bool]:
        with write_transaction(self.engine) as conn:
            append(conn, batch)
        return [True] * len(batch)


def append(conn: Connection, batch: list[AuditRecord]) -> None:
    """Chain ``batch`` onto the trail on the caller's transaction.

    The ingest pipeline calls it inside the indexing transaction, so a stored instance and
    the record of its storing commit together or not at all.
    """
    if not batch:
        return
    query = select(head.c.sequence, head.c.hash).where(head.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # appenders in other processes wait here
    sequence, previous = conn.execute(query).one()
    rows = []
    for record in batch:
        sequence += 1
        row = {**asdict(record), "sequence": sequence, "occurred_at": utcnow()}
        digest = link(previous, chained_record(row))
        rows.append({**row, "previous_hash": previous, "hash": digest})
        previous = digest
    conn.execute(insert(events), rows)
    conn.execute(update(head).where(head.c.id == 1).values(sequence=sequence, hash=previous))


@dataclass(frozen=True)
class Verification:
    events: int
    first_broken: int | None  # sequence number of the first event that does not chain

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify(engine: Engine, batch_size: int = 5000) -> Verification:
    """Recompute the chain from the start; a changed, removed or inserted event breaks it."""
    previous, expected_sequence, count = GENESIS, 1, 0
    with engine.connect() as conn:
        last = 0
        while True:
            rows = (
                conn.execute(
                    select(events)
                    .where(events.c.sequence > last)
                    .order_by(events.c.sequence)
                    .limit(batch_size)
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            for row in rows:
                ok = (
                    row["sequence"] == expected_sequence
                    and row["previous_hash"] == previous
                    and row["hash"] == link(previous, chained_record(dict(row)))
                )
                if not ok:
                    return Verification(count, expected_sequence)
                previous, expected_sequence, count = row["hash"], expected_sequence + 1, count + 1
            last = rows[-1]["sequence"]
        head_row = conn.execute(select(head.c.sequence, head.c.hash)).one()
    if (head_row.sequence, head_row.hash) != (count, previous):
        return Verification(count, count + 1)  # the tail was cut off
    return Verification(count, None)
