"""Query/Retrieve identifiers (PS3.4 C.4, C.6) in the terms of the QIDO-RS search engine.

A C-FIND identifier becomes search parameters at its Query/Retrieve Level; each match comes
back as a response identifier holding exactly the requested keys. A C-MOVE or C-GET
identifier names what to retrieve by unique keys. Pure functions over pydicom Datasets (and
the pynetdicom event that carries one): no database, no network.

The hierarchical model is checked as the standard asks: every level above the one queried
is given by its unique key with a single value. Keys of levels below the queried one are
not matched (some SCUs send Modality with a STUDY query) but are returned, empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from connrad.archive.attributes import BY_TAG, Level

# PS3.4 Table C.4-1 (C-FIND), C.4-2 (C-MOVE), C.4-3 (C-GET)
SUCCESS = 0x0000
PENDING = 0xFF00
CANCELLED = 0xFE00
NOT_AUTHORIZED = 0x0124  # PS3.7 C.5: Refused: Not Authorized (as C-STORE answers it)
IDENTIFIER_MISMATCH = 0xA900  # Identifier does not match SOP Class
UNABLE_TO_PROCESS = 0xC000  # Cxxx: a value the SCP cannot process (bad date range, ...)
UNDECODABLE = 0xC310  # Cxxx too; pynetdicom's own apps use it for "cannot decode"

_QR_LEVEL = Tag("QueryRetrieveLevel")
_CHARSET = Tag("SpecificCharacterSet")
_RETRIEVE_URL = "00081190"  # relative to the DICOMweb root: meaningless to a DIMSE peer


class Root(StrEnum):
    PATIENT = "patient"  # Patient Root Q/R Information Model
    STUDY = "study"  # Study Root Q/R Information Model


class IdentifierError(ValueError):
    """An identifier the SCP refuses; ``status`` is the DIMSE status to answer with."""

    def __init__(self, message: str, status: int = IDENTIFIER_MISMATCH) -> None:
        super().__init__(message)
        self.status = status


LEVELS: dict[str, Level] = {
    "PATIENT": Level.PATIENT,
    "STUDY": Level.STUDY,
    "SERIES": Level.SERIES,
    "IMAGE": Level.INSTANCE,
}
HIERARCHY: dict[Root, tuple[Level, ...]] = {
    Root.PATIENT: (Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE),
    Root.STUDY: (Level.STUDY, Level.SERIES, Level.INSTANCE),
}
UNIQUE_KEYS: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}
_ORDER = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE)


@dataclass(frozen=True)
class FindRequest:
    level: Level  # the Query/Retrieve Level asked for
    level_name: str  # as sent: PATIENT | STUDY | SERIES | IMAGE
    params: list[tuple[str, str]]  # QIDO-RS parameters, by tag
    requested: list[tuple[int, str]]  # (tag, VR) of every key to return, in request order

    @property
    def search_level(self) -> Level:
        # Patients are found through their studies (the engine searches studies and below).
        return Level.STUDY if self.level is Level.PATIENT else self.level

    @property
    def keywords(self) -> list[str]:
        """The matched keys' names, for the audit trail (names only: values may be PHI)."""
        return sorted(BY_TAG[tag].keyword for tag, value in self.params if value)


@dataclass(frozen=True)
class RetrieveRequest:
    level: Level
    patient_id: str | None  # Patient Root only
    study_uids: list[str]
    series_uids: list[str]
    sop_uids: list[str]


def decoded_identifier(event: Any) -> Dataset:
    """A request's identifier with every value decoded (by its own SpecificCharacterSet)."""
    try:
        identifier: Dataset = event.identifier
        # pydicom decodes lazily: force it here, where a bad identifier can be answered.
        identifier.decode()
        for _ in identifier:
            pass
    except Exception as exc:  # pydicom raises many kinds on malformed data
        raise IdentifierError(f"undecodable ({type(exc).__name__})", UNDECODABLE) from None
    return identifier


def parse_find(identifier: Dataset, root: Root) -> FindRequest:
    level_name, level = _level(identifier, root)
    _upper_keys(identifier, root, level)
    matched = _ORDER[: _ORDER.index(level) + 1]
    params: list[tuple[str, str]] = []
    requested: list[tuple[int, str]] = []
    for element in identifier:
        if element.tag in (_QR_LEVEL, _CHARSET) or element.tag.group in (0x0000, 0x0002):
            continue
        requested.append((int(element.tag), element.VR))
        attribute = BY_TAG.get(f"{int(element.tag):08X}")
        if attribute is None or attribute.level not in matched or element.VR == "SQ":
            continue  # returned empty: not indexed, or below the level asked for
        params.append((attribute.tag, _text(element)))
    return FindRequest(level, level_name, params, requested)


def parse_retrieve(identifier: Dataset, root: Root) -> RetrieveRequest:
    _, level = _level(identifier, root)
    upper = _upper_keys(identifier, root, level)
    own = _uid_list(identifier, UNIQUE_KEYS[level])
    if level is Level.PATIENT and len(own) != 1:
        raise IdentifierError("a PATIENT retrieve names one PatientID")
    keys = {**upper, UNIQUE_KEYS[level]: own}
    return RetrieveRequest(
        level,
        patient_id=keys["PatientID"][0] if "PatientID" in keys else None,
        study_uids=keys.get("StudyInstanceUID", []),
        series_uids=keys.get("SeriesInstanceUID", []),
        sop_uids=keys.get("SOPInstanceUID", []),
    )


def _level(identifier: Dataset, root: Root) -> tuple[str, Level]:
    name = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    level = LEVELS.get(name)
    if level is None or level not in HIERARCHY[root]:
        raise IdentifierError("QueryRetrieveLevel missing or not a level of the model")
    return name, level


def _upper_keys(identifier: Dataset, root: Root, level: Level) -> dict[str, list[str]]:
    """The unique keys of the levels above ``level``: each present, with one value."""
    levels = HIERARCHY[root]
    keys: dict[str, list[str]] = {}
    for upper in levels[: levels.index(level)]:
        keyword = UNIQUE_KEYS[upper]
        values = _uid_list(identifier, keyword)
        if len(values) != 1:
            raise IdentifierError(f"{keyword} must have a single value at this level")
        keys[keyword] = values
    return keys


def _uid_list(identifier: Dataset, keyword: str) -> list[str]:
    """A unique key's values: present, non-empty, without wildcards (else A900)."""
    element = identifier.get(keyword)
    text = "" if element is None else _text(identifier[keyword])
    values = [v.strip() for v in text.split("\\") if v.strip()]
    if not values or any("*" in v or "?" in v for v in values):
        raise IdentifierError(f"{keyword} is required, without wildcards")
    return values


def _text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def distinct_patients(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per patient: study search results share their patient's attributes."""
    seen: set[str] = set()
    patients = []
    for row in rows:
        identity = json.dumps(
            {t: v for t, v in row.items() if t in BY_TAG and BY_TAG[t].level is Level.PATIENT},
            sort_keys=True,
        )
        if identity not in seen:
            seen.add(identity)
            patients.append(row)
    return patients


def response(request: FindRequest, match: dict[str, Any], retrieve_ae: str) -> Dataset:
    """A C-FIND response identifier: the requested keys, valued from the DICOM JSON match."""
    found = Dataset.from_json({t: v for t, v in match.items() if t != _RETRIEVE_URL})
    ds = Dataset()
    for tag, vr in request.requested:
        if tag in found and f"{tag:08X}" != _RETRIEVE_URL:
            ds.add(found[tag])
        else:
            ds.add(DataElement(tag, vr, Sequence() if vr == "SQ" else None))
    ds.QueryRetrieveLevel = request.level_name
    ds.RetrieveAETitle = retrieve_ae
    if not all(_is_ascii(element) for element in ds):
        ds.SpecificCharacterSet = "ISO_IR 192"  # text comes from the index as Unicode
    return ds


def _is_ascii(element: DataElement) -> bool:
    if element.VR == "SQ" or element.value is None:
        return True
    return _text(element).isascii()
