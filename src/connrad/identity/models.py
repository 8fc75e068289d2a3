"""Sites (tenants), devices, users and their credentials.

Every stored instance records the site and device that sent it; every request is made by a
user (session cookie) or a device (API key or OAuth access token) and checked by the policy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connrad.db.base import Base, BigIntPK, UTCDateTime, utcnow

LOCAL_SITE_CODE = "local"


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # identified | pseudonymized | anonymized: what the cloud keeps of its patients' identity
    deid_policy: Mapped[str] = mapped_column(String(16), default="pseudonymized")
    # clean | hold | pass: what happens to images at risk of burned-in identity
    pixel_policy: Mapped[str] = mapped_column(String(16), default="clean")
    # quarantine | accept: what happens to a study that fails quality control
    qc_policy: Mapped[str] = mapped_column(String(16), default="quarantine")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Device(Base):
    """An uploading source: a DICOM modality (AE title, hosts) or an API client."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # "dicom" | "api"
    ae_title: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)
    hosts: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: any address
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)  # what its tokens may carry
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """A long-lived device key, stored as SHA-256 of its 256-bit secret (shown once)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # lookup without the secret
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), nullable=True
    )
    password_hash: Mapped[str] = mapped_column(String(256))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)  # no code used twice
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReadingGrant(Base):
    """A radiologist may read the studies of this site."""

    __tablename__ = "reading_grants"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )


class Session(Base):
    """A web session: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginThrottle(Base):
    """Failed logins per account and per address, shared by every worker process."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # "user:<name>" | "addr:<ip>"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UsedAssertion(Base):
    """Client assertion IDs (jti) seen, so a captured assertion cannot be replayed."""

    __tablename__ = "oauth_used_assertions"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
