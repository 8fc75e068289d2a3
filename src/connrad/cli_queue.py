"""`connrad queue ls|retry|purge`: the backup queues per destination."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connrad.audit.log import AuditRecord
from connrad.db.transaction import write_transaction
from connrad.routing import outbox
from connrad.services import Services, build_services
from connrad.settings import Settings

queue_app = typer.Typer(
    help="Backup queues: what waits for each destination.", no_args_is_help=True
)
console = Console()
_COLUMNS = [
    "destination_id",
    "name",
    "depth",
    "oldest_age_seconds",
    "unconfirmed",
    "confirmed",
    "dead",
    "failures",
    "circuit_open",
    "paused",
]


def _services() -> Services:
    return build_services(Settings())


@queue_app.command("ls")
def ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Depth, oldest waiting, unconfirmed, dead letters and health per destination."""
    services = _services()
    try:
        with services.engine.connect() as conn:
            rows = outbox.queue_stats(conn, None)
    finally:
        services.close()
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(*_COLUMNS)
    for row in rows:
        table.add_row(*("" if row[c] is None else escape(str(row[c])) for c in _COLUMNS))
    console.print(table)


def _change(destination_id: int, action: str, work: str) -> int:
    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            if work == "retry":
                count = outbox.resubmit_dead(conn, destination_id)
            else:
                count = outbox.purge(conn, destination_id)
        services.audit.record(
            AuditRecord(
                actor="system:cli",
                source="cli",
                action=action,
                resource="queue",
                outcome=200,
                detail={"destination": destination_id, work: count},
            )
        )
    finally:
        services.close()
    return count


@queue_app.command("retry")
def retry(destination_id: int) -> None:
    """Resubmit a destination's dead letters."""
    console.print(f"{_change(destination_id, 'update', 'retry')} resubmitted")


@queue_app.command("purge")
def purge(destination_id: int) -> None:
    """Delete a destination's dead letters."""
    console.print(f"{_change(destination_id, 'delete', 'purge')} purged")
