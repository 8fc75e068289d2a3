"""PS3.15 Table E.1-1 (edition 2025b) as data: actions, options and the lookup of a tag's rule.

The table is read once from ``data/confidentiality_profile_2025b.csv`` (columns described in
``/work/shared/deid/README.md``). A tag's effective action is the column of an enabled option
when its cell is non-empty, else the Basic Profile column (PS3.15 E.1.1, E.3). Compound
actions (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) are resolved from the attribute's Type in the IOD by
:func:`resolve_compound`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Flag, StrEnum, auto
from functools import cache
from importlib import resources

from pydicom.tag import BaseTag

TABLE_FILE = "confidentiality_profile_2025b.csv"
TABLE_EDITION = "2025b"

TypeOf = Callable[[BaseTag], str | None]
"""Returns the attribute's Type in the IOD ("1", "2" or "3"), or None when unknown."""


class Action(StrEnum):
    """Action codes of PS3.15 Table E.1-1."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"
    Z_OR_D = "Z/D"
    X_OR_Z = "X/Z"
    X_OR_D = "X/D"
    X_Z_OR_D = "X/Z/D"
    X_Z_OR_U = "X/Z/U*"


class Option(Flag):
    """Options of the Basic Application Level Confidentiality Profile (PS3.15 E.3)."""

    NONE = 0
    CLEAN_GRAPHICS = auto()
    CLEAN_STRUCTURED_CONTENT = auto()
    CLEAN_DESCRIPTORS = auto()
    RETAIN_LONGITUDINAL_FULL_DATES = auto()
    RETAIN_LONGITUDINAL_MODIFIED_DATES = auto()
    RETAIN_PATIENT_CHARACTERISTICS = auto()
    RETAIN_DEVICE_IDENTITY = auto()
    RETAIN_UIDS = auto()
    RETAIN_SAFE_PRIVATE = auto()
    RETAIN_INSTITUTION_IDENTITY = auto()


DATE_OPTIONS = Option.RETAIN_LONGITUDINAL_FULL_DATES | Option.RETAIN_LONGITUDINAL_MODIFIED_DATES


@dataclass(frozen=True)
class Policy:
    """Options of PS3.15 E.3 plus the Retain Safe Private allow-list.

    ``safe_private`` maps a Private Creator value to the element offsets (the low byte,
    0x00-0xFF, of ``(gggg,xxee)``) that are safe to keep; it is used only with
    ``Option.RETAIN_SAFE_PRIVATE`` (PS3.15 E.3.10).
    """

    options: Option = Option.NONE
    safe_private: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if DATE_OPTIONS in self.options:
            raise ValueError(
                "Retain Longitudinal Full Dates and Modified Dates exclude each other "
                "(PS3.15 E.3.6): choose one"
            )


# The two named policies of this project (PS3.15 E.3 options; no safe private attributes).
# Pseudonymized: longitudinal studies stay usable (dates shifted by a per-patient offset,
# age/sex/size/weight and device identity kept); the institution is NOT retained (its
# name narrows the patient population and usually sits next to the clinic's own IDs);
# free text, SR content and graphics are cleaned rather than kept.
PSEUDONYMIZED_POLICY = Policy(
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES
    | Option.RETAIN_PATIENT_CHARACTERISTICS
    | Option.RETAIN_DEVICE_IDENTITY
    | Option.CLEAN_DESCRIPTORS
    | Option.CLEAN_STRUCTURED_CONTENT
    | Option.CLEAN_GRAPHICS
)
# Anonymized: no dates (the Basic Profile empties, dummies or removes them per row), no
# device identity; patient characteristics kept for clinical reading; text cleaned.
ANONYMIZED_POLICY = Policy(
    Option.RETAIN_PATIENT_CHARACTERISTICS
    | Option.CLEAN_DESCRIPTORS
    | Option.CLEAN_STRUCTURED_CONTENT
    | Option.CLEAN_GRAPHICS
)


# Order matters: retain options are consulted before clean options, so an attribute that
# an enabled Retain option keeps (K) is not replaced by a Clean option's dummy (C).
OPTION_COLUMNS: tuple[tuple[Option, str], ...] = (
    (Option.RETAIN_SAFE_PRIVATE, "rtnSafePrivOpt"),
    (Option.RETAIN_UIDS, "rtnUIDsOpt"),
    (Option.RETAIN_DEVICE_IDENTITY, "rtnDevIdOpt"),
    (Option.RETAIN_INSTITUTION_IDENTITY, "rtnInstIdOpt"),
    (Option.RETAIN_PATIENT_CHARACTERISTICS, "rtnPatCharsOpt"),
    (Option.RETAIN_LONGITUDINAL_FULL_DATES, "rtnLongFullDatesOpt"),
    (Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, "rtnLongModifDatesOpt"),
    (Option.CLEAN_DESCRIPTORS, "cleanDescOpt"),
    (Option.CLEAN_STRUCTURED_CONTENT, "cleanStructContOpt"),
    (Option.CLEAN_GRAPHICS, "cleanGraphOpt"),
)


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    tag: str
    name: str
    vr: str
    basic: Action
    by_option: tuple[tuple[Option, Action], ...]

    def action_for(self, options: Option) -> Action:
        """The effective action under ``options`` (first enabled non-empty option cell)."""
        for option, action in self.by_option:
            if option in options:
                return action
        return self.basic


@dataclass(frozen=True)
class ProfileTable:
    """Exact tags, masked repeating-group rows and the odd-group (private) rule."""

    exact: dict[int, Rule]
    masked: tuple[tuple[int, int, Rule], ...]
    private: Rule

    def rule_for(self, tag: int) -> Rule | None:
        """The rule of a public tag, or None when the table does not name it."""
        rule = self.exact.get(tag)
        if rule is not None:
            return rule
        for mask, value, masked_rule in self.masked:
            if tag & mask == value:
                return masked_rule
        return None


def _parse_tag(text: str) -> tuple[int, int]:
    """``(60XX,3000)`` -> (mask, value); wildcard nibbles are ``X`` (case-insensitive)."""
    digits = text.strip("()").replace(",", "").upper()
    if len(digits) != 8:
        raise ValueError(f"Table E.1-1 tag {text!r} is not (gggg,eeee)")
    mask = value = 0
    for char in digits:
        mask <<= 4
        value <<= 4
        if char != "X":
            mask |= 0xF
            value |= int(char, 16)
    return mask, value


def _parse_rule(row: dict[str, str]) -> Rule:
    by_option = tuple(
        (option, Action(row[column])) for option, column in OPTION_COLUMNS if row[column]
    )
    return Rule(row["tag"], row["name"], row["vr"], Action(row["basicProfile"]), by_option)


def parse_table(text: str) -> ProfileTable:
    """Build the lookup from the CSV text; raises ValueError on an unknown tag form."""
    exact: dict[int, Rule] = {}
    masked: list[tuple[int, int, Rule]] = []
    private: Rule | None = None
    for row in csv.DictReader(io.StringIO(text)):
        rule = _parse_rule(row)
        if "odd" in row["tag"].lower():
            private = rule
            continue
        mask, value = _parse_tag(row["tag"])
        if mask == 0xFFFFFFFF:
            exact[value] = rule
        else:
            masked.append((mask, value, rule))
    if private is None:
        raise ValueError("Table E.1-1 has no '(gggg,eeee) where gggg is odd' row")
    return ProfileTable(exact, tuple(masked), private)


@cache
def load_table() -> ProfileTable:
    """The packaged 2025b table, parsed once."""
    text = resources.files("connrad.deid").joinpath("data", TABLE_FILE).read_text("utf-8")
    return parse_table(text)


# PS3.15 E.1.1: Z/D "Z unless D is required" (Type 2 vs 1); X/Z "X unless Z is required"
# (Type 3 vs 2); X/D "X unless D is required" (Type 3 vs 1); X/Z/D (Type 3 vs 2 vs 1);
# X/Z/U* "X unless Z or replacement of contained instance UIDs (U) is required".
# The None column is the choice when the Type is unknown: the action that keeps a Type 1
# or Type 2 attribute valid, so that de-identification never breaks IOD conformance.
COMPOUND_RESOLUTION: dict[Action, dict[str | None, Action]] = {
    Action.Z_OR_D: {"1": Action.DUMMY, "2": Action.EMPTY, "3": Action.EMPTY, None: Action.DUMMY},
    Action.X_OR_Z: {"1": Action.EMPTY, "2": Action.EMPTY, "3": Action.REMOVE, None: Action.EMPTY},
    # Type 2 -> D: removing a Type 2 attribute would break conformance, and D is valid for it.
    Action.X_OR_D: {"1": Action.DUMMY, "2": Action.DUMMY, "3": Action.REMOVE, None: Action.DUMMY},
    Action.X_Z_OR_D: {
        "1": Action.DUMMY,
        "2": Action.EMPTY,
        "3": Action.REMOVE,
        None: Action.DUMMY,
    },
    Action.X_Z_OR_U: {"1": Action.UID, "2": Action.UID, "3": Action.REMOVE, None: Action.UID},
}


def resolve_compound(action: Action, attribute_type: str | None) -> Action:
    """Resolve a compound action from the attribute's Type ("1", "2", "3" or None)."""
    table = COMPOUND_RESOLUTION.get(action)
    if table is None:
        return action
    # "1C"/"2C" count as their base Type: when the condition holds they are required.
    key = attribute_type[0] if attribute_type and attribute_type[0] in "123" else None
    return table[key]
