"""`connrad serve` over HTTPS from the certificate and key in settings."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import update

from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.caller import Role
from connrad.identity.models import User
from connrad.services import build_services
from connrad.settings import Settings
from tests.servers import Server


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyfile.chmod(0o600)
    return certfile, keyfile


@pytest.fixture
def tls_server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    server = Server(tmp_path / "var", database_url, tls=_self_signed(tmp_path))
    server.prepare()
    services = build_services(Settings(data_dir=tmp_path / "var", database_url=database_url))
    with write_transaction(services.engine) as conn:
        view, secret = admin.create_user(
            conn, "tls-user", Role.CLINIC_STAFF, services.local_site_id
        )
        conn.execute(
            update(User.__table__)
            .where(User.__table__.c.id == view["id"])
            .values(must_change_password=False)
        )
    services.close()
    server.env["TEST_PASSWORD"] = secret
    server.start()
    yield server
    server.stop()


def test_https_with_hsts_and_secure_session_cookie(tls_server: Server) -> None:
    with httpx.Client(base_url=tls_server.base, verify=tls_server.verify, timeout=30) as http:
        health = http.get("/healthz")
        assert health.status_code == 200
        assert "max-age=" in health.headers["strict-transport-security"]
        login = http.post(
            "/api/auth/login",
            json={"username": "tls-user", "password": tls_server.env["TEST_PASSWORD"]},
        )
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        studies = http.get("/dicomweb/studies", headers=tls_server.headers)
        assert studies.status_code in (200, 204)
    with pytest.raises(httpx.ConnectError):  # the certificate is not trusted by default
        httpx.get(f"{tls_server.base}/healthz", timeout=10)
    with pytest.raises(httpx.TransportError):  # plain HTTP is not served on the TLS port
        httpx.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=10)
