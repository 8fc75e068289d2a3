"""The identity vault's tables: wrapped site keys, sealed identity records, blind-index terms.

Nothing here is readable without the master key: keys are wrapped by it, records are sealed
under keys derived from the site key, and terms are keyed HMACs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime, utcnow


class SiteKey(Base):
    __tablename__ = "site_keys"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(32))  # which master key wrapped it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IdentityRecord(Base):
    """The original identifiers behind one pseudonym, sealed (AES-GCM) per site."""

    __tablename__ = "identity_records"
    __table_args__ = (UniqueConstraint("site_id", "pseudonym"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    pseudonym: Mapped[str] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IdentityTerm(Base):
    """A blind-index term (keyed HMAC of a real PatientID, name or accession) of a record."""

    __tablename__ = "identity_terms"
    __table_args__ = (Index("ix_identity_terms_lookup", "site_id", "kind", "term"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    term: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int] = mapped_column(
        ForeignKey("identity_records.id", ondelete="CASCADE"), index=True
    )
