"""The `connrad` command line."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from connrad.cli_admin import admin_app, print_demo_viewer_key, print_first_admin
from connrad.cli_deid import deid
from connrad.cli_orders import orders_app
from connrad.cli_queue import queue_app
from connrad.cli_vault import vault_app
from connrad.settings import Settings

if TYPE_CHECKING:
    from connrad.dimse.server import DimseServer
    from connrad.services import Services

app = typer.Typer(help="connrad: Connected Radiology, a cloud imaging hub.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.")
app.add_typer(db_app, name="db")
audit_app = typer.Typer(help="The audit trail.")
app.add_typer(audit_app, name="audit")
app.add_typer(admin_app, name="admin")
app.add_typer(vault_app, name="vault")
app.add_typer(orders_app, name="orders")
app.add_typer(queue_app, name="queue")
app.command("deid")(deid)
console = Console()


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request line at INFO: DICOMweb paths carry study and instance UIDs.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    demo: Annotated[bool | None, typer.Option(help="Load demo studies on first start.")] = None,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run the HTTP API (DICOMweb) with in-process job workers."""
    import uvicorn

    from connrad.app import create_app
    from connrad.services import build_services

    _logging(log_level)
    settings = Settings()
    services = build_services(settings, recover=True)
    print_first_admin(services)
    bind_host, bind_port = host or settings.http_host, port or settings.http_port
    scheme = "https" if settings.tls else "http"
    if demo if demo is not None else settings.demo_data:
        from connrad.demo.load import load_demo_if_empty

        loaded = load_demo_if_empty(services)
        if loaded:
            console.print(f"[green]Loaded {loaded} demo instances.[/green]")
            print_demo_viewer_key(services, f"{scheme}://{bind_host}:{bind_port}")
    workers = settings.effective_http_workers
    dimse = _start_dimse(services, bind_host)
    tls = {"ssl_certfile": settings.tls_certfile, "ssl_keyfile": settings.tls_keyfile}
    console.print(
        f"connrad on {scheme}://{bind_host}:{bind_port}  (DICOMweb: /dicomweb, API docs: "
        f"/api/docs)  data: {settings.data_dir}  workers: {workers}"
    )
    if workers == 1:
        uvicorn.run(
            create_app(settings, services),
            host=bind_host,
            port=bind_port,
            log_level=log_level,
            access_log=False,
            **tls,
        )
        return
    if dimse is None:
        services.close()
    # Worker processes read the same environment; the parent supervises (and serves DIMSE).
    uvicorn.run(
        "connrad.app:app_from_environment",
        factory=True,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level=log_level,
        access_log=False,
        **tls,
    )


def _start_dimse(services: Services, host: str) -> DimseServer | None:
    from connrad.dimse.server import DimseServer

    settings = services.settings
    if not settings.dimse_port:
        return None
    server = DimseServer(services)
    port = server.start(host, settings.dimse_port)
    console.print(f"DICOM: {settings.ae_title} on {host}:{port}")
    return server


@app.command()
def dimse(log_level: Annotated[str, typer.Option()] = "info") -> None:
    """Run only the DICOM association acceptor (DIMSE door)."""
    import time

    from connrad.services import build_services

    _logging(log_level)
    settings = Settings()
    server = _start_dimse(build_services(settings), settings.http_host)
    if server is None:
        console.print("[red]CONNRAD_DIMSE_PORT is 0: the DIMSE door is off[/red]")
        raise typer.Exit(1)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


@app.command()
def worker(log_level: Annotated[str, typer.Option()] = "info") -> None:
    """Run job workers and backup senders in this process (several may run at once)."""
    from connrad.services import build_services

    _logging(log_level)
    services = build_services(Settings())
    senders = services.backup_workers()
    with contextlib.suppress(KeyboardInterrupt):
        services.worker().run_forever()
    for sender in senders:
        sender.stop()


@app.command()
def demo() -> None:
    """Load the generated demo studies (when the archive is empty)."""
    from connrad.demo.load import load_demo_if_empty
    from connrad.services import build_services

    services = build_services(Settings())
    print_first_admin(services)
    loaded = load_demo_if_empty(services)
    console.print(f"Loaded {loaded} demo instances." if loaded else "Archive not empty.")
    if loaded:
        settings = services.settings
        print_demo_viewer_key(services, f"http://{settings.http_host}:{settings.http_port}")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION."""
    from connrad.db.engine import make_engine
    from connrad.db.migrate import upgrade

    upgrade(make_engine(Settings().effective_database_url), revision)
    console.print("database is at", revision)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 if it is broken."""
    from connrad.audit.log import verify
    from connrad.db.engine import make_engine

    result = verify(make_engine(Settings().effective_database_url))
    if result.intact:
        console.print(f"[green]audit trail intact: {result.events} events[/green]")
        return
    console.print(f"[red]audit trail broken at event {result.first_broken}[/red]")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    since: Annotated[int, typer.Option(help="Only events after this sequence number.")] = 0,
) -> None:
    """Print audit events as RFC 5424 syslog messages."""
    from connrad.audit.syslog import export
    from connrad.db.engine import make_engine

    for line in export(make_engine(Settings().effective_database_url), since):
        print(line)


if __name__ == "__main__":
    app()
