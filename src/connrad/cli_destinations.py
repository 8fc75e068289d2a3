"""`connrad admin destination create|ls`: the peers a site's data may be sent to.

Self-contained (cli_admin adds this app), so the two modules never import each other.
Every change is audited as ``system:cli``, like the other admin commands.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connrad.audit.log import AuditRecord
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.routing import destinations
from connrad.services import Services, build_services
from connrad.settings import Settings

destination_app = typer.Typer(
    help="Destinations: the PACS and peers a site's data may be sent to (backup, C-MOVE).",
    no_args_is_help=True,
)
console = Console()

_COLUMNS = [
    "id",
    "site_id",
    "name",
    "kind",
    "ae_title",
    "host",
    "port",
    "url",
    "trusted",
    "paused",
]


def _services() -> Services:
    return build_services(Settings())


@destination_app.command("create")
def create(
    site: Annotated[str, typer.Argument(help="Site code.")],
    name: str,
    ae_title: Annotated[str | None, typer.Option("--ae", help="DICOM: the AE title.")] = None,
    host: Annotated[str | None, typer.Option(help="DICOM: host name or address.")] = None,
    port: Annotated[int | None, typer.Option(help="DICOM: TCP port.")] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Connect with DICOM TLS.")] = False,
    url: Annotated[str | None, typer.Option(help="DICOMweb: the service root URL.")] = None,
    auth: Annotated[str, typer.Option(help="DICOMweb: basic | bearer.")] = "",
    secret: Annotated[
        str, typer.Option(help="DICOMweb: user:password or the token.", envvar="CONNRAD_SECRET")
    ] = "",
    trusted: Annotated[
        bool, typer.Option("--trusted", help="The site's own PACS: receives identified data.")
    ] = False,
    backup: Annotated[
        bool, typer.Option("--backup/--no-backup", help="Back up every study of the site here.")
    ] = False,
) -> None:
    """Register a destination: DICOM (--ae --host --port) or DICOMweb (--url)."""
    if (url is None) == (ae_title is None or host is None or port is None):
        console.print("give either --url, or --ae, --host and --port", style="red")
        raise typer.Exit(1)
    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            site_id = int(admin.site_by_code(conn, site)["id"])
            if url is not None:
                view = destinations.create_dicomweb(
                    conn,
                    site_id,
                    name,
                    url=url,
                    auth_kind=auth,
                    auth_secret=secret,
                    trusted=trusted,
                    backup=backup,
                )
            else:
                assert ae_title is not None and host is not None and port is not None
                view = destinations.create_dicom(
                    conn,
                    site_id,
                    name,
                    ae_title=ae_title,
                    host=host,
                    port=port,
                    tls=tls,
                    trusted=trusted,
                    backup=backup,
                )
        services.audit.record(
            AuditRecord(
                actor="system:cli",
                source="cli",
                action="create",
                resource="destination",
                outcome=200,
                site_id=site_id,
                detail={"id": view["id"]},
            )
        )
    except admin.AdminError as exc:
        console.print(escape(str(exc)), style="red")  # quotes what was typed: never markup
        raise typer.Exit(1) from None
    finally:
        services.close()
    console.print(f"destination {escape(view['name'])} created (id {view['id']})")


@destination_app.command("ls")
def ls(
    site: Annotated[str | None, typer.Option(help="Only this site's (code).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List destinations."""
    services = _services()
    try:
        with services.engine.connect() as conn:
            site_ids = (
                None if site is None else frozenset({int(admin.site_by_code(conn, site)["id"])})
            )
            rows = destinations.list_for(conn, site_ids)
    except admin.AdminError as exc:
        console.print(escape(str(exc)), style="red")
        raise typer.Exit(1) from None
    finally:
        services.close()
    if as_json:
        print(json.dumps([admin.as_json(r) for r in rows], ensure_ascii=False, indent=1))
        return
    table = Table(*_COLUMNS)
    for row in rows:
        table.add_row(*("" if row[c] is None else escape(str(row[c])) for c in _COLUMNS))
    console.print(table)


def _audited(services: Services, action: str, site_id: int, detail: dict[str, object]) -> None:
    services.audit.record(
        AuditRecord(
            actor="system:cli",
            source="cli",
            action=action,
            resource="destination",
            outcome=200,
            site_id=site_id,
            detail=detail,
        )
    )


@destination_app.command("test")
def test(destination_id: int) -> None:
    """C-ECHO a DICOM destination, or probe a DICOMweb one (QIDO-RS)."""
    from connrad.routing.senders.base import probe

    services = _services()
    try:
        with services.engine.connect() as conn:
            spec = destinations.spec_of(conn, destination_id)
        ok, detail = probe(spec, calling_ae=services.settings.ae_title)
        _audited(services, "execute", spec.site_id, {"id": destination_id, "ok": ok})
    except admin.AdminError as exc:
        console.print(escape(str(exc)), style="red")
        raise typer.Exit(1) from None
    finally:
        services.close()
    console.print(f"{'ok' if ok else 'failed'}: {escape(detail)}", style=None if ok else "red")
    if not ok:
        raise typer.Exit(1)


def _set_paused(destination_id: int, paused: bool) -> None:
    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            view = destinations.set_paused(conn, destination_id, paused)
        _audited(services, "update", int(view["site_id"]), {"id": destination_id, "paused": paused})
    except admin.AdminError as exc:
        console.print(escape(str(exc)), style="red")
        raise typer.Exit(1) from None
    finally:
        services.close()
    console.print(f"destination {destination_id} {'paused' if paused else 'resumed'}")


@destination_app.command("pause")
def pause(destination_id: int) -> None:
    """Send nothing to a destination until it is resumed (deliveries wait)."""
    _set_paused(destination_id, True)


@destination_app.command("resume")
def resume(destination_id: int) -> None:
    """Resume a paused destination (and close its circuit breaker)."""
    _set_paused(destination_id, False)


@destination_app.command("rule")
def rule(
    destination_id: int,
    modality: Annotated[str, typer.Option(help="Only this modality (empty: every one).")] = "",
    qc: Annotated[str, typer.Option(help="any | checked | passed")] = "any",
) -> None:
    """Add a routing rule: what of the destination's site is sent there."""
    from connrad.routing import rules

    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            view = rules.create(conn, destination_id, modality=modality, qc=qc)
        _audited(services, "create", int(view["site_id"]), {"rule": view["id"]})
    except admin.AdminError as exc:
        console.print(escape(str(exc)), style="red")
        raise typer.Exit(1) from None
    finally:
        services.close()
    console.print(f"rule {view['id']} added")
