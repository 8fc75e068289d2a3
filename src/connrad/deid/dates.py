"""Shift DA and DT values by whole days (PS3.15 E.3.6) and cap ages (PS3.15 E.3.3).

Formats follow PS3.5 Table 6.2-1: DA is ``YYYYMMDD``; DT is ``YYYY[MM[DD[HH[MM[SS[.F]]]]]]``
with an optional ``&ZZXX`` offset; both may be ranges ``A-B``, ``-B`` or ``A-``. Only the
date part moves: times, fractions and timezone suffixes are kept as written. A DT with less
than day precision is shifted from its first day and written back with the same precision.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

_DA = re.compile(r"\d{8}")
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?([+-]\d{4})?")
MAX_AGE_YEARS = 89
CAPPED_AGE = "090Y"
_AGE = re.compile(r"(\d{3})([DWMY])")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
_Shifter = Callable[[str, int], str]


class MalformedDate(ValueError):
    """A DA or DT value that does not follow PS3.5; the caller removes the element."""


def shift_da(value: str, days: int) -> str:
    """Shift one DA value or range; raises MalformedDate."""
    return _shift_range(value, days, _shift_da_single)


def shift_dt(value: str, days: int) -> str:
    """Shift one DT value or range; raises MalformedDate."""
    return _shift_range(value, days, _shift_dt_single)


def _shift_range(value: str, days: int, shift_one: _Shifter) -> str:
    text = value.strip()
    if not text:
        return text
    # A DT timezone "-0500" also contains "-": split the range only on a "-" that is
    # followed by a full year or ends the value, after a complete first part.
    parts = [text] if _is_single_dt(text) else _split_range(text)
    return "-".join(shift_one(part, days) if part else "" for part in parts)


def _split_range(text: str) -> list[str]:
    if text.startswith("-"):
        return ["", text[1:]]
    if text.endswith("-"):
        return [text[:-1], ""]
    for index, char in enumerate(text):
        if char == "-" and index not in (0, len(text) - 1):
            left, right = text[:index], text[index + 1 :]
            if _is_whole(left) and _is_whole(right):
                return [left, right]
    return [text]


def _is_single_dt(text: str) -> bool:
    """``20240301080000-0500`` is one DT with a UTC offset, not a range (PS3.5 6.2)."""
    match = _DT.fullmatch(text)
    if match is None or match.group(8) is None:
        return False
    offset = match.group(8)
    return int(offset[1:3]) <= 14 and int(offset[3:5]) < 60


def _is_whole(part: str) -> bool:
    return bool(_DA.fullmatch(part) or _DT.fullmatch(part))


def _parse_day(year: str, month: str | None, day: str | None) -> date:
    try:
        return date(int(year), int(month or 1), int(day or 1))
    except ValueError as exc:
        raise MalformedDate(f"not a calendar date: {year}{month or ''}{day or ''}") from exc


def _shift_da_single(part: str, days: int) -> str:
    if not _DA.fullmatch(part):
        raise MalformedDate("DA must be YYYYMMDD (PS3.5 Table 6.2-1)")
    shifted = _parse_day(part[:4], part[4:6], part[6:8]) + timedelta(days=days)
    if shifted.year < 1:
        raise MalformedDate("shifted date before year 1")
    return shifted.strftime("%Y%m%d")


def _shift_dt_single(part: str, days: int) -> str:
    match = _DT.fullmatch(part)
    if match is None:
        raise MalformedDate("DT must be YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX] (PS3.5)")
    year, month, day = match.group(1), match.group(2), match.group(3)
    if match.group(4) and not day:
        raise MalformedDate("DT has a time without a full date")
    shifted = _parse_day(year, month, day) + timedelta(days=days)
    text = shifted.strftime("%Y%m%d")[: 4 + len(month or "") + len(day or "")]
    return text + (match.group(4) or "") + (match.group(8) or "")


def cap_age(value: str) -> str:
    """PatientAge (AS) above 89 years becomes ``090Y`` (HIPAA Safe Harbor; PS3.15 E.3.3)."""
    match = _AGE.fullmatch(value.strip())
    if match is None:
        return value
    years = int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)] / 365.25
    return CAPPED_AGE if years > MAX_AGE_YEARS else value
