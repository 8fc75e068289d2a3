"""IOD module tables of DICOM PS3.3 as data, and the attribute Type lookups built on them.

Two consumers need the same facts: de-identification resolves the compound actions of PS3.15
Table E.1-1 (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) from an attribute's Type in the instance's IOD,
and quality checks need the Type 1 / Type 2 attributes an IOD requires. Both read:

* ``data/modules.csv`` and ``data/macros.csv``: module / macro, attribute keyword, Type and,
  rarely, the module whose Type the row overrides. A leading ``>`` per level marks sequence
  items, as in the standard's tables; ``include:<Macro>`` expands a macro in place.
* ``data/iods.json``: SOP Class UID -> IOD name -> modules with usage (M, C, U).

Everything is parsed once (``functools.cache``) and validated while loading, so a typo in the
data fails loudly instead of silently weakening de-identification.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from pydicom.datadict import RepeatersDictionary, tag_for_keyword
from pydicom.tag import BaseTag

TYPES: tuple[str, ...] = ("1", "1C", "2", "2C", "3")
"""Attribute Types from strongest to weakest; the order decides between modules."""

USAGES: frozenset[str] = frozenset({"M", "C", "U"})
_RANK = {value: rank for rank, value in enumerate(TYPES)}
_INCLUDE = "include:"


@dataclass(frozen=True)
class Attribute:
    """One attribute of a module; ``items`` holds a sequence's item attributes by tag.

    ``overrides`` names a module whose Type for this attribute PS3.3 replaces by this one
    (e.g. SC Equipment makes General Series' Modality Type 3).
    """

    keyword: str
    tag: int
    type: str
    items: dict[int, Attribute] = field(default_factory=dict)
    overrides: str = ""


@dataclass(frozen=True)
class Iod:
    """An IOD's name, its PS3.3 Annex A section and its modules as (module, usage)."""

    name: str
    section: str
    modules: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Requirement:
    """An unconditional Type 1 or Type 2 top-level attribute of a mandatory module."""

    keyword: str
    tag: BaseTag
    type: str
    module: str


# --- loading -----------------------------------------------------------------------------


def _data_text(name: str) -> str:
    return resources.files("connrad.dicom.iods").joinpath("data", name).read_text("utf-8")


@cache
def _repeater_tags() -> dict[str, int]:
    """Keywords of repeating groups (overlays, ``60xx``) mapped to their first group."""
    return {
        entry[4]: int(mask.replace("xx", "00"), 16)
        for mask, entry in RepeatersDictionary.items()
        if mask.startswith("60xx")
    }


def tag_for(keyword: str) -> int:
    """The tag of a pydicom keyword (overlays resolve to group 6000); ValueError if unknown."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        tag = _repeater_tags().get(keyword)
    if tag is None:
        raise ValueError(f"{keyword!r} is not a DICOM keyword known to pydicom")
    return tag


def _normalize(tag: int) -> int:
    """Fold the repeating overlay groups 6002-601E onto 6000, as the tables list them."""
    group = tag >> 16
    if 0x6000 <= group <= 0x601E and group % 2 == 0:
        return 0x60000000 | (tag & 0xFFFF)
    return tag


Row = tuple[int, str, str, str]
"""(depth, keyword or include, Type, overridden module) of one table row."""


def _rows(name: str) -> dict[str, list[Row]]:
    """The rows of a CSV file, grouped by module or macro name."""
    lines = (line for line in _data_text(name).splitlines() if not line.startswith("#"))
    tables: dict[str, list[Row]] = {}
    for table, attribute, type_, *rest in list(csv.reader(lines))[1:]:
        text = attribute.lstrip(">")
        row = (len(attribute) - len(text), text, type_, "".join(rest))
        tables.setdefault(table, []).append(row)
    return tables


def _merge(into: dict[int, Attribute], attribute: Attribute) -> None:
    """Add ``attribute``, keeping the stronger Type and the union of item attributes."""
    present = into.get(attribute.tag)
    if present is None:
        into[attribute.tag] = attribute
        return
    for item in attribute.items.values():
        _merge(present.items, item)
    if _RANK[attribute.type] < _RANK[present.type]:
        into[attribute.tag] = Attribute(
            present.keyword, present.tag, attribute.type, present.items, present.overrides
        )


def _build(
    name: str,
    rows: list[Row],
    macros: dict[str, list[Row]],
    into: dict[int, Attribute],
    seen: tuple[str, ...] = (),
) -> None:
    """Expand one table's rows into ``into``; macros are built afresh for every include."""
    stack = [into]
    for depth, text, type_, overrides in rows:
        if depth >= len(stack):
            raise ValueError(f"{name}: {'>' * depth}{text} has no enclosing sequence")
        del stack[depth + 1 :]
        if text.startswith(_INCLUDE):
            macro = text.removeprefix(_INCLUDE)
            if macro not in macros or macro in seen:
                raise ValueError(f"{name}: unknown or recursive macro {macro!r}")
            _build(macro, macros[macro], macros, stack[depth], (*seen, macro))
            continue
        if type_ not in _RANK:
            raise ValueError(f"{name}: {text} has Type {type_!r}, not one of {TYPES}")
        tag = tag_for(text)
        _merge(stack[depth], Attribute(text, tag, type_, overrides=overrides))
        stack.append(stack[depth][tag].items)


@cache
def modules() -> dict[str, dict[int, Attribute]]:
    """Every module's top-level attributes by tag, with macros expanded."""
    macros = _rows("macros.csv")
    built: dict[str, dict[int, Attribute]] = {}
    for name, rows in _rows("modules.csv").items():
        _build(name, rows, macros, built.setdefault(name, {}))
    return built


@cache
def _iod_tables() -> tuple[dict[str, str], dict[str, Iod]]:
    """(SOP Class UID -> IOD name, IOD name -> Iod), checked against the module tables."""
    document = json.loads(_data_text("iods.json"))
    iods: dict[str, Iod] = {}
    for name, entry in document["iods"].items():
        pairs = tuple((module, usage) for module, usage in entry["modules"])
        for module, usage in pairs:
            if module not in modules() or usage not in USAGES:
                raise ValueError(f"IOD {name!r}: bad module entry ({module!r}, {usage!r})")
        for module, _usage in pairs:
            for attribute in modules()[module].values():
                if attribute.overrides and attribute.overrides not in modules():
                    raise ValueError(f"{module}: {attribute.keyword} overrides unknown module")
        iods[name] = Iod(name, entry["section"], pairs)
    sop_classes: dict[str, str] = document["sop_classes"]
    for uid, name in sop_classes.items():
        if name not in iods:
            raise ValueError(f"SOP Class {uid} names unknown IOD {name!r}")
    return sop_classes, iods


# --- lookups -----------------------------------------------------------------------------


def known_sop_classes() -> frozenset[str]:
    """SOP Class UIDs whose IOD the tables describe."""
    return frozenset(_iod_tables()[0])


def iod_name(sop_class_uid: str) -> str | None:
    """The IOD name of a SOP Class UID, or None when the tables do not describe it."""
    return _iod_tables()[0].get(str(sop_class_uid).strip())


def iod_for(sop_class_uid: str) -> Iod | None:
    """The IOD (with its modules and usages) of a SOP Class UID, or None when unknown."""
    name = iod_name(sop_class_uid)
    return None if name is None else _iod_tables()[1][name]


def _stronger(first: str | None, second: str) -> str:
    return second if first is None or _RANK[second] < _RANK[first] else first


def _found(container: dict[int, Attribute], path: tuple[int, ...], tag: int) -> Attribute | None:
    """The attribute at ``path`` + ``tag`` inside one module, or None."""
    for sequence in path:
        node = container.get(_normalize(sequence))
        if node is None:
            return None
        container = node.items
    return container.get(_normalize(tag))


@cache
def _overridden(iod: str) -> frozenset[tuple[str, int]]:
    """(module, tag) entries of an IOD that another of its modules overrides."""
    names = {module for module, _usage in _iod_tables()[1][iod].modules}
    return frozenset(
        (attribute.overrides, tag)
        for module in names
        for tag, attribute in modules()[module].items()
        if attribute.overrides in names
    )


def _top_level_entries(iod: str, usages: str = "MCU") -> Iterator[tuple[str, Attribute]]:
    """(module, attribute) at the top level of the IOD's modules, minus overridden entries."""
    overridden = _overridden(iod)
    for module, usage in _iod_tables()[1][iod].modules:
        if usage in usages:
            for tag, attribute in modules()[module].items():
                if (module, tag) not in overridden:
                    yield module, attribute


@cache
def _top_level(iod: str) -> dict[int, str]:
    """Strongest Type of every top-level attribute over all modules of an IOD."""
    strongest: dict[int, str] = {}
    for _module, attribute in _top_level_entries(iod):
        strongest[attribute.tag] = _stronger(strongest.get(attribute.tag), attribute.type)
    return strongest


def attribute_type(
    sop_class_uid: str, tag: int | BaseTag, *, path: tuple[int, ...] = ()
) -> str | None:
    """The attribute's Type ("1", "1C", "2", "2C" or "3") in the IOD of ``sop_class_uid``.

    With ``path`` empty the attribute is looked up at the top level of the dataset; otherwise
    inside the items of the sequences ``path`` names, outermost first (an item-level Type says
    what each item needs, whatever the sequence's own Type). When several modules of the IOD
    list it, the strongest Type wins (1 > 1C > 2 > 2C > 3): a specializing module (e.g. CT
    Image over General Image) tightens a Type, and the rare loosening override PS3.3 spells
    out (SC Equipment's Modality) is data (``overrides``), applied before the comparison.
    The Type ignores module usage: an attribute of a C or U module keeps its Type, since the
    module may be present. None when the IOD or the attribute is unknown to the tables.
    """
    name = iod_name(sop_class_uid)
    if name is None:
        return None
    if not path:
        return _top_level(name).get(_normalize(tag))
    best: str | None = None
    for module, _usage in _iod_tables()[1][name].modules:
        found = _found(modules()[module], path, tag)
        if found is not None:
            best = _stronger(best, found.type)
    return best


def type_of_for(sop_class_uid: str) -> Callable[[BaseTag], str | None]:
    """The top-level Type lookup of one IOD, shaped like ``connrad.deid.profiles.TypeOf``.

    The engine's ``resolve_compound`` keys on "1", "2" and "3", so conditional Types map to
    their base Type (1C -> "1", 2C -> "2"): a compound action then keeps the attribute in the
    form its Type would need when the condition holds, which is the conservative reading.
    Not cached per UID (the UID comes from received files); the tables behind it are.
    """

    def type_of(tag: BaseTag) -> str | None:
        found = attribute_type(sop_class_uid, tag)
        return None if found is None else found[0]

    return type_of


def required_attributes(sop_class_uid: str) -> list[Requirement]:
    """Unconditional Type 1 and Type 2 top-level attributes of the IOD's mandatory modules.

    Type 1 beats Type 2 when modules disagree (e.g. Series Number in General Series and in
    Segmentation Series); conditional Types are left to checks that can evaluate the
    condition. Ordered as the modules and their tables are. Empty for an unknown SOP Class.
    """
    iod = iod_for(sop_class_uid)
    if iod is None:
        return []
    chosen: dict[int, Requirement] = {}
    for module, attribute in _top_level_entries(iod.name, "M"):
        if attribute.type not in ("1", "2"):
            continue
        present = chosen.get(attribute.tag)
        if present is None or (attribute.type == "1" and present.type == "2"):
            chosen[attribute.tag] = Requirement(
                attribute.keyword, BaseTag(attribute.tag), attribute.type, module
            )
    return list(chosen.values())
