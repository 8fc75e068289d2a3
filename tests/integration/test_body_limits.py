"""JSON and form bodies are bounded before any handler buffers them; STOW-RS streams."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from connrad.app import create_app
from connrad.services import Services
from connrad.settings import Settings
from tests.factories import STOW_TYPE, make_instance, stow_body

LIMIT = 512


def _client(settings: Settings, services: Services) -> TestClient:
    limited = settings.model_copy(update={"max_json_body_bytes": LIMIT})
    return TestClient(create_app(limited, services))


def test_oversize_json_is_refused_with_413(settings: Settings, services: Services) -> None:
    with _client(settings, services) as http:
        big = {"username": "x" * (LIMIT + 10), "password": "y"}
        response = http.post("/api/auth/login", json=big)
        assert response.status_code == 413
        assert "larger than" in response.json()["detail"]
        small = http.post("/api/auth/login", json={"username": "nobody", "password": "pw"})
        assert small.status_code == 401


def test_oversize_chunked_body_is_refused(settings: Settings, services: Services) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * 1024

    with _client(settings, services) as http:
        response = http.post(
            "/oauth/token",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413


def test_stow_bodies_are_not_bounded_by_the_json_limit(
    settings: Settings, services: Services, auth_headers: dict[str, str]
) -> None:
    body = stow_body(make_instance())
    assert len(body) > LIMIT
    with _client(settings, services) as http:
        response = http.post(
            "/dicomweb/studies", content=body, headers={"Content-Type": STOW_TYPE, **auth_headers}
        )
        assert response.status_code == 200, response.text
