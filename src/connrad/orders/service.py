"""Orders: schedule, list, change status, and load a site's open orders for the worklist.

Keys are fetched before a write transaction opens (:func:`keyring`): creating a site's first
key is itself a write, and on SQLite a second writer would wait on the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from connrad.db.base import utcnow
from connrad.deid import vault
from connrad.deid.keys import SiteKeys
from connrad.deid.vault import IndexKind
from connrad.identity.caller import Caller
from connrad.identity.policy import Action, allows
from connrad.orders.models import Order as OrderRow

orders = OrderRow.__table__


class Status(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


OPEN = frozenset({Status.SCHEDULED, Status.IN_PROGRESS})
_NEXT: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.IN_PROGRESS, Status.COMPLETED, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.CANCELLED: frozenset(),
}

# Values become DICOM elements: no backslash (the value separator) and no control characters.
_TEXT = re.compile(r"^[^\\\x00-\x1f\x7f]*$")
_MODALITY = re.compile(r"^[A-Z0-9_ ]{1,16}$")
_DICOM_DATE = re.compile(r"^\d{8}$")


class OrderError(Exception):
    """Bad input or a refused change; the message names fields, never their values."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Procedure:
    code: str
    meaning: str
    scheme: str = "99LOCAL"  # a local coding scheme (PS3.16: private schemes start with 99)


@dataclass(frozen=True)
class Identity:
    """Everything of an order that points at the patient: the sealed record."""

    patient_id: str
    patient_name: str  # DICOM PN: "홍^길동" or "Hong^Gildong=洪^吉洞=홍^길동"
    accession_number: str
    study_uid: str  # made at scheduling: the modality puts its images in this study
    issuer: str | None = None
    birth_date: str | None = None  # YYYYMMDD
    sex: str | None = None  # M | F | O
    requested_procedure_id: str | None = None
    reason: str | None = None

    def record(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, str | None]) -> Identity:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})  # type: ignore[arg-type]


@dataclass(frozen=True)
class NewOrder:
    patient_id: str
    patient_name: str
    accession_number: str
    modality: str
    scheduled_start: datetime  # timezone-aware: the modality is told this local time
    procedure: Procedure
    issuer: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    station_ae: str | None = None
    requested_procedure_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Order:
    id: int
    site_id: int
    status: Status
    modality: str
    station_ae: str | None
    scheduled_start: datetime  # in the offset the order was given in
    procedure: Procedure
    created_at: datetime
    updated_at: datetime
    identity: Identity | None = None  # only when opened for someone allowed to see it

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site_id": self.site_id,
            "status": self.status.value,
            "modality": self.modality,
            "scheduled_station_ae": self.station_ae,
            "scheduled_start": self.scheduled_start.isoformat(),
            "procedure": asdict(self.procedure),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "identity": None if self.identity is None else self.identity.record(),
        }


@dataclass(frozen=True)
class Keyring:
    """A site's data keys: the current one seals, every version opens."""

    site_id: int
    version: int
    keys: Mapping[int, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.version]


def keyring(site_keys: SiteKeys, site_id: int) -> Keyring:
    version, key = site_keys.current(site_id)  # creates the site's first key if needed
    return Keyring(site_id, version, {**site_keys.all(site_id), version: key})


def may_schedule(caller: Caller, site_id: int | None = None) -> bool:
    """Who may see a site's patients' identity may schedule for it; administrators too.

    Administrators schedule on a site's behalf but do not see the identities back.
    """
    if allows(caller, Action.MANAGE_SYSTEM):
        return True
    return caller.kind == "user" and allows(caller, Action.REIDENTIFY, site_id)


# --- writing -------------------------------------------------------------------------------


def create(conn: Connection, ring: Keyring, new: NewOrder) -> Order:
    """Schedule ``new`` at the keyring's site; 409 when its accession number is taken."""
    _check(new)
    accession = new.accession_number.strip()
    taken = [vault.blind_index(k, IndexKind.ACCESSION, accession) for k in ring.keys.values()]
    duplicate = conn.execute(
        select(orders.c.id).where(
            orders.c.site_id == ring.site_id, orders.c.accession_index.in_(taken)
        )
    ).first()
    if duplicate is not None:
        raise OrderError("an order with this accession number exists", 409)
    identity = Identity(
        patient_id=new.patient_id.strip(),
        patient_name=new.patient_name.strip(),
        accession_number=accession,
        study_uid=generate_uid(),
        issuer=_blank_to_none(new.issuer),
        birth_date=_blank_to_none(new.birth_date),
        sex=_blank_to_none(new.sex),
        requested_procedure_id=_blank_to_none(new.requested_procedure_id) or accession,
        reason=_blank_to_none(new.reason),
    )
    index = vault.blind_index(ring.current, IndexKind.ACCESSION, accession)
    sealed = vault.seal(ring.current, ring.site_id, identity.record(), record_ref=_ref(index))
    offset = new.scheduled_start.utcoffset() or timedelta(0)
    now = utcnow()
    values = {
        "site_id": ring.site_id,
        "status": Status.SCHEDULED.value,
        "modality": new.modality.strip().upper(),
        "station_ae": _blank_to_none(new.station_ae),
        "scheduled_start": new.scheduled_start.astimezone(UTC),
        "utc_offset_minutes": int(offset.total_seconds() // 60),
        "procedure_code": new.procedure.code.strip(),
        "procedure_scheme": new.procedure.scheme.strip(),
        "procedure_meaning": new.procedure.meaning.strip(),
        "key_version": ring.version,
        "sealed": sealed,
        "accession_index": index,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with conn.begin_nested():
            inserted = conn.execute(insert(orders).values(**values).returning(orders.c.id))
            row_id = int(inserted.scalar_one())
    except IntegrityError:  # scheduled at the same moment by someone else
        raise OrderError("an order with this accession number exists", 409) from None
    return _view(_row(conn, row_id), identity)


def set_status(conn: Connection, order_id: int, status: Status) -> None:
    """Move an order on; the same status again is a no-op, going back is refused (409)."""
    row = _row(conn, order_id)
    current = Status(row.status)
    if status is current:
        return
    if status not in _NEXT[current]:
        raise OrderError(f"an order {current.value} cannot become {status.value}", 409)
    conn.execute(
        update(orders).where(orders.c.id == order_id).values(status=status, updated_at=utcnow())
    )


# --- reading -------------------------------------------------------------------------------


def site_of(conn: Connection, order_id: int) -> int | None:
    found = conn.execute(select(orders.c.site_id).where(orders.c.id == order_id)).scalar()
    return None if found is None else int(found)


def get(conn: Connection, order_id: int, keys: Mapping[int, bytes] | None = None) -> Order:
    """One order; its identity opened when the site's ``keys`` are given."""
    row = _row(conn, order_id)
    return _view(row, None if keys is None else _open(row, keys))


def list_orders(
    conn: Connection,
    site_ids: frozenset[int] | None,
    keys_of: Callable[[int], Mapping[int, bytes] | None],
    *,
    status: Status | None = None,
    limit: int = 100,
) -> list[Order]:
    """Orders of ``site_ids`` (None: every site), earliest first.

    ``keys_of(site_id)`` gives the keys to open a site's identities with, or None where the
    caller may not see them.
    """
    query = select(orders).order_by(orders.c.scheduled_start, orders.c.id).limit(limit)
    if site_ids is not None:
        query = query.where(orders.c.site_id.in_(sorted(site_ids)))
    if status is not None:
        query = query.where(orders.c.status == status.value)
    rows = conn.execute(query).all()
    keys: dict[int, Mapping[int, bytes] | None] = {}
    found = []
    for row in rows:
        site_id = int(row.site_id)
        if site_id not in keys:
            keys[site_id] = keys_of(site_id)
        site_keys = keys[site_id]
        found.append(_view(row, None if site_keys is None else _open(row, site_keys)))
    return found


def scheduled(
    conn: Connection,
    site_id: int,
    keys: Mapping[int, bytes],
    start: datetime | None,
    end: datetime | None,
    statuses: Iterable[Status] = OPEN,
) -> list[Order]:
    """The site's orders starting in [start, end) (None: unbounded), identities opened."""
    query = (
        select(orders)
        .where(orders.c.site_id == site_id, orders.c.status.in_([s.value for s in statuses]))
        .order_by(orders.c.scheduled_start, orders.c.id)
    )
    if start is not None:
        query = query.where(orders.c.scheduled_start >= start)
    if end is not None:
        query = query.where(orders.c.scheduled_start < end)
    return [_view(row, _open(row, keys)) for row in conn.execute(query).all()]


# --- helpers -------------------------------------------------------------------------------


def _row(conn: Connection, order_id: int) -> Row[Any]:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        raise OrderError("order not found", 404)
    return row


def _ref(accession_index: str) -> str:
    # The record opens only on the row with its accession: a copy on another row fails.
    return f"order:{accession_index}"


def _open(row: Row[Any], keys: Mapping[int, bytes]) -> Identity:
    key = keys.get(int(row.key_version))
    if key is None:
        raise vault.VaultError(f"no key version {row.key_version} for order {row.id}")
    record = vault.open_record(
        key, int(row.site_id), bytes(row.sealed), record_ref=_ref(row.accession_index)
    )
    return Identity.from_record(record)


def _view(row: Row[Any], identity: Identity | None) -> Order:
    local = timezone(timedelta(minutes=int(row.utc_offset_minutes)))
    start: datetime = row.scheduled_start
    return Order(
        id=int(row.id),
        site_id=int(row.site_id),
        status=Status(row.status),
        modality=row.modality,
        station_ae=row.station_ae,
        scheduled_start=start.astimezone(local),
        procedure=Procedure(row.procedure_code, row.procedure_meaning, row.procedure_scheme),
        created_at=row.created_at,
        updated_at=row.updated_at,
        identity=identity,
    )


def _blank_to_none(value: str | None) -> str | None:
    return None if value is None or not value.strip() else value.strip()


def _check(new: NewOrder) -> None:
    limits = {
        "patient_id": (new.patient_id, 1, 64),
        "accession_number": (new.accession_number, 1, 16),
        "issuer": (new.issuer or "", 0, 64),
        "scheduled_station_ae": (new.station_ae or "", 0, 16),
        "requested_procedure_id": (new.requested_procedure_id or "", 0, 16),
        "reason": (new.reason or "", 0, 64),
        "procedure_code": (new.procedure.code, 1, 16),
        "procedure_scheme": (new.procedure.scheme, 1, 16),
        "procedure_meaning": (new.procedure.meaning, 1, 64),
    }
    for name, (value, least, most) in limits.items():
        if not least <= len(value.strip()) <= most or not _TEXT.match(value):
            raise OrderError(f"{name}: {least} to {most} characters, no backslash")
    groups = new.patient_name.strip().split("=")
    if (
        not new.patient_name.strip()
        or len(groups) > 3
        or any(len(g) > 64 for g in groups)
        or not _TEXT.match(new.patient_name)
    ):
        raise OrderError("patient_name: a DICOM person name, at most 3 groups of 64 characters")
    if not _MODALITY.match(new.modality.strip().upper()):
        raise OrderError("modality: a DICOM modality code such as CR, DX, US or CT")
    if new.birth_date and not _valid_date(new.birth_date):
        raise OrderError("birth_date: a date as YYYYMMDD")
    if new.sex and new.sex not in ("M", "F", "O"):
        raise OrderError("sex: M, F or O")
    start = new.scheduled_start
    if start.tzinfo is None:
        raise OrderError("scheduled_start: give the time with its UTC offset")
    if not 1900 < start.year < 9999:  # and converting to UTC cannot overflow
        raise OrderError("scheduled_start: a year from 1901 to 9998")


def _valid_date(value: str) -> bool:
    if not _DICOM_DATE.match(value):
        return False
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return False
    return True
