"""Credential scopes: connrad's own (``dicomweb.read``, ``dicomweb.stow``) and SMART v2 system
scopes (``system/<Resource|*>.<cruds>``, with the v1 forms ``read``/``write``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

CONNRAD_SCOPES = frozenset({"dicomweb.read", "dicomweb.stow"})
_SMART = re.compile(r"^system/(\*|[A-Za-z][A-Za-z0-9]*)\.(read|write|\*|c?r?u?d?s?)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def is_valid(scope: str) -> bool:
    if scope in CONNRAD_SCOPES:
        return True
    match = _SMART.match(scope)
    return bool(match and match.group(2))


def _smart_parts(scope: str) -> tuple[str, frozenset[str]] | None:
    match = _SMART.match(scope)
    if not match or not match.group(2):
        return None
    permissions = _V1.get(match.group(2), match.group(2))
    return match.group(1), frozenset(permissions)


def covers(granted: Iterable[str], wanted: str) -> bool:
    """Does any granted scope include ``wanted`` (same resource or ``*``, superset of rights)?"""
    wanted_parts = _smart_parts(wanted)
    for scope in granted:
        if scope == wanted:
            return True
        parts = _smart_parts(scope)
        if parts is None or wanted_parts is None:
            continue
        resource, permissions = parts
        if resource in ("*", wanted_parts[0]) and wanted_parts[1] <= permissions:
            return True
    return False
