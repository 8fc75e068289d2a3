"""The identity vault's tables: wrapped site keys, sealed identity records, blind-index terms.

Nothing here is readable without the master key: keys are wrapped by it, records are sealed
under keys derived from the site key, and terms are keyed HMACs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
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
    """The original identifiers behind one pseudonym, sealed (AES-GCM) per site.

    ``kind`` says what the pseudonym names: ``patient`` (the pseudonymous PatientID; the
    record holds PatientID, issuer, name, birth date), ``study`` (the new Study Instance
    UID; accession number, study ID, original UID and date) or ``instance`` (the new SOP
    Instance UID; every original identifier and UID of the instance, for re-identification
    on egress to a trusted destination).
    """

    __tablename__ = "identity_records"
    __table_args__ = (UniqueConstraint("site_id", "kind", "pseudonym"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="patient")
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


class HeldInstance(Base):
    """An instance received and stored durably but not released into the archive.

    Images at risk of burned-in identity wait here (header already de-identified) until
    Clean Pixel Data has masked their text (state ``cleaning``), or for a person's review
    when cleaning is off or failed (state ``held``). Nothing here is searchable, readable
    through DICOMweb or routed.
    """

    __tablename__ = "held_instances"
    __table_args__ = (Index("ix_held_instances_site_state", "site_id", "state"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    device_id: Mapped[int | None] = mapped_column(BigIntPK, nullable=True)
    door: Mapped[str] = mapped_column(String(16))
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))  # e.g. "pixel-risk"; never a value
    state: Mapped[str] = mapped_column(String(16))  # cleaning | held
    detail: Mapped[str] = mapped_column(String(256), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
