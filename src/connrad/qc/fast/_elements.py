"""Element access for the fast checks: stored bytes, not pydicom's converted values.

The checks read each element as stored (a ``RawDataElement``'s bytes) instead of letting
pydicom convert it: converting every element of a header costs more than the whole budget
(< 1 ms), and conversion hides the very defects looked for (lenient text decoding, stripped
padding, numbers that raise). Elements the caller already converted are read from their
value; their text was decoded already, so only the charset check has to skip them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import cache
from typing import Any, NamedTuple

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})
"""VRs whose value is text in the Specific Character Set (PS3.5 6.1.2.3)."""
STRING_VRS = TEXT_VRS | {"UI", "DA", "TM", "DT", "IS", "DS"}
"""VRs the value-level checks read."""
_PADDED_VRS = STRING_VRS | {"AE", "AS", "CS", "UR"}
"""VRs whose padding (space, or NUL for UI) carries no value."""
CHARSET_TAG = 0x00080005
UNDEFINED_LENGTH = 0xFFFFFFFF
_MAX_DEPTH = 64  # pydicom parsed it already; this only bounds a pathological recursion

Element = DataElement | RawDataElement


class Leaf(NamedTuple):
    """One string element: where it is, its VR, its stored value and the charset in force.

    ``value`` is bytes as stored, or str when pydicom had converted the element already
    (a person name keeps its stored bytes: pydicom remembers them).
    ``prefix`` locates the element's data set: "" at the top level, else
    ``"OuterSequence[0].InnerSequence[2]."``. ``charset`` holds the Specific Character Set
    terms in force there (an item's own, else inherited; PS3.5 7.5.3).
    """

    tag: int
    vr: str
    value: bytes | str
    prefix: str
    charset: tuple[str, ...]

    @property
    def keyword(self) -> str:
        return keyword(self.tag)

    @property
    def path(self) -> str:
        return self.prefix + self.keyword


@cache
def keyword(tag: int) -> str:
    """The attribute's keyword, or its tag as ``(gggg,eeee)`` when it has none (private)."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@cache
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def vr_of(element: Element) -> str:
    """The element's VR; the dictionary's when it is implicit (None) or stored as UN."""
    vr = element.VR
    if vr is None or vr == "UN":
        return _dictionary_vr(element.tag) or (vr or "")
    return str(vr)


def get(ds: Dataset, tag: int) -> Element | None:
    """The element without converting it nor reading a deferred value."""
    found = ds.get_item(tag, keep_deferred=True)
    return found if isinstance(found, DataElement | RawDataElement) else None


def is_empty(element: Element) -> bool:
    """Zero length, or only padding (spaces / NULs) for a string; no items for a sequence."""
    value = element.value
    if isinstance(element, RawDataElement):
        if element.length == 0:
            return True
        padded = isinstance(value, bytes) and vr_of(element) in _PADDED_VRS
        return padded and not value.strip(b" \x00")
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip(" \x00")
    if isinstance(value, bytes | Sequence | MultiValue | list | tuple):
        return len(value) == 0
    return False


def as_text(element: Element) -> str | None:
    """A string element's value as text ("\\" between values); None when deferred."""
    value = element.value
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def as_us(element: Element) -> int | None:
    """An unsigned short's value; None when it is not exactly one readable US value."""
    value: Any = element.value
    if isinstance(element, RawDataElement):
        if not isinstance(value, bytes) or len(value) != 2:
            return None
        return int(struct.unpack("<H" if element.is_little_endian else ">H", value)[0])
    return value if isinstance(value, int) else None


def parse_terms(value: bytes | str) -> tuple[str, ...]:
    """Specific Character Set terms ("" for an empty first value); () when empty."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    terms = tuple(term.strip(" \x00") for term in text.split("\\"))
    return terms if any(terms) else ()


def charset_terms(element: Element | None) -> tuple[str, ...]:
    """The terms of a Specific Character Set element; () when absent, deferred or empty."""
    text = None if element is None else as_text(element)
    return () if text is None else parse_terms(text)


class Walk(NamedTuple):
    """The string elements found, and the sequences that could not be parsed (by path)."""

    leaves: list[Leaf]
    unreadable: list[str]


def elements(ds: Dataset) -> Iterator[Element]:
    """The top-level elements as stored: nothing converted, no deferred value read."""
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset converts every element
        element = ds.get_item(tag, keep_deferred=True)
        if isinstance(element, DataElement | RawDataElement):
            yield element


def walk(ds: Dataset) -> Walk:
    """Every public string element (and every Specific Character Set), items included.

    Public sequences are parsed (pydicom parses defined-length ones lazily, reading them
    from the file when deferred); private ones only when pydicom parsed them already.
    The file meta's elements come first, at the top level.
    """
    found = Walk([], [])
    meta = getattr(ds, "file_meta", None)
    if isinstance(meta, Dataset):
        _collect(meta, "", (), found, 0)
    _collect(ds, "", charset_terms(get(ds, CHARSET_TAG)), found, 0)
    return found


def _collect(ds: Dataset, prefix: str, charset: tuple[str, ...], out: Walk, depth: int) -> None:
    for element in elements(ds):
        tag = element.tag
        vr = vr_of(element)
        private = bool(tag & 0x10000)
        if vr == "SQ":
            if depth < _MAX_DEPTH:
                sequence = _sequence(ds, element, private, f"{prefix}{keyword(tag)}", out)
                if sequence:
                    _items(sequence, f"{prefix}{keyword(tag)}", charset, out, depth)
            continue
        if private:  # any content, any encoding
            continue
        if vr in STRING_VRS or (vr == "CS" and tag == CHARSET_TAG):
            value = element.value
            if value is None:
                continue  # deferred: too long for a header check
            if not isinstance(value, bytes):
                value = _original_bytes(value) or as_text(element) or ""
            out.leaves.append(Leaf(tag, vr, value, prefix, charset))


def _original_bytes(value: Any) -> bytes | None:
    """A converted person name's stored bytes (pydicom keeps them), else None."""
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    stored = [getattr(each, "original_string", None) for each in values]
    parts = [each for each in stored if isinstance(each, bytes)]
    return b"\\".join(parts) if values and len(parts) == len(stored) else None


def _sequence(
    ds: Dataset, element: Element, private: bool, path: str, out: Walk
) -> Sequence | None:
    value = element.value
    if isinstance(value, Sequence):
        return value
    if private:
        return None
    try:
        parsed = ds[element.tag].value
    except Exception:  # a malformed sequence: reported, the rest is still walked
        out.unreadable.append(path)
        return None
    return parsed if isinstance(parsed, Sequence) else None


def _items(sequence: Sequence, name: str, charset: tuple[str, ...], out: Walk, depth: int) -> None:
    for index, item in enumerate(sequence):
        if isinstance(item, Dataset):
            own = get(item, CHARSET_TAG)
            _collect(item, f"{name}[{index}].", charset_terms(own) or charset, out, depth + 1)
