"""The audit trail as HL7 FHIR R4 (4.0.1) AuditEvent resources, read and searched.

Pure mapping plus SQLAlchemy Core queries on a Connection; the web layer adds HTTP. Codes
follow DICOM PS3.15 Annex A.5 (audit messages) and PS3.16 CID 400/401 (event IDs and types),
as the FHIR value sets audit-event-type and audit-event-sub-type take them over. Event
classes are declared once, as rules on (action, resource), so the mapping and the search
parameters ``type`` and ``subtype`` cannot disagree.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Connection, and_, false, func, not_, or_, select, true

from connrad.audit.models import AuditEvent

events = AuditEvent.__table__

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACTION_SYSTEM = "http://hl7.org/fhir/audit-event-action"
OUTCOME_SYSTEM = "http://hl7.org/fhir/audit-event-outcome"
ACTOR_SYSTEM = "urn:connrad:actor"
UID_SYSTEM = "urn:dicom:uid"
CHAIN_EXTENSION = "urn:connrad:audit-chain"  # sequence and hash, for `connrad audit verify`
CONTEXT_EXTENSION = "urn:connrad:audit-context"  # the row's own action, resource and sites

DEFAULT_COUNT = 50
MAX_COUNT = 500


class FhirSearchError(ValueError):
    """A search parameter value that cannot be used; the web layer answers 400."""


class Coding(NamedTuple):
    system: str
    code: str
    display: str

    def as_json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class _Rule:
    """A code that applies to the events whose action and resource match."""

    coding: Coding
    actions: frozenset[str] | None = None  # None: any action
    resources: frozenset[str] | None = None  # None: any resource
    except_actions: frozenset[str] = frozenset()
    except_resources: frozenset[str] = frozenset()

    def applies(self, action: str, resource: str) -> bool:
        return (
            (self.actions is None or action in self.actions)
            and (self.resources is None or resource in self.resources)
            and action not in self.except_actions
            and resource not in self.except_resources
        )

    def condition(self) -> ColumnElement[bool]:
        parts = [
            events.c.action.not_in(sorted(self.except_actions)),
            events.c.resource.not_in(sorted(self.except_resources)),
        ]
        if self.actions is not None:
            parts.append(events.c.action.in_(sorted(self.actions)))
        if self.resources is not None:
            parts.append(events.c.resource.in_(sorted(self.resources)))
        return and_(*parts)


AUTHENTICATION = frozenset({"login", "logout"})
LOOKS = frozenset({"read", "search"})
SECURITY_RESOURCES = frozenset({"user", "device", "site", "session"})
AUDIT_LOG = frozenset({"AuditEvent"})
INTERACTIONS = {  # our action -> FHIR restful-interaction code
    "read": "read",
    "search": "search-type",
    "create": "create",
    "update": "update",
    "delete": "delete",
}
ACTION_CODES = {"create": "C", "read": "R", "update": "U", "delete": "D"}  # else "E"

# AuditEvent.type: exactly one rule applies to any (action, resource).
TYPE_RULES = (
    _Rule(Coding(DCM, "110114", "User Authentication"), actions=AUTHENTICATION),
    _Rule(
        Coding(DCM, "110101", "Audit Log Used"), resources=AUDIT_LOG, except_actions=AUTHENTICATION
    ),
    # Changes to who may do what: DICOM's Security Alert event (PS3.15 A.5.3.11).
    _Rule(
        Coding(DCM, "110113", "Security Alert"),
        resources=SECURITY_RESOURCES,
        except_actions=AUTHENTICATION | LOOKS,
    ),
    _Rule(Coding(EVENT_TYPE, "rest", "RESTful Operation"), LOOKS, SECURITY_RESOURCES),
    _Rule(
        Coding(DCM, "110110", "Patient Record"),
        except_actions=AUTHENTICATION,
        except_resources=SECURITY_RESOURCES | AUDIT_LOG,
    ),
)

REIDENTIFY = Coding(LIFECYCLE, "reidentify", "Re-identify Record Lifecycle Event")

# AuditEvent.subtype: every rule that applies.
SUBTYPE_RULES = (
    *(
        _Rule(Coding(RESTFUL, code, code), actions=frozenset({action}))
        for action, code in INTERACTIONS.items()
    ),
    _Rule(Coding(DCM, "110122", "Login"), actions=frozenset({"login"})),
    _Rule(Coding(DCM, "110123", "Logout"), actions=frozenset({"logout"})),
    _Rule(REIDENTIFY, actions=frozenset({"reidentify"})),
    _Rule(
        Coding(DCM, "110137", "User Security Attributes Changed"),
        resources=frozenset({"user", "device", "session"}),
        except_actions=AUTHENTICATION | LOOKS,
    ),
    _Rule(
        Coding(DCM, "110129", "Security Configuration"),
        resources=frozenset({"site"}),
        except_actions=AUTHENTICATION | LOOKS,
    ),
)

SYSTEM_OBJECT = Coding(ENTITY_TYPE, "2", "System Object")
STUDY_UID_TYPE = Coding(DCM, "110180", "Study Instance UID")
REPORT = Coding(OBJECT_ROLE, "3", "Report")  # a DICOM study, per PS3.15 A.5.3.6
QUERY = Coding(OBJECT_ROLE, "24", "Query")
ENTITY_ROLES = {
    "user": Coding(OBJECT_ROLE, "11", "Security User Entity"),
    "device": Coding(OBJECT_ROLE, "11", "Security User Entity"),
    "session": Coding(OBJECT_ROLE, "11", "Security User Entity"),
    "site": Coding(OBJECT_ROLE, "13", "Security Resource"),
    "AuditEvent": Coding(OBJECT_ROLE, "13", "Security Resource"),  # PS3.15 A.5.3.2
}
DOMAIN_RESOURCE = Coding(OBJECT_ROLE, "4", "Domain Resource")
APPLICATION_SERVER = Coding(SOURCE_TYPE, "4", "Application Server")


def outcome_code(status: int) -> str:
    """The FHIR outcome of an HTTP-like status: 0 success, 4 minor, 8 serious failure."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def to_audit_event(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """One ``audit_events`` row as a FHIR R4 AuditEvent (JSON).

    Parameters
    ----------
    row
        Every column of the row, as ``select(audit_events)`` returns it.
    base_url
        The FHIR base URL of this server: it identifies the observer (``source``).

    Returns
    -------
    dict
        The AuditEvent; see https://hl7.org/fhir/R4/auditevent.html.
    """
    action, resource = row["action"], row["resource"]
    recorded = _instant(row["occurred_at"])
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row["id"]),
        "extension": [_chain_extension(row), _context_extension(row)],
        "type": next(r.coding for r in TYPE_RULES if r.applies(action, resource)).as_json(),
        "subtype": [r.coding.as_json() for r in SUBTYPE_RULES if r.applies(action, resource)],
        "action": ACTION_CODES.get(action, "E"),
        "recorded": recorded,
        "outcome": outcome_code(row["outcome"]),
        "outcomeDesc": f"HTTP {row['outcome']}",
        "agent": [_agent(row["actor"], row["source"])],
        "source": _source(base_url),
        "entity": _entities(row),
    }
    if not event["subtype"]:
        del event["subtype"]
    return event


def _instant(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive text; the column is always UTC
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def _source(base_url: str) -> dict[str, Any]:
    observer: dict[str, Any] = {"display": "connrad"}
    if base_url:
        observer["identifier"] = {"system": "urn:ietf:rfc:3986", "value": base_url.rstrip("/")}
    return {"observer": observer, "type": [APPLICATION_SERVER.as_json()]}


def _chain_extension(row: Mapping[str, Any]) -> dict[str, Any]:
    # valueInteger is 32-bit: enough for a sequence written at 100 events/s for 600 years.
    return {
        "url": CHAIN_EXTENSION,
        "extension": [
            {"url": "sequence", "valueInteger": row["sequence"]},
            {"url": "hash", "valueString": row["hash"]},
            {"url": "previousHash", "valueString": row["previous_hash"]},
        ],
    }


def _context_extension(row: Mapping[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "action", "valueString": row["action"]},
        {"url": "resource", "valueString": row["resource"]},
    ]
    for name, column in (("siteId", "site_id"), ("actorSiteId", "actor_site_id")):
        if row[column] is not None:
            parts.append({"url": name, "valueInteger": row[column]})
    return {"url": CONTEXT_EXTENSION, "extension": parts}


def _agent(actor: str, source: str) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": ACTOR_SYSTEM, "value": actor}, "display": actor},
        "requestor": True,
    }
    if source and source != "unknown":
        agent["network"] = {"address": source, "type": _network_type(source)}
    return agent


def _network_type(address: str) -> str:
    """FHIR network-type: "2" an IP address, else "1" a machine name (a DICOM AE title)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


def _entities(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    detail: dict[str, Any] = row["detail"] or {}
    entities: list[dict[str, Any]] = []
    if row["study_uid"]:
        study: dict[str, Any] = {
            "what": {
                "identifier": {
                    "type": {"coding": [STUDY_UID_TYPE.as_json()]},
                    "system": UID_SYSTEM,
                    "value": f"urn:oid:{row['study_uid']}",
                }
            },
            "type": SYSTEM_OBJECT.as_json(),
            "role": REPORT.as_json(),
        }
        if row["action"] == "reidentify":
            study["lifecycle"] = REIDENTIFY.as_json()
        entities.append(study)
    if row["action"] == "search":
        # Parameter names only: the values may be patient data (a name, an ID).
        names = "&".join(str(key) for key in detail.get("keys", []))
        query = f"{detail.get('route', '')}?{names}" if names else str(detail.get("route", ""))
        entity = {"type": SYSTEM_OBJECT.as_json(), "role": QUERY.as_json()}
        if query:  # base64Binary, like every FHIR primitive, may not be empty
            entity["query"] = base64.b64encode(query.encode("utf-8")).decode("ascii")
        entities.append(entity)
    elif not entities:
        entities.append(
            {
                "type": SYSTEM_OBJECT.as_json(),
                "role": ENTITY_ROLES.get(row["resource"], DOMAIN_RESOURCE).as_json(),
                "name": row["resource"],
            }
        )
    details = _details(detail)
    if details:
        entities[-1]["detail"] = details
    return entities


def _details(detail: Mapping[str, Any]) -> list[dict[str, str]]:
    """The record's detail (never patient data, by the audit contract) as entity details."""
    entries = []
    for key in sorted(detail):
        value = detail[key]
        if isinstance(value, str):
            text = value
        elif isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            text = " ".join(str(v) for v in value)
        else:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        if text.strip():  # FHIR strings may not be empty
            entries.append({"type": str(key), "valueString": text})
    return entries


def operation_outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """A FHIR OperationOutcome with one issue (severity: fatal, error, warning, information)."""
    if severity not in {"fatal", "error", "warning", "information"}:
        raise ValueError(f"'{severity}' is not a FHIR issue severity")
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def read_audit_event(
    conn: Connection, event_id: str, *, site_ids: frozenset[int] | None, base_url: str
) -> dict[str, Any] | None:
    """The AuditEvent with this id, or None when absent, malformed or outside ``site_ids``."""
    if not re.fullmatch(r"[0-9]{1,18}", event_id):  # 18 digits always fit a BIGINT
        return None
    query = select(events).where(events.c.id == int(event_id), _site_filter(site_ids))
    row = conn.execute(query).mappings().one_or_none()
    return None if row is None else to_audit_event(row, base_url)


def search_audit_events(
    conn: Connection,
    params: Mapping[str, list[str]],
    *,
    site_ids: frozenset[int] | None,
    base_url: str,
) -> dict[str, Any]:
    """A FHIR searchset Bundle of the AuditEvents matching ``params``.

    Parameters
    ----------
    conn
        A connection to the index database.
    params
        Query parameters as ``parse_qs`` gives them. Supported (FHIR R4 AuditEvent search):
        ``date``, ``agent`` (``:identifier``), ``action``, ``outcome``, ``type``,
        ``subtype``, ``address`` (``:exact``, ``:contains``), ``entity``
        (``:identifier``), and ``_count``, ``_offset``, ``_sort`` (``date`` or ``-date``).
        A repeated parameter means AND, commas in a value OR. Unknown parameters are
        ignored and left out of the links (FHIR lenient handling).
    site_ids
        Only events about, or made by a caller of, these sites; None for every event.
    base_url
        The FHIR base URL (no trailing slash needed) for fullUrl and the links.

    Returns
    -------
    dict
        The Bundle, with ``total`` and ``self``, ``previous`` and ``next`` links.

    Raises
    ------
    FhirSearchError
        A value that cannot be used: a bad date or prefix, an action or outcome code that
        does not exist, an unsupported modifier, a bad ``_count``, ``_offset`` or ``_sort``.
    """
    base = base_url.rstrip("/")
    conditions, used = _filters(params)
    count, offset, descending = _paging(params)
    where = and_(_site_filter(site_ids), *conditions)
    total = conn.execute(select(func.count()).select_from(events).where(where)).scalar_one()
    order = (events.c.occurred_at, events.c.sequence)
    rows = conn.execute(
        select(events)
        .where(where)
        .order_by(*(column.desc() if descending else column.asc() for column in order))
        .limit(count)
        .offset(offset)
    ).mappings()
    if "_sort" in params:
        used.append(("_sort", "-date" if descending else "date"))

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*used, ("_count", str(count)), ("_offset", str(at))], safe=":|,")
        return {"relation": relation, "url": f"{base}/AuditEvent?{query}"}

    links = [link("self", offset)]
    if offset > 0:
        links.append(link("previous", max(offset - count, 0)))
    if count and offset + count < total:
        links.append(link("next", offset + count))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    }
    entries = [
        {
            "fullUrl": f"{base}/AuditEvent/{row['id']}",
            "resource": to_audit_event(row, base),
            "search": {"mode": "match"},
        }
        for row in rows
    ]
    if entries:
        bundle["entry"] = entries
    return bundle


def _filters(
    params: Mapping[str, list[str]],
) -> tuple[list[ColumnElement[bool]], list[tuple[str, str]]]:
    """The SQL conditions of the supported parameters, and those parameters (for links)."""
    conditions: list[ColumnElement[bool]] = []
    used: list[tuple[str, str]] = []
    for name, values in params.items():
        parameter, _, modifier = name.partition(":")
        if parameter not in PARAMETERS:
            continue
        modifiers, build = PARAMETERS[parameter]
        if modifier and modifier not in modifiers:
            raise FhirSearchError(
                f"the modifier ':{modifier}' is not supported on '{parameter}'"
                + (f"; use one of {', '.join(sorted(modifiers))}" if modifiers else "")
            )
        for value in values:
            if value:  # FHIR: an empty parameter value is ignored
                conditions.append(build(value, modifier))
                used.append((name, value))
    return conditions, used


def _site_filter(site_ids: frozenset[int] | None) -> ColumnElement[bool]:
    if site_ids is None:
        return true()
    ids = sorted(site_ids)
    return or_(events.c.site_id.in_(ids), events.c.actor_site_id.in_(ids))


def _paging(params: Mapping[str, list[str]]) -> tuple[int, int, bool]:
    def single(name: str) -> str | None:
        values = [value for value in params.get(name, []) if value]
        if len(values) > 1:
            raise FhirSearchError(f"'{name}' may be given only once")
        return values[0] if values else None

    def number(name: str, default: int) -> int:
        text = single(name)
        if text is None:
            return default
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise FhirSearchError(f"'{name}' must be a whole number of 0 or more, not '{text}'")
        return int(text)

    sort = single("_sort") or "-date"
    if sort not in {"date", "-date"}:
        raise FhirSearchError(f"'_sort={sort}' is not supported; use 'date' or '-date'")
    return min(number("_count", DEFAULT_COUNT), MAX_COUNT), number("_offset", 0), sort[0] == "-"


def _split(value: str) -> list[str]:
    """A value's comma-separated alternatives, with FHIR's escapes (\\, \\| \\$ \\\\) undone."""
    parts = re.split(r"(?<!\\),", value)
    return [re.sub(r"\\([,|$\\])", r"\1", part) for part in parts if part]


def _token(value: str) -> tuple[str | None, str]:
    """(system, code) of ``[system]|code``; system None when not given, "" for ``|code``."""
    system, bar, code = value.partition("|")
    return (system, code) if bar else (None, value)


def _coded(
    value: str, system: str, codes: Mapping[str, ColumnElement[bool]], name: str
) -> ColumnElement[bool]:
    matches = []
    for alternative in _split(value):
        given_system, code = _token(alternative)
        if code not in codes:
            raise FhirSearchError(f"'{name}={code}' is not a code: use {', '.join(codes)}")
        if given_system is None or given_system == system:
            matches.append(codes[code])
    return or_(false(), *matches)


def _action(value: str, modifier: str) -> ColumnElement[bool]:
    codes = {code: events.c.action == action for action, code in ACTION_CODES.items()} | {
        "E": events.c.action.not_in(sorted(ACTION_CODES))
    }
    return _coded(value, ACTION_SYSTEM, codes, "action")


def _outcome(value: str, modifier: str) -> ColumnElement[bool]:
    status = events.c.outcome
    codes = {
        "0": status < 400,
        "4": and_(status >= 400, status < 500),
        "8": status >= 500,
        "12": false(),  # connrad records no major failures: the process would be gone
    }
    return _coded(value, OUTCOME_SYSTEM, codes, "outcome")


def _rules(rules: tuple[_Rule, ...]) -> Callable[[str, str], ColumnElement[bool]]:
    def build(value: str, modifier: str) -> ColumnElement[bool]:
        matches = []
        for alternative in _split(value):
            system, code = _token(alternative)
            matches += [
                rule.condition()
                for rule in rules
                if rule.coding.code == code and system in (None, rule.coding.system)
            ]
        return or_(false(), *matches)

    return build


def _agent_filter(value: str, modifier: str) -> ColumnElement[bool]:
    actors = [_identifier(part, modifier, ACTOR_SYSTEM) for part in _split(value)]
    return or_(false(), *(events.c.actor == actor for actor in actors if actor is not None))


def _entity(value: str, modifier: str) -> ColumnElement[bool]:
    uids = [_identifier(part, modifier, UID_SYSTEM) for part in _split(value)]
    return or_(
        false(),
        *(events.c.study_uid == uid.removeprefix("urn:oid:") for uid in uids if uid is not None),
    )


def _identifier(value: str, modifier: str, system: str) -> str | None:
    """The value of an ``:identifier`` token in our system (None: another system), or as is."""
    if modifier != "identifier":
        return value
    given_system, code = _token(value)
    return code if given_system in (None, system) else None


def _address(value: str, modifier: str) -> ColumnElement[bool]:
    column = events.c.source
    matches = []
    for text in _split(value):
        if modifier == "exact":
            matches.append(column == text)
            continue
        # FHIR string search: case-insensitive, and by default a prefix match.
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%" if modifier == "contains" else f"{escaped}%"
        matches.append(func.lower(column).like(pattern, escape="\\"))
    return or_(false(), *matches)


DATE_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")
_DATE = re.compile(
    r"(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2}))?)?)?"
)


def _date(value: str, modifier: str) -> ColumnElement[bool]:
    prefixed = re.match(r"([a-z]{2})(?=[0-9])", value)
    prefix, text = (prefixed[1], value[2:]) if prefixed else ("eq", value)
    if prefix not in DATE_PREFIXES:
        raise FhirSearchError(
            f"'date={value}' has the prefix '{prefix}', which is not supported; "
            f"use one of {', '.join(DATE_PREFIXES)} (FHIR R4 search, prefixes)"
        )
    # An unencoded '+' in a query string arrives as a space: "T10:00:00 02:00".
    start, end = _date_range(text.replace(" ", "+"), value)
    column = events.c.occurred_at
    return {
        "eq": and_(column >= start, column < end),
        "ne": not_(and_(column >= start, column < end)),
        "lt": column < start,
        "eb": column < start,
        "le": column < end,
        "gt": column >= end,
        "sa": column >= end,
        "ge": column >= start,
    }[prefix]


def _date_range(text: str, value: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a FHIR date of some precision covers; dates are UTC days."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise FhirSearchError(
            f"'date={value}' is not a FHIR date: use YYYY, YYYY-MM, YYYY-MM-DD or "
            "YYYY-MM-DDThh:mm[:ss[.fff]] with a timezone (Z or +hh:mm)"
        )
    part = {k: int(v) for k, v in match.groupdict().items() if v and k not in {"zone", "fraction"}}
    try:
        if "month" not in part:
            start = datetime(part["year"], 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if "day" not in part:
            start = datetime(part["year"], part["month"], 1, tzinfo=UTC)
            after = start + timedelta(days=31)
            return start, after.replace(day=1)
        if "hour" not in part:
            start = datetime(part["year"], part["month"], part["day"], tzinfo=UTC)
            return start, start + timedelta(days=1)
        zone = match["zone"]
        offset = timedelta(0)
        if zone != "Z":
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            offset = -offset if zone[0] == "-" else offset
        fraction = match["fraction"] or ""
        start = datetime(
            part["year"],
            part["month"],
            part["day"],
            part["hour"],
            part["minute"],
            part.get("second", 0),
            int(fraction[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
    except ValueError as exc:  # month 13, hour 25, year 9999 + 1 ...
        raise FhirSearchError(f"'date={value}' is not a valid date ({exc})") from None
    if fraction:
        step = timedelta(microseconds=10 ** (6 - min(len(fraction), 6)))
    else:
        step = timedelta(seconds=1) if "second" in part else timedelta(minutes=1)
    return start, start + step


PARAMETERS: dict[str, tuple[frozenset[str], Callable[[str, str], ColumnElement[bool]]]] = {
    "date": (frozenset(), _date),
    "agent": (frozenset({"identifier"}), _agent_filter),
    "action": (frozenset(), _action),
    "outcome": (frozenset(), _outcome),
    "type": (frozenset(), _rules(TYPE_RULES)),
    "subtype": (frozenset(), _rules(SUBTYPE_RULES)),
    "address": (frozenset({"exact", "contains"}), _address),
    "entity": (frozenset({"identifier"}), _entity),
}
