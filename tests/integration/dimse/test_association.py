"""Associations are accepted only from registered DICOM devices (DCMTK's echoscu as the
modality), over plain TCP and DICOM TLS; refusals are A-ASSOCIATE-RJ and audited.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from connrad.audit.models import AuditEvent
from connrad.db.transaction import write_transaction
from connrad.dimse.server import DimseServer
from connrad.identity import admin
from connrad.services import Services, build_services
from connrad.settings import Settings
from tests.conftest import free_port
from tests.integration.test_tls import _self_signed
from tests.peers import missing


def _echoscu(port: int, calling: str, *extra: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("echoscu") is None:
        missing("DCMTK echoscu not installed (Debian dcmtk)")
    return subprocess.run(
        ["echoscu", "-aet", calling, "-aec", "CONNRAD", *extra, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )


@pytest.fixture
def scp(services: Services) -> Iterator[int]:
    with write_transaction(services.engine) as conn:
        site = admin.create_site(conn, "island", "Island clinic")["id"]
        admin.create_device(conn, site, "portable-ct", "dicom", ae_title="PORTCT")
        admin.create_device(conn, site, "us-cart", "dicom", ae_title="USCART", hosts=["192.0.2.10"])
        off = admin.create_device(conn, site, "old-dr", "dicom", ae_title="OLDDR")
        admin.update_device(conn, off["id"], disabled=True)
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    yield port
    server.stop()


def test_registered_device_may_echo_others_are_rejected(scp: int, services: Services) -> None:
    ok = _echoscu(scp, "PORTCT")
    assert ok.returncode == 0, ok.stderr
    for calling in ("STRANGER", "USCART", "OLDDR"):  # unknown, wrong host, disabled
        refused = _echoscu(scp, calling)
        assert refused.returncode != 0
        assert "Rejected" in refused.stderr or "rejected" in refused.stderr.lower(), refused.stderr
        assert "Calling AE Title Not Recognized" in refused.stderr, refused.stderr

    with services.engine.connect() as conn:
        events = AuditEvent.__table__
        rows = conn.execute(
            select(events.c.actor, events.c.outcome, events.c.detail)
            .where(events.c.action == "associate")
            .order_by(events.c.sequence)
        ).all()
    assert [(r.outcome, r.detail["calling_ae"]) for r in rows] == [
        (200, "PORTCT"),
        (401, "STRANGER"),
        (401, "USCART"),
        (401, "OLDDR"),
    ]
    assert rows[0].actor.startswith("device:")


def test_dicom_tls_with_client_certificates(tmp_path: Path, settings: Settings) -> None:
    server_cert, server_key = _self_signed(tmp_path)
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    client_cert, client_key = _self_signed(client_dir)
    tls_settings = settings.model_copy(
        update={
            "dimse_tls_certfile": server_cert,
            "dimse_tls_keyfile": server_key,
            "dimse_tls_ca_file": client_cert,  # trust exactly this client
        }
    )
    services = build_services(tls_settings)
    with write_transaction(services.engine) as conn:
        admin.create_device(conn, services.local_site_id, "ct", "dicom", ae_title="TLSCT")
    server = DimseServer(services)
    port = server.start("127.0.0.1", free_port())
    try:
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
        client.load_cert_chain(client_cert, client_key)
        ae = AE(ae_title="TLSCT")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="CONNRAD", tls_args=(client, "127.0.0.1"))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()

        anonymous_tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
        refused = ae.associate(
            "127.0.0.1", port, ae_title="CONNRAD", tls_args=(anonymous_tls, "127.0.0.1")
        )
        assert not refused.is_established  # no client certificate: the handshake fails
        plain = ae.associate("127.0.0.1", port, ae_title="CONNRAD")
        assert not plain.is_established  # no TLS at all
    finally:
        server.stop()
        services.close()
