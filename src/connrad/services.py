"""The running system's parts, wired once from settings: engine, blob store, ingest, jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select

from connrad.archive.followups import register_follow_ups
from connrad.archive.ingest import IngestService
from connrad.audit.log import AuditLog
from connrad.db.engine import make_engine
from connrad.db.migrate import upgrade
from connrad.deid import held
from connrad.deid.keys import SiteKeys, master_key
from connrad.deid.pipeline import SiteDeidentifier
from connrad.identity.authenticate import Authenticator
from connrad.identity.models import LOCAL_SITE_CODE, Site
from connrad.identity.oauth import AccessTokens, load_or_create_signing_key
from connrad.jobs.worker import Handler, Worker
from connrad.priors import service as priors_service
from connrad.qc import service as qc_service
from connrad.qc.fast import FastLimits
from connrad.qc.gate import FastQuality
from connrad.qc.service import limits_from
from connrad.routing import backup
from connrad.routing.backup import BackupWorker
from connrad.routing.rules import RuleCache
from connrad.settings import Settings
from connrad.storage import BlobStore, open_blob_store


@dataclass
class Services:
    settings: Settings
    engine: Engine
    blobs: BlobStore
    ingest: IngestService
    audit: AuditLog
    local_site_id: int
    tokens: AccessTokens
    authenticator: Authenticator
    site_keys: SiteKeys
    job_handlers: dict[str, Handler] = field(default_factory=dict)
    routing_rules: RuleCache | None = None

    @property
    def cache_dir(self) -> Path:
        return self.settings.data_dir / "cache"

    def backup_workers(self) -> list[BackupWorker]:
        """Started backup sender threads (``backup_threads`` of them)."""
        return backup.start_backup_workers(self)

    def worker(self) -> Worker:
        return Worker(self.engine, self.job_handlers, poll=self.settings.worker_poll_seconds)

    def close(self) -> None:
        self.engine.dispose()


def build_services(settings: Settings, *, migrate: bool = True, recover: bool = False) -> Services:
    """Wire the services.

    ``recover`` removes staging files left by a crash: only the process that starts the
    others (`connrad serve`) may do it, never one beside peers that are receiving data.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    if migrate:
        upgrade(engine)
    blobs = open_blob_store(settings.effective_storage_url, fsync=settings.fsync)
    if recover:
        blobs.recover()
    with engine.connect() as conn:
        local_site_id = conn.execute(
            select(Site.__table__.c.id).where(Site.__table__.c.code == LOCAL_SITE_CODE)
        ).scalar_one()
    master = master_key(settings)
    site_keys = SiteKeys(engine, master)
    ingest = IngestService(
        engine,
        blobs,
        accept_unknown_sop_classes=settings.accept_unknown_sop_classes,
        deidentifier=SiteDeidentifier(engine, blobs, site_keys),
    )
    ingest.quality = FastQuality(master, limits_from(settings, FastLimits, "fast"))
    tokens = AccessTokens(load_or_create_signing_key(settings.effective_token_key_file), "connrad")
    services = Services(
        settings,
        engine,
        blobs,
        ingest,
        AuditLog(engine),
        int(local_site_id),
        tokens,
        Authenticator(engine, tokens),
        site_keys,
    )
    register_follow_ups(services)
    qc_service.register(services)
    services.routing_rules = backup.register(services)
    priors_service.register(services)
    held.register(services)
    return services
