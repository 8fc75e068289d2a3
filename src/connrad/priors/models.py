"""Links from a study to the earlier studies of its patient shown beside it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime


class StudyPrior(Base):
    __tablename__ = "study_priors"
    # The unique constraint makes linking idempotent and serves lookups by study_pk.
    __table_args__ = (UniqueConstraint("study_pk", "prior_study_pk"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    # Indexed: deleting a study cascades to the links that name it as a prior.
    prior_study_pk: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
