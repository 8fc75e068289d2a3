"""`connrad orders add|ls|status`: schedule imaging for a site's modalities at the console.

The same service as the orders API, audited as ``system:cli``. ``ls`` shows the scheduling
facts; ``--identities`` opens the sealed patient identities too, audited as a
re-identification.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connrad.audit.log import AuditRecord
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.orders import service
from connrad.orders.service import NewOrder, OrderError, Procedure, Status
from connrad.services import Services
from connrad.settings import Settings

orders_app = typer.Typer(help="Imaging orders: the modality worklist.", no_args_is_help=True)
console = Console()

SiteArg = Annotated[str, typer.Argument(help="Site code.")]


def _services() -> Services:
    from connrad.services import build_services

    return build_services(Settings())


def _fail(message: str) -> NoReturn:
    console.print(escape(message), style="red")
    raise typer.Exit(1) from None


def _audit(
    services: Services, action: str, resource: str, site_id: int, detail: dict[str, Any]
) -> None:
    services.audit.record(
        AuditRecord(
            actor="system:cli",
            source="cli",
            action=action,
            resource=resource,
            outcome=200,
            site_id=site_id,
            detail=detail,
        )
    )


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        _fail("--at: an ISO 8601 date and time, e.g. 2026-11-28T09:30+09:00")
    # Without an offset, the operator means this computer's local time.
    return when if when.tzinfo is not None else when.astimezone()


def _date(text: str | None) -> str | None:
    if not text:
        return None
    digits = text.replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        _fail("--birth-date: YYYY-MM-DD or YYYYMMDD")
    return digits


@orders_app.command("add")
def add(
    site: SiteArg,
    patient_id: Annotated[str, typer.Option("--patient-id", help="The clinic's Patient ID.")],
    name: Annotated[str, typer.Option("--name", help='DICOM person name, e.g. "홍^길동".')],
    accession: Annotated[str, typer.Option("--accession", help="Accession number.")],
    modality: Annotated[str, typer.Option("--modality", help="CR, DX, US, CT ...")],
    at: Annotated[str, typer.Option("--at", help="Start, ISO 8601 (local time if no offset).")],
    code: Annotated[str, typer.Option("--code", help="Procedure code value.")],
    meaning: Annotated[str, typer.Option("--meaning", help="Procedure description.")],
    scheme: Annotated[str, typer.Option("--scheme", help="Coding scheme.")] = "99LOCAL",
    birth_date: Annotated[str | None, typer.Option("--birth-date")] = None,
    sex: Annotated[str | None, typer.Option("--sex", help="M, F or O.")] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="Issuer of Patient ID.")] = None,
    station: Annotated[str | None, typer.Option("--station", help="Modality AE title.")] = None,
    requested_procedure_id: Annotated[str | None, typer.Option("--procedure-id")] = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Schedule an order at SITE; its modalities find it in their worklist."""
    new = NewOrder(
        patient_id=patient_id,
        patient_name=name,
        accession_number=accession,
        modality=modality,
        scheduled_start=_when(at),
        procedure=Procedure(code, meaning, scheme),
        issuer=issuer,
        birth_date=_date(birth_date),
        sex=sex,
        station_ae=station,
        requested_procedure_id=requested_procedure_id,
        reason=reason,
    )
    services = _services()
    try:
        with services.engine.connect() as conn:
            site_id = int(admin.site_by_code(conn, site)["id"])
        ring = service.keyring(services.site_keys, site_id)
        with write_transaction(services.engine) as conn:
            order = service.create(conn, ring, new)
        _audit(services, "create", "order", site_id, {"id": order.id})
    except (admin.AdminError, OrderError) as exc:
        _fail(str(exc))
    finally:
        services.close()
    start = order.scheduled_start.isoformat(timespec="minutes")
    console.print(f"order {order.id} scheduled at {escape(site)}: {order.modality} {start}")


@orders_app.command("ls")
def ls(
    site: SiteArg,
    status: Annotated[Status | None, typer.Option("--status")] = None,
    identities: Annotated[
        bool, typer.Option("--identities", help="Open the patient identities (audited).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 100,
) -> None:
    """List SITE's orders, earliest first."""
    services = _services()
    try:
        with services.engine.connect() as conn:
            site_id = int(admin.site_by_code(conn, site)["id"])
            keys = services.site_keys.all(site_id) if identities else None
            found = service.list_orders(
                conn, frozenset({site_id}), lambda _: keys, status=status, limit=limit
            )
        action = "reidentify" if identities else "search"
        _audit(services, action, "orders", site_id, {"orders": len(found)})
    except admin.AdminError as exc:
        _fail(str(exc))
    finally:
        services.close()
    if as_json:
        print(json.dumps([o.as_json() for o in found], ensure_ascii=False, indent=1))
        return
    columns = ["id", "status", "modality", "station", "start", "procedure"]
    if identities:
        columns += ["patient_id", "patient_name", "accession", "study_uid"]
    table = Table(*columns)
    for order in found:
        cells = [
            str(order.id),
            order.status.value,
            order.modality,
            order.station_ae or "",
            order.scheduled_start.isoformat(timespec="minutes"),
            order.procedure.meaning,
        ]
        if order.identity is not None:
            who = order.identity
            cells += [who.patient_id, who.patient_name, who.accession_number, who.study_uid]
        table.add_row(*(escape(c) for c in cells))
    console.print(table)


@orders_app.command("status")
def set_status(order_id: int, status: Status) -> None:
    """Move an order on: in-progress, completed or cancelled."""
    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            site_id = service.get(conn, order_id).site_id
            service.set_status(conn, order_id, status)
        _audit(services, "update", "order", site_id, {"id": order_id, "status": status.value})
    except OrderError as exc:
        _fail(str(exc))
    finally:
        services.close()
    console.print(f"order {order_id}: {status.value}")
