"""Fixtures: the index on SQLite and on PostgreSQL, services, app clients, a live server."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from connrad.app import create_app
from connrad.services import Services, build_services
from connrad.settings import Settings
from tests.peers import missing

if TYPE_CHECKING:
    from tests.servers import Server

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_schema() -> Iterator[str]:
    """A private schema in the shared `test` database; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # connection refused, auth, ...
        missing(f"PostgreSQL at 127.0.0.1:5432 unavailable ({type(exc).__name__})")
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.db'}"
    else:
        yield from _postgres_schema()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        run_workers=False,
        demo_data=False,
        public_base_url="http://testserver",
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """The running system, with the local site storing identities as received.

    Most tests check what the archive does with the data it was sent; tests of
    de-identification set the policy they exercise (``set_site_policy``).
    """
    built = build_services(settings, recover=True)
    set_site_policy(built, built.local_site_id, "identified")
    yield built
    built.close()


def set_site_policy(services: Services, site_id: int, deid: str, pixels: str | None = None) -> None:
    from connrad.db.transaction import write_transaction
    from connrad.identity import admin

    with write_transaction(services.engine) as conn:
        admin.update_site(conn, site_id, deid_policy=deid, pixel_policy=pixels)
    if services.ingest.deidentifier is not None:
        services.ingest.deidentifier.forget(site_id)


def device_api_key(services: Services, site_id: int | None = None, name: str = "tests") -> str:
    """A new API device of the site (default: local) with read and store scopes; its key."""
    from connrad.db.transaction import write_transaction
    from connrad.identity import admin

    with write_transaction(services.engine) as conn:
        device = admin.create_device(conn, site_id or services.local_site_id, name, "api")
        _, key = admin.issue_api_key(conn, device["id"])
    return key


@pytest.fixture
def auth_headers(services: Services) -> dict[str, str]:
    """Credentials of an uploading and reading device of the local site."""
    return {"Authorization": f"Bearer {device_api_key(services)}"}


@pytest.fixture
def anonymous_client(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services)) as test_client:
        yield test_client


@pytest.fixture
def client(anonymous_client: TestClient, auth_headers: dict[str, str]) -> TestClient:
    """The app, called by a device of the local site that may store and read."""
    anonymous_client.headers.update(auth_headers)
    return anonymous_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(settings: Settings, services: Services) -> Iterator[str]:
    """connrad served over real HTTP (for third-party clients); yields the DICOMweb root."""
    port = free_port()
    live_settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    config = uvicorn.Config(
        create_app(live_settings, services), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/dicomweb"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def connrad_process(tmp_path: Path, database_url: str) -> Iterator[Server]:
    """`connrad serve` as a real process group (supervisor and workers)."""
    from tests.servers import Server

    running = Server(tmp_path / "var", database_url)
    running.prepare()
    running.start()
    yield running
    running.stop()


# Names and IDs of the test patients: none may ever reach a log line (issue 3, privacy).
PHI_MARKERS = (
    "Doe^Jane",
    "Secret^Person",
    "SECRET-42",
    "Hong^Gildong",
    "홍^길동",
    "洪^吉洞",
    "Kim^Minji",
    "김^민지",
    "Park^Jisoo",
    "박^지수",
    "Müller^José",
)


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot format is itself reported below
            self.lines.append(f"unformattable record from {record.name}")


_collector = _LogCollector()


def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger().addHandler(_collector)
    logging.getLogger().setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_collector)
    leaks = [line for line in _collector.lines if any(m in line for m in PHI_MARKERS)]
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"PHI found in {len(leaks)} log line(s), e.g.: {leaks[0][:200]}", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
