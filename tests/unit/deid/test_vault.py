import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connrad.deid import vault
from connrad.deid.vault import (
    KEY_BYTES,
    NONCE_BYTES,
    IndexKind,
    KeyPurpose,
    NamePart,
    VaultError,
    WrappedKey,
    blind_index,
    derive,
    generate_master_key,
    load_master_key,
    master_key_id,
    name_component_index,
    name_index_terms,
    new_site_key,
    open_record,
    rewrap,
    seal,
    unwrap,
)

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(32, 64))
SITE_KEY = bytes(range(64, 96))
OTHER_SITE_KEY = bytes(range(96, 128))
MASTER_B64 = base64.urlsafe_b64encode(MASTER).decode()
SITE = 7
KOREAN = {
    "PatientName": "홍^길동=洪^吉洞",
    "PatientID": "KR-0001",
    "PatientBirthDate": "19800101",
    "OtherPatientIDs": None,
}


def flip(blob: bytes, index: int) -> bytes:
    """The blob with the lowest bit of one byte inverted."""
    data = bytearray(blob)
    data[index] ^= 0x01
    return bytes(data)


def key_texts(key: bytes) -> list[str]:
    """Every text form of a key that must never appear in an error message."""
    b64 = base64.urlsafe_b64encode(key).decode()
    return [key.hex(), key.hex().upper(), b64, b64.rstrip("="), repr(key)]


def write_key_file(tmp_path: Path, text: str, mode: int) -> Path:
    path = tmp_path / "master.key"
    path.write_text(text)
    path.chmod(mode)
    return path


# --- master key loading -------------------------------------------------------------------


def test_generated_key_is_unpadded_base64url_of_256_bits() -> None:
    text = generate_master_key()
    assert len(text) == 43 and "=" not in text
    assert len(load_master_key(text, None)) == KEY_BYTES
    assert generate_master_key() != text


@pytest.mark.parametrize(
    "text",
    [
        base64.urlsafe_b64encode(MASTER).decode(),
        base64.urlsafe_b64encode(MASTER).decode().rstrip("="),
        MASTER.hex(),
        MASTER.hex().upper(),
        f"  {MASTER.hex()}\n",
    ],
    ids=["base64url-padded", "base64url", "hex", "hex-upper", "whitespace"],
)
def test_load_master_key_from_value(text: str) -> None:
    assert load_master_key(text, None) == MASTER


def test_load_master_key_from_private_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path, generate_master_key() + "\n", 0o600)
    assert len(load_master_key(None, path)) == KEY_BYTES
    path.chmod(0o400)
    assert len(load_master_key(None, path)) == KEY_BYTES


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o602, 0o610])
def test_load_master_key_rejects_file_open_to_others(tmp_path: Path, mode: int) -> None:
    key_text = MASTER.hex()
    path = write_key_file(tmp_path, key_text, mode)
    with pytest.raises(ValueError, match="open to other users") as info:
        load_master_key(None, path)
    assert f"chmod 600 {path}" in str(info.value)
    assert f"{stat.S_IMODE(os.stat(path).st_mode):04o}" in str(info.value)
    assert key_text not in str(info.value)


@pytest.mark.parametrize(
    ("value", "use_file", "message"),
    [
        (None, False, "exactly one"),
        ("   ", False, "exactly one"),
        (MASTER.hex(), True, "exactly one"),
        (MASTER.hex()[:-2], False, "decodes to 31 bytes"),
        (base64.urlsafe_b64encode(MASTER + b"!").decode(), False, "decodes to 33 bytes"),
        ("not a key at all!", False, "neither base64url nor hex"),
        ("g" * 64, False, "decodes to 48 bytes"),
        (MASTER.hex() + "0", False, "neither base64url nor hex"),
        (MASTER_B64[:10] + "=" + MASTER_B64[11:], False, "neither base64url"),
    ],
    ids=[
        "neither",
        "blank",
        "both",
        "short-hex",
        "long-b64",
        "garbage",
        "non-hex-64",
        "odd-hex",
        "inner-padding",
    ],
)
def test_load_master_key_errors(
    tmp_path: Path, value: str | None, use_file: bool, message: str
) -> None:
    path = write_key_file(tmp_path, MASTER.hex(), 0o600) if use_file else None
    with pytest.raises(ValueError, match=message) as info:
        load_master_key(value, path)
    text = str(info.value)
    if value and value.strip():
        assert value not in text
    assert not any(form in text for form in key_texts(MASTER))
    assert info.value.__cause__ is None


def test_load_master_key_file_errors_hide_content(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot open"):
        load_master_key(None, tmp_path / "missing.key")
    short = write_key_file(tmp_path, MASTER.hex()[:40], 0o600)
    with pytest.raises(ValueError, match=r"master key file .* decodes to 20 bytes") as info:
        load_master_key(None, short)
    assert MASTER.hex()[:40] not in str(info.value)
    short.write_bytes(b"\xff\xfe" + MASTER)
    with pytest.raises(ValueError, match="is not text"):
        load_master_key(None, short)


def test_master_key_id_is_a_stable_fingerprint() -> None:
    assert master_key_id(MASTER) == master_key_id(MASTER)
    assert master_key_id(MASTER) != master_key_id(OTHER_MASTER)
    assert len(master_key_id(MASTER)) == 16
    assert master_key_id(MASTER) not in MASTER.hex()


# --- site keys ----------------------------------------------------------------------------


def test_site_key_round_trip() -> None:
    wrapped = new_site_key(MASTER, SITE)
    assert wrapped.version == 1
    site_key = unwrap(MASTER, SITE, wrapped)
    assert len(site_key) == KEY_BYTES
    assert site_key not in wrapped.blob
    assert new_site_key(MASTER, SITE).blob != wrapped.blob
    assert "blob" not in repr(wrapped)


def test_site_key_version_is_kept() -> None:
    wrapped = new_site_key(MASTER, SITE, version=3)
    assert wrapped.version == 3
    assert len(unwrap(MASTER, SITE, wrapped)) == KEY_BYTES


@pytest.mark.parametrize(
    ("master", "site_id", "version"),
    [(OTHER_MASTER, SITE, 1), (MASTER, SITE + 1, 1), (MASTER, 0, 1), (MASTER, SITE, 2)],
    ids=["wrong-master", "other-site", "site-zero", "other-version"],
)
def test_unwrap_rejects_wrong_context(master: bytes, site_id: int, version: int) -> None:
    wrapped = new_site_key(MASTER, SITE)
    moved = WrappedKey(version, wrapped.blob)
    with pytest.raises(VaultError, match="failed authentication") as info:
        unwrap(master, site_id, moved)
    assert not any(form in str(info.value) for form in key_texts(master))


@pytest.mark.parametrize(
    "index",
    [1, NONCE_BYTES, 1 + NONCE_BYTES, 1 + NONCE_BYTES + KEY_BYTES - 1, -1],
    ids=["nonce-first", "nonce-last", "ciphertext-first", "ciphertext-last", "tag"],
)
def test_unwrap_detects_tampering(index: int) -> None:
    wrapped = new_site_key(MASTER, SITE)
    with pytest.raises(VaultError, match="failed authentication"):
        unwrap(MASTER, SITE, WrappedKey(wrapped.version, flip(wrapped.blob, index)))


def test_rewrap_keeps_the_data_key_under_the_new_master() -> None:
    wrapped = new_site_key(MASTER, SITE, version=2)
    rewrapped = rewrap(MASTER, OTHER_MASTER, SITE, wrapped)
    assert rewrapped.version == 2
    assert unwrap(OTHER_MASTER, SITE, rewrapped) == unwrap(MASTER, SITE, wrapped)
    with pytest.raises(VaultError):
        unwrap(MASTER, SITE, rewrapped)
    with pytest.raises(VaultError):
        rewrap(OTHER_MASTER, MASTER, SITE, wrapped)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: new_site_key(MASTER[:16], SITE), "master key must be 32 bytes, got 16"),
        (lambda: new_site_key(MASTER, -1), "site id must be a non-negative integer"),
        (lambda: new_site_key(MASTER, True), "site id must be a non-negative integer"),
        (lambda: new_site_key(MASTER, SITE, version=0), "key version must be"),
        (lambda: unwrap(MASTER, SITE, WrappedKey(-1, b"")), "key version must be"),
        (lambda: rewrap(MASTER, b"short", SITE, WrappedKey(1, b"")), "new master key must be"),
    ],
    ids=["short-master", "negative-site", "bool-site", "version-0", "negative-version", "rewrap"],
)
def test_invalid_arguments(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


# --- derived keys -------------------------------------------------------------------------


def test_derived_keys_are_deterministic_and_distinct() -> None:
    keys = {purpose: derive(SITE_KEY, purpose) for purpose in KeyPurpose}
    assert len(set(keys.values())) == len(KeyPurpose) == 5
    assert SITE_KEY not in keys.values()
    assert all(len(key) == KEY_BYTES for key in keys.values())
    assert derive(SITE_KEY, "pseudonym") == keys[KeyPurpose.PSEUDONYM]
    assert derive(OTHER_SITE_KEY, KeyPurpose.PSEUDONYM) != keys[KeyPurpose.PSEUDONYM]


def test_derive_rejects_unknown_purpose() -> None:
    with pytest.raises(ValueError, match="'signing' is not a valid KeyPurpose"):
        derive(SITE_KEY, "signing")


# --- identity records ---------------------------------------------------------------------


def test_record_round_trip_with_korean_name() -> None:
    blob = seal(SITE_KEY, SITE, KOREAN)
    assert open_record(SITE_KEY, SITE, blob) == KOREAN
    assert "홍".encode() not in blob and b"KR-0001" not in blob
    assert seal(SITE_KEY, SITE, KOREAN) != blob  # random nonce
    assert open_record(SITE_KEY, SITE, seal(SITE_KEY, SITE, {})) == {}


def test_record_plaintext_is_canonical_json() -> None:
    blob = seal(SITE_KEY, SITE, dict(reversed(KOREAN.items())))
    key = derive(SITE_KEY, KeyPurpose.RECORD_ENCRYPTION)
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    ad = vault._associated_data("identity-record", SITE, 0)
    plain = AESGCM(key).decrypt(nonce, sealed, ad)
    expected = json.dumps(KOREAN, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert plain == expected.encode("utf-8")
    assert plain.startswith(b'{"OtherPatientIDs":null,"PatientBirthDate"')


@pytest.mark.parametrize(
    "index",
    [0, 1, NONCE_BYTES, 1 + NONCE_BYTES, -17, -1],
    ids=["format", "nonce-first", "nonce-last", "ciphertext-first", "ciphertext-last", "tag"],
)
def test_open_record_detects_tampering(index: int) -> None:
    blob = flip(seal(SITE_KEY, SITE, KOREAN), index)
    with pytest.raises(VaultError) as info:
        open_record(SITE_KEY, SITE, blob)
    assert_no_phi(str(info.value))


@pytest.mark.parametrize(
    ("site_key", "site_id", "record_ref"),
    [(OTHER_SITE_KEY, SITE, ""), (SITE_KEY, SITE + 1, ""), (SITE_KEY, SITE, "row-2")],
    ids=["wrong-key", "wrong-site", "wrong-record-ref"],
)
def test_open_record_rejects_wrong_context(site_key: bytes, site_id: int, record_ref: str) -> None:
    blob = seal(SITE_KEY, SITE, KOREAN)
    with pytest.raises(VaultError, match="failed authentication") as info:
        open_record(site_key, site_id, blob, record_ref=record_ref)
    assert_no_phi(str(info.value))


def test_record_ref_is_bound() -> None:
    blob = seal(SITE_KEY, SITE, KOREAN, record_ref="PSN-123")
    assert open_record(SITE_KEY, SITE, blob, record_ref="PSN-123") == KOREAN
    with pytest.raises(VaultError):
        open_record(SITE_KEY, SITE, blob)


def test_open_record_rejects_truncated_and_unknown_format() -> None:
    blob = seal(SITE_KEY, SITE, KOREAN)
    with pytest.raises(VaultError, match="truncated"):
        open_record(SITE_KEY, SITE, blob[: 1 + NONCE_BYTES + 15])
    with pytest.raises(VaultError, match="unknown format 2"):
        open_record(SITE_KEY, SITE, b"\x02" + blob[1:])


def test_seal_rejects_non_string_values() -> None:
    with pytest.raises(TypeError, match="field 'PatientAge' holds a int") as info:
        seal(SITE_KEY, SITE, {"PatientName": "홍^길동", "PatientAge": 42})  # type: ignore[dict-item]
    assert_no_phi(str(info.value))


def assert_no_phi(message: str) -> None:
    for value in ("홍", "洪", "KR-0001", "19800101"):
        assert value not in message
    assert not any(form in message for form in key_texts(SITE_KEY))


# --- blind indexes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        ("patient_name", "Hong^Gildong", "HONG^GILDONG "),
        ("patient_name", "Hong^Gildong", "hong^gildong"),
        ("patient_name", "Hong^Gildong", "Hong^Gildong^^^"),
        ("patient_name", "Hong ^ Gildong", "hong^gildong"),
        ("patient_name", "Müller^José", "MULLER^jose"),
        ("patient_name", "홍^길동", " 홍^길동"),
        ("patient_id", "KR-0001", "  KR-0001\t"),
        ("accession", "ACC42", "ACC42 "),
    ],
)
def test_blind_index_matches_equivalent_values(kind: str, a: str, b: str) -> None:
    assert blind_index(SITE_KEY, kind, a) == blind_index(SITE_KEY, kind, b)


@pytest.mark.parametrize(
    ("kind_a", "a", "kind_b", "b"),
    [
        ("patient_id", "kr-0001", "patient_id", "KR-0001"),  # PatientID is case-sensitive
        ("patient_id", "KR-0001", "accession", "KR-0001"),  # kinds are separated
        ("patient_name", "Hong^Gildong", "patient_name", "Gildong^Hong"),
        ("patient_name", "Hong^Gildong", "patient_name", "Hong"),
        ("patient_name", "홍^길동", "patient_name", "洪^吉洞"),
    ],
)
def test_blind_index_separates_different_values(kind_a: str, a: str, kind_b: str, b: str) -> None:
    assert blind_index(SITE_KEY, kind_a, a) != blind_index(SITE_KEY, kind_b, b)


def test_blind_index_is_hex_keyed_per_site_and_hides_value() -> None:
    index = blind_index(SITE_KEY, IndexKind.PATIENT_ID, "KR-0001")
    assert len(index) == 64 and int(index, 16) >= 0
    assert index != blind_index(OTHER_SITE_KEY, IndexKind.PATIENT_ID, "KR-0001")
    assert b"KR-0001".hex() not in index


@pytest.mark.parametrize(("kind", "value"), [("patient_id", "  "), ("patient_name", "^^=")])
def test_blind_index_rejects_empty_values(kind: str, value: str) -> None:
    with pytest.raises(ValueError, match="empty after normalization"):
        blind_index(SITE_KEY, kind, value)


def test_blind_index_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="is not a valid IndexKind"):
        blind_index(SITE_KEY, "birth_date", "19800101")


def test_name_index_terms_cover_groups_and_components() -> None:
    terms = name_index_terms(SITE_KEY, "Hong^Gildong=洪^吉洞=홍^길동")
    assert len(terms) == 9  # 3 groups + family and given of each
    for group in ("hong^gildong", "洪^吉洞", "홍^길동"):
        assert blind_index(SITE_KEY, "patient_name", group) in terms
    for family in ("HONG", "洪", "홍"):
        assert name_component_index(SITE_KEY, NamePart.FAMILY, family) in terms
    assert name_component_index(SITE_KEY, "given", "길동") in terms


def test_family_name_search_is_role_aware() -> None:
    hong = name_component_index(SITE_KEY, "family", "Hong")
    assert hong in name_index_terms(SITE_KEY, "HONG^GILDONG ")
    assert hong not in name_index_terms(SITE_KEY, "Gildong^Hong")
    assert hong != name_component_index(SITE_KEY, "given", "Hong")
    assert hong not in name_index_terms(OTHER_SITE_KEY, "Hong^Gildong")


def test_name_index_terms_of_single_and_empty_names() -> None:
    assert name_index_terms(SITE_KEY, "Hong") == {
        blind_index(SITE_KEY, "patient_name", "Hong"),
        name_component_index(SITE_KEY, "family", "Hong"),
    }
    assert name_index_terms(SITE_KEY, "") == set()
    assert name_index_terms(SITE_KEY, "^Gildong") == {
        blind_index(SITE_KEY, "patient_name", "^Gildong"),
        name_component_index(SITE_KEY, "given", "Gildong"),
    }
