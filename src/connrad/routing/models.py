"""Destinations: the peers a site's data may be sent to.

A DICOM destination is an AE (title, host, port, optionally TLS); a DICOMweb one a URL.
Every destination belongs to one site: a C-MOVE of a site's device may only name its own
site's destinations, so no device can send data to an address of its choosing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime, utcnow


class Destination(Base):
    __tablename__ = "destinations"
    __table_args__ = (
        UniqueConstraint("site_id", "name"),
        # A C-MOVE names its destination by AE title: one address per title and site.
        UniqueConstraint("site_id", "ae_title"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # "dicom" | "dicomweb"
    ae_title: Mapped[str | None] = mapped_column(String(16), nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)  # DICOMweb root
    auth_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    auth_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    # May receive identified data (a backup PACS of the site itself); decided per use.
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)  # nothing is sent meanwhile
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Health, for the circuit breaker: consecutive failed attempts and until when to wait.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit_open_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(String(256), default="")


class RoutingRule(Base):
    """What of a site goes to a destination: every study, or one modality, once QC allows.

    ``qc``: ``any`` (send at once), ``checked`` (once the deep checks ran and the study is
    not quarantined) or ``passed`` (only studies whose QC passed or warned).
    """

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    modality: Mapped[str] = mapped_column(String(16), default="")  # "" = every modality
    qc: Mapped[str] = mapped_column(String(16), default="any")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Delivery(Base):
    """One instance to one destination: the outbox row, written with the instance's index.

    queued -> sending (leased by a worker) -> sent -> confirmed; or dead after too many
    attempts. ``remote_*`` are the UIDs as the destination holds them (the originals when it
    is trusted and the instance was de-identified).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("destination_id", "instance_pk"),
        Index("ix_deliveries_due", "destination_id", "state", "run_after"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    instance_pk: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    qc: Mapped[str] = mapped_column(String(16), default="any")  # the rule's QC gate
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(String(256), default="")
    remote_study_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_sop_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
