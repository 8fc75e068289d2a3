"""Typed settings, read from the environment (``CONNRAD_*``) and never from module globals.

Call :func:`get_settings` where settings are needed; tests build their own :class:`Settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    dimse_port: int = 11112
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
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

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
