"""Table E.1-1 as data: loading, masked rows, option precedence, compound resolution."""

from __future__ import annotations

import csv
from importlib import resources

import pytest
from pydicom.datadict import keyword_for_tag

from connrad.deid.keep import KEEP_GROUPS, KEEP_TAGS
from connrad.deid.profiles import (
    OPTION_COLUMNS,
    TABLE_FILE,
    Action,
    Option,
    load_table,
    parse_table,
    resolve_compound,
)


def test_table_loads_every_row() -> None:
    table = load_table()
    text = resources.files("connrad.deid").joinpath("data", TABLE_FILE).read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 647
    assert len(table.exact) + len(table.masked) + 1 == 647
    assert table.private.action_for(Option.RETAIN_SAFE_PRIVATE) is Action.CLEAN


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (0x60003000, "Overlay Data"),
        (0x601E3000, "Overlay Data"),
        (0x60024000, "Overlay Comments"),
        (0x50001234, "Curve Data"),
        (0x00100010, "Patient's Name"),
    ],
)
def test_rule_lookup_exact_and_masked(tag: int, expected: str) -> None:
    rule = load_table().rule_for(tag)
    assert rule is not None
    assert rule.name == expected


def test_unnamed_tag_has_no_rule() -> None:
    assert load_table().rule_for(0x00280010) is None  # Rows: kept by the keep-list


def test_option_cell_overrides_basic_only_when_enabled() -> None:
    rule = load_table().rule_for(0x00101010)  # Patient's Age
    assert rule is not None
    assert rule.action_for(Option.NONE) is Action.REMOVE
    assert rule.action_for(Option.RETAIN_PATIENT_CHARACTERISTICS) is Action.KEEP
    assert rule.action_for(Option.CLEAN_DESCRIPTORS) is Action.REMOVE


def test_parse_rejects_malformed_tag() -> None:
    header = "tag,keyword,name,vr,retired,stdCompIOD,basicProfile," + ",".join(
        column for _, column in OPTION_COLUMNS
    )
    with pytest.raises(ValueError, match="is not"):
        parse_table(header + '\n"(0010)",K,N,LO,N,Y,X' + "," * len(OPTION_COLUMNS) + "\n")


COMPOUND_REFERENCE = [
    # action, Type, expected (PS3.15 E.1.1); None = Type unknown -> keep 1/2 valid
    ("Z/D", "1", "D"),
    ("Z/D", "2", "Z"),
    ("Z/D", "3", "Z"),
    ("Z/D", None, "D"),
    ("X/Z", "1", "Z"),
    ("X/Z", "2", "Z"),
    ("X/Z", "3", "X"),
    ("X/Z", None, "Z"),
    ("X/D", "1", "D"),
    ("X/D", "2", "D"),
    ("X/D", "3", "X"),
    ("X/D", None, "D"),
    ("X/Z/D", "1", "D"),
    ("X/Z/D", "1C", "D"),
    ("X/Z/D", "2", "Z"),
    ("X/Z/D", "3", "X"),
    ("X/Z/D", None, "D"),
    ("X/Z/U*", "1", "U"),
    ("X/Z/U*", "2", "U"),
    ("X/Z/U*", "3", "X"),
    ("X/Z/U*", None, "U"),
    ("K", "3", "K"),
    ("X", None, "X"),
]


@pytest.mark.parametrize(("action", "type_", "expected"), COMPOUND_REFERENCE)
def test_resolve_compound(action: str, type_: str | None, expected: str) -> None:
    assert resolve_compound(Action(action), type_) is Action(expected)


def test_keep_list_is_disjoint_from_table() -> None:
    table = load_table()
    named = [keyword_for_tag(tag) for tag in KEEP_TAGS if table.rule_for(tag) is not None]
    assert named == []


def test_keep_groups_only_lose_table_rows() -> None:
    # Group 0028 rows of the table (e.g. Image Presentation Comments) still apply.
    assert 0x0028 in KEEP_GROUPS
    assert load_table().rule_for(0x00284000) is not None
