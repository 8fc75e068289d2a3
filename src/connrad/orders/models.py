"""The orders table: scheduling facts in clear, the patient's identity sealed.

In clear only what identifies nobody: modality, station, time, procedure code, status. The
patient, accession number, request IDs, reason and Study Instance UID are one sealed vault
record; the accession number is also kept as a keyed blind index, to find and deduplicate
orders without decrypting them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime, utcnow


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("site_id", "accession_index"),
        Index("ix_orders_site_start", "site_id", "scheduled_start"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # scheduled | in-progress | completed | ...
    modality: Mapped[str] = mapped_column(String(16))
    station_ae: Mapped[str | None] = mapped_column(String(16), nullable=True)
    scheduled_start: Mapped[datetime] = mapped_column(UTCDateTime())
    # DICOM dates and times are local: the offset the order was given in is how the
    # modality is told the time, and how a worklist query's dates are read.
    utc_offset_minutes: Mapped[int] = mapped_column(Integer)
    procedure_code: Mapped[str] = mapped_column(String(16))
    procedure_scheme: Mapped[str] = mapped_column(String(16))
    procedure_meaning: Mapped[str] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    accession_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
