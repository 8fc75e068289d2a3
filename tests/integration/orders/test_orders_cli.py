"""`connrad orders add|ls|status` on the test's database; what it schedules is in the worklist."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from connrad.audit.models import AuditEvent
from connrad.cli_orders import orders_app
from connrad.orders import service
from connrad.services import Services
from connrad.settings import Settings

Cli = Callable[..., Result]


@pytest.fixture
def cli(settings: Settings, services: Services) -> Cli:
    env = {
        "CONNRAD_DATA_DIR": str(settings.data_dir),
        "CONNRAD_DATABASE_URL": settings.database_url,
        "COLUMNS": "250",
    }
    return lambda *args: CliRunner().invoke(orders_app, list(args), env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


ADD = (
    "add",
    "local",
    "--patient-id",
    "P-HONG-77",
    "--name",
    "홍^길동",
    "--accession",
    "ACC-CLI-1",
    "--modality",
    "dx",
    "--at",
    "2026-12-01T09:30+09:00",
    "--code",
    "CXR-PA",
    "--meaning",
    "흉부 X선 정면",
    "--birth-date",
    "1980-01-01",
    "--station",
    "PORTCR",
)


def test_add_then_list_with_and_without_identities(cli: Cli, services: Services) -> None:
    assert "order 1 scheduled at local: DX 2026-12-01T09:30+09:00" in ok(cli(*ADD))

    (plain,) = json.loads(ok(cli("ls", "local", "--json")))
    assert plain["identity"] is None
    assert (plain["modality"], plain["scheduled_station_ae"]) == ("DX", "PORTCR")
    assert plain["procedure"]["meaning"] == "흉부 X선 정면"
    (opened,) = json.loads(ok(cli("ls", "local", "--identities", "--json")))
    assert opened["identity"]["patient_name"] == "홍^길동"
    assert opened["identity"]["birth_date"] == "19800101"
    assert "홍^길동" in ok(cli("ls", "local", "--identities"))
    assert "홍" not in ok(cli("ls", "local"))

    assert "order 1: cancelled" in ok(cli("status", "1", "cancelled"))
    assert json.loads(ok(cli("ls", "local", "--status", "scheduled", "--json"))) == []
    keys = services.site_keys.all(services.local_site_id)
    with services.engine.connect() as conn:
        assert service.scheduled(conn, services.local_site_id, keys, None, None) == []

    events = AuditEvent.__table__
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.actor, events.c.action, events.c.resource)
            .where(events.c.resource.in_(["order", "orders"]))
            .order_by(events.c.sequence)
        ).all()
    assert [r.action for r in rows] == [
        "create",
        "search",
        "reidentify",
        "reidentify",
        "search",
        "update",
        "search",
    ]
    assert {r.actor for r in rows} == {"system:cli"}


def test_refusals(cli: Cli) -> None:
    ok(cli(*ADD))
    duplicate = cli(*ADD)
    assert duplicate.exit_code == 1 and "accession number exists" in duplicate.output
    assert cli("ls", "nowhere").exit_code == 1
    assert cli("add", "nowhere", *ADD[2:]).exit_code == 1
    assert cli(*ADD[:-4], "--birth-date", "1980").exit_code == 1
    ok(cli("status", "1", "completed"))
    back = cli("status", "1", "scheduled")
    assert back.exit_code == 1 and "cannot become" in back.output
    missing = cli("status", "99", "cancelled")
    assert missing.exit_code == 1 and "order not found" in missing.output
