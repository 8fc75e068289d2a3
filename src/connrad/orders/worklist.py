"""Modality Worklist matching: an order and a query identifier in, a response out.

Pure functions (PS3.4 K.6 and C.2.2.2): single value, wildcard (``*`` ``?``), range (dates
and times), UID list, sequence and universal matching. Dates and times are matched
separately (no combined date-time matching is negotiated), in the order's local time.
Person names match case- and accent-insensitively, as the archive's name search folds them,
and a query's name group may match any of the name's groups (a clinic may keep Hangul in
the first group or the third). The response holds exactly the keys the query asked for;
keys the model does not know come back empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from connrad.dicom.names import NameGroups, fold
from connrad.orders.service import Order, Status

DEFAULT_PAST = timedelta(days=1)
DEFAULT_AHEAD = timedelta(days=7)
# Local dates span these offsets from UTC (UTC-12:00 to UTC+14:00).
_EARLIEST_OFFSET, _LATEST_OFFSET = timedelta(hours=14), timedelta(hours=12)

_STEP_STATUS = {Status.SCHEDULED: "SCHEDULED", Status.IN_PROGRESS: "STARTED"}
_NOT_RETURNED = frozenset({0x00080005, 0x00080052})  # SpecificCharacterSet, QR level
_NO_WILDCARDS = frozenset({"DA", "TM", "DT", "UI", "SL", "SS", "US", "UL", "FL", "FD", "DS"})
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


class QueryError(ValueError):
    """The identifier cannot be processed by this model (status 0xA900)."""


def check(query: Dataset) -> None:
    """Raise QueryError for an identifier this model cannot process (status 0xA900)."""
    for key in _keys(query):
        if key.VR == "SQ":
            items = list(key.value or [])
            if len(items) > 1:
                raise QueryError(f"sequence key {key.keyword or key.tag} has more than one item")
            for item in items:
                check(item)
        elif key.VR in ("DA", "TM"):
            for wanted in _values(key):
                if "-" in wanted:
                    _range(wanted, key.VR)
                elif wanted != "*":
                    _check_format(wanted, key.VR)


def window(query: Dataset, now: datetime) -> tuple[datetime | None, datetime | None]:
    """UTC bounds of the scheduled starts to load for a checked ``query``.

    The query's Scheduled Procedure Step Start Date, when given, bounds it (widened so every
    local date is inside; the exact match follows); otherwise now - 1 day to now + 7 days.
    """
    items = query.get("ScheduledProcedureStepSequence") or [Dataset()]
    value = str(items[0].get("ScheduledProcedureStepStartDate") or "").strip()
    if value in ("", "*"):
        return now - DEFAULT_PAST, now + DEFAULT_AHEAD
    low, high = _range(value, "DA") if "-" in value else (value, value)
    start = _utc_day(low) - _EARLIEST_OFFSET if low else None
    end = _utc_day(high) + timedelta(days=1) + _LATEST_OFFSET if high else None
    return start, end


def respond(order: Order, query: Dataset) -> Dataset | None:
    """The response identifier for ``order`` if it matches ``query``, else None."""
    values = attributes(order)
    if not _matches_all(query, values):
        return None
    response = _select(query, values)
    if any(_non_ascii(elem) for elem in response.iterall()):
        response.SpecificCharacterSet = "ISO_IR 192"
    return response


def attributes(order: Order) -> Dataset:
    """Every worklist attribute of an opened order (PS3.4 Table K.6-1)."""
    identity = order.identity
    if identity is None:
        raise ValueError("the worklist needs the order's identity opened")
    code = Dataset()
    code.CodeValue = order.procedure.code
    code.CodingSchemeDesignator = order.procedure.scheme
    code.CodeMeaning = order.procedure.meaning
    step = Dataset()
    step.Modality = order.modality
    step.ScheduledStationAETitle = order.station_ae or ""
    step.ScheduledStationName = ""
    step.ScheduledProcedureStepLocation = ""
    step.ScheduledProcedureStepStartDate = order.scheduled_start.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = order.scheduled_start.strftime("%H%M%S")
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepDescription = order.procedure.meaning
    step.ScheduledProtocolCodeSequence = [deepcopy(code)]
    step.ScheduledProcedureStepID = identity.requested_procedure_id or identity.accession_number
    step.ScheduledProcedureStepStatus = _STEP_STATUS.get(order.status, "")
    ds = Dataset()
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = ""
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.IssuerOfPatientID = identity.issuer or ""
    ds.PatientBirthDate = identity.birth_date or ""
    ds.PatientSex = identity.sex or ""
    ds.StudyInstanceUID = identity.study_uid
    ds.RequestedProcedureDescription = order.procedure.meaning
    ds.RequestedProcedureCodeSequence = [code]
    ds.RequestedProcedureID = identity.requested_procedure_id or identity.accession_number
    ds.ReasonForTheRequestedProcedure = identity.reason or ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


# --- matching ------------------------------------------------------------------------------


def _matches_all(query: Dataset, values: Dataset) -> bool:
    for key in _keys(query):
        found = values.get(key.tag)
        if found is None:
            continue  # a key this model cannot match on: returned empty, never filtering
        if not _matches(key, found):
            return False
    return True


def _matches(key: DataElement, value: DataElement) -> bool:
    if key.VR == "SQ":
        items = list(key.value or [])
        if not items:
            return True
        return any(_matches_all(items[0], item) for item in value.value or [])
    wanted = _values(key)
    if not wanted or wanted == ["*"]:
        return True  # universal matching
    actual = _text(value)
    if key.VR == "UI":
        return actual in wanted  # list of UID matching
    if len(wanted) > 1:
        return any(_matches_one(w, actual, key.VR) for w in wanted)
    return _matches_one(wanted[0], actual, key.VR)


def _matches_one(wanted: str, actual: str, vr: str) -> bool:
    if vr in ("DA", "TM") and "-" in wanted:
        low, high = _range(wanted, vr)
        return (
            bool(actual)
            and (not low or low <= _norm(actual, vr))
            and (not high or _norm(actual, vr) <= high)
        )
    if vr in ("DA", "TM"):
        _check_format(wanted, vr)
        return bool(actual) and _norm(wanted, vr) == _norm(actual, vr)
    if not actual:
        return False  # an empty value matches only universal keys
    if vr == "PN":
        return _name_matches(wanted, actual)
    if vr not in _NO_WILDCARDS and ("*" in wanted or "?" in wanted):
        return _pattern(wanted).fullmatch(actual) is not None
    return wanted == actual


def _name_matches(wanted: str, actual: str) -> bool:
    """Every group of the query matches some group of the name, folded, wildcards kept."""
    groups = [_fold_name(g) for g in NameGroups.from_value(actual).groups() if g]
    queries = [_fold_name(q) for q in wanted.split("=") if q.strip("^ ")]
    return all(any(_pattern(q).fullmatch(g) for g in groups) for q in queries)


def _fold_name(group: str) -> str:
    return "^".join(fold(c) for c in group.rstrip("^ ").split("^"))


def _pattern(wanted: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wanted)
    return re.compile("".join(parts), re.DOTALL)


def _range(value: str, vr: str) -> tuple[str, str]:
    if value.count("-") != 1:
        raise QueryError(f"a {vr} range is LOW-HIGH, LOW- or -HIGH")
    low, high = (v.strip() for v in value.split("-"))
    for bound in (low, high):
        if bound:
            _check_format(bound, vr)
    return _norm(low, vr) if low else "", _norm(high, vr, upper=True) if high else ""


def _check_format(value: str, vr: str) -> None:
    pattern = _DATE if vr == "DA" else _TIME
    if not pattern.match(value.replace(":", "") if vr == "TM" else value):
        raise QueryError(f"a {vr} key value is malformed")


def _norm(value: str, vr: str, upper: bool = False) -> str:
    """Fixed-width text that sorts as the dates or times do; an upper bound ends its unit."""
    if vr != "TM":
        return value.strip()
    digits = value.strip().replace(":", "").split(".")[0]
    return digits + ("595959" if upper else "000000")[len(digits) :]


# --- the response --------------------------------------------------------------------------


def _select(query: Dataset, values: Dataset) -> Dataset:
    """The query's keys, with the order's values where it has them, empty where not."""
    out = Dataset()
    for key in _keys(query):
        found = values.get(key.tag)
        if key.VR == "SQ":
            items = list(key.value or [])
            if found is None:
                out.add_new(key.tag, "SQ", Sequence())
            elif not items:
                out.add_new(key.tag, "SQ", Sequence([deepcopy(i) for i in found.value]))
            else:
                out.add_new(key.tag, "SQ", Sequence([_select(items[0], i) for i in found.value]))
        elif found is not None:
            out.add_new(key.tag, found.VR, found.value)
        else:
            out.add_new(key.tag, key.VR, None)
    return out


def _keys(query: Dataset) -> Iterable[DataElement]:
    for elem in query:
        if elem.tag.element == 0 or elem.tag.is_private or int(elem.tag) in _NOT_RETURNED:
            continue
        yield elem


def _values(key: DataElement) -> list[str]:
    value = key.value
    if value is None:
        return []
    listed = list(value) if key.VM > 1 else [value]
    return [str(v).strip() for v in listed if str(v).strip()]


def _text(elem: DataElement | None) -> str:
    if elem is None or elem.value is None:
        return ""
    return str(elem.value).strip()


def _non_ascii(elem: DataElement) -> bool:
    value: Any = elem.value
    return isinstance(value, str | PersonName) and not str(value).isascii()


def _utc_day(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
