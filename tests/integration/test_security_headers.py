"""Security headers on every response, including streamed multipart and errors."""

from fastapi.testclient import TestClient


def test_headers_on_json_errors_and_docs(client: TestClient) -> None:
    for path in ("/dicomweb/studies", "/dicomweb/studies/1.2.3", "/healthz"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # plain HTTP
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers


def test_hsts_under_tls(client: TestClient) -> None:
    response = client.get("https://testserver/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")
