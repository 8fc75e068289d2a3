"""Audit events as RFC 5424 syslog messages (authpriv.info), for a SIEM."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from connrad.audit.models import AuditEvent

PRI = 10 * 8 + 6  # facility authpriv (10), severity informational (6)
SD_ID = "connrad@32473"  # enterprise number 32473 is reserved for documentation (RFC 5612)


def _sd_value(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_event(event: Mapping[str, Any], hostname: str | None = None) -> str:
    occurred: datetime = event["occurred_at"]
    timestamp = occurred.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    params = " ".join(
        f'{name}="{_sd_value(event[name])}"'
        for name in (
            "sequence",
            "actor",
            "source",
            "action",
            "resource",
            "study_uid",
            "site_id",
            "outcome",
            "hash",
        )
    )
    message = f"{event['action']} {event['resource']} outcome={event['outcome']}"
    host = hostname or socket.gethostname()
    return f"<{PRI}>1 {timestamp} {host} connrad - audit [{SD_ID} {params}] {message}"


def export(engine: Engine, since_sequence: int = 0) -> Iterator[str]:
    table = AuditEvent.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.sequence > since_sequence).order_by(table.c.sequence)
        ).mappings()
        for row in rows:
            yield format_event(row)
