"""The element walk of the de-identification engine (PS3.15 Annex E, Table E.1-1 2025b).

``Walker.walk`` builds a new dataset from the input (which is never mutated): every element
of every nesting level gets the action of its own table row (PS3.15 E.1.1: "whether
contained in the main dataset or embedded in an Item of a Sequence"), public attributes the
table does not name are removed unless the keep-list (``keep.py``) names them, private
attributes are removed unless Retain Safe Private allows their creator and offset.

Replacement values:
- D: a VR-consistent dummy (``ANONYMIZED``, ``19000101``, ``0``, two zero bytes for
  OB/UN...); on a sequence the
  items are walked (the sequence stays non-empty, its attributes get their own actions).
- Z: a zero-length value; on a sequence, zero items.
- C: we cannot judge free text, so text is replaced by the same dummy as D (non-empty, so a
  Type 1 attribute stays valid); bitmaps (Overlay/Curve Data) are removed; sequences are
  walked; times (and Timezone Offset From UTC) are kept under a Retain Longitudinal
  option (the shift is whole days); Segment Label and ROI Name get a neutral label built
  from their item's code or number (``_neutral_label``). Unnamed Type 1/2 free text in
  ``keep.REPLACE_KEYWORDS`` is cleaned the same way instead of being removed.
- U: HMAC-derived ``2.25.`` UIDs (``pseudonyms.remap_uid``), except well-known UIDs.
"""

from __future__ import annotations

import copy

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from connrad.deid import dates, pseudonyms
from connrad.deid.keep import is_kept, is_replaced
from connrad.deid.profiles import (
    DATE_OPTIONS,
    Action,
    Option,
    Policy,
    ProfileTable,
    TypeOf,
    resolve_compound,
)

DUMMY_TEXT = "ANONYMIZED"
DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
    "UR": "",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
}
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
STRING_VRS = TEXT_VRS | {"AS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
PATIENT_AGE = 0x00101010
TIMEZONE_OFFSET = 0x00080201  # Timezone Offset From UTC (SH, "&ZZXX")
SEGMENT_LABEL = 0x00620005
SEGMENTED_PROPERTY_TYPE = 0x0062000F
SEGMENT_NUMBER = 0x00620004
ROI_NAME = 0x30060026
ROI_NUMBER = 0x30060022


class Walker:
    """One de-identification pass: the table, the policy, the key and what was done."""

    def __init__(
        self, table: ProfileTable, policy: Policy, key: bytes, type_of: TypeOf | None
    ) -> None:
        self.table = table
        self.options = policy.options
        self.safe_private = policy.safe_private
        self.key = key
        self.type_of = type_of
        self.date_offset_days: int | None = None
        self.uids: dict[str, str] = {}
        self.warnings: list[str] = []

    # --- datasets -------------------------------------------------------------------------

    def walk(self, source: Dataset, path: str = "") -> Dataset:
        """A new dataset with the action of each element applied (recursively)."""
        out = Dataset()
        for tag in sorted(source.keys()):
            raw = source.get_item(tag)
            # (A deferred value, read later from the file, has no bytes here: convert it.)
            if isinstance(raw, RawDataElement) and raw.value is not None and self._keeps_raw(raw):
                # Kept as read, bytes and all: decoding and re-encoding an element that
                # passes unchanged was half of the cost of de-identifying a CT slice.
                out[tag] = raw
                continue
            try:
                elem = source[tag]
            except Exception as exc:  # deferred decoding: a bad value surfaces only here
                self.warnings.append(f"{path}{tag} not decodable ({type(exc).__name__}): removed")
                continue
            new = self._element(source, elem, path)
            if new is not None:
                out.add(new)
        # The same encoding as the input (the character set is kept): pydicom then writes the
        # raw elements kept above as they are, instead of decoding and re-encoding them all.
        implicit, little = source.original_encoding
        if implicit is not None and little is not None:
            out.set_original_encoding(implicit, little, source.original_character_set)
        return out

    def _keeps_raw(self, raw: RawDataElement) -> bool:
        tag = raw.tag
        if tag.is_private or tag.element == 0 or tag.group == 0x0002 or tag == PATIENT_AGE:
            return False
        vr = raw.VR or _dictionary_vr(tag)
        if vr is None or vr in ("SQ", "UI", "DA", "DT", "UN") or " or " in vr:
            return False  # ambiguous VRs ("OB or OW") are resolved against the whole dataset
        return self.action_for(tag, vr) is Action.KEEP

    def _element(self, parent: Dataset, elem: DataElement, path: str) -> DataElement | None:
        tag = elem.tag
        if tag.element == 0 or tag.group == 0x0002:
            return None  # group lengths are recomputed; file meta is rebuilt
        if tag.is_private:
            return self._private(parent, elem, path)
        if elem.VR in ("DA", "DT") and self._shifts(tag):
            return self._shift(elem, path)
        return self._apply(self.action_for(tag, elem.VR), elem, path, parent)

    def action_for(self, tag: BaseTag, vr: str) -> Action:
        """The resolved action of a public tag (table, then keep-list, then deny)."""
        rule = self.table.rule_for(tag)
        if rule is None:
            if is_kept(tag):
                return Action.KEEP
            if is_replaced(tag):
                return Action.CLEAN  # Type 1/2 free text: present, with a neutral value
            # A UID the table does not name is still an identifier: remap rather than drop,
            # so references to it stay consistent.
            return Action.UID if vr == "UI" else Action.REMOVE
        action = rule.action_for(self.options)
        attribute_type = self.type_of(tag) if self.type_of is not None else None
        return resolve_compound(action, attribute_type)

    def _shifts(self, tag: BaseTag) -> bool:
        """Modified Dates shifts every DA/DT (by VR) unless its row leaves the option empty."""
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES not in self.options:
            return False
        rule = self.table.rule_for(tag)
        return rule is None or rule.action_for(self.options) is Action.CLEAN

    # --- actions --------------------------------------------------------------------------

    def _apply(
        self, action: Action, elem: DataElement, path: str, parent: Dataset
    ) -> DataElement | None:
        vr = elem.VR
        if action is Action.REMOVE:
            return None
        if vr == "SQ":
            if action is Action.EMPTY:
                return DataElement(elem.tag, "SQ", Sequence())
            return self._sequence(elem, path)
        if action is Action.EMPTY:
            return DataElement(elem.tag, vr, "" if vr in STRING_VRS else None)
        if vr == "UI" and action in (Action.UID, Action.DUMMY):
            return DataElement(elem.tag, vr, self._remap_values(elem.value))
        if action is Action.KEEP or (action is Action.UID and vr != "UI"):
            if elem.tag == PATIENT_AGE and isinstance(elem.value, str):
                return DataElement(elem.tag, vr, dates.cap_age(elem.value))
            return _copy(elem)
        if action is Action.CLEAN:
            return self._clean(elem, parent)
        return DataElement(elem.tag, vr, _dummy(vr))

    def _clean(self, elem: DataElement, parent: Dataset) -> DataElement | None:
        vr = elem.VR
        # Times, and the Timezone Offset From UTC (the only non-date row with C under the
        # date options), survive a whole-day shift unchanged; a dummy "ANONYMIZED" would
        # not even be a valid offset, and DT values keep their "&ZZXX" suffix as well.
        if (vr == "TM" or elem.tag == TIMEZONE_OFFSET) and self.options & DATE_OPTIONS:
            return _copy(elem)
        label = _neutral_label(elem.tag, parent)
        if label is not None:
            return DataElement(elem.tag, vr, label)
        if vr in BINARY_VRS:
            return None  # a bitmap cannot be judged: remove it (conservative)
        if vr in TEXT_VRS or vr in DUMMY_BY_VR:
            return DataElement(elem.tag, vr, _dummy(vr))
        return _copy(elem)

    def _sequence(self, elem: DataElement, path: str) -> DataElement:
        items = [
            self.walk(item, f"{path}{elem.tag}[{index}]>")
            for index, item in enumerate(elem.value or [])
        ]
        return DataElement(elem.tag, "SQ", Sequence(items))

    def _private(self, parent: Dataset, elem: DataElement, path: str) -> DataElement | None:
        if Option.RETAIN_SAFE_PRIVATE not in self.options:
            return None
        tag = elem.tag
        if 0x0010 <= tag.element <= 0x00FF:
            return _copy(elem) if str(elem.value).strip() in self.safe_private else None
        creator_tag = (tag.group << 16) | (tag.element >> 8)
        creator = parent.get(creator_tag)
        offsets = self.safe_private.get(str(creator.value).strip()) if creator else None
        if offsets is None or (tag.element & 0xFF) not in offsets:
            return None
        return self._sequence(elem, path) if elem.VR == "SQ" else _copy(elem)

    # --- UIDs and dates -------------------------------------------------------------------

    def remap(self, uid: str) -> str:
        """New UID for ``uid`` (recorded); well-known UIDs and Retain UIDs leave it as is."""
        uid = uid.strip("\0 ")
        if not uid or Option.RETAIN_UIDS in self.options or pseudonyms.is_well_known_uid(uid):
            return uid
        new = self.uids.get(uid)
        if new is None:
            new = self.uids[uid] = pseudonyms.remap_uid(self.key, uid)
        return new

    def _remap_values(self, value: object) -> object:
        if isinstance(value, MultiValue | list | tuple):
            return [self.remap(str(item)) for item in value]
        return self.remap(str(value)) if value else value

    def _shift(self, elem: DataElement, path: str) -> DataElement | None:
        if self.date_offset_days is None:
            raise RuntimeError("date offset unset: deidentify() computes it before walking")
        shift = dates.shift_da if elem.VR == "DA" else dates.shift_dt
        values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
        try:
            shifted = [shift(str(v), self.date_offset_days) if v else "" for v in values]
        except dates.MalformedDate as exc:
            self.warnings.append(f"{path}{elem.tag} malformed {elem.VR} ({exc}): removed")
            return None
        return DataElement(elem.tag, elem.VR, shifted if len(shifted) > 1 else shifted[0])


def _neutral_label(tag: BaseTag, parent: Dataset) -> str | None:
    """A label of "similar meaning" (PS3.15 E.1.1 C) built only from values that survive.

    Segment Label takes the Code Meaning of the segment's Segmented Property Type (a code
    kept anyway) and ROI Name becomes "ROI <ROI Number>", so several segments or ROIs stay
    distinguishable after cleaning; the free text written by a person is never copied.
    """
    if tag == SEGMENT_LABEL:
        codes = parent.get(SEGMENTED_PROPERTY_TYPE)
        meaning = codes.value[0].get("CodeMeaning") if codes is not None and codes.value else None
        if meaning:
            return str(meaning)[:64]
        number = parent.get(SEGMENT_NUMBER)
        return f"Segment {number.value}" if number is not None else None
    if tag == ROI_NAME:
        number = parent.get(ROI_NUMBER)
        return f"ROI {number.value}" if number is not None else None
    return None


def _dictionary_vr(tag: BaseTag) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _copy(elem: DataElement) -> DataElement:
    """A new element, so that setting a value on the output never reaches the input.

    ``copy.copy`` rather than a new DataElement: re-validating would reject values that
    pydicom read leniently (e.g. IS "1A") and that we keep as they are.
    """
    return copy.copy(elem)


# D is "a non-zero length value" (PS3.15 E.1.1): an empty OB read back as no value at all,
# so a binary dummy is two zero bytes (even length, as OB/OW/UN values must be).
BINARY_DUMMY = b"\0\0"


def _dummy(vr: str) -> object:
    if vr in BINARY_VRS:
        return BINARY_DUMMY
    return DUMMY_BY_VR.get(vr, DUMMY_TEXT)
