"""A site's DICOM destinations: registered once, found by AE title for that site only."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.admin import AdminError
from connrad.routing import destinations
from connrad.routing.models import Destination
from connrad.services import Services
from connrad.settings import Settings


def test_destinations_belong_to_one_site(services: Services) -> None:
    with write_transaction(services.engine) as conn:
        island = int(admin.create_site(conn, "island", "Island clinic")["id"])
        harbor = int(admin.create_site(conn, "harbor", "Harbor clinic")["id"])
        pacs = destinations.create_dicom(
            conn, island, "pacs", ae_title="PACS", host="10.0.0.9", port=104, tls=True
        )
        destinations.create_dicom(
            conn, harbor, "pacs", ae_title="PACS", host="10.1.0.9", port=11112
        )
        with pytest.raises(AdminError) as taken:
            destinations.create_dicom(conn, island, "other", ae_title="PACS", host="h", port=104)
    assert taken.value.status == 409
    assert (pacs["kind"], pacs["tls"], pacs["trusted"], pacs["paused"]) == (
        "dicom",
        True,
        False,
        False,
    )
    assert "auth_secret" not in pacs and pacs["has_secret"] is False
    with services.engine.connect() as conn:
        assert destinations.dicom_by_ae(conn, island, "PACS ")["host"] == "10.0.0.9"
        assert destinations.dicom_by_ae(conn, harbor, "PACS")["host"] == "10.1.0.9"
        assert destinations.dicom_by_ae(conn, island, "NOWHERE") is None
        assert [d["site_id"] for d in destinations.list_for(conn, frozenset({harbor}))] == [harbor]
        assert len(destinations.list_for(conn, None)) == 2
    with write_transaction(services.engine) as conn:
        conn.execute(Destination.__table__.update().values(paused=True))
        assert destinations.dicom_by_ae(conn, island, "PACS") is None  # paused: nothing goes


@pytest.mark.parametrize(
    ("ae_title", "host", "port", "message"),
    [
        ("A" * 17, "h", 104, "AE title"),
        ("BAD\\AE", "h", 104, "AE title"),
        ("PACS", " ", 104, "host"),
        ("PACS", "h", 0, "port"),
        ("PACS", "h", 65536, "port"),
    ],
)
def test_bad_destinations_are_refused(
    services: Services, ae_title: str, host: str, port: int, message: str
) -> None:
    with write_transaction(services.engine) as conn, pytest.raises(AdminError, match=message):
        destinations.create_dicom(
            conn, services.local_site_id, "pacs", ae_title=ae_title, host=host, port=port
        )


def test_cli_creates_and_lists_destinations(settings: Settings, services: Services) -> None:
    runner = CliRunner()
    env = {
        "CONNRAD_DATA_DIR": str(settings.data_dir),
        "CONNRAD_DATABASE_URL": settings.database_url,
        "COLUMNS": "200",
    }
    # Not yet in `connrad admin` (cli_admin.py adds it): the app itself, as typer runs it.
    from connrad.cli_destinations import destination_app

    created = runner.invoke(
        destination_app,
        ["create", "local", "pacs", "--ae", "PACS", "--host", "10.0.0.9", "--port", "104", "--tls"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert "destination pacs created" in created.output
    listed = runner.invoke(destination_app, ["ls", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["ae_title"], row["host"], row["port"], row["tls"]) == (
        "PACS",
        "10.0.0.9",
        104,
        True,
    )
    refused = runner.invoke(
        destination_app,
        ["create", "nowhere", "pacs", "--ae", "PACS", "--host", "h", "--port", "104"],
        env=env,
    )
    assert refused.exit_code == 1
    assert "site 'nowhere' not found" in refused.output
