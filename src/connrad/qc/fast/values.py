"""Dates, times and numbers well formed by their VR (PS3.5 6.2), at every sequence level.

A stored instance holds single values, never query ranges ("-"), and not the ACR-NEMA forms
(``YYYY.MM.DD``, ``HH:MM:SS``). Dates must exist in the calendar. IS and DS must parse as
numbers (IS in 32 bits). All warn: a wrong date misplaces a study in a worklist, but the
image is readable; where a number is needed to read the pixels (Number of Frames) the pixel
check fails on its own.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable

from connrad.qc.fast._elements import Leaf
from connrad.qc.findings import Finding, warn

_DATE = re.compile(rb"(\d{4})(\d{2})(\d{2})")
_TIME = re.compile(rb"(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,6})?)?)?")
_DATETIME = re.compile(
    rb"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,6})?)?)?)?)?)?"
    rb"(?:([+-])(\d{2})(\d{2}))?"
)
_INTEGER = re.compile(rb"[+-]?\d+")
_DECIMAL = re.compile(rb"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PADDING = b" \x00"
_INT32 = (-(2**31), 2**31 - 1)


def _valid_date(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(max(year, 1), month)[1]


def _valid_clock(hour: bytes | None, minute: bytes | None, second: bytes | None) -> bool:
    return (
        (hour is None or int(hour) <= 23)
        and (minute is None or int(minute) <= 59)
        and (second is None or int(second) <= 60)  # 60: a leap second
    )


def valid_da(value: bytes) -> bool:
    match = _DATE.fullmatch(value)
    return match is not None and _valid_date(*(int(group) for group in match.groups()))


def valid_tm(value: bytes) -> bool:
    match = _TIME.fullmatch(value)
    return match is not None and _valid_clock(*match.groups())


def valid_dt(value: bytes) -> bool:
    match = _DATETIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    if month is not None and not _valid_date(int(year), int(month), int(day or b"01")):
        return False
    if not _valid_clock(hour, minute, second):
        return False
    if sign is None:
        return True
    offset = int(off_h) * 60 + int(off_m)
    return int(off_m) <= 59 and (offset <= 12 * 60 if sign == b"-" else offset <= 14 * 60)


def valid_is(value: bytes) -> bool:
    return _INTEGER.fullmatch(value) is not None and _INT32[0] <= int(value) <= _INT32[1]


def valid_ds(value: bytes) -> bool:
    return _DECIMAL.fullmatch(value) is not None


_RULES = {
    "DA": (valid_da, "value.bad-date", "a date (YYYYMMDD, a real calendar day)"),
    "TM": (valid_tm, "value.bad-time", "a time (HH[MM[SS[.FFFFFF]]])"),
    "DT": (valid_dt, "value.bad-datetime", "a date-time (YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX])"),
    "IS": (valid_is, "value.bad-number", "an integer string (32-bit)"),
    "DS": (valid_ds, "value.bad-number", "a decimal string"),
}


def check_values(leaves: Iterable[Leaf]) -> list[Finding]:
    findings: list[Finding] = []
    for leaf in leaves:
        rule = _RULES.get(leaf.vr)
        if rule is None:
            continue
        valid, code, expected = rule
        raw = leaf.value if isinstance(leaf.value, bytes) else leaf.value.encode("utf-8")
        for index, value in enumerate(raw.split(b"\\")):
            value = value.strip(_PADDING)
            if not value or valid(value):
                continue
            findings.append(
                warn(
                    code,
                    f"{leaf.keyword} is not {expected}",
                    leaf.keyword,
                    path=leaf.path,
                    value_index=index,
                    vr=leaf.vr,
                )
            )
            break  # one finding per element
    return findings
