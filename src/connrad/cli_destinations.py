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
    help="Destinations: DICOM peers a site's data may be sent to (C-MOVE).",
    no_args_is_help=True,
)
console = Console()

_COLUMNS = ["id", "site_id", "name", "kind", "ae_title", "host", "port", "tls", "trusted", "paused"]


def _services() -> Services:
    return build_services(Settings())


@destination_app.command("create")
def create(
    site: Annotated[str, typer.Argument(help="Site code.")],
    name: str,
    ae_title: Annotated[str, typer.Option("--ae", help="The destination's AE title.")],
    host: Annotated[str, typer.Option(help="Host name or address.")],
    port: Annotated[int, typer.Option(help="TCP port.")],
    tls: Annotated[bool, typer.Option("--tls", help="Connect with DICOM TLS.")] = False,
    trusted: Annotated[
        bool, typer.Option("--trusted", help="May receive the site's identified data.")
    ] = False,
) -> None:
    """Register a DICOM destination (an AE) for a site's C-MOVE requests."""
    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            site_id = int(admin.site_by_code(conn, site)["id"])
            view = destinations.create_dicom(
                conn,
                site_id,
                name,
                ae_title=ae_title,
                host=host,
                port=port,
                tls=tls,
                trusted=trusted,
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
