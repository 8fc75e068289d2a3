"""Passwords, TOTP codes and API key formats."""

from __future__ import annotations

import pyotp
import pytest

from connrad.identity import api_keys, passwords, totp


def test_password_hash_roundtrip_and_argon2id() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")
    assert not passwords.verify_password(None, "anything at all")  # unknown user
    assert not passwords.verify_password("not a hash", "anything at all")
    assert not passwords.verify_password(stored, "x" * (passwords.MAX_LENGTH + 1))


@pytest.mark.parametrize("weak", ["short", "aaaaaaaaaaaaaaaa", "x" * 2000])
def test_weak_passwords_are_refused(weak: str) -> None:
    with pytest.raises(passwords.WeakPassword):
        passwords.hash_password(weak)


def test_one_time_passwords_are_strong_and_distinct() -> None:
    made = {passwords.one_time_password() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        passwords.check_strength(secret)


def test_totp_accepts_current_and_neighbouring_steps_once() -> None:
    secret = totp.new_secret()
    now = 1_800_000_000.0
    code = pyotp.TOTP(secret).at(now)
    step = totp.matching_step(secret, code, last_step=0, now=now)
    assert step == int(now // 30)
    assert totp.matching_step(secret, code, last_step=step, now=now) is None  # replay
    late = pyotp.TOTP(secret).at(now - 30)
    assert totp.matching_step(secret, late, last_step=0, now=now) == step - 1
    stale = pyotp.TOTP(secret).at(now - 90)
    assert totp.matching_step(secret, stale, last_step=0, now=now) is None
    for junk in ("", "12345", "1234567", "abcdef"):
        assert totp.matching_step(secret, junk, last_step=0, now=now) is None


def test_provisioning_uri_names_issuer_and_account() -> None:
    uri = totp.provisioning_uri(totp.new_secret(), "rad1")
    assert uri.startswith("otpauth://totp/connrad:rad1?")
    assert "issuer=connrad" in uri


def test_api_keys_split_and_match() -> None:
    key = api_keys.new_key()
    parts = api_keys.split(key.plaintext)
    assert parts is not None
    prefix, secret = parts
    assert prefix == key.prefix
    assert api_keys.matches(secret, key.secret_hash)
    assert not api_keys.matches(secret + "x", key.secret_hash)
    assert key.secret_hash != secret
    for other in ("crk_short_x", "Bearer x", "crk_", f"crk_{prefix}_", "eyJhbGciOi"):
        assert api_keys.split(other) is None
