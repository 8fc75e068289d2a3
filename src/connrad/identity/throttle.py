"""Login throttling per account and per client address, in the database so every worker
process sees the same counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connrad.identity.models import LoginThrottle

throttle = LoginThrottle.__table__


@dataclass(frozen=True)
class Limits:
    account_failures: int = 5
    address_failures: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


def keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.lower()[:100]}", f"addr:{address[:100]}"


def locked_for(conn: Connection, keys: tuple[str, ...], now: datetime) -> float:
    """Seconds until every given key may try again (0: not locked)."""
    rows = conn.execute(
        select(throttle.c.locked_until).where(
            throttle.c.key.in_(keys), throttle.c.locked_until > now
        )
    ).scalars()
    return max(((until - now).total_seconds() for until in rows), default=0.0)


def record_failure(conn: Connection, key: str, limit: int, limits: Limits, now: datetime) -> None:
    # Forget keys whose window passed without a lockout (usernames tried once, ...).
    conn.execute(
        delete(throttle).where(
            throttle.c.window_start < now - limits.window,
            (throttle.c.locked_until.is_(None)) | (throttle.c.locked_until < now),
            throttle.c.key != key,
        )
    )
    fresh = _insert(conn)(throttle).values(key=key, failures=1, window_start=now)
    created = conn.execute(
        fresh.on_conflict_do_nothing(index_elements=["key"]).returning(throttle.c.key)
    ).first()
    row = conn.execute(select(throttle).where(throttle.c.key == key)).mappings().one()
    if created is not None:
        failures = 1
    elif row["window_start"] + limits.window < now:
        failures = 1
        conn.execute(
            update(throttle)
            .where(throttle.c.key == key)
            .values(failures=1, window_start=now, locked_until=None)
        )
    else:
        failures = row["failures"] + 1
        conn.execute(update(throttle).where(throttle.c.key == key).values(failures=failures))
    if failures >= limit:
        conn.execute(
            update(throttle)
            .where(throttle.c.key == key)
            .values(locked_until=now + limits.lockout, failures=0, window_start=now)
        )


def _insert(conn: Connection) -> Any:
    # INSERT .. ON CONFLICT DO NOTHING: two failures at once must not collide on the key.
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def clear(conn: Connection, key: str) -> None:
    conn.execute(delete(throttle).where(throttle.c.key == key))
