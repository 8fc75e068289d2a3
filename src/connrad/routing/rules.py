"""Routing rules: what of a site goes to which destination.

Creating a backup destination adds the default rule, "every study of the site"; rules narrow
it by modality or hold studies until quality control allows them. The ingest hook reads a
site's rules from a per-process cache refreshed every second, like the site policies.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from connrad.db.base import utcnow
from connrad.identity.admin import AdminError
from connrad.routing.models import Destination, RoutingRule

rules_t = RoutingRule.__table__
destinations_t = Destination.__table__
QC_GATES = ("any", "checked", "passed")
_TTL_SECONDS = 1.0


@dataclass(frozen=True)
class Rule:
    destination_id: int
    modality: str
    qc: str


def create(
    conn: Connection, destination_id: int, *, modality: str = "", qc: str = "any"
) -> dict[str, Any]:
    destination = conn.execute(
        select(destinations_t.c.site_id).where(destinations_t.c.id == destination_id)
    ).first()
    if destination is None:
        raise AdminError("destination not found", 404)
    if qc not in QC_GATES:
        raise AdminError(f"QC gate: one of {', '.join(QC_GATES)}")
    modality = modality.strip().upper()
    if len(modality) > 16:
        raise AdminError("modality: at most 16 characters")
    rule_id = conn.execute(
        insert(rules_t)
        .values(
            site_id=destination.site_id,
            destination_id=destination_id,
            modality=modality,
            qc=qc,
            enabled=True,
            created_at=utcnow(),
        )
        .returning(rules_t.c.id)
    ).scalar_one()
    return get(conn, int(rule_id))


def get(conn: Connection, rule_id: int) -> dict[str, Any]:
    row = conn.execute(select(rules_t).where(rules_t.c.id == rule_id)).mappings().first()
    if row is None:
        raise AdminError("rule not found", 404)
    return dict(row)


def list_for(conn: Connection, site_ids: frozenset[int] | None) -> list[dict[str, Any]]:
    query = select(rules_t).order_by(rules_t.c.site_id, rules_t.c.id)
    if site_ids is not None:
        query = query.where(rules_t.c.site_id.in_(site_ids))
    return [dict(row) for row in conn.execute(query).mappings()]


def remove(conn: Connection, rule_id: int) -> None:
    get(conn, rule_id)
    conn.execute(delete(rules_t).where(rules_t.c.id == rule_id))


class RuleCache:
    """Each site's enabled rules, read at most once a second per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._rules: dict[int, tuple[float, tuple[Rule, ...]]] = {}
        self._lock = threading.Lock()

    def for_site(self, conn: Connection, site_id: int) -> tuple[Rule, ...]:
        now = time.monotonic()
        with self._lock:
            cached = self._rules.get(site_id)
        if cached is not None and now - cached[0] < _TTL_SECONDS:
            return cached[1]
        rows = conn.execute(
            select(rules_t.c.destination_id, rules_t.c.modality, rules_t.c.qc).where(
                rules_t.c.site_id == site_id, rules_t.c.enabled.is_(True)
            )
        ).all()
        found = tuple(Rule(int(r.destination_id), r.modality, r.qc) for r in rows)
        with self._lock:
            self._rules[site_id] = (now, found)
        return found

    def forget(self) -> None:
        with self._lock:
            self._rules.clear()
