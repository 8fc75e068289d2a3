"""Tolerant reading of header values: a malformed value reads as absent, never raises.

Deep checks run on whatever was stored, including files the fast checks only warned about,
so every header read goes through these helpers.
"""

from __future__ import annotations

import math
from typing import Any


def get(ds: Any, keyword: str) -> Any:
    """``ds.get(keyword)``, None when the value cannot be converted."""
    try:
        return ds.get(keyword)
    except Exception:  # pydicom converts lazily: a bad DS/IS raises here
        return None


def numbers(value: Any) -> list[float] | None:
    """All values as finite floats (multi-valued, raw strings or bytes), else None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        parts: list[Any] = value.split("\\")
    elif hasattr(value, "__iter__"):
        parts = list(value)
    else:
        parts = [value]
    try:
        out = [float(p) for p in parts]
    except (TypeError, ValueError):
        return None
    return out if out and all(math.isfinite(x) for x in out) else None


def number(value: Any) -> float | None:
    """The first value as a float."""
    values = numbers(value)
    return values[0] if values else None


def integer(value: Any) -> int | None:
    """The first value when it is a whole number."""
    value = number(value)
    return int(value) if value is not None and value.is_integer() else None


def strings(value: Any) -> tuple[str, ...]:
    """Code string values, stripped and upper-case (ImageType and the like)."""
    if value is None:
        return ()
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        value = value.split("\\")
    try:
        return tuple(str(v).strip().upper() for v in value)
    except TypeError:
        return ()
