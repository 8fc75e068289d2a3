"""`connrad admin ...`, run in-process on the test's database; what it makes works in the app."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from connrad.audit.models import AuditEvent
from connrad.cli import app
from connrad.cli_admin import print_first_admin
from connrad.services import Services
from connrad.settings import Settings
from tests.integration.api.test_auth import NEW_PASSWORD, sign_in

Cli = Callable[..., Result]
events_t = AuditEvent.__table__


@pytest.fixture
def cli(settings: Settings, services: Services) -> Cli:
    """Run `connrad admin <args>` against the test's data directory and database."""
    runner = CliRunner()
    env = {
        "CONNRAD_DATA_DIR": str(settings.data_dir),
        "CONNRAD_DATABASE_URL": settings.database_url,
        "COLUMNS": "200",  # no wrapped lines in tables and messages
    }

    def run(*args: str) -> Result:
        return runner.invoke(app, ["admin", *args], env=env)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def last_line(result: Result) -> str:
    return ok(result).strip().splitlines()[-1]


def listed(cli: Cli, what: str) -> list[dict[str, Any]]:
    return json.loads(ok(cli(what, "ls", "--json")))


def created_id(output: str) -> int:
    match = re.search(r"\(id (\d+)", output)
    assert match, output
    return int(match.group(1))


def test_sites(cli: Cli) -> None:
    assert "site north-clinic created" in ok(cli("site", "create", "north-clinic", "North clinic"))
    sites = {s["code"]: s for s in listed(cli, "site")}
    assert sites["north-clinic"]["name"] == "North clinic"
    assert sites["north-clinic"]["disabled"] is False
    table = ok(cli("site", "ls"))
    assert "north-clinic" in table and "North clinic" in table
    assert "disabled" in ok(cli("site", "disable", "north-clinic"))
    assert {s["code"]: s for s in listed(cli, "site")}["north-clinic"]["disabled"] is True
    ok(cli("site", "enable", "north-clinic"))
    assert {s["code"]: s for s in listed(cli, "site")}["north-clinic"]["disabled"] is False


def test_site_qc_policy(cli: Cli) -> None:
    ok(cli("site", "create", "east-clinic", "East clinic"))
    assert {s["code"]: s for s in listed(cli, "site")}["east-clinic"]["qc_policy"] == "quarantine"
    assert "QC accept" in ok(cli("site", "qc", "east-clinic", "accept"))
    assert {s["code"]: s for s in listed(cli, "site")}["east-clinic"]["qc_policy"] == "accept"
    refused = cli("site", "qc", "east-clinic", "ignore")
    assert refused.exit_code == 1 and "quarantine, accept" in refused.output


def test_device_key_authenticates_in_the_app(
    cli: Cli, anonymous_client: TestClient, services: Services
) -> None:
    output = ok(cli("device", "create", "local", "uploader", "--api"))
    assert "OAuth client_id dev-" in output
    device_id = created_id(output)
    key = last_line(cli("device", "key", str(device_id)))
    assert key.startswith("crk_")
    headers = {"Authorization": f"Bearer {key}"}
    assert anonymous_client.get("/dicomweb/studies", headers=headers).status_code == 200

    read_only = last_line(cli("device", "key", str(device_id), "--scope", "dicomweb.read"))
    assert read_only != key
    ok(cli("device", "revoke-key", str(device_id), "1"))
    assert anonymous_client.get("/dicomweb/studies", headers=headers).status_code == 401
    read_headers = {"Authorization": f"Bearer {read_only}"}
    assert anonymous_client.get("/dicomweb/studies", headers=read_headers).status_code == 200
    ok(cli("device", "disable", str(device_id)))
    assert anonymous_client.get("/dicomweb/studies", headers=read_headers).status_code == 401
    ok(cli("device", "enable", str(device_id)))
    assert anonymous_client.get("/dicomweb/studies", headers=read_headers).status_code == 200
    assert key not in ok(cli("device", "ls")) and key not in ok(cli("device", "ls", "--json"))


def test_dicom_device_with_hosts_and_scopes(cli: Cli) -> None:
    args = ["device", "create", "local", "CT scanner", "--ae", "CT_1", "--host", "10.0.0.5"]
    ok(cli(*args, "--host", "10.0.0.6", "--scope", "dicomweb.stow"))
    (device,) = listed(cli, "device")
    assert (device["name"], device["kind"], device["ae_title"]) == ("CT scanner", "dicom", "CT_1")
    assert device["hosts"] == ["10.0.0.5", "10.0.0.6"]
    assert device["scopes"] == ["dicomweb.stow"]


def test_device_jwks_from_a_file(cli: Cli, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    device_id = created_id(ok(cli("device", "create", "local", "backend", "--api")))
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    assert "keys registered" in ok(cli("device", "jwks", str(device_id), str(path)))


def test_user_one_time_password_signs_in(cli: Cli, anonymous_client: TestClient) -> None:
    one_time = last_line(
        cli("user", "create", "nurse", "--role", "clinic_staff", "--site", "local")
    )
    response = sign_in(anonymous_client, "nurse", one_time)
    assert response.status_code == 200
    assert response.json()["must_change_password"] is True
    anonymous_client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    change = {"current_password": one_time, "new_password": NEW_PASSWORD}
    assert anonymous_client.post("/api/auth/password", json=change).status_code == 200

    ok(cli("user", "disable", "nurse"))
    assert anonymous_client.get("/api/auth/me").status_code == 401
    assert sign_in(TestClient(anonymous_client.app), "nurse", NEW_PASSWORD).status_code == 401
    ok(cli("user", "enable", "nurse"))
    assert sign_in(TestClient(anonymous_client.app), "nurse", NEW_PASSWORD).status_code == 200
    reset = last_line(cli("user", "reset-password", "nurse"))
    assert sign_in(TestClient(anonymous_client.app), "nurse", NEW_PASSWORD).status_code == 401
    assert sign_in(TestClient(anonymous_client.app), "nurse", reset).status_code == 200
    assert one_time not in ok(cli("user", "ls")) and reset not in ok(cli("user", "ls", "--json"))


def test_user_grant(cli: Cli) -> None:
    ok(cli("site", "create", "north-clinic", "North clinic"))
    ok(cli("user", "create", "reader", "--role", "radiologist", "--name", "Dr Reader"))
    assert "reader reads for: north-clinic local" in ok(
        cli("user", "grant", "reader", "north-clinic", "local")
    )
    sites = {s["code"]: s["id"] for s in listed(cli, "site")}
    (reader,) = listed(cli, "user")
    assert reader["reading_sites"] == sorted([sites["north-clinic"], sites["local"]])
    ok(cli("user", "grant", "reader", "local"))
    assert listed(cli, "user")[0]["reading_sites"] == [sites["local"]]


def test_changes_are_audited_as_the_cli(cli: Cli, services: Services) -> None:
    ok(cli("site", "create", "north-clinic", "North clinic"))
    device_id = created_id(ok(cli("device", "create", "north-clinic", "uploader", "--api")))
    key = last_line(cli("device", "key", str(device_id)))
    one_time = last_line(
        cli("user", "create", "nurse", "--role", "clinic_staff", "--site", "local")
    )
    cli("site", "create", "north-clinic", "again")  # refused: not a change
    with services.engine.connect() as conn:
        recorded = [dict(r) for r in conn.execute(select(events_t)).mappings()]
    summary = [(e["actor"], e["source"], e["action"], e["resource"]) for e in recorded]
    assert summary == [
        ("system:cli", "cli", "create", "site"),
        ("system:cli", "cli", "create", "device"),
        ("system:cli", "cli", "create", "api_key"),
        ("system:cli", "cli", "create", "user"),
    ]
    assert recorded[1]["detail"] == {"id": device_id}
    assert key not in str(recorded) and one_time not in str(recorded)


def test_errors_exit_1_with_a_message(cli: Cli, tmp_path: Path) -> None:
    ok(cli("user", "create", "nurse", "--role", "clinic_staff", "--site", "local"))
    device_id = str(created_id(ok(cli("device", "create", "local", "ct", "--ae", "CT_1"))))
    # (arguments, part of the message)
    cases = [
        (["site", "create", "Bad Code", "x"], "site code"),
        (["site", "create", "local", "again"], "site 'local' exists"),
        (["site", "disable", "nowhere"], "site 'nowhere' not found"),
        (["device", "create", "nowhere", "x", "--api"], "site 'nowhere' not found"),
        (["device", "create", "local", "x"], "needs an AE title"),
        (["device", "create", "local", "x", "--ae", "CT_1"], "exists"),
        (["device", "create", "local", "x", "--api", "--scope", "all"], "unknown scopes: all"),
        (["device", "key", "999999"], "device not found"),
        (["device", "key", device_id, "--scope", "system/AuditEvent.rs"], "scopes beyond"),
        (["device", "key", device_id, "--days", "0"], "expiry"),
        (["device", "revoke-key", device_id, "999999"], "API key not found"),
        (["device", "jwks", device_id, str(tmp_path / "missing.json")], "cannot read"),
        (["user", "create", "x", "--role", "clinic_staff"], "belongs to a site"),
        (["user", "create", "nurse", "--role", "radiologist"], "user 'nurse' exists"),
        (["user", "disable", "nobody"], "user 'nobody' not found"),
        (["user", "grant", "nurse", "local"], "reading rights are for radiologists"),
        (["user", "grant", "nobody", "local"], "user 'nobody' not found"),
        (["user", "disable", "[/red]"], "user '[/red]' not found"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), (args, result.exception)  # no crash
        assert message in result.output, (args, result.output)


def test_names_are_printed_as_given(cli: Cli) -> None:
    output = ok(cli("device", "create", "local", "scanner [/b] [bold]2", "--api"))
    assert "device scanner [/b] [bold]2 created" in output
    assert "scanner [/b] [bold]2" in ok(cli("device", "ls"))


def test_first_administrator_is_printed_once(
    services: Services, anonymous_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    print_first_admin(services)
    one_time = capsys.readouterr().out.strip().splitlines()[-1]
    print_first_admin(services)
    assert capsys.readouterr().out == ""
    assert sign_in(anonymous_client, "admin", one_time).json()["must_change_password"] is True
