"""Keyed, deterministic replacements: UIDs, patient pseudonyms and the per-patient date offset.

Every value is an HMAC-SHA256 under a key derived from the site's data key for that purpose
alone (``vault.derive``: uid-remap, pseudonym, date-shift), so the purposes never share key
bytes with each other or with the vault's record encryption, and the same input always maps
to the same output across instances and calls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from pydicom.uid import UID, UID_dictionary

from connrad.deid.vault import KeyPurpose, derive

UID_ROOT = "2.25."
DATE_SHIFT_MAX_DAYS = 365
PSEUDONYM_PREFIX = "CR"
PSEUDONYM_NAME_PREFIX = "ANON^"


@lru_cache(maxsize=64)
def _purpose_key(site_key: bytes, purpose: KeyPurpose) -> bytes:
    return derive(site_key, purpose)  # HKDF once per site and purpose, not once per UID


def _hmac(key: bytes, purpose: KeyPurpose, message: str) -> bytes:
    return hmac.new(_purpose_key(key, purpose), message.encode("utf-8"), hashlib.sha256).digest()


def remap_uid(key: bytes, uid: str) -> str:
    """``2.25.<decimal of the first 128 bits of HMAC(key, "uid|" + uid)>`` (PS3.5 B.2).

    At most 5 + 39 = 44 characters; a decimal integer never has a leading zero.
    """
    digest = _hmac(key, KeyPurpose.UID_REMAP, "uid|" + uid)
    return UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def is_well_known_uid(uid: str) -> bool:
    """True for a UID defined by the standard (PS3.6 Annex A), which identifies no one."""
    value = UID(uid)
    return not value.is_private and str(value) in UID_dictionary


def pseudonym_token(key: bytes, patient_id: str, issuer: str) -> str:
    """16 base32 characters from the first 80 bits of HMAC(key, "pid|<id>|<issuer>")."""
    digest = _hmac(key, KeyPurpose.PSEUDONYM, f"pid|{patient_id}|{issuer}")
    return base64.b32encode(digest[:10]).decode("ascii")


def pseudonymous_id(key: bytes, patient_id: str, issuer: str) -> str:
    """``CR`` + token: 18 characters, fits LO (64)."""
    return PSEUDONYM_PREFIX + pseudonym_token(key, patient_id, issuer)


def pseudonymous_name(key: bytes, patient_id: str, issuer: str) -> str:
    """``ANON^`` + token: family name ANON, given name the token (PS3.5 6.2.1)."""
    return PSEUDONYM_NAME_PREFIX + pseudonym_token(key, patient_id, issuer)


def date_offset_days(key: bytes, patient_id: str, issuer: str) -> int:
    """Whole-day shift in -365..-1 from HMAC(key, "date-shift|<id>|<issuer>").

    Always into the past and never zero, so a shifted date is never the original one.
    """
    digest = _hmac(key, KeyPurpose.DATE_SHIFT, f"date-shift|{patient_id}|{issuer}")
    return -(1 + int.from_bytes(digest[:8], "big") % DATE_SHIFT_MAX_DAYS)
