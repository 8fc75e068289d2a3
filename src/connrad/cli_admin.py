"""`connrad admin site|device|user ...`: the same operations as the admin API, for the
operator at the server's console. Every change is audited as ``system:cli``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection

from connrad.audit.log import AuditRecord
from connrad.cli_destinations import destination_app
from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.caller import Role
from connrad.services import Services
from connrad.settings import Settings

admin_app = typer.Typer(help="Sites, devices and users.", no_args_is_help=True)
site_app = typer.Typer(help="Sites (clinics, hospitals).", no_args_is_help=True)
device_app = typer.Typer(help="Devices: DICOM modalities and API clients.", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
admin_app.add_typer(site_app, name="site")
admin_app.add_typer(device_app, name="device")
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(destination_app, name="destination")
console = Console()
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _services() -> Services:
    from connrad.services import build_services

    return build_services(Settings())


def _change(resource: str, action: str, work: Callable[[Connection], T]) -> T:
    services = _services()
    try:
        with write_transaction(services.engine) as conn:
            result = work(conn)
        view = result[0] if isinstance(result, tuple) else result
        services.audit.record(
            AuditRecord(
                actor="system:cli",
                source="cli",
                action=action,
                resource=resource,
                outcome=200,
                site_id=view.get("site_id") if resource != "site" else view.get("id"),
                detail={"id": view.get("id")},
            )
        )
    except admin.AdminError as exc:
        _fail(str(exc))
    finally:
        services.close()
    return result


def _read(work: Callable[[Connection], T]) -> T:
    services = _services()
    try:
        with services.engine.connect() as conn:
            return work(conn)
    except admin.AdminError as exc:
        _fail(str(exc))
    finally:
        services.close()


def _fail(message: str) -> NoReturn:
    # Messages quote what the operator typed: print it as text, never as Rich markup.
    console.print(escape(message), style="red")
    raise typer.Exit(1) from None


def _show(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps([admin.as_json(r) for r in rows], ensure_ascii=False, indent=1))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return escape(" ".join(str(v) for v in value))
    return "" if value is None else escape(str(value))


def _site_id(conn: Connection, code: str) -> int:
    return int(admin.site_by_code(conn, code)["id"])


# --- sites -------------------------------------------------------------------------------


@site_app.command("create")
def site_create(code: str, name: str) -> None:
    """Create a site with a short CODE (e.g. ulleung-clinic) and a display NAME."""
    site = _change("site", "create", lambda c: admin.create_site(c, code, name))
    console.print(f"site {site['code']} created (id {site['id']})")


@site_app.command("policy")
def site_policy(
    code: str,
    policy: Annotated[str, typer.Argument(help="identified | pseudonymized | anonymized")],
) -> None:
    """Set what the cloud keeps of the site's patients' identity (applies to new uploads)."""
    _change("site", "update", lambda c: admin.update_site(c, _site_id(c, code), deid_policy=policy))
    console.print(f"site {code}: {policy}")


@site_app.command("pixels")
def site_pixels(
    code: str,
    policy: Annotated[str, typer.Argument(help="clean | hold | pass")],
) -> None:
    """Set what happens to images at risk of burned-in identity (applies to new uploads)."""
    _change(
        "site", "update", lambda c: admin.update_site(c, _site_id(c, code), pixel_policy=policy)
    )
    console.print(f"site {code}: pixels {policy}")


@site_app.command("qc")
def site_qc(
    code: str,
    policy: Annotated[str, typer.Argument(help="quarantine | accept")],
) -> None:
    """Set what happens to a study that fails quality control (applies to new checks)."""
    _change("site", "update", lambda c: admin.update_site(c, _site_id(c, code), qc_policy=policy))
    console.print(f"site {code}: QC {policy}")


@site_app.command("ls")
def site_ls(as_json: JsonOption = False) -> None:
    """List sites."""
    _show(
        _read(admin.list_sites),
        ["id", "code", "name", "deid_policy", "pixel_policy", "qc_policy", "disabled"],
        as_json,
    )


@site_app.command("disable")
def site_disable(code: str) -> None:
    """Disable a site: its users and devices can no longer sign in or send."""
    _change("site", "update", lambda c: admin.update_site(c, _site_id(c, code), disabled=True))
    console.print(f"site {code} disabled")


@site_app.command("enable")
def site_enable(code: str) -> None:
    _change("site", "update", lambda c: admin.update_site(c, _site_id(c, code), disabled=False))
    console.print(f"site {code} enabled")


# --- devices -----------------------------------------------------------------------------


@device_app.command("create")
def device_create(
    site: Annotated[str, typer.Argument(help="Site code.")],
    name: str,
    ae_title: Annotated[str | None, typer.Option("--ae", help="DICOM AE title.")] = None,
    host: Annotated[list[str] | None, typer.Option(help="Allowed address (repeat).")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Scope (repeat).")] = None,
    api: Annotated[bool, typer.Option("--api", help="An API client, not a modality.")] = False,
) -> None:
    """Register a DICOM modality (--ae) or an API client (--api) for a site."""
    device = _change(
        "device",
        "create",
        lambda c: admin.create_device(
            c,
            _site_id(c, site),
            name,
            "api" if api else "dicom",
            ae_title=ae_title,
            hosts=host or [],
            device_scopes=scope,
        ),
    )
    client = f", OAuth client_id {device['client_id']}" if device["client_id"] else ""
    console.print(f"device {escape(device['name'])} created (id {device['id']}{client})")


@device_app.command("ls")
def device_ls(as_json: JsonOption = False) -> None:
    """List devices."""
    rows = _read(lambda c: admin.list_devices(c, None))
    columns = ["id", "site_id", "name", "kind", "ae_title", "hosts", "scopes", "disabled"]
    _show(rows, columns, as_json)


@device_app.command("disable")
def device_disable(device_id: int) -> None:
    _change("device", "update", lambda c: admin.update_device(c, device_id, disabled=True))
    console.print(f"device {device_id} disabled")


@device_app.command("enable")
def device_enable(device_id: int) -> None:
    _change("device", "update", lambda c: admin.update_device(c, device_id, disabled=False))
    console.print(f"device {device_id} enabled")


@device_app.command("key")
def device_key(
    device_id: int,
    scope: Annotated[list[str] | None, typer.Option(help="Scope (repeat).")] = None,
    days: Annotated[int | None, typer.Option(help="Expires after this many days.")] = None,
) -> None:
    """Issue an API key; it is printed this once and stored only hashed."""
    view, secret = _change(
        "api_key", "create", lambda c: admin.issue_api_key(c, device_id, scope, days)
    )
    console.print(f"API key {view['id']} (scopes: {' '.join(view['scopes'])}):")
    print(secret)


@device_app.command("revoke-key")
def device_revoke_key(device_id: int, key_id: int) -> None:
    _change("api_key", "delete", lambda c: admin.revoke_api_key(c, device_id, key_id))
    console.print(f"API key {key_id} revoked")


@device_app.command("jwks")
def device_jwks(device_id: int, jwks_file: Path) -> None:
    """Register the public JWK Set an API client signs its OAuth assertions with."""
    try:
        jwks = json.loads(jwks_file.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read a JWK Set from {jwks_file}: {exc}")
    _change("device", "update", lambda c: admin.set_device_jwks(c, device_id, jwks))
    console.print(f"keys registered for device {device_id}")


# --- users -------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[Role, typer.Option(help="Role of the account.")],
    site: Annotated[str | None, typer.Option(help="Home site code.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create an account; its one-time password is printed this once."""
    view, secret = _change(
        "user",
        "create",
        lambda c: admin.create_user(c, username, role, _site_id(c, site) if site else None, name),
    )
    console.print(f"user {view['username']} created; one-time password:")
    print(secret)


@user_app.command("ls")
def user_ls(as_json: JsonOption = False) -> None:
    rows = _read(lambda c: admin.list_users(c, None))
    columns = ["id", "username", "role", "site_id", "reading_sites", "totp_enabled", "disabled"]
    _show(rows, columns, as_json)


def _user_id(conn: Connection, username: str) -> int:
    return int(admin.user_by_name(conn, username)["id"])


@user_app.command("disable")
def user_disable(username: str) -> None:
    _change("user", "update", lambda c: admin.update_user(c, _user_id(c, username), disabled=True))
    console.print(f"user {username} disabled")


@user_app.command("enable")
def user_enable(username: str) -> None:
    _change("user", "update", lambda c: admin.update_user(c, _user_id(c, username), disabled=False))
    console.print(f"user {username} enabled")


@user_app.command("reset-password")
def user_reset_password(username: str) -> None:
    """New one-time password (printed once); the account's sessions end."""
    _, secret = _change("user", "update", lambda c: admin.reset_password(c, _user_id(c, username)))
    console.print(f"new one-time password for {username}:")
    print(secret)


@user_app.command("grant")
def user_grant(username: str, sites: list[str]) -> None:
    """Set the sites a radiologist reads for (replaces the previous list)."""
    _change(
        "user",
        "update",
        lambda c: admin.set_reading_grants(
            c, _user_id(c, username), [_site_id(c, s) for s in sites]
        ),
    )
    console.print(f"{username} reads for: {' '.join(sites)}")


def print_first_admin(services: Services) -> None:
    """Create the first administrator on a new installation and show its password once."""
    with write_transaction(services.engine) as conn:
        secret = admin.ensure_first_admin(conn)
    if secret is not None:
        console.print(
            f"[bold]First administrator created.[/bold] Sign in as [bold]{admin.FIRST_ADMIN}"
            "[/bold] with this one-time password (shown only now; you will choose a new one):"
        )
        print(secret, flush=True)


def print_demo_viewer_key(services: Services, base_url: str) -> None:
    """On a demo installation, a read-only key for viewers and scripts, shown once."""
    with write_transaction(services.engine) as conn:
        existing = [d for d in admin.list_devices(conn, None) if d["name"] == "demo-viewer"]
        if existing:
            return
        device = admin.create_device(
            conn, services.local_site_id, "demo-viewer", "api", device_scopes=["dicomweb.read"]
        )
        _, key = admin.issue_api_key(conn, device["id"])
    console.print(
        "[bold]Demo viewer key[/bold] (read-only, shown only now), e.g. for OHIF or curl:"
    )
    print(f"  curl -H 'Authorization: Bearer {key}' {base_url}/dicomweb/studies", flush=True)
