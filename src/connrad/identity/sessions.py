"""Web sessions: a random cookie token (only its SHA-256 is stored) and a CSRF token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert

from connrad.identity.models import Session

sessions = Session.__table__

COOKIE = "connrad_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    conn: Connection, user_id: int, source: str, lifetime: timedelta, now: datetime
) -> NewSession:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + lifetime
    conn.execute(
        insert(sessions).values(
            token_hash=token_hash(token),
            csrf_token=csrf,
            user_id=user_id,
            source=source[:64],
            created_at=now,
            expires_at=expires,
        )
    )
    conn.execute(delete(sessions).where(sessions.c.expires_at < now))  # tidy as we go
    return NewSession(token, csrf, expires)


def end(conn: Connection, token: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash(token)))


def end_all(conn: Connection, user_id: int) -> None:
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
