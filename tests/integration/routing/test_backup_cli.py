"""`connrad admin destination ...` and `connrad queue ...` against the test's database."""

from __future__ import annotations

import json

from typer.testing import CliRunner, Result

from connrad.cli import app
from connrad.db.transaction import write_transaction
from connrad.routing import outbox
from connrad.routing.models import Delivery
from connrad.services import Services
from connrad.settings import Settings
from tests.factories import make_instance


def _cli(settings: Settings) -> object:
    runner = CliRunner()
    env = {
        "CONNRAD_DATA_DIR": str(settings.data_dir),
        "CONNRAD_DATABASE_URL": settings.database_url,
        "COLUMNS": "200",
    }
    return lambda *args: runner.invoke(app, list(args), env=env)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_destination_lifecycle_and_queues(settings: Settings, services: Services) -> None:
    cli = _cli(settings)
    out = _ok(
        cli(
            "admin", "destination", "create", "local", "web", "--url", "http://127.0.0.1:9/dicom-web",
            "--auth", "basic", "--secret", "user:pw", "--backup",
        )
    )  # fmt: skip
    assert "created" in out
    listed = json.loads(_ok(cli("admin", "destination", "ls", "--json")))
    (web,) = [d for d in listed if d["name"] == "web"]
    assert web["kind"] == "dicomweb" and web["has_secret"] and "auth_secret" not in web
    refused = cli("admin", "destination", "test", str(web["id"]))
    assert refused.exit_code == 1 and "failed" in refused.output  # nothing listens on port 9
    assert "paused" in _ok(cli("admin", "destination", "pause", str(web["id"])))
    assert "resumed" in _ok(cli("admin", "destination", "resume", str(web["id"])))
    assert "rule" in _ok(cli("admin", "destination", "rule", str(web["id"]), "--modality", "CT"))
    # The default rule routes a new instance to it; a dead letter shows in the queue.
    writer = services.blobs.stage()
    writer.write(make_instance())
    from connrad.archive.ingest import Source

    services.ingest.ingest(writer.finish(), Source(services.local_site_id, None, "stow"))
    with write_transaction(services.engine) as conn:
        conn.execute(Delivery.__table__.update().values(state=outbox.DEAD))
    (queue,) = json.loads(_ok(cli("queue", "ls", "--json")))
    assert (queue["name"], queue["dead"], queue["depth"]) == ("web", 1, 0)
    assert "1 resubmitted" in _ok(cli("queue", "retry", str(web["id"])))
    (queue,) = json.loads(_ok(cli("queue", "ls", "--json")))
    assert (queue["dead"], queue["depth"]) == (0, 1)
    assert "0 purged" in _ok(cli("queue", "purge", str(web["id"])))
    bad = cli("admin", "destination", "create", "local", "x")
    assert bad.exit_code == 1 and "--url" in bad.output
