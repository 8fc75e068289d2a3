"""Client assertions, scopes, access tokens and the signing key file, with real cryptography."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from connrad.identity.oauth import (
    ACCESS_TOKEN_SECONDS,
    MAX_ASSERTION_LIFETIME,
    AccessTokens,
    ClientAssertion,
    OAuthError,
    grant_scopes,
    load_or_create_signing_key,
    unverified_client_id,
    verify_client_assertion,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CLIENT = "device-client-7"
TOKEN_URL = "https://hub.example.org/oauth/token"
ISSUER = "https://hub.example.org"
ACCESS_KEY = bytes(range(32))

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa3072_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return {"keys": [public_jwk(rsa_key, "rsa-1", "RS384"), public_jwk(ec_key, "ec-1", "ES384")]}


def public_jwk(key: PrivateKey, kid: str | None = None, alg: str | None = None) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def claims(**changes: Any) -> dict[str, Any]:
    """A valid assertion's claims; a change to None drops that claim."""
    base = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": TOKEN_URL,
        "exp": int(NOW.timestamp()) + 240,
        "iat": int(NOW.timestamp()),
        "jti": "assertion-0001",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: PrivateKey, alg: str, kid: str | None, **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_jws(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """HS256/HS384/HS512 by hand: PyJWT refuses PEM secrets and warns on short ones."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signing_input = compact(header, payload).rstrip(".")
    mac = hmac.new(secret, signing_input.encode(), digest[header["alg"]]).digest()
    return f"{signing_input}.{b64(mac)}"


def forge_hs256(secret: bytes, kid: str) -> str:
    """The alg confusion attack: HMAC with the public key as the shared secret."""
    return hmac_jws({"alg": "HS256", "typ": "JWT", "kid": kid}, claims(), secret)


def compact(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWS in compact serialization, built by hand to carry what PyJWT would not sign."""
    parts = (json.dumps(header).encode(), json.dumps(payload).encode(), signature)
    return ".".join(b64(part) for part in parts)


def unsigned(kid: str) -> str:
    return compact({"alg": "none", "kid": kid}, claims())


def rejected(assertion: str, jwks: dict[str, Any], now: datetime = NOW) -> str:
    with pytest.raises(OAuthError) as caught:
        verify_client_assertion(assertion, jwks=jwks, token_url=TOKEN_URL, now=now)
    assert caught.value.error == "invalid_client"
    if assertion:
        assert assertion not in caught.value.description
    return caught.value.description


# --- verify_client_assertion: accepted ---------------------------------------------------


def test_rs384_with_kid(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    result = verify_client_assertion(
        sign(rsa_key, "RS384", "rsa-1"), jwks=jwks, token_url=TOKEN_URL, now=NOW
    )

    assert result == ClientAssertion(CLIENT, "assertion-0001", NOW + timedelta(seconds=240))
    assert result.expires_at.tzinfo is not None


def test_es384_with_kid(ec_key: ec.EllipticCurvePrivateKey, jwks: dict[str, Any]) -> None:
    result = verify_client_assertion(
        sign(ec_key, "ES384", "ec-1"), jwks=jwks, token_url=TOKEN_URL, now=NOW
    )

    assert result.client_id == CLIENT


def test_without_kid_the_only_fitting_key_is_used(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, jwks: dict[str, Any]
) -> None:
    # one RSA and one EC key: the header's alg leaves a single candidate each time
    for key, alg in ((rsa_key, "RS384"), (ec_key, "ES384")):
        result = verify_client_assertion(
            sign(key, alg, None), jwks=jwks, token_url=TOKEN_URL, now=NOW
        )
        assert result.client_id == CLIENT


def test_rsa3072_key_without_kid_or_alg_in_jwk(rsa3072_key: rsa.RSAPrivateKey) -> None:
    jwks = {"keys": [public_jwk(rsa3072_key)]}

    result = verify_client_assertion(
        sign(rsa3072_key, "RS384", None), jwks=jwks, token_url=TOKEN_URL, now=NOW
    )

    assert result.jti == "assertion-0001"


def test_kid_picks_among_several_rsa_keys(
    rsa_key: rsa.RSAPrivateKey, rsa3072_key: rsa.RSAPrivateKey, jwks: dict[str, Any]
) -> None:
    both = {"keys": [*jwks["keys"], public_jwk(rsa3072_key, "rsa-2", "RS384")]}

    for key, kid in ((rsa_key, "rsa-1"), (rsa3072_key, "rsa-2")):
        assertion = sign(key, "RS384", kid)
        assert verify_client_assertion(assertion, jwks=both, token_url=TOKEN_URL, now=NOW)


def test_aud_list_containing_token_url(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    assertion = sign(rsa_key, "RS384", "rsa-1", aud=["https://other.example", TOKEN_URL])

    assert verify_client_assertion(assertion, jwks=jwks, token_url=TOKEN_URL, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": int(NOW.timestamp()) - 20},  # expired, but within the clock skew leeway
        {"exp": int(NOW.timestamp()) + MAX_ASSERTION_LIFETIME + 20},
        {"iat": int(NOW.timestamp()) + 20, "nbf": int(NOW.timestamp()) + 20},
        {"iat": None},
    ],
    ids=["exp-leeway", "lifetime-leeway", "iat-nbf-leeway", "no-iat"],
)
def test_clock_skew_is_tolerated(
    rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any], changes: dict[str, Any]
) -> None:
    assertion = sign(rsa_key, "RS384", "rsa-1", **changes)

    assert verify_client_assertion(assertion, jwks=jwks, token_url=TOKEN_URL, now=NOW)


# --- verify_client_assertion: rejected ---------------------------------------------------


def test_wrong_signing_key(attacker_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    assert "signature" in rejected(sign(attacker_key, "RS384", "rsa-1"), jwks)


def test_wrong_key_without_kid(attacker_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    assert "signature" in rejected(sign(attacker_key, "RS384", None), jwks)


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS384"])
def test_other_rsa_algorithms(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any], alg: str) -> None:
    assert "RS384 or ES384" in rejected(sign(rsa_key, alg, "rsa-1"), jwks)


def test_es256_with_p256_key_rejected() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [public_jwk(p256, "p256")]}

    rejected(sign(p256, "ES256", "p256"), jwks)


def test_alg_none_rejected(jwks: dict[str, Any]) -> None:
    assert "RS384 or ES384" in rejected(unsigned("rsa-1"), jwks)


def test_hs256_with_public_key_as_secret(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_json = json.dumps(jwks["keys"][0]).encode()

    for secret in (public_pem, jwk_json):
        assert "RS384 or ES384" in rejected(forge_hs256(secret, "rsa-1"), jwks)


def test_alg_not_matching_the_kid_key(jwks: dict[str, Any]) -> None:
    ec_signed = sign(ec.generate_private_key(ec.SECP384R1()), "ES384", "rsa-1")

    assert "no ES384 public signing key" in rejected(ec_signed, jwks)


def test_unknown_kid(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    assert "kid" in rejected(sign(rsa_key, "RS384", "rsa-9"), jwks)


def test_ambiguous_without_kid(rsa_key: rsa.RSAPrivateKey, rsa3072_key: rsa.RSAPrivateKey) -> None:
    jwks = {"keys": [public_jwk(rsa_key, "a"), public_jwk(rsa3072_key, "b")]}

    assert "kid" in rejected(sign(rsa_key, "RS384", None), jwks)


def test_private_jwk_is_not_used(rsa_key: rsa.RSAPrivateKey) -> None:
    private = json.loads(RSAAlgorithm.to_jwk(rsa_key)) | {"kid": "rsa-1"}

    rejected(sign(rsa_key, "RS384", "rsa-1"), {"keys": [private]})


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_short_rsa_key_rejected() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwks = {"keys": [public_jwk(weak, "weak", "RS384")]}

    assert "weak" in rejected(sign(weak, "RS384", "weak"), jwks)


@pytest.mark.parametrize("jwks", [{}, {"keys": "none"}, {"keys": [{"kty": "RSA", "n": "AQAB"}]}])
def test_unusable_key_sets(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    rejected(sign(rsa_key, "RS384", None), jwks)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "https://evil.example/token"}, "aud"),
        ({"aud": [ISSUER]}, "aud"),
        ({"aud": None}, "aud"),
        ({"sub": "someone-else"}, "sub"),
        ({"iss": None}, "iss"),
        ({"iss": "", "sub": ""}, "iss"),
        ({"exp": int(NOW.timestamp()) - 31}, "expired"),
        ({"exp": int(NOW.timestamp()) + MAX_ASSERTION_LIFETIME + 31}, "ahead"),
        ({"exp": None}, "exp"),
        ({"exp": "tomorrow"}, "exp"),
        ({"jti": None}, "jti"),
        ({"jti": ""}, "jti"),
        ({"jti": 17}, "jti"),
        ({"sub": 17}, "sub"),
        ({"jti": "j" * 256}, "jti"),
        ({"nbf": int(NOW.timestamp()) + 31}, "nbf"),
        ({"iat": int(NOW.timestamp()) + 31}, "iat"),
    ],
    ids=[
        "aud-other",
        "aud-list-without-url",
        "aud-missing",
        "iss-not-sub",
        "iss-missing",
        "iss-empty",
        "expired",
        "exp-too-far",
        "exp-missing",
        "exp-not-number",
        "jti-missing",
        "jti-empty",
        "jti-not-string",
        "sub-not-string",
        "jti-too-long",
        "nbf-future",
        "iat-future",
    ],
)
def test_bad_claims(
    rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any], changes: dict[str, Any], reason: str
) -> None:
    assert reason in rejected(sign(rsa_key, "RS384", "rsa-1", **changes), jwks)


MALFORMED = [
    "",
    "not-a-jwt",
    "a.b.c",
    "....",
    f"{b64(b'[1]')}.{b64(b'{}')}.",
    f"{b64(b'{}')}.{b64(b'not json')}.c2ln",
    "x" * 20_000,
]


@pytest.mark.parametrize("assertion", MALFORMED)
def test_malformed_assertion(jwks: dict[str, Any], assertion: str) -> None:
    rejected(assertion, jwks)


def test_now_must_be_aware(rsa_key: rsa.RSAPrivateKey, jwks: dict[str, Any]) -> None:
    assertion = sign(rsa_key, "RS384", "rsa-1")

    with pytest.raises(ValueError, match="timezone-aware"):
        verify_client_assertion(assertion, jwks=jwks, token_url=TOKEN_URL, now=datetime(2025, 3, 1))


# --- unverified_client_id ----------------------------------------------------------------


def test_unverified_client_id(attacker_key: rsa.RSAPrivateKey) -> None:
    assert unverified_client_id(sign(attacker_key, "RS256", None)) == CLIENT


@pytest.mark.parametrize("assertion", MALFORMED)
def test_unverified_client_id_malformed(assertion: str) -> None:
    with pytest.raises(OAuthError) as caught:
        unverified_client_id(assertion)
    assert caught.value.error == "invalid_client"


@pytest.mark.parametrize("changes", [{"sub": "other"}, {"iss": None}, {"iss": 5, "sub": 5}])
def test_unverified_client_id_needs_iss_equal_sub(changes: dict[str, Any]) -> None:
    with pytest.raises(OAuthError) as caught:
        unverified_client_id(compact({"alg": "RS384"}, claims(**changes), b"sig"))
    assert caught.value.error == "invalid_client"


def test_unknown_error_code_refused() -> None:
    with pytest.raises(ValueError, match="unknown OAuth error code"):
        OAuthError("access_denied_please", "nope")


# --- grant_scopes ------------------------------------------------------------------------

ALLOWED = ["system/*.rs", "system/ImagingStudy.cruds", "launch"]

SCOPE_CASES = [
    (None, ALLOWED, sorted(ALLOWED)),
    ("", ALLOWED, sorted(ALLOWED)),
    ("  ", ALLOWED, sorted(ALLOWED)),
    (None, [], []),
    ("launch", ALLOWED, ["launch"]),
    ("system/AuditEvent.rs", ALLOWED, ["system/AuditEvent.rs"]),
    ("system/ImagingStudy.r", ALLOWED, ["system/ImagingStudy.r"]),
    ("system/*.s", ALLOWED, ["system/*.s"]),
    ("system/*.rs system/*.r system/*.rs", ALLOWED, ["system/*.rs", "system/*.r"]),
    ("system/Patient.read", ALLOWED, ["system/Patient.read"]),
    (
        "system/ImagingStudy.write system/ImagingStudy.cu",
        ALLOWED,
        ["system/ImagingStudy.write", "system/ImagingStudy.cu"],
    ),
    ("system/ImagingStudy.write", ["system/ImagingStudy.cruds"], ["system/ImagingStudy.write"]),
    ("system/ImagingStudy.cud", ["system/ImagingStudy.write"], ["system/ImagingStudy.cud"]),
    ("system/Patient.rs", ["system/*.read"], ["system/Patient.rs"]),
    ("system/Patient.cruds", ["system/*.*"], ["system/Patient.cruds"]),
    ("system/ImagingStudy.write", ["system/*.rs"], None),
    ("system/*.c", ALLOWED, None),
    ("system/*.rs", ["system/Patient.rs"], None),
    ("system/Patient.rs", ["system/Observation.rs"], None),
    ("system/Patient.sr", ["system/*.rs"], None),  # permissions out of order
    ("system/Patient.", ["system/*.rs"], None),
    ("user/Patient.rs", ["system/*.rs"], None),
    ("system/Patient.rs?category=x", ["system/*.rs"], None),
    ("launch admin", ALLOWED, None),
    ("system/*.rs", [], None),
    ('bad"scope', ['bad"scope'], None),
]


@pytest.mark.parametrize(("requested", "allowed", "expected"), SCOPE_CASES)
def test_grant_scopes(
    requested: str | None, allowed: list[str], expected: list[str] | None
) -> None:
    if expected is None:
        with pytest.raises(OAuthError) as caught:
            grant_scopes(requested, allowed)
        assert caught.value.error == "invalid_scope"
    else:
        assert grant_scopes(requested, allowed) == expected


def test_grant_scopes_accepts_any_iterable() -> None:
    assert grant_scopes(None, iter(["b", "a", "b"])) == ["a", "b"]


# --- AccessTokens ------------------------------------------------------------------------


@pytest.fixture
def tokens() -> AccessTokens:
    return AccessTokens(ACCESS_KEY, ISSUER)


def test_access_token_roundtrip(tokens: AccessTokens) -> None:
    token, expires_in = tokens.issue("device:3", ["system/*.rs", "launch"], 4, now=NOW)

    granted = tokens.verify(token, now=NOW + timedelta(seconds=60))

    assert expires_in == ACCESS_TOKEN_SECONDS
    assert granted.subject == "device:3"
    assert granted.scopes == {"system/*.rs", "launch"}
    assert granted.site_id == 4
    assert granted.expires_at == NOW + timedelta(seconds=ACCESS_TOKEN_SECONDS)
    assert granted.token_id


def test_access_token_claims(tokens: AccessTokens) -> None:
    token, _ = tokens.issue("device:3", ["a", "b"], 4, now=NOW)

    decoded = jwt.decode_complete(
        token, ACCESS_KEY, algorithms=["HS256"], audience=ISSUER, options={"verify_exp": False}
    )

    assert decoded["header"]["typ"] == "at+jwt"
    payload = decoded["payload"]
    assert payload["iss"] == payload["aud"] == ISSUER
    assert (payload["scope"], payload["site"], payload["sub"]) == ("a b", 4, "device:3")
    assert payload["exp"] - payload["iat"] == ACCESS_TOKEN_SECONDS


def test_access_token_ids_differ(tokens: AccessTokens) -> None:
    first = tokens.verify(tokens.issue("device:3", [], 1, now=NOW)[0], now=NOW)
    second = tokens.verify(tokens.issue("device:3", [], 1, now=NOW)[0], now=NOW)

    assert first.token_id != second.token_id
    assert first.scopes == frozenset()


def test_access_token_expiry(tokens: AccessTokens) -> None:
    token, _ = tokens.issue("device:3", ["launch"], 1, now=NOW)
    expiry = NOW + timedelta(seconds=ACCESS_TOKEN_SECONDS)

    assert tokens.verify(token, now=expiry + timedelta(seconds=9))
    with pytest.raises(OAuthError, match="expired"):
        tokens.verify(token, now=expiry + timedelta(seconds=10))


def test_access_token_from_the_future(tokens: AccessTokens) -> None:
    token, _ = tokens.issue("device:3", ["launch"], 1, now=NOW + timedelta(minutes=1))

    with pytest.raises(OAuthError, match="not valid yet"):
        tokens.verify(token, now=NOW)


def test_tampered_access_token(tokens: AccessTokens) -> None:
    token, _ = tokens.issue("device:3", ["launch"], 1, now=NOW)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = b64(json.dumps(claims | {"site": 2}).encode())

    with pytest.raises(OAuthError) as caught:
        tokens.verify(f"{header}.{forged}.{signature}", now=NOW)
    assert caught.value.error == "invalid_token"
    assert "signature" in caught.value.description


@pytest.mark.parametrize(
    "other",
    [AccessTokens(b"k" * 32, ISSUER), AccessTokens(ACCESS_KEY, "https://other.example")],
    ids=["other-key", "other-issuer"],
)
def test_access_token_of_another_issuer(tokens: AccessTokens, other: AccessTokens) -> None:
    token, _ = other.issue("device:3", ["launch"], 1, now=NOW)

    with pytest.raises(OAuthError) as caught:
        tokens.verify(token, now=NOW)
    assert caught.value.error == "invalid_token"
    assert token not in caught.value.description


def access_payload(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "device:3",
        "aud": ISSUER,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "t1",
        "scope": "launch",
        "site": 1,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


FORGED_ACCESS = [
    hmac_jws({"alg": "HS512", "typ": "at+jwt"}, access_payload(), ACCESS_KEY),
    jwt.encode(access_payload(), ACCESS_KEY, algorithm="HS256"),  # typ JWT: not ours
    jwt.encode(access_payload(site=None), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(site="1"), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(site=True), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(scope=None), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(sub=""), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(jti=None), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(exp=None), ACCESS_KEY, headers={"typ": "at+jwt"}),
    jwt.encode(access_payload(aud="https://x.example"), ACCESS_KEY, headers={"typ": "at+jwt"}),
    compact({"alg": "none", "typ": "at+jwt"}, access_payload()),
    "",
    "garbage",
    "a.b.c",
    "x" * 20_000,
]


@pytest.mark.parametrize("token", FORGED_ACCESS)
def test_invalid_access_tokens(tokens: AccessTokens, token: str) -> None:
    with pytest.raises(OAuthError) as caught:
        tokens.verify(token, now=NOW)
    assert caught.value.error == "invalid_token"


def test_valid_forged_payload_passes(tokens: AccessTokens) -> None:
    # the control for FORGED_ACCESS: the same construction, unchanged, verifies
    token = jwt.encode(access_payload(), ACCESS_KEY, headers={"typ": "at+jwt"})

    assert tokens.verify(token, now=NOW).site_id == 1


def test_access_key_too_short() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AccessTokens(b"short", ISSUER)


def test_issue_refuses_bad_scopes(tokens: AccessTokens) -> None:
    with pytest.raises(ValueError, match="scope"):
        tokens.issue("device:3", ["two words"], 1, now=NOW)


# --- load_or_create_signing_key ----------------------------------------------------------


def test_creates_key_privately(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "access.key"

    key = load_or_create_signing_key(path)

    assert len(key) == 32
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_signing_key(path) == key


def test_racing_threads_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "access.key"
    start = threading.Barrier(8)
    keys: list[bytes] = []

    def load() -> None:
        start.wait()
        keys.append(load_or_create_signing_key(path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8
    assert set(keys) == {path.read_bytes()}


def test_longer_key_file_is_used_whole(tmp_path: Path) -> None:
    path = tmp_path / "access.key"
    path.write_bytes(b"k" * 64)
    path.chmod(0o600)

    assert load_or_create_signing_key(path) == b"k" * 64


def test_short_key_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "access.key"
    path.write_bytes(b"0123456789abcdef")
    path.chmod(0o600)

    with pytest.raises(ValueError, match="16 bytes, fewer than 32") as caught:
        load_or_create_signing_key(path)
    assert "0123456789abcdef" not in str(caught.value)


def test_world_readable_key_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "access.key"
    path.write_bytes(b"s" * 32)
    path.chmod(0o644)

    with pytest.raises(ValueError, match="chmod 600") as caught:
        load_or_create_signing_key(path)
    assert "s" * 32 not in str(caught.value)
