"""Cryptographic core of the identity vault: key hierarchy, sealed records, blind indexes.

Key hierarchy::

    master key (KEK, 256 bit, from settings: environment value or key file)
      └─ site data key (256 bit, random, one per site and version; stored only wrapped)
           ├─ HKDF "uid-remap"          ─┐
           ├─ HKDF "pseudonym"           ├─ HMAC keys of the de-identification engine
           ├─ HKDF "date-shift"         ─┘
           ├─ HKDF "blind-index"        ── HMAC key of the search indexes
           └─ HKDF "record-encryption"  ── AES-256-GCM key of the identity records

Site keys are wrapped with AES-256-GCM rather than AES-KW (RFC 3394): AES-KW takes no
associated data, so binding a wrapped key to its site and version would need a derived
KEK per site; GCM binds them directly and ``cryptography`` raises the same ``InvalidTag``
for every kind of mismatch. GCM's random 96-bit nonce is safe for well under 2**32
messages per key (NIST SP 800-38D 8.3): a master key wraps one key per site and
rotation, and a record key seals one record per patient of one site.

Every blob starts with a format byte, and the associated data (AD) carries a purpose
label, that format, the site id and (for wrapped keys) the key version, so a blob cannot
be moved to another site, version or purpose without failing authentication.

Nothing here touches a database: the tables store the bytes and strings produced here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
import string
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connrad.dicom.names import NameGroups, fold

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT_V1 = 1
_KEY_FILE_MAX_BYTES = 4096
# Group or world access of any kind: the file must be chmod 600 (or 400).
_LOOSE_KEY_MODE = stat.S_IRWXG | stat.S_IRWXO


class VaultError(Exception):
    """A blob failed authentication or is malformed; the message never holds its content."""


class KeyPurpose(StrEnum):
    """What a derived key is for; the value is the HKDF info label."""

    UID_REMAP = "uid-remap"
    PSEUDONYM = "pseudonym"
    DATE_SHIFT = "date-shift"
    BLIND_INDEX = "blind-index"
    RECORD_ENCRYPTION = "record-encryption"


class IndexKind(StrEnum):
    """The identifiers that can be searched through a blind index."""

    PATIENT_ID = "patient_id"
    PATIENT_NAME = "patient_name"
    ACCESSION = "accession"


class NamePart(StrEnum):
    """Person name components indexed on their own (PS3.5 6.2.1: family^given^middle…)."""

    FAMILY = "family"
    GIVEN = "given"


@dataclass(frozen=True)
class WrappedKey:
    """A site data key encrypted under the master key; store both fields."""

    version: int
    blob: bytes = field(repr=False)


# --- master key ---------------------------------------------------------------------------


def generate_master_key() -> str:
    """A new random 256-bit master key as unpadded base64url text, for operators."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")


def load_master_key(value: str | None, file: Path | None) -> bytes:
    """The master key from exactly one of an environment value or a key file.

    Parameters
    ----------
    value
        The key as base64url text (padding optional) or 64 hex digits.
    file
        A file holding the same text; it must grant no access to group or others.

    Raises
    ------
    ValueError
        Neither or both sources are set, the file is missing, open to other users, or
        not text, or the text is not a 256-bit key. Messages never include key material.
    """
    has_value = value is not None and value.strip() != ""
    if has_value == (file is not None):
        raise ValueError(
            "set exactly one of the master key value or the master key file; "
            "create a key with generate_master_key()"
        )
    if file is not None:
        return _decode_master_key(_read_key_file(file), f"master key file {file}")
    return _decode_master_key(value or "", "master key value")


def master_key_id(master: bytes) -> str:
    """A short public fingerprint of a master key, to record which key wrapped a site key."""
    _check_key(master, "master key")
    return hmac.new(master, b"connrad-vault/master-key-id", hashlib.sha256).hexdigest()[:16]


def _read_key_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ValueError(f"cannot open {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & _LOOSE_KEY_MODE:
            raise ValueError(
                f"master key file {path} is open to other users (mode "
                f"{stat.S_IMODE(mode):04o}); restrict it with: chmod 600 {path}"
            )
        raw = handle.read(_KEY_FILE_MAX_BYTES + 1)
    if len(raw) > _KEY_FILE_MAX_BYTES:
        raise ValueError(f"master key file {path} is larger than {_KEY_FILE_MAX_BYTES} bytes")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(
            f"master key file {path} is not text; write base64url or hex, "
            "as generate_master_key() prints"
        ) from None


def _decode_master_key(text: str, source: str) -> bytes:
    text = text.strip()
    # Text of hex digits only is hex: 43 random base64url characters are all hex digits
    # with probability (22/64)**43, about 2**-66.
    is_hex = text != "" and all(c in string.hexdigits for c in text)
    try:
        if is_hex:
            key = bytes.fromhex(text)
        else:
            # validate=True: the lenient default silently drops characters outside the alphabet.
            padded = text + "=" * (-len(text) % 4)
            key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        # ``from None``: the decoder's message could quote the text.
        raise ValueError(
            f"{source} is neither base64url nor hex text; create one with generate_master_key()"
        ) from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{source} decodes to {len(key)} bytes; a master key is {KEY_BYTES} bytes "
            "(43 base64url characters or 64 hex digits)"
        )
    return key


# --- site data keys -----------------------------------------------------------------------


def new_site_key(master: bytes, site_id: int, version: int = 1) -> WrappedKey:
    """A new random data key for a site, wrapped under the master key.

    ``version`` numbers the site's data keys; rotating the data key means a new version.
    """
    _check_key(master, "master key")
    return _wrap(master, site_id, version, secrets.token_bytes(KEY_BYTES))


def unwrap(master: bytes, site_id: int, wrapped: WrappedKey) -> bytes:
    """The site data key inside ``wrapped``.

    Raises
    ------
    VaultError
        Wrong master key, wrong site or version, or an altered blob.
    """
    _check_key(master, "master key")
    _check_version(wrapped.version)
    ad = _associated_data("site-key", site_id, wrapped.version)
    plain = _decrypt(master, wrapped.blob, ad, f"wrapped key of site {site_id}")
    if len(plain) != KEY_BYTES:
        raise VaultError(f"wrapped key of site {site_id} holds a key of the wrong length")
    return plain


def rewrap(old_master: bytes, new_master: bytes, site_id: int, wrapped: WrappedKey) -> WrappedKey:
    """The same data key and version wrapped under a new master key (master key rotation)."""
    _check_key(new_master, "new master key")
    return _wrap(new_master, site_id, wrapped.version, unwrap(old_master, site_id, wrapped))


def _wrap(master: bytes, site_id: int, version: int, site_key: bytes) -> WrappedKey:
    _check_version(version)
    ad = _associated_data("site-key", site_id, version)
    return WrappedKey(version, _encrypt(master, site_key, ad))


# --- derived keys -------------------------------------------------------------------------


def derive(site_key: bytes, purpose: KeyPurpose | str) -> bytes:
    """A 256-bit key for one purpose (HKDF-SHA256, RFC 5869), independent of the others.

    No salt: the input is already a uniformly random key (RFC 5869 3.1); the info string
    names the purpose, so the engine's HMAC keys never equal the record encryption key.
    """
    _check_key(site_key, "site key")
    label = KeyPurpose(purpose)
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=None,
        info=f"connrad-vault/v{FORMAT_V1}/{label.value}".encode("ascii"),
    )
    return hkdf.derive(site_key)


# --- identity records ---------------------------------------------------------------------


def seal(
    site_key: bytes, site_id: int, record: Mapping[str, str | None], *, record_ref: str = ""
) -> bytes:
    """Encrypt an identity record (AES-256-GCM under the "record-encryption" key).

    The plaintext is canonical JSON (sorted keys, UTF-8, no escapes), so equal records
    give equal plaintexts. ``record_ref`` (for example the pseudonym the row is keyed by)
    is bound as associated data: pass the same value to :func:`open_record`, and a record
    copied onto another row of the same site fails to open.

    Raises
    ------
    TypeError
        A key is not ``str`` or a value is neither ``str`` nor ``None``.
    """
    for key, value in record.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str)):
            # Field names are not PHI (e.g. "PatientName"); the value is never shown.
            raise TypeError(
                f"identity record fields map str to str or None; field {key!r} holds a "
                f"{type(value).__name__}"
            )
    plain = json.dumps(dict(record), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    ad = _associated_data("identity-record", site_id, 0, record_ref)
    return _encrypt(derive(site_key, KeyPurpose.RECORD_ENCRYPTION), plain.encode("utf-8"), ad)


def open_record(
    site_key: bytes, site_id: int, blob: bytes, *, record_ref: str = ""
) -> dict[str, str | None]:
    """Decrypt a record made by :func:`seal`.

    Raises
    ------
    VaultError
        Wrong key, site or ``record_ref``, or an altered blob; the message holds no content.
    """
    ad = _associated_data("identity-record", site_id, 0, record_ref)
    key = derive(site_key, KeyPurpose.RECORD_ENCRYPTION)
    plain = _decrypt(key, blob, ad, f"identity record of site {site_id}")
    try:
        record = json.loads(plain.decode("utf-8"))
    except ValueError:
        record = None
    valid = isinstance(record, dict) and all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in record.items()
    )
    if not valid:
        raise VaultError(f"identity record of site {site_id} is not a JSON object of strings")
    return cast(dict[str, str | None], record)


# --- blind indexes ------------------------------------------------------------------------


def blind_index(site_key: bytes, kind: IndexKind | str, value: str) -> str:
    """Hex HMAC-SHA256 of a normalized identifier under the site's "blind-index" key.

    PatientID and AccessionNumber are trimmed with case kept (they are case-sensitive
    codes); names are folded as the archive's name search folds them
    (:func:`connrad.dicom.names.fold`), so "Hong^Gildong", "HONG^GILDONG " and
    "hong^gildong" give one index. The kind is hashed too: a PatientID and an accession
    with the same text give different indexes.

    Privacy trade-off: equal values give equal indexes, so whoever reads the table
    learns which rows share an identifier (equality leakage), never the identifier
    itself without the site key. Indexes of different sites never match.

    Raises
    ------
    ValueError
        The value is empty after normalization (there is nothing to search for).
    """
    kind = IndexKind(kind)
    normalized = _normalize_name(value) if kind is IndexKind.PATIENT_NAME else value.strip()
    return _hmac_term(site_key, kind.value, normalized)


def name_component_index(site_key: bytes, part: NamePart | str, value: str) -> str:
    """The index of one family or given name component, as :func:`name_index_terms` makes."""
    part = NamePart(part)
    return _hmac_term(site_key, f"{IndexKind.PATIENT_NAME.value}/{part.value}", _fold(value))


def name_index_terms(site_key: bytes, name: str) -> set[str]:
    """Search terms of a person name: one per component group, one per family/given name.

    A group term equals ``blind_index(site_key, "patient_name", group)``, so the full name
    in any one script ("Hong^Gildong", "洪^吉洞" or "홍^길동") finds the record; a
    component term equals :func:`name_component_index`, so a family name alone does too.

    Privacy trade-off: component terms leak more than the full-name index. Family names
    are few and skewed (in Korea about one person in five is a Kim), so the frequency of
    a family term can reveal the name; index components only where search needs them.
    """
    terms: set[str] = set()
    for group in NameGroups.from_value(name).groups():
        if not _normalize_name(group):
            continue
        terms.add(blind_index(site_key, IndexKind.PATIENT_NAME, group))
        components = group.split("^")
        for part, component in zip(NamePart, components, strict=False):
            if _fold(component):
                terms.add(name_component_index(site_key, part, component))
    return terms


def _normalize_name(value: str) -> str:
    """Folded components; empty trailing components and groups dropped, as PS3.5 6.2 allows."""
    groups = NameGroups.from_value(value).groups()
    folded = ["^".join(_fold(c) for c in group.split("^")).rstrip("^") for group in groups]
    return "=".join(folded).rstrip("=")


def _fold(text: str) -> str:
    # Runs of spaces inside a component ("van  der Berg") are typing noise.
    return " ".join(fold(text).split())


def _hmac_term(site_key: bytes, label: str, normalized: str) -> str:
    if not normalized:
        raise ValueError(f"{label} is empty after normalization; there is nothing to index")
    key = derive(site_key, KeyPurpose.BLIND_INDEX)
    message = label.encode("ascii") + b"\x00" + normalized.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# --- AEAD helpers -------------------------------------------------------------------------


def _associated_data(label: str, site_id: int, version: int, ref: str = "") -> bytes:
    """Unambiguous AD: length-prefixed fields, so no two field tuples encode alike."""
    if isinstance(site_id, bool) or not isinstance(site_id, int) or site_id < 0:
        raise ValueError(f"site id must be a non-negative integer, not {site_id!r}")
    fields = [b"connrad-vault", label.encode("ascii"), str(site_id).encode("ascii"), ref.encode()]
    packed = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    return bytes([FORMAT_V1]) + struct.pack(">I", version) + packed


def _encrypt(key: bytes, plain: bytes, ad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return bytes([FORMAT_V1]) + nonce + AESGCM(key).encrypt(nonce, plain, ad)


def _decrypt(key: bytes, blob: bytes, ad: bytes, what: str) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES:
        raise VaultError(f"{what} is truncated ({len(blob)} bytes)")
    if blob[0] != FORMAT_V1:
        raise VaultError(f"{what} has unknown format {blob[0]}; expected {FORMAT_V1}")
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, sealed, ad)
    except InvalidTag:
        raise VaultError(
            f"{what} failed authentication: it was altered, or belongs to another site, "
            "version or record, or was encrypted under another key"
        ) from None


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {size}")


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 2**32:
        raise ValueError(f"key version must be an integer from 1 to 2**32-1, not {version!r}")
