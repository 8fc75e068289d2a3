"""Destinations: the peers a site's data may be sent to.

A DICOM destination is an AE (title, host, port, optionally TLS); a DICOMweb one a URL.
Every destination belongs to one site: a C-MOVE of a site's device may only name its own
site's destinations, so no device can send data to an address of its choosing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
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
