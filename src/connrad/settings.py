"""Typed settings, read from the environment (``CONNRAD_*``) and never from module globals.

Call :func:`get_settings` where settings are needed; tests build their own :class:`Settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONNRAD_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Root of everything connrad writes.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at <data_dir>/connrad.db."
    )
    storage_url: str = Field("", description="Blob store URL; empty means file://<data_dir>/blobs.")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_workers: int = Field(
        0, description="HTTP worker processes; 0 means one per CPU (at most 4)."
    )
    dimse_port: int = Field(11112, description="DICOM port; 0 turns the DIMSE door off.")
    dimse_max_associations: int = Field(32, ge=1, description="Concurrent DICOM associations.")
    dimse_tls_certfile: Path | None = Field(None, description="PEM chain: DICOM over TLS.")
    dimse_tls_keyfile: Path | None = None
    dimse_tls_ca_file: Path | None = Field(
        None, description="CA bundle: require client certificates signed by it."
    )
    ae_title: str = "CONNRAD"
    public_base_url: str = Field(
        "", description="Base URL used in RetrieveURL/BulkDataURI; empty derives it per request."
    )
    fsync: bool = Field(True, description="fsync blobs and folders before acknowledging.")
    run_workers: bool = Field(True, description="Run the job worker loop inside `connrad serve`.")
    worker_poll_seconds: float = 0.5
    max_stow_part_bytes: int = Field(4 * 1024**3, description="Largest single STOW-RS part.")
    accept_unknown_sop_classes: bool = Field(
        False, description="Store SOP classes that are not known storage classes."
    )
    demo_data: bool = Field(True, description="Load generated demo studies on first start.")
    cors_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Origins whose pages may call the API with bearer tokens (never cookies).",
    )
    token_signing_key_file: Path | None = Field(
        None, description="Key for access tokens; empty: <data_dir>/secrets/token-signing.key."
    )
    vault_master_key: SecretStr | None = Field(
        None, description="Identity vault master key (base64url or hex), from the environment."
    )
    vault_master_key_file: Path | None = Field(
        None, description="File holding the vault master key; empty: <data_dir>/secrets/."
    )
    deid_max_ocr_frames: int = Field(
        64,
        ge=1,
        description="Frames read by OCR per instance when cleaning pixels; beyond it, frames "
        "spread over the instance are read and their text boxes masked on every frame.",
    )
    qc_quiet_seconds: float = Field(
        30.0,
        ge=0,
        description="A series counts as complete (deep QC runs) after this long without a new "
        "instance.",
    )
    qc_pixel_images_per_series: int = Field(
        5, ge=1, description="Images of a cross-sectional series whose pixels deep QC reads."
    )
    qc_pixel_frames_per_image: int = Field(
        3, ge=1, description="Frames of a multi-frame image deep QC reads (first, middle, last)."
    )
    qc_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description='Overrides of QC thresholds by name, e.g. {"pixel.saturated_fraction": 0.1} '
        "(names and defaults: docs/qc.md).",
    )
    backup_threads: int = Field(
        2, ge=0, description="Backup sender threads per worker process (0: none here)."
    )
    backup_batch_size: int = Field(64, ge=1, description="Instances per backup batch.")
    backup_lease_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a batch is leased to a worker before another may take it.",
    )
    backup_max_attempts: int = Field(
        10, ge=1, description="Refusals of one instance before it becomes a dead letter."
    )
    backup_backoff_base_seconds: float = Field(2.0, gt=0, description="First retry delay.")
    backup_backoff_cap_seconds: float = Field(600.0, gt=0, description="Longest retry delay.")
    priors_enabled: bool = Field(True, description="Fetch prior studies from the site's PACS.")
    priors_max: int = Field(3, ge=0, description="Most recent relevant prior studies fetched.")
    priors_delay_seconds: float = Field(
        5.0, ge=0, description="Wait after a new study before looking for its priors."
    )
    session_hours: float = Field(8.0, description="Web session lifetime.")
    login_max_failures_account: int = 5
    login_max_failures_address: int = 20
    login_lockout_seconds: int = 900
    tls_certfile: Path | None = Field(None, description="PEM certificate chain: serve HTTPS.")
    tls_keyfile: Path | None = Field(None, description="PEM private key for tls_certfile.")
    max_json_body_bytes: int = Field(1024**2, description="Largest JSON or form request body.")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @property
    def effective_token_key_file(self) -> Path:
        return self.token_signing_key_file or self.data_dir / "secrets" / "token-signing.key"

    @property
    def effective_http_workers(self) -> int:
        import os

        return self.http_workers or max(1, min(4, os.cpu_count() or 1))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'connrad.db'}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or (self.data_dir / "blobs").as_uri()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
