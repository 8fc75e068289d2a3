"""The index: patients, studies, series and instances with what QIDO-RS matches and returns.

Person names keep their three component groups (alphabetic, ideographic, phonetic) plus a
normalized ``*_search`` text (case- and accent-folded, every group) for fuzzy matching.
Counts (00201200, 00201206, 00201208, 00201209) are maintained by the ingest pipeline.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime

PN = String(324)  # 3 groups x 64 chars x up to 5 components, plus separators


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("site_id", "patient_id", "issuer_of_patient_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    name_alphabetic: Mapped[str] = mapped_column(PN, default="")
    name_ideographic: Mapped[str] = mapped_column(PN, default="")
    name_phonetic: Mapped[str] = mapped_column(PN, default="")
    name_search: Mapped[str] = mapped_column(String(1024), default="", index=True)
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    num_studies: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        Index("ix_studies_last_received", "last_received_at", "id"),
        Index("ix_studies_site_last_received", "site_id", "last_received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_id: Mapped[str] = mapped_column(String(16), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    referring_physician_alphabetic: Mapped[str] = mapped_column(PN, default="")
    referring_physician_ideographic: Mapped[str] = mapped_column(PN, default="")
    referring_physician_phonetic: Mapped[str] = mapped_column(PN, default="")
    referring_physician_search: Mapped[str] = mapped_column(String(1024), default="")
    specific_character_set: Mapped[str] = mapped_column(String(128), default="")
    modalities_in_study: Mapped[str] = mapped_column(String(128), default="")  # "\"-joined
    num_series: Mapped[int] = mapped_column(Integer, default=0)
    num_instances: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Quality control (connrad.qc): pending | pass | warn | fail, and the quarantine flag.
    qc_status: Mapped[str] = mapped_column(String(8), default="pending")
    qc_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_description: Mapped[str] = mapped_column(String(64), default="")
    body_part_examined: Mapped[str] = mapped_column(String(16), default="")
    performed_start_date: Mapped[str] = mapped_column(String(8), default="")
    performed_start_time: Mapped[str] = mapped_column(String(16), default="")
    num_instances: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    qc_status: Mapped[str] = mapped_column(String(8), default="pending")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    number_of_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bits_allocated: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(255))
    door: Mapped[str] = mapped_column(String(16))  # stow | dimse | upload | edge | demo
    warnings: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    # Keyed fingerprint of the patient identity as received (before de-identification), so
    # deep QC can tell two patients mixed in one study without keeping the identity.
    identity_fp: Mapped[str | None] = mapped_column(String(32), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
