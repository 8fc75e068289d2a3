"""Device API keys: ``crk_<prefix>_<secret>``; only SHA-256 of the secret is stored.

The secret has 256 bits of entropy, so a fast hash is safe here (unlike passwords) and
checking a key costs one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_MARK = "crk_"


@dataclass(frozen=True)
class NewKey:
    prefix: str
    secret_hash: str
    plaintext: str  # shown once, never stored


def new_key() -> NewKey:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(prefix, digest(secret), f"{KEY_MARK}{prefix}_{secret}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a key-shaped bearer token, else None."""
    if not token.startswith(KEY_MARK):
        return None
    prefix, _, secret = token[len(KEY_MARK) :].partition("_")
    if len(prefix) != 12 or not secret or len(secret) > 128:
        return None
    return prefix, secret


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(digest(secret), secret_hash)
