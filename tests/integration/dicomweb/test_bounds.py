"""Numbers and names beyond what the archive can hold are bad input (400/404), never 500."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes

HUGE = "100000000000000000000"


def _stored(client: TestClient) -> str:
    ds = make_dataset()
    response = client.post(
        "/dicomweb/studies", content=stow_body(to_bytes(ds)), headers={"Content-Type": STOW_TYPE}
    )
    assert response.status_code == 200
    study, series = ds.StudyInstanceUID, ds.SeriesInstanceUID
    return f"/dicomweb/studies/{study}/series/{series}/instances/{ds.SOPInstanceUID}"


def test_out_of_range_query_numbers(client: TestClient) -> None:
    instance = _stored(client)
    study = instance.split("/series/")[0]
    for url in (
        f"/dicomweb/studies?offset={HUGE}",
        f"/dicomweb/studies?limit={HUGE}",
        f"{study}/series?SeriesNumber={HUGE}",
        f"{study}/instances?InstanceNumber=-{HUGE}",
    ):
        response = client.get(url)
        assert response.status_code == 400, url
        assert HUGE not in response.text or "range" in response.text
    assert client.get(f"{study}/series?SeriesNumber=1").status_code in (200, 204)


def test_bulkdata_tags_must_be_eight_hex_digits(client: TestClient) -> None:
    instance = _stored(client)
    for tag in ("FFFFFFFFFF", "-1", "0x00100010", "zzzzzzzz", "7FE0001"):
        assert client.get(f"{instance}/bulkdata/{tag}").status_code == 404, tag


def test_rendered_sizes_are_capped(client: TestClient) -> None:
    instance = _stored(client)
    assert client.get(f"{instance}/rendered", params={"viewport": "64,64"}).status_code == 200
    for viewport in (f"{HUGE},{HUGE}", "5000,5000", "0,10"):
        response = client.get(f"{instance}/rendered", params={"viewport": viewport})
        assert response.status_code == 400, viewport
    study, series, sop = (instance.split("/")[i] for i in (3, 5, 7))
    wado = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    for rows in (HUGE, "5000"):
        response = client.get("/dicomweb/wado", params={**wado, "rows": rows})
        assert response.status_code == 400, rows
    ok = client.get("/dicomweb/wado", params={**wado, "rows": "32", "contentType": "image/png"})
    assert ok.status_code == 200
