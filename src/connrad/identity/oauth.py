"""OAuth 2.0 token endpoint logic: client credentials with ``private_key_jwt``, and our tokens.

A device (backend client) authenticates with a JWT it signs with its own private key (RFC 7523
§2.2 and §3, profiled by HL7 SMART Backend Services: ``RS384`` or ``ES384``, ``exp`` at most
five minutes ahead, ``jti`` required). We answer with a short-lived HS256 access token of our
own, sent back as a bearer token (RFC 6750).

Pure logic: no web framework, no database; the clock is an argument. The caller looks up the
client's key set, maps :class:`OAuthError` to the HTTP response, and remembers each assertion's
``jti`` until it expires so that a captured assertion cannot be replayed.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from connrad.identity.scopes import covers

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
ACCESS_TOKEN_SECONDS = 300
MAX_ASSERTION_LIFETIME = 300  # seconds; SMART: exp no more than 5 minutes in the future

_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_token",
    }
)
_ASSERTION_LEEWAY_S = 30
_ACCESS_LEEWAY_S = 10
_MAX_JWT_CHARS = 16_384  # generous for an RSA-4096 signature; refuses junk before parsing
_MAX_JTI_CHARS = 255  # oauth_used_assertions.jti is a String(255)
MIN_RSA_BITS = 2048  # NIST SP 800-131A
_KEY_TYPES = {"RS384": ("RSA", None), "ES384": ("EC", "P-384")}  # alg -> (kty, crv)
_ACCESS_ALGORITHM = "HS256"
_ACCESS_TYPE = "at+jwt"  # RFC 9068 §2.1: tells our access tokens apart from other JWTs
_ACCESS_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "jti", "scope", "site"]
_KEY_BYTES = 32
_KEY_WAIT_S = 1.0
_LOOSE_KEY_MODE = stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class OAuthError(Exception):
    """An OAuth error response: ``error`` is an RFC 6749 §5.2 or RFC 6750 §3.1 code.

    ``description`` is a short reason for ``error_description``; it never holds a token, an
    assertion or key material.
    """

    def __init__(self, error: str, description: str) -> None:
        if error not in _ERROR_CODES:
            raise ValueError(f"unknown OAuth error code {error!r}")
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ClientAssertion:
    """A verified client assertion; store ``jti`` until ``expires_at`` to refuse replays."""

    client_id: str
    jti: str
    expires_at: datetime  # timezone-aware UTC


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token of ours grants."""

    subject: str  # e.g. "device:3"
    scopes: frozenset[str]
    site_id: int
    expires_at: datetime  # timezone-aware UTC
    token_id: str


def unverified_client_id(assertion: str) -> str:
    """Read the client ID from an assertion without verifying it, to look up the client's keys.

    Parameters
    ----------
    assertion
        The ``client_assertion`` form parameter.

    Returns
    -------
    str
        ``iss``, which RFC 7523 §3 requires to equal ``sub``: the client_id.

    Raises
    ------
    OAuthError
        ``invalid_client`` if the assertion is not a JWT or ``iss`` and ``sub`` differ.
    """
    _, claims = _parse_unverified(assertion)
    return _client_id(claims)


def verify_client_assertion(
    assertion: str, *, jwks: Mapping[str, Any], token_url: str, now: datetime | None = None
) -> ClientAssertion:
    """Verify a ``private_key_jwt`` client assertion (RFC 7523 §3, SMART Backend Services).

    Parameters
    ----------
    assertion
        The ``client_assertion`` form parameter.
    jwks
        The JSON Web Key Set (RFC 7517 §5) registered for the client, with RSA or EC P-384
        public keys. The header's ``kid`` picks the key; without one, the set must hold exactly
        one key fit for the header's ``alg``.
    token_url
        This token endpoint's URL, which ``aud`` must name.
    now
        The current time (timezone-aware); defaults to the system clock.

    Returns
    -------
    ClientAssertion
        The client_id, the ``jti`` and the expiry, for the caller's replay check.

    Raises
    ------
    OAuthError
        ``invalid_client`` with a short reason on any failure of the assertion or key set.
    ValueError
        If ``token_url`` is empty or ``now`` is naive: a bug in the caller, not the client.
    """
    if not token_url:
        raise ValueError("token_url must be the token endpoint's URL")
    now = _utc(now)
    header, _ = _parse_unverified(assertion)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASSERTION_ALGORITHMS:
        raise _client_error("the assertion must be signed with RS384 or ES384")
    key = _select_key(jwks, alg, header.get("kid"))
    claims = _decode_assertion(assertion, key, alg, token_url)
    client_id = _client_id(claims)
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise _client_error("jti must be a non-empty string")
    if len(jti) > _MAX_JTI_CHARS:
        raise _client_error(f"jti must not exceed {_MAX_JTI_CHARS} characters")
    expires_at = _check_assertion_times(claims, now)
    return ClientAssertion(client_id=client_id, jti=jti, expires_at=expires_at)


def grant_scopes(requested: str | None, allowed: Iterable[str]) -> list[str]:
    """Decide the scopes of a token (RFC 6749 §3.3), with SMART v2 scope subsets.

    A requested scope is granted when an allowed scope equals it, or when both have the form
    ``system/<Resource|*>.<permissions>`` and the allowed one names the same resource (or
    ``*``) and a superset of the permissions (``cruds``; SMART v1 ``read`` = ``rs``, ``write``
    = ``cud``, ``*`` = ``cruds``).

    Parameters
    ----------
    requested
        The space-separated ``scope`` form parameter; ``None`` or empty asks for everything.
    allowed
        The scopes registered for the client.

    Returns
    -------
    list[str]
        The requested scopes, deduplicated, in request order; or all allowed scopes, sorted,
        when none were requested (empty if the client has none).

    Raises
    ------
    OAuthError
        ``invalid_scope`` if a scope is malformed or not covered by an allowed one.
    """
    allowed_set = set(allowed)
    tokens = [token for token in (requested or "").split(" ") if token]
    if not tokens:
        return sorted(allowed_set)
    granted = list(dict.fromkeys(tokens))
    for scope in granted:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise OAuthError("invalid_scope", "scope holds characters RFC 6749 §3.3 forbids")
        if not covers(allowed_set, scope):
            raise OAuthError("invalid_scope", f"scope {scope[:100]!r} is not allowed")
    return granted


class AccessTokens:
    """Issue and verify our own short-lived bearer access tokens (HS256, RFC 9068 profile)."""

    def __init__(self, key: bytes, issuer: str) -> None:
        if len(key) < _KEY_BYTES:
            raise ValueError(f"the access token key must be at least {_KEY_BYTES} bytes")
        if not issuer:
            raise ValueError("the access token issuer must be a non-empty string")
        self._key = key
        self.issuer = issuer

    def issue(
        self, subject: str, scopes: Iterable[str], site_id: int, now: datetime | None = None
    ) -> tuple[str, int]:
        """Sign a token; return it with its ``expires_in`` (RFC 6749 §5.1) in seconds."""
        unique = list(dict.fromkeys(scopes))
        if not subject:
            raise ValueError("the token subject must be a non-empty string")
        if any(not _SCOPE_TOKEN.fullmatch(scope) for scope in unique):
            raise ValueError("each scope must be a non-empty RFC 6749 §3.3 scope-token")
        issued_at = int(_utc(now).timestamp())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.issuer,
            "iat": issued_at,
            "exp": issued_at + ACCESS_TOKEN_SECONDS,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(unique),
            "site": int(site_id),
        }
        token = jwt.encode(
            claims, self._key, algorithm=_ACCESS_ALGORITHM, headers={"typ": _ACCESS_TYPE}
        )
        return token, ACCESS_TOKEN_SECONDS

    def verify(self, token: str, now: datetime | None = None) -> AccessClaims:
        """Check a bearer token of ours; any problem raises ``OAuthError("invalid_token")``."""
        now = _utc(now)
        if not isinstance(token, str) or not token or len(token) > _MAX_JWT_CHARS:
            raise _token_error("the access token is malformed")
        try:
            decoded = jwt.decode_complete(
                token,
                self._key,
                algorithms=[_ACCESS_ALGORITHM],
                audience=self.issuer,
                issuer=self.issuer,
                options={
                    "verify_exp": False,  # checked below against `now`
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": _ACCESS_CLAIMS,
                },
            )
        except jwt.InvalidSignatureError:
            raise _token_error("the access token signature is invalid") from None
        except jwt.PyJWTError:
            raise _token_error("the access token is invalid") from None
        if decoded["header"].get("typ") != _ACCESS_TYPE:
            raise _token_error("the token is not an access token")
        return _access_claims(decoded["payload"], now)


def load_or_create_signing_key(path: Path) -> bytes:
    """Read the server's secret signing key, creating a random one on first use.

    Creation is exclusive (``O_CREAT | O_EXCL``, mode 0600, parent directory 0700), so when
    processes race, one writes the key and the others read it.

    Raises
    ------
    ValueError
        If the key file is shorter than 32 bytes or other users may read or write it.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)  # another process won the race; wait for its key
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # an empty key file would stop every later start
        raise
    _fsync_directory(path.parent)
    return key


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _client_error(reason: str) -> OAuthError:
    return OAuthError("invalid_client", reason)


def _token_error(reason: str) -> OAuthError:
    return OAuthError("invalid_token", reason)


def _parse_unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified: only to choose the key."""
    if not isinstance(assertion, str) or not assertion or len(assertion) > _MAX_JWT_CHARS:
        raise _client_error("client_assertion is not a JWT")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _client_error("client_assertion is not a JWT") from None
    return header, claims


def _client_id(claims: Mapping[str, Any]) -> str:
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _client_error("iss must be the client_id")
    if claims.get("sub") != issuer:
        raise _client_error("iss and sub must both be the client_id (RFC 7523 §3)")
    return issuer


def _select_key(jwks: Mapping[str, Any], alg: str, kid: Any) -> jwt.PyJWK:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise _client_error("the client has no usable key set registered")
    entries = [key for key in keys if isinstance(key, Mapping)]
    if kid is not None:
        if not isinstance(kid, str):
            raise _client_error("kid must be a string")
        entries = [key for key in entries if key.get("kid") == kid]
        if not entries:
            raise _client_error("no key of the client has the assertion's kid")
    candidates = [key for key in entries if _fits(key, alg)]
    if not candidates:
        raise _client_error(f"the client has no {alg} public signing key registered")
    if len(candidates) > 1:
        raise _client_error("several keys of the client fit; name one with kid in the header")
    try:
        key = jwt.PyJWK(dict(candidates[0]), algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise _client_error("the client's registered key is malformed") from None
    if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
        raise _client_error(f"the client's RSA key is too weak (under {MIN_RSA_BITS} bits)")
    return key


def _fits(key: Mapping[str, Any], alg: str) -> bool:
    """True if a JWK is a public key that may verify ``alg`` signatures (RFC 7517 §4)."""
    kty, crv = _KEY_TYPES[alg]
    key_ops = key.get("key_ops", ["verify"])
    return (
        key.get("kty") == kty
        and (crv is None or key.get("crv") == crv)
        and key.get("alg", alg) == alg
        and key.get("use", "sig") == "sig"
        and isinstance(key_ops, list)
        and "verify" in key_ops
        and "d" not in key  # a private key has no business in a registered key set
    )


def _decode_assertion(assertion: str, key: jwt.PyJWK, alg: str, token_url: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            assertion,
            key,
            algorithms=[alg],
            audience=token_url,
            options={
                "verify_exp": False,  # time claims are checked against `now`
                "verify_nbf": False,
                "verify_iat": False,
                "verify_sub": False,  # sub and jti are checked below, with clearer reasons
                "verify_jti": False,
                "require": ["iss", "sub", "aud", "exp", "jti"],
            },
        )
    except jwt.InvalidSignatureError:
        raise _client_error("the assertion's signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise _client_error("aud must be the token endpoint URL") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _client_error(f"the assertion lacks the {exc.claim} claim") from None
    except jwt.InvalidKeyError:
        raise _client_error("the client's registered key is unusable") from None
    except jwt.PyJWTError:
        raise _client_error("the assertion is invalid") from None


def _check_assertion_times(claims: Mapping[str, Any], now: datetime) -> datetime:
    """Apply exp, nbf and iat with leeway for clock skew; return the expiry (SMART: ≤ 5 min)."""
    current = now.timestamp()
    expires = _numeric_date(claims, "exp")
    if expires <= current - _ASSERTION_LEEWAY_S:
        raise _client_error("the assertion has expired")
    if expires > current + MAX_ASSERTION_LIFETIME + _ASSERTION_LEEWAY_S:
        raise _client_error(f"exp must be at most {MAX_ASSERTION_LIFETIME} seconds ahead")
    if "nbf" in claims and _numeric_date(claims, "nbf") > current + _ASSERTION_LEEWAY_S:
        raise _client_error("the assertion is not valid yet (nbf)")
    if "iat" in claims and _numeric_date(claims, "iat") > current + _ASSERTION_LEEWAY_S:
        raise _client_error("the assertion was issued in the future (iat)")
    return datetime.fromtimestamp(expires, UTC)


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OAuthError("invalid_client", f"{name} must be a NumericDate (RFC 7519 §2)")
    return float(value)


def _access_claims(claims: Mapping[str, Any], now: datetime) -> AccessClaims:
    subject, scope, site, token_id = (claims[k] for k in ("sub", "scope", "site", "jti"))
    expires, issued = claims["exp"], claims["iat"]
    well_typed = (
        isinstance(subject, str)
        and bool(subject)
        and isinstance(scope, str)
        and isinstance(token_id, str)
        and all(_is_int(value) for value in (site, expires, issued))
    )
    if not well_typed:
        raise _token_error("the access token is invalid")
    current = now.timestamp()
    if current >= expires + _ACCESS_LEEWAY_S:
        raise _token_error("the access token has expired")
    if issued > current + _ACCESS_LEEWAY_S:
        raise _token_error("the access token is not valid yet")
    return AccessClaims(
        subject=subject,
        scopes=frozenset(scope.split()),
        site_id=site,
        expires_at=datetime.fromtimestamp(expires, UTC),
        token_id=token_id,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_key(path: Path) -> bytes:
    """Read the key, waiting briefly while a racing process is still writing it."""
    deadline = time.monotonic() + _KEY_WAIT_S
    while True:
        fd = os.open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & _LOOSE_KEY_MODE:
                raise ValueError(
                    f"signing key file {path} is open to other users (mode "
                    f"{stat.S_IMODE(mode):04o}); restrict it with: chmod 600 {path}"
                )
            key = file.read()
        if len(key) >= _KEY_BYTES:
            return key
        if time.monotonic() >= deadline:
            raise ValueError(
                f"signing key file {path} holds {len(key)} bytes, fewer than {_KEY_BYTES}; "
                "delete it to have a new key generated, or write 32 random bytes to it"
            )
        time.sleep(0.01)


def _fsync_directory(directory: Path) -> None:
    """Make the new file's directory entry durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
