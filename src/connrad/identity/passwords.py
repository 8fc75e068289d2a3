"""Password hashing (argon2id) and one-time passwords for new or reset accounts."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults
# Verified against when the account does not exist, so timing does not reveal usernames.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_LENGTH = 12
MAX_LENGTH = 1024  # bounded: argon2 is expensive, an attacker must not choose the cost


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _UNKNOWN_USER_HASH, password) and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password must have at most {MAX_LENGTH} characters")
    if len(set(password)) < 5:
        raise WeakPassword("password is too repetitive")


def one_time_password() -> str:
    """A random password shown once; the account must change it at first login."""
    return secrets.token_urlsafe(15)
