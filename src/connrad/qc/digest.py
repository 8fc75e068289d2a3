"""Transfer integrity: the SHA-256 digest a client declares for an instance's bytes.

Accepted forms, per part (STOW-RS) or per request:

- ``Content-Digest`` / ``Repr-Digest`` (RFC 9530): ``sha-256=:<base64>:``, possibly among
  other algorithms in the dictionary;
- ``Digest`` (RFC 3230): ``SHA-256=<base64>`` in a comma-separated list.

Only SHA-256 is verified (the archive hashes every blob with it while writing); a header
naming only other algorithms is ignored. A SHA-256 entry that is not valid base64 of 32
bytes is an error: the client asked for a check that cannot be made.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from connrad.qc.findings import Finding, fail

DIGEST_HEADERS = ("content-digest", "repr-digest", "digest")


class DigestError(ValueError):
    """A digest header names SHA-256 with a malformed value."""


def expected_sha256(headers: Mapping[str, str]) -> str | None:
    """The declared SHA-256 as lower-case hex, None when none is declared.

    ``headers`` must have lower-case names (as the multipart parser gives them).
    """
    for name in DIGEST_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        for entry in value.split(","):
            algorithm, sep, encoded = entry.strip().partition("=")
            if not sep or algorithm.strip().lower() != "sha-256":
                continue
            encoded = encoded.strip()
            if name != "digest":  # structured-field byte sequence: :base64:
                if len(encoded) < 2 or encoded[0] != ":" or encoded[-1] != ":":
                    raise DigestError(f"{name}: sha-256 value is not a byte sequence")
                encoded = encoded[1:-1]
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise DigestError(f"{name}: sha-256 value is not base64") from None
            if len(raw) != 32:
                raise DigestError(f"{name}: sha-256 value is not 32 bytes")
            return raw.hex()
    return None


def digest_findings(declared: str | None, actual_sha256: str) -> list[Finding]:
    """A failing finding when the declared digest differs from the bytes received."""
    if declared is None or declared == actual_sha256:
        return []
    return [
        fail(
            "transfer.digest-mismatch",
            "the instance's SHA-256 differs from the digest its sender declared: "
            "the data changed in transit",
        )
    ]


def content_digest(sha256_hex: str) -> str:
    """A ``Content-Digest`` header value for bytes with this SHA-256 (for clients, tests)."""
    return "sha-256=:" + base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii") + ":"
