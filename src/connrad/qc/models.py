"""Where quality shows: findings per study, series or instance, and a status on each level.

A study's ``qc_status`` is ``pending`` until its deep checks ran (``warn`` or ``fail`` earlier
when a fast check already warned), then the worst of its findings. ``quarantined`` studies
(failed, under a site's quarantine policy) are kept but leave the worklist and routing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime

PENDING = "pending"  # received; deep checks not run yet (or the series is still arriving)


class QcFinding(Base):
    __tablename__ = "qc_findings"
    __table_args__ = (Index("ix_qc_findings_study", "study_pk", "stage"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    series_pk: Mapped[int | None] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), nullable=True
    )
    instance_pk: Mapped[int | None] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), nullable=True
    )
    stage: Mapped[str] = mapped_column(String(8))  # fast | deep
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))  # fail | warn
    message: Mapped[str] = mapped_column(String(512))
    attribute: Mapped[str] = mapped_column(String(64), default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
