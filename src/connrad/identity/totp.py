"""TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps), each code usable once."""

from __future__ import annotations

import hmac
import time

import pyotp

STEP_SECONDS = 30
DRIFT_STEPS = 1  # accept the previous and next code too (clock drift, typing time)


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str = "connrad") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def matching_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to, if valid and newer than ``last_step`` (no replay)."""
    code = code.strip()
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
