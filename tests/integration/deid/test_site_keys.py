"""Site data keys: created once, stored only wrapped, usable by every process that holds the
master key and by no other."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connrad.db.transaction import write_transaction
from connrad.deid import vault
from connrad.deid.keys import SiteKeys, master_key
from connrad.deid.models import SiteKey
from connrad.identity import admin
from connrad.services import Services
from connrad.settings import Settings


def test_site_key_is_created_once_and_wrapped(services: Services, settings: Settings) -> None:
    with write_transaction(services.engine) as conn:
        other = admin.create_site(conn, "island", "Island", "identified")
    assert other["deid_policy"] == "identified"
    version, key = services.site_keys.current(services.local_site_id)
    assert (version, len(key)) == (1, 32)
    # Another process with the same master key (read from the same file) gets the same key.
    again = SiteKeys(services.engine, master_key(settings)).current(services.local_site_id)
    assert again == (version, key)
    assert services.site_keys.current(other["id"])[1] != key  # one key per site
    with services.engine.connect() as conn:
        stored = conn.execute(select(SiteKey.__table__.c.wrapped)).scalars().all()
    assert len(stored) == 2 and all(key not in blob for blob in stored)
    key_file = settings.data_dir / "secrets" / "vault-master.key"
    assert key_file.stat().st_mode & 0o077 == 0


def test_another_master_key_cannot_unwrap(services: Services) -> None:
    services.site_keys.current(services.local_site_id)
    stranger = SiteKeys(services.engine, vault.load_master_key(vault.generate_master_key(), None))
    with pytest.raises(vault.VaultError):
        stranger.current(services.local_site_id)


def test_master_key_from_the_environment(settings: Settings) -> None:
    text = vault.generate_master_key()
    configured = settings.model_copy(update={"vault_master_key": SecretStr(text)})
    assert master_key(configured) == vault.load_master_key(text, None)
    with pytest.raises(ValueError):
        master_key(settings.model_copy(update={"vault_master_key": SecretStr("not-a-key")}))


def test_policy_is_validated(services: Services) -> None:
    with write_transaction(services.engine) as conn:
        new = admin.create_site(conn, "fresh", "Fresh clinic")
        assert (new["deid_policy"], new["pixel_policy"]) == ("pseudonymized", "clean")
        admin.update_site(conn, services.local_site_id, deid_policy="anonymized")
        with pytest.raises(admin.AdminError):
            admin.update_site(conn, services.local_site_id, pixel_policy="ignore")
        with pytest.raises(admin.AdminError):
            admin.update_site(conn, services.local_site_id, deid_policy="open")
        with pytest.raises(admin.AdminError):
            admin.create_site(conn, "bad", "Bad", "plaintext")
