"""The hash chain: pure functions, shared by the writer and the verifier."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    def default(value: object) -> str:
        if isinstance(value, datetime):
            return value.isoformat(timespec="microseconds")
        raise TypeError(type(value).__name__)

    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default
    ).encode("utf-8")


def link(previous_hash: str, record: dict[str, Any]) -> str:
    """The hash of one event: over the previous hash and the event's canonical form."""
    return hashlib.sha256(previous_hash.encode("ascii") + canonical(record)).hexdigest()


CHAINED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor",
    "actor_site_id",
    "source",
    "action",
    "resource",
    "study_uid",
    "site_id",
    "outcome",
    "detail",
)


def chained_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {name: row[name] for name in CHAINED_FIELDS}
    occurred = record["occurred_at"]
    if isinstance(occurred, datetime):
        # Both backends must hash the same text: UTC, microseconds.
        from datetime import UTC

        record["occurred_at"] = occurred.astimezone(UTC).replace(tzinfo=None)
    return record
