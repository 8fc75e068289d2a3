"""Whole-day shifting of DA/DT values and the age cap."""

from __future__ import annotations

import pytest

from connrad.deid.dates import MalformedDate, cap_age, shift_da, shift_dt
from connrad.deid.pseudonyms import date_offset_days

DA_REFERENCE = [
    ("20240301", -1, "20240229"),
    ("20240301-20240310", -10, "20240220-20240229"),
    ("-20240310", -10, "-20240229"),
    ("20240301-", -1, "20240229-"),
    ("", -5, ""),
]


@pytest.mark.parametrize(("value", "days", "expected"), DA_REFERENCE)
def test_shift_da(value: str, days: int, expected: str) -> None:
    assert shift_da(value, days) == expected


DT_REFERENCE = [
    ("20240301123456.123456", -1, "20240229123456.123456"),
    ("20240301123456+0100", -1, "20240229123456+0100"),
    ("20240301080000-0500", -1, "20240229080000-0500"),
    ("20240301-20240302", -1, "20240229-20240301"),
    ("202403", -1, "202402"),
    ("2024", -1, "2023"),
    ("2020-2024", -1, "2019-2023"),
]


@pytest.mark.parametrize(("value", "days", "expected"), DT_REFERENCE)
def test_shift_dt_keeps_time_and_timezone(value: str, days: int, expected: str) -> None:
    assert shift_dt(value, days) == expected


@pytest.mark.parametrize("value", ["2024.03.01", "20241301", "2024030", "abc"])
def test_malformed_da_raises(value: str) -> None:
    with pytest.raises(MalformedDate):
        shift_da(value, -1)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        ("089Y", "089Y"),
        ("090Y", "090Y"),
        ("095Y", "090Y"),
        ("1200M", "1200M"),
        ("999M", "999M"),
        ("120Y", "090Y"),
        ("030W", "030W"),
        ("", ""),
    ],
)
def test_cap_age(age: str, expected: str) -> None:
    assert cap_age(age) == expected


def test_date_offset_range_and_determinism() -> None:
    offsets = {date_offset_days(b"k" * 32, f"P{i}", "") for i in range(500)}
    assert min(offsets) >= -365
    assert max(offsets) <= -1
    assert len(offsets) > 200
    assert date_offset_days(b"k" * 32, "P1", "X") == date_offset_days(b"k" * 32, "P1", "X")
