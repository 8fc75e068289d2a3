"""QIDO-RS search over the index (PS3.18 10.6, matching per PS3.4 C.2.2.2).

Everything is filtered in the database: matching, the caller's site restriction, order,
limit and offset. Results come back as DICOM JSON objects built from index columns only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, literal, or_, select

from connrad.archive.attributes import (
    ATTRIBUTES,
    Attribute,
    Level,
    Match,
    UnknownAttribute,
    resolve,
)
from connrad.archive.models import Instance, Patient, Series, Study
from connrad.dicom.names import query_words

P, S, R, N = Patient.__table__, Study.__table__, Series.__table__, Instance.__table__

MAX_LIMIT = 10_000
_INSTANCE_AVAILABILITY = "00080056"
_RETRIEVE_URL = "00081190"


class QueryError(ValueError):
    """A malformed search request (message names the parameter, never the value)."""


@dataclass
class Search:
    level: Level
    filters: dict[str, str] = field(default_factory=dict)  # keyword/tag -> value
    include: list[str] = field(default_factory=list)
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    study_uid: str | None = None  # from the path
    series_uid: str | None = None
    site_ids: Sequence[int] | None = None  # None: every site (access checked by the caller)


def parse_search(
    level: Level,
    params: Sequence[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Search:
    search = Search(level, study_uid=study_uid, series_uid=series_uid)
    for name, value in params:
        if name == "limit":
            search.limit = _non_negative(name, value)
        elif name == "offset":
            search.offset = _non_negative(name, value)
        elif name == "fuzzymatching":
            search.fuzzy = value.lower() == "true"
        elif name == "includefield":
            search.include.extend(v.strip() for v in value.split(",") if v.strip())
        else:
            search.filters[name] = value
    return search


def scope_levels(search: Search) -> tuple[Level, ...]:
    """Levels whose attributes this resource returns and matches.

    All-series and all-instances searches (no study in the path) also carry the study (and
    series) attributes, so a client can find series by patient.
    """
    if search.level is Level.STUDY:
        return (Level.PATIENT, Level.STUDY)
    if search.level is Level.SERIES:
        upper = () if search.study_uid else (Level.PATIENT, Level.STUDY)
        return (*upper, Level.SERIES)
    if search.series_uid:
        return (Level.INSTANCE,)
    upper = (Level.SERIES,) if search.study_uid else (Level.PATIENT, Level.STUDY, Level.SERIES)
    return (*upper, Level.INSTANCE)


def run(conn: Connection, search: Search) -> list[dict[str, Any]]:
    levels = scope_levels(search)
    returned = _returned_attributes(search, levels)
    statement = _base_select(search.level, returned).where(*_conditions(search, levels))
    statement = _order(statement, search.level)
    limit = min(search.limit, MAX_LIMIT) if search.limit is not None else MAX_LIMIT
    statement = statement.limit(limit).offset(search.offset)
    result = conn.execute(statement)
    build = _row_builder(list(result.keys()), returned)
    return [build(row) for row in result.all()]


def _returned_attributes(search: Search, levels: tuple[Level, ...]) -> list[Attribute]:
    wanted = {a.tag for a in ATTRIBUTES if a.level in levels and a.default}
    # Always identify the object and its parents, whatever the level.
    wanted |= {"0020000D"}
    if search.level in (Level.SERIES, Level.INSTANCE):
        wanted.add("0020000E")
    if "all" in search.include:
        wanted |= {a.tag for a in ATTRIBUTES if a.level in levels}
    for name in search.include:
        if name == "all":
            continue
        try:
            tag, attribute = resolve(name)
        except UnknownAttribute as exc:
            raise QueryError(f"includefield: {exc}") from None
        if attribute is not None:
            wanted.add(tag)
    for name in search.filters:
        # Matched attributes are returned too (PS3.18 10.6.3.3).
        tag, attribute = _key(name)
        if attribute is not None:
            wanted.add(tag)
    return [a for a in ATTRIBUTES if a.tag in wanted]


def _base_select(level: Level, returned: list[Attribute]) -> Select[Any]:
    columns: list[ColumnElement[Any]] = [S.c.study_uid.label("_study_uid")]
    if level in (Level.SERIES, Level.INSTANCE):
        columns.append(R.c.series_uid.label("_series_uid"))
    if level is Level.INSTANCE:
        columns.append(N.c.sop_uid.label("_sop_uid"))
    for attribute in returned:
        for n, column in enumerate(attribute.columns):
            columns.append(column.label(f"{attribute.tag}_{n}"))  # type: ignore[attr-defined]
    joined = S.join(P, P.c.id == S.c.patient_pk)
    if level in (Level.SERIES, Level.INSTANCE):
        joined = joined.join(R, R.c.study_pk == S.c.id)
    if level is Level.INSTANCE:
        joined = joined.join(N, N.c.series_pk == R.c.id)
    return select(*columns).select_from(joined)


def _order(statement: Select[Any], level: Level) -> Select[Any]:
    # Most recently received first: the order of a radiologist's worklist.
    if level is Level.STUDY:
        return statement.order_by(S.c.last_received_at.desc(), S.c.id.desc())
    if level is Level.SERIES:
        return statement.order_by(R.c.last_received_at.desc(), R.c.id.desc())
    return statement.order_by(N.c.received_at.desc(), N.c.id.desc())


def _conditions(search: Search, levels: tuple[Level, ...]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if search.site_ids is not None:
        conditions.append(S.c.site_id.in_(list(search.site_ids)))
    if search.study_uid:
        conditions.append(S.c.study_uid == search.study_uid)
    if search.series_uid:
        conditions.append(R.c.series_uid == search.series_uid)
    for name, value in search.filters.items():
        _, attribute = _key(name)
        if attribute is None:
            continue  # a valid but unindexed key matches everything (PS3.4 C.2.2.1)
        if attribute.level not in levels:
            raise QueryError(f"{attribute.keyword} is not a key of this resource")
        if value == "" or value == "*":
            continue  # universal matching
        condition = _matcher(attribute, value, search.fuzzy)
        if attribute.level is Level.PATIENT:
            # Match the (fewer) patients once, not once per joined study row.
            condition = S.c.patient_pk.in_(select(P.c.id).where(condition))
        conditions.append(condition)
    return conditions


def _key(name: str) -> tuple[str, Attribute | None]:
    try:
        return resolve(name)
    except UnknownAttribute as exc:
        raise QueryError(str(exc)) from None


def _matcher(attribute: Attribute, value: str, fuzzy: bool) -> ColumnElement[bool]:
    column = attribute.columns[0]
    match attribute.match:
        case Match.UID:
            uids = [u.strip() for u in value.replace("\\", ",").split(",") if u.strip()]
            return column.in_(uids)
        case Match.DATE | Match.TIME:
            return _range(column, value, attribute.keyword)
        case Match.INT:
            try:
                number = int(value)
            except ValueError:
                raise QueryError(f"{attribute.keyword} must be an integer") from None
            if not -(2**31) <= number < 2**31:  # IS values are 32-bit (PS3.5 6.2)
                raise QueryError(f"{attribute.keyword} is out of range")
            return column == number
        case Match.MULTI:
            wrapped = literal("\\") + column + literal("\\")
            values = [v for v in value.replace(",", "\\").split("\\") if v]
            return or_(*(wrapped.like(f"%\\{_like(v)}\\%", escape="!") for v in values))
        case Match.NAME:
            return _name(attribute, value, fuzzy)
        case _:
            return _text(column, value)


def _text(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        return column.like(_wildcard(value), escape="!")
    return column == value


def _name(attribute: Attribute, value: str, fuzzy: bool) -> ColumnElement[bool]:
    if fuzzy:
        search_column = (
            P.c.name_search
            if attribute.level is Level.PATIENT
            else (S.c.referring_physician_search)
        )
        words = query_words(value)
        if words:
            return and_(*(search_column.like(f"% {_like(w)}%", escape="!") for w in words))
    pattern = _wildcard(value.lower()) if ("*" in value or "?" in value) else None
    groups = value.split("=")
    if len(groups) > 1:
        # Group-wise: "Hong^Gildong=洪^吉洞" must match each non-empty group.
        parts = [
            _name_group(col, g) for col, g in zip(attribute.columns, groups, strict=False) if g
        ]
        return and_(*parts)
    if pattern is not None:
        return or_(*(func.lower(c).like(pattern, escape="!") for c in attribute.columns))
    return or_(*(func.lower(c) == value.lower() for c in attribute.columns))


def _name_group(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        return func.lower(column).like(_wildcard(value.lower()), escape="!")
    return func.lower(column) == value.lower()


def _range(column: ColumnElement[Any], value: str, keyword: str) -> ColumnElement[bool]:
    if "-" not in value:
        _check_digits(value, keyword)
        if keyword.endswith("Time"):
            return column.like(f"{_like(value)}%", escape="!")  # "12" is any time in 12h
        return column == value
    low, _, high = value.partition("-")
    _check_digits(low, keyword)
    _check_digits(high, keyword)
    if not low and not high:
        raise QueryError(f"{keyword} range has no bounds")
    conditions = [column != ""]
    if low:
        conditions.append(column >= low)
    if high:
        # A time bound "1200" includes 12:00:59.9; a date bound is a whole day.
        conditions.append(column <= high + ("\uffff" if keyword.endswith("Time") else ""))
    return and_(*conditions)


def _check_digits(value: str, keyword: str) -> None:
    if value and not value.replace(".", "").isdigit():
        raise QueryError(f"{keyword} must be a DICOM date/time or range")


def _like(value: str) -> str:
    return value.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _wildcard(value: str) -> str:
    return _like(value).replace("*", "%").replace("?", "_")


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise QueryError(f"{name} must be a non-negative integer") from None
    if not 0 <= number < 2**31:
        raise QueryError(f"{name} must be a non-negative integer below 2^31")
    return number


def _row_builder(
    keys: list[str], returned: list[Attribute]
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function from a result row to its DICOM JSON object, keys already in tag order."""
    position = {key: n for n, key in enumerate(keys)}
    uid_positions = [
        position[k] for k in ("_study_uid", "_series_uid", "_sop_uid") if k in position
    ]
    plan = sorted(
        [(a.tag, a, [position[f"{a.tag}_{n}"] for n in range(len(a.columns))]) for a in returned]
        + [(_INSTANCE_AVAILABILITY, None, []), (_RETRIEVE_URL, None, [])],
        key=lambda item: item[0],
    )

    def build(row: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tag, attribute, columns in plan:
            if attribute is not None:
                out[tag] = _element(attribute, [row[c] for c in columns])
            elif tag == _RETRIEVE_URL:
                out[tag] = {"vr": "UR", "Value": [_retrieve_path([row[c] for c in uid_positions])]}
            else:
                out[tag] = {"vr": "CS", "Value": ["ONLINE"]}
        return out

    return build


def _element(attribute: Attribute, values: list[Any]) -> dict[str, Any]:
    if attribute.vr == "PN":
        groups = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), values, strict=True))
        groups = {k: v for k, v in groups.items() if v}
        return {"vr": "PN", "Value": [groups]} if groups else {"vr": "PN"}
    value = values[0]
    if value is None or value == "":
        return {"vr": attribute.vr}
    if attribute.vr in ("IS", "US"):
        return {"vr": attribute.vr, "Value": [int(value)]}
    if attribute.match is Match.MULTI:
        return {"vr": attribute.vr, "Value": value.split("\\")}
    return {"vr": attribute.vr, "Value": [value]}


def _retrieve_path(uids: list[str]) -> str:
    """Relative to the DICOMweb root; the route prefixes the base URL."""
    path = f"studies/{uids[0]}"
    if len(uids) > 1:
        path += f"/series/{uids[1]}"
    if len(uids) > 2:
        path += f"/instances/{uids[2]}"
    return path
