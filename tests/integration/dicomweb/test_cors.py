"""A browser viewer (OHIF) on another origin can use the DICOMweb root."""

from fastapi.testclient import TestClient


def test_preflight_and_exposed_headers(client: TestClient) -> None:
    preflight = client.options(
        "/dicomweb/studies",
        headers={
            "Origin": "http://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "accept",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "http://viewer.example")
    assert "GET" in preflight.headers["access-control-allow-methods"]
    search = client.get("/dicomweb/studies", headers={"Origin": "http://viewer.example"})
    assert search.headers["access-control-allow-origin"] in ("*", "http://viewer.example")
    assert "Warning" in search.headers["access-control-expose-headers"]
