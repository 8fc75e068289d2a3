"""Audit events, each chained to the one before by SHA-256, and the chain's head."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, unique=True)  # gapless, from the head
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128))  # "anonymous", "user:7", "device:3"
    actor_site_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(64))  # client address or AE title
    action: Mapped[str] = mapped_column(String(16))  # search | read | create | update | delete
    resource: Mapped[str] = mapped_column(String(32))  # study | series | instance | query ...
    study_uid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    site_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[int] = mapped_column(Integer)  # HTTP-like: 200 success, 4xx refused ...
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # never patient data
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sequence number and hash; appends lock it, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
