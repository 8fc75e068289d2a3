"""Orders API: schedule imaging for a site's patients, list and move them on.

Scheduling is for the site's own people (clinic staff, site administrators) and for
administrators on a site's behalf; the patient's identity is sealed at once. Lists show
identities only to callers allowed to re-identify the order's site; everyone else sees the
scheduling facts alone. An order of a site the caller may not schedule for answers 404.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from connrad.access import Access, SearchCaller
from connrad.audit.http import record
from connrad.db.transaction import write_transaction
from connrad.dicomweb.deps import ServicesDep
from connrad.identity import admin
from connrad.identity.authenticate import AuthError
from connrad.identity.caller import Caller
from connrad.identity.policy import Action, allows, site_scope
from connrad.orders import service
from connrad.orders.service import NewOrder, OrderError, Procedure, Status
from connrad.services import Services

router = APIRouter(prefix="/api/orders", tags=["orders"])

MAX_ID = 2**63 - 1
OrderId = Annotated[int, Path(ge=1, le=MAX_ID)]


class _Scheduling(Access):
    """Signed in, and allowed to schedule for some site (:func:`service.may_schedule`)."""

    def __init__(self) -> None:
        super().__init__(None, signed_in=True)

    def __repr__(self) -> str:
        return "Access(schedule)"

    def resolve(self, request: Request) -> Caller:
        caller = super().resolve(request)
        if not service.may_schedule(caller):
            request.state.denied_action = "schedule"
            raise AuthError(403, "not permitted")
        return caller


ScheduleCaller = Annotated[Caller, Depends(_Scheduling())]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderIn(_Body):
    site_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Required for administrators; else the home site."
    )
    patient_id: str = Field(min_length=1, max_length=64)
    issuer: str | None = Field(None, max_length=64, description="Issuer of Patient ID")
    patient_name: str = Field(
        min_length=1, max_length=194, description='DICOM form, e.g. "홍^길동" or "Hong^Gildong"'
    )
    birth_date: date | None = None
    sex: Literal["M", "F", "O"] | None = None
    accession_number: str = Field(min_length=1, max_length=16)
    modality: str = Field(min_length=1, max_length=16, description="e.g. CR, DX, US, CT")
    scheduled_station_ae: str | None = Field(None, min_length=1, max_length=16)
    scheduled_start: AwareDatetime = Field(description="ISO 8601 with its UTC offset")
    procedure_code: str = Field(min_length=1, max_length=16)
    procedure_meaning: str = Field(min_length=1, max_length=64)
    procedure_scheme: str = Field("99LOCAL", min_length=1, max_length=16)
    requested_procedure_id: str | None = Field(None, min_length=1, max_length=16)
    reason: str | None = Field(None, max_length=64)

    def new_order(self) -> NewOrder:
        return NewOrder(
            patient_id=self.patient_id,
            patient_name=self.patient_name,
            accession_number=self.accession_number,
            modality=self.modality,
            scheduled_start=self.scheduled_start,
            procedure=Procedure(self.procedure_code, self.procedure_meaning, self.procedure_scheme),
            issuer=self.issuer,
            birth_date=self.birth_date.isoformat().replace("-", "") if self.birth_date else None,
            sex=self.sex,
            station_ae=self.scheduled_station_ae,
            requested_procedure_id=self.requested_procedure_id,
            reason=self.reason,
        )


class OrderPatch(_Body):
    status: Status


@router.post("", status_code=201, summary="Schedule an imaging order for a site's patient")
def create_order(
    body: OrderIn, request: Request, services: ServicesDep, caller: ScheduleCaller
) -> dict[str, Any]:
    site_id = body.site_id if body.site_id is not None else caller.site_id
    if site_id is None:
        raise AuthError(400, "give the site_id to schedule for")
    if not service.may_schedule(caller, site_id) or not _site_exists(services, site_id):
        raise AuthError(404, "site not found")  # the same answer for both
    try:
        ring = service.keyring(services.site_keys, site_id)
        with write_transaction(services.engine) as conn:
            order = service.create(conn, ring, body.new_order())
    except OrderError as exc:
        _refuse(services, request, caller, "create", exc, site_id)
    record(
        services,
        request,
        caller,
        action="create",
        resource="order",
        outcome=200,
        site_id=site_id,
        detail={"id": order.id},
    )
    return _shown(order, caller)


@router.get("", summary="Orders of the caller's sites, earliest first")
def list_orders(
    request: Request,
    services: ServicesDep,
    caller: SearchCaller,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    def keys_of(site_id: int) -> dict[int, bytes] | None:
        return services.site_keys.all(site_id) if _reveals(caller, site_id) else None

    with services.engine.connect() as conn:
        found = service.list_orders(
            conn, site_scope(caller, Action.SEARCH), keys_of, status=status, limit=limit
        )
    record(
        services,
        request,
        caller,
        action="search",
        resource="orders",
        outcome=200,
        detail={"orders": len(found), "identities": sum(o.identity is not None for o in found)},
    )
    return [o.as_json() for o in found]


@router.patch("/{order_id}", summary="Move an order on: in-progress, completed, cancelled")
def update_order(
    order_id: OrderId,
    body: OrderPatch,
    request: Request,
    services: ServicesDep,
    caller: ScheduleCaller,
) -> dict[str, Any]:
    with services.engine.connect() as conn:
        site_id = service.site_of(conn, order_id)
    if site_id is None or not service.may_schedule(caller, site_id):
        _refuse(services, request, caller, "update", OrderError("order not found", 404))
    keys = services.site_keys.all(site_id) if _reveals(caller, site_id) else None
    try:
        with write_transaction(services.engine) as conn:
            service.set_status(conn, order_id, body.status)
            order = service.get(conn, order_id, keys)
    except OrderError as exc:
        _refuse(services, request, caller, "update", exc, site_id)
    record(
        services,
        request,
        caller,
        action="update",
        resource="order",
        outcome=200,
        site_id=site_id,
        detail={"id": order_id, "status": body.status.value},
    )
    return _shown(order, caller)


def _site_exists(services: Services, site_id: int) -> bool:
    try:
        with services.engine.connect() as conn:
            admin.get_site(conn, site_id)
    except admin.AdminError:
        return False
    return True


def _reveals(caller: Caller, site_id: int) -> bool:
    return allows(caller, Action.REIDENTIFY, site_id)


def _shown(order: service.Order, caller: Caller) -> dict[str, Any]:
    view = order.as_json()
    if not _reveals(caller, order.site_id):
        view["identity"] = None  # an administrator scheduling on a site's behalf
    return view


def _refuse(
    services: Services,
    request: Request,
    caller: Caller,
    action: str,
    exc: OrderError,
    site_id: int | None = None,
) -> NoReturn:
    record(
        services,
        request,
        caller,
        action=action,
        resource="order",
        outcome=exc.status,
        site_id=site_id,
    )
    request.state.refusal_audited = True
    raise AuthError(exc.status, str(exc)) from None
