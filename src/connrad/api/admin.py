"""Administration API: sites, devices (with API keys and OAuth keys) and users.

Administrators manage everything; a site administrator manages the devices and users of
their own site. Objects of a site the caller may not manage answer 404, as if absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from connrad.access import ManageCaller, SystemCaller
from connrad.audit.http import record
from connrad.db.transaction import write_transaction
from connrad.dicomweb.deps import ServicesDep
from connrad.identity import admin
from connrad.identity.authenticate import AuthError
from connrad.identity.caller import Caller, Role
from connrad.identity.policy import Action, allows, site_scope
from connrad.services import Services

router = APIRouter(prefix="/api/admin", tags=["admin"])

MAX_ID = 2**63 - 1  # BIGINT: larger numbers cannot name a row; refuse them as bad input
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
T = TypeVar("T")

_SITE_ADMIN_ROLES = frozenset({Role.CLINIC_STAFF, Role.RADIOLOGIST, Role.SITE_ADMIN})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


DeidPolicy = Literal["identified", "pseudonymized", "anonymized"]
PixelPolicy = Literal["clean", "hold", "pass"]
QcPolicy = Literal["quarantine", "accept"]


class SiteIn(_Body):
    code: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=256)
    deid_policy: DeidPolicy = "pseudonymized"
    pixel_policy: PixelPolicy = "clean"
    qc_policy: QcPolicy = "quarantine"


class SitePatch(_Body):
    name: str | None = Field(None, min_length=1, max_length=256)
    disabled: bool | None = None
    deid_policy: DeidPolicy | None = None
    pixel_policy: PixelPolicy | None = None
    qc_policy: QcPolicy | None = None


class DeviceIn(_Body):
    site_id: BodyId
    name: str = Field(min_length=1, max_length=128)
    kind: Literal["dicom", "api"]
    ae_title: str | None = Field(None, min_length=1, max_length=16)
    hosts: list[str] = Field(default_factory=list, max_length=32)
    scopes: list[str] | None = Field(None, max_length=32)


class DevicePatch(_Body):
    disabled: bool | None = None
    hosts: list[str] | None = Field(None, max_length=32)
    scopes: list[str] | None = Field(None, max_length=32)


class KeyIn(_Body):
    scopes: list[str] | None = Field(None, max_length=32)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class Jwks(_Body):
    model_config = ConfigDict(extra="allow")
    keys: list[dict[str, Any]] = Field(min_length=1, max_length=16)


class UserIn(_Body):
    username: str = Field(min_length=1, max_length=64)
    role: Role
    site_id: BodyId | None = None
    display_name: str = Field("", max_length=256)


class UserPatch(_Body):
    disabled: bool | None = None
    display_name: str | None = Field(None, max_length=256)
    role: Role | None = None


class GrantsIn(_Body):
    site_ids: list[BodyId] = Field(max_length=1000)


def _change(
    services: Services,
    request: Request,
    caller: Caller,
    resource: str,
    action: str,
    work: Callable[[Connection], T],
    site_id: Callable[[T], int | None] = lambda _: None,
) -> T:
    """Run ``work`` in one transaction and audit it, whether it succeeded or not."""
    try:
        with write_transaction(services.engine) as conn:
            result = work(conn)
    except admin.AdminError as exc:
        record(services, request, caller, action=action, resource=resource, outcome=exc.status)
        request.state.refusal_audited = True
        raise AuthError(exc.status, str(exc)) from None
    record(
        services,
        request,
        caller,
        action=action,
        resource=resource,
        outcome=200,
        site_id=site_id(result),
        detail=_ids(result),
    )
    return result


def _ids(result: Any) -> dict[str, Any]:
    view = result[0] if isinstance(result, tuple) else result
    return {"id": view["id"]} if isinstance(view, dict) and "id" in view else {}


def _own(caller: Caller, site_id: int | None, what: str) -> None:
    """404 for an object of a site the caller may not manage (its existence stays hidden).

    The answer is word for word the one for an ID that does not exist (``what`` not found).
    """
    managed = site_id is not None and allows(caller, Action.MANAGE, site_id)
    if not managed and not allows(caller, Action.MANAGE_SYSTEM):
        raise AuthError(404, f"{what} not found")


def _read(services: Services, work: Callable[[Connection], T]) -> T:
    try:
        with services.engine.connect() as conn:
            return work(conn)
    except admin.AdminError as exc:
        raise AuthError(exc.status, str(exc)) from None


# --- sites -------------------------------------------------------------------------------


@router.get("/sites", summary="Sites the caller manages")
def list_sites(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    scope = site_scope(caller, Action.MANAGE)
    return [admin.as_json(s) for s in _read(services, lambda c: admin.list_sites(c, scope))]


@router.post("/sites", status_code=201, summary="Create a site (administrators)")
def create_site(
    body: SiteIn, request: Request, services: ServicesDep, caller: SystemCaller
) -> dict[str, Any]:
    site = _change(
        services,
        request,
        caller,
        "site",
        "create",
        lambda c: admin.create_site(
            c, body.code, body.name, body.deid_policy, body.pixel_policy, body.qc_policy
        ),
        lambda s: s["id"],
    )
    return admin.as_json(site)


@router.patch("/sites/{site_id}", summary="Rename, disable or enable a site (administrators)")
def update_site(
    site_id: DbId, body: SitePatch, request: Request, services: ServicesDep, caller: SystemCaller
) -> dict[str, Any]:
    site = _change(
        services,
        request,
        caller,
        "site",
        "update",
        lambda c: admin.update_site(
            c,
            site_id,
            name=body.name,
            disabled=body.disabled,
            deid_policy=body.deid_policy,
            pixel_policy=body.pixel_policy,
            qc_policy=body.qc_policy,
        ),
        lambda s: s["id"],
    )
    if services.ingest.deidentifier is not None:
        services.ingest.deidentifier.forget(site_id)
    return admin.as_json(site)


# --- devices -----------------------------------------------------------------------------


@router.get("/devices", summary="Devices of the sites the caller manages")
def list_devices(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    scope = site_scope(caller, Action.MANAGE)
    return [admin.as_json(d) for d in _read(services, lambda c: admin.list_devices(c, scope))]


@router.post("/devices", status_code=201, summary="Register a DICOM modality or an API client")
def create_device(
    body: DeviceIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _own(caller, body.site_id, "site")
    device = _change(
        services,
        request,
        caller,
        "device",
        "create",
        lambda c: admin.create_device(
            c,
            body.site_id,
            body.name,
            body.kind,
            ae_title=body.ae_title,
            hosts=body.hosts,
            device_scopes=body.scopes,
        ),
        lambda d: d["site_id"],
    )
    return admin.as_json(device)


def _device(services: Services, caller: Caller, device_id: int) -> dict[str, Any]:
    device = _read(services, lambda c: admin.get_device(c, device_id))
    _own(caller, device["site_id"], "device")
    return device


@router.get("/devices/{device_id}", summary="One device")
def get_device(device_id: DbId, services: ServicesDep, caller: ManageCaller) -> dict[str, Any]:
    return admin.as_json(_device(services, caller, device_id))


@router.patch("/devices/{device_id}", summary="Disable, enable or change a device")
def update_device(
    device_id: DbId,
    body: DevicePatch,
    request: Request,
    services: ServicesDep,
    caller: ManageCaller,
) -> dict[str, Any]:
    _device(services, caller, device_id)
    device = _change(
        services,
        request,
        caller,
        "device",
        "update",
        lambda c: admin.update_device(
            c, device_id, disabled=body.disabled, hosts=body.hosts, device_scopes=body.scopes
        ),
        lambda d: d["site_id"],
    )
    return admin.as_json(device)


@router.put("/devices/{device_id}/jwks", summary="Register an API client's public keys")
def put_jwks(
    device_id: DbId, body: Jwks, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _device(services, caller, device_id)
    device = _change(
        services,
        request,
        caller,
        "device",
        "update",
        lambda c: admin.set_device_jwks(c, device_id, body.model_dump()),
        lambda d: d["site_id"],
    )
    return admin.as_json(device)


@router.get("/devices/{device_id}/api-keys", summary="A device's API keys (never the secrets)")
def list_keys(device_id: DbId, services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    _device(services, caller, device_id)
    return [admin.as_json(k) for k in _read(services, lambda c: admin.list_api_keys(c, device_id))]


@router.post(
    "/devices/{device_id}/api-keys", status_code=201, summary="New API key, shown this once"
)
def create_key(
    device_id: DbId, body: KeyIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    device = _device(services, caller, device_id)
    view, secret = _change(
        services,
        request,
        caller,
        "api_key",
        "create",
        lambda c: admin.issue_api_key(c, device_id, body.scopes, body.expires_in_days),
        lambda _: device["site_id"],
    )
    return {**admin.as_json(view), "api_key": secret}


@router.delete("/devices/{device_id}/api-keys/{key_id}", summary="Revoke an API key")
def revoke_key(
    device_id: DbId, key_id: DbId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    device = _device(services, caller, device_id)
    view = _change(
        services,
        request,
        caller,
        "api_key",
        "delete",
        lambda c: admin.revoke_api_key(c, device_id, key_id),
        lambda _: device["site_id"],
    )
    return admin.as_json(view)


# --- users -------------------------------------------------------------------------------


@router.get("/users", summary="Users of the sites the caller manages")
def list_users(services: ServicesDep, caller: ManageCaller) -> list[dict[str, Any]]:
    scope = site_scope(caller, Action.MANAGE)
    return [admin.as_json(u) for u in _read(services, lambda c: admin.list_users(c, scope))]


def _check_role(caller: Caller, role: Role | None) -> None:
    if (
        role is not None
        and role not in _SITE_ADMIN_ROLES
        and not allows(caller, Action.MANAGE_SYSTEM)
    ):
        raise AuthError(403, f"only administrators grant the role {role}")


@router.post("/users", status_code=201, summary="New account with a one-time password")
def create_user(
    body: UserIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _check_role(caller, body.role)
    _own(caller, body.site_id, "site")
    view, secret = _change(
        services,
        request,
        caller,
        "user",
        "create",
        lambda c: admin.create_user(c, body.username, body.role, body.site_id, body.display_name),
        lambda v: v[0]["site_id"],
    )
    return {**admin.as_json(view), "one_time_password": secret}


def _user(services: Services, caller: Caller, user_id: int) -> dict[str, Any]:
    user = _read(services, lambda c: admin.get_user(c, user_id))
    _own(caller, user["site_id"], "user")
    _check_role(caller, Role(user["role"]))
    return user


@router.get("/users/{user_id}", summary="One account")
def get_user(user_id: DbId, services: ServicesDep, caller: ManageCaller) -> dict[str, Any]:
    return admin.as_json(_user(services, caller, user_id))


@router.patch("/users/{user_id}", summary="Disable, enable, rename or change the role")
def update_user(
    user_id: DbId, body: UserPatch, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _user(services, caller, user_id)
    _check_role(caller, body.role)
    if body.disabled and caller.user_id == user_id:
        raise AuthError(400, "you cannot disable your own account")
    view = _change(
        services,
        request,
        caller,
        "user",
        "update",
        lambda c: admin.update_user(
            c, user_id, disabled=body.disabled, display_name=body.display_name, role=body.role
        ),
        lambda v: v["site_id"],
    )
    return admin.as_json(view)


@router.post("/users/{user_id}/password-reset", summary="New one-time password, shown once")
def reset_password(
    user_id: DbId, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    _user(services, caller, user_id)
    view, secret = _change(
        services,
        request,
        caller,
        "user",
        "update",
        lambda c: admin.reset_password(c, user_id),
        lambda v: v[0]["site_id"],
    )
    return {**admin.as_json(view), "one_time_password": secret}


@router.put("/users/{user_id}/reading-grants", summary="Sites a radiologist reads for")
def set_grants(
    user_id: DbId, body: GrantsIn, request: Request, services: ServicesDep, caller: ManageCaller
) -> dict[str, Any]:
    user = _user(services, caller, user_id)
    if not all(allows(caller, Action.MANAGE, s) for s in body.site_ids):
        raise AuthError(403, "reading rights only for sites you manage")
    # The list replaces the grants on the sites the caller manages; grants on other sites
    # (given by an administrator) are not the caller's to remove.
    kept = [s for s in user["reading_sites"] if not allows(caller, Action.MANAGE, s)]
    view = _change(
        services,
        request,
        caller,
        "user",
        "update",
        lambda c: admin.set_reading_grants(c, user_id, [*body.site_ids, *kept]),
        lambda v: v["site_id"],
    )
    return admin.as_json(view)
