"""Site data keys: created on first use, stored wrapped by the vault master key.

The master key comes from ``CONNRAD_VAULT_MASTER_KEY`` or a key file; without either, a new
installation creates ``<data_dir>/secrets/vault-master.key`` (0600) once. Production sites
should provide it from their secret store and keep a copy: without it, nothing in the vault
(and no pseudonym) can be re-identified.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.deid import vault
from connrad.deid.models import SiteKey
from connrad.settings import Settings

site_keys = SiteKey.__table__


def master_key(settings: Settings) -> bytes:
    if settings.vault_master_key is not None:
        return vault.load_master_key(settings.vault_master_key.get_secret_value(), None)
    path = settings.vault_master_key_file or settings.data_dir / "secrets" / "vault-master.key"
    if settings.vault_master_key_file is None and not path.exists():
        _create_key_file(path)
    return vault.load_master_key(None, path)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it first
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(vault.generate_master_key() + "\n")
            out.flush()
            os.fsync(out.fileno())


class SiteKeys:
    """Unwrapped site keys for this process, created in the database on first use."""

    def __init__(self, engine: Engine, master: bytes) -> None:
        self.engine = engine
        self._master = master
        self._master_id = vault.master_key_id(master)
        self._cache: dict[int, tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def current(self, site_id: int) -> tuple[int, bytes]:
        """(version, key) of the site's current data key."""
        with self._lock:
            cached = self._cache.get(site_id)
        if cached is not None:
            return cached
        row = self._latest(site_id)
        if row is None:
            self._create(site_id)
            row = self._latest(site_id)
        assert row is not None
        version, wrapped = row
        key = vault.unwrap(self._master, site_id, vault.WrappedKey(version, wrapped))
        with self._lock:
            self._cache[site_id] = (version, key)
        return version, key

    def all(self, site_id: int) -> dict[int, bytes]:
        """Every key version of the site, unwrapped: records sealed before a rotation."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(site_keys.c.version, site_keys.c.wrapped).where(
                    site_keys.c.site_id == site_id
                )
            ).all()
        return {
            int(r.version): vault.unwrap(
                self._master, site_id, vault.WrappedKey(int(r.version), bytes(r.wrapped))
            )
            for r in rows
        }

    def _latest(self, site_id: int) -> tuple[int, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(site_keys.c.version, site_keys.c.wrapped)
                .where(site_keys.c.site_id == site_id)
                .order_by(site_keys.c.version.desc())
                .limit(1)
            ).first()
        return None if row is None else (int(row.version), bytes(row.wrapped))

    def _create(self, site_id: int) -> None:
        wrapped = vault.new_site_key(self._master, site_id)
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    insert(site_keys).values(
                        site_id=site_id,
                        version=wrapped.version,
                        wrapped=wrapped.blob,
                        master_key_id=self._master_id,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # another process created the first key at the same moment: use that one
