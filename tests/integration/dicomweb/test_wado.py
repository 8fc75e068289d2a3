"""WADO-RS and WADO-URI: negotiation, frames, metadata, rendered images, errors."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.factories import STOW_TYPE, make_dataset, parse_multipart, stow_body, to_bytes
from tests.shared_data import public_dir

ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def store_file(client: TestClient, data: bytes) -> pydicom.Dataset:
    response = client.post(
        "/dicomweb/studies", content=stow_body(data), headers={"Content-Type": STOW_TYPE}
    )
    assert response.status_code == 200, response.text
    return pydicom.dcmread(io.BytesIO(data))


def url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


@pytest.fixture
def jpeg(client: TestClient) -> tuple[pydicom.Dataset, bytes]:
    data = (public_dir() / "pydicom__SC_rgb_jpeg_dcmtk.dcm").read_bytes()
    return store_file(client, data), data


def test_default_retrieve_decodes_to_explicit_little_endian(
    client: TestClient, jpeg: tuple[pydicom.Dataset, bytes]
) -> None:
    ds, _ = jpeg
    response = client.get(url(ds))
    assert response.status_code == 200
    assert 'type="application/dicom"' in response.headers["content-type"]
    ((headers, body),) = parse_multipart(response.content, response.headers["content-type"])
    assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.1")
    decoded = pydicom.dcmread(io.BytesIO(body))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(decoded.pixel_array, ds.pixel_array)


def test_any_transfer_syntax_returns_stored_bytes(
    client: TestClient, jpeg: tuple[pydicom.Dataset, bytes]
) -> None:
    ds, data = jpeg
    for path in (url(ds), f"/dicomweb/studies/{ds.StudyInstanceUID}"):
        response = client.get(path, headers={"Accept": ANY})
        ((headers, body),) = parse_multipart(response.content, response.headers["content-type"])
        assert body == data
        assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.4.50")


def test_unproducible_transfer_syntax_is_406(
    client: TestClient, jpeg: tuple[pydicom.Dataset, bytes]
) -> None:
    ds, _ = jpeg
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80'
    assert client.get(url(ds), headers={"Accept": accept}).status_code == 406
    assert client.get(url(ds), headers={"Accept": "text/html"}).status_code == 406


def test_frames_native_and_as_stored(
    client: TestClient, jpeg: tuple[pydicom.Dataset, bytes]
) -> None:
    ds, _ = jpeg
    native = client.get(f"{url(ds)}/frames/1")
    assert native.status_code == 200
    ((headers, body),) = parse_multipart(native.content, native.headers["content-type"])
    assert headers["content-type"] == (
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert body == ds.pixel_array.tobytes()
    stored = client.get(
        f"{url(ds)}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    ((headers, body),) = parse_multipart(stored.content, stored.headers["content-type"])
    assert headers["content-type"] == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"
    assert body.startswith(b"\xff\xd8")
    assert client.get(f"{url(ds)}/frames/2").status_code == 404
    assert client.get(f"{url(ds)}/frames/0").status_code == 400
    assert client.get(f"{url(ds)}/frames/a,b").status_code == 400


def test_multiframe_frames_in_requested_order(client: TestClient) -> None:
    data = (public_dir() / "pydicom__examples_ybr_color.dcm").read_bytes()
    ds = store_file(client, data)
    response = client.get(f"{url(ds)}/frames/3,1")
    parts = parse_multipart(response.content, response.headers["content-type"])
    arrays = ds.pixel_array
    assert [p[1] for p in parts] == [arrays[2].tobytes(), arrays[0].tobytes()]


def test_metadata_has_bulk_data_uris(
    client: TestClient, jpeg: tuple[pydicom.Dataset, bytes]
) -> None:
    ds, _ = jpeg
    response = client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")
    assert response.headers["content-type"] == "application/dicom+json"
    (metadata,) = response.json()
    assert metadata["00080018"]["Value"] == [ds.SOPInstanceUID]
    bulk = metadata["7FE00010"]["BulkDataURI"]
    assert bulk == f"http://testserver{url(ds)}/bulkdata/7FE00010"
    pixels = client.get(
        bulk.removeprefix("http://testserver"),
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    ((_, frame),) = parse_multipart(pixels.content, pixels.headers["content-type"])
    assert frame.startswith(b"\xff\xd8")


def test_rendered_and_thumbnails(client: TestClient) -> None:
    ds = make_dataset(
        Rows=64,
        Columns=32,
        BitsStored=16,
        HighBit=15,
        PixelData=np.linspace(0, 4000, 64 * 32).astype(np.uint16).tobytes(),
    )
    store_file(client, to_bytes(ds))
    jpeg = client.get(f"{url(ds)}/rendered")
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (32, 64)
    png = client.get(
        f"{url(ds)}/frames/1/rendered",
        params={"viewport": "16,32", "window": "2000,1000"},
        headers={"Accept": "image/png"},
    )
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.size == (16, 32)
    values = np.asarray(image)
    assert values.min() == 0 and values.max() == 255  # window saturates both ends
    for path in (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail",
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/thumbnail",
        f"{url(ds)}/thumbnail",
    ):
        thumb = client.get(path)
        assert thumb.status_code == 200
        assert max(Image.open(io.BytesIO(thumb.content)).size) <= 128
    assert client.get(f"{url(ds)}/rendered", params={"window": "1,0"}).status_code == 400
    assert client.get(f"{url(ds)}/rendered", params={"viewport": "x"}).status_code == 400
    assert client.get(f"{url(ds)}/rendered", headers={"Accept": "video/mp4"}).status_code == 406


def test_wado_uri(client: TestClient, jpeg: tuple[pydicom.Dataset, bytes]) -> None:
    ds, data = jpeg
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
    }
    dicom = client.get("/wado", params={**params, "contentType": "application/dicom"})
    assert dicom.headers["content-type"] == "application/dicom" and dicom.content == data
    explicit = client.get(
        "/dicomweb/wado",
        params={
            **params,
            "contentType": "application/dicom",
            "transferSyntax": "1.2.840.10008.1.2.1",
        },
    )
    assert pydicom.dcmread(io.BytesIO(explicit.content)).file_meta.TransferSyntaxUID == (
        "1.2.840.10008.1.2.1"
    )
    image = client.get("/wado", params={**params, "rows": 50})
    assert image.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(image.content)).size) == 50
    assert client.get("/wado", params={**params, "requestType": "X"}).status_code == 400
    assert client.get("/wado", params={**params, "objectUID": "1.2.3"}).status_code == 404
    assert client.get("/wado", params={**params, "contentType": "text/plain"}).status_code == 406
    assert client.get("/wado", params={"requestType": "WADO"}).status_code == 400


def test_unknown_objects_are_404_without_phi(client: TestClient) -> None:
    for path in (
        "/dicomweb/studies/1.2.3",
        "/dicomweb/studies/1.2.3/metadata",
        "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/1",
        "/dicomweb/studies/1.2.3/thumbnail",
    ):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["detail"].endswith("not found")


def test_monochrome1_renders_inverted(client: TestClient) -> None:
    pixels = np.tile(np.arange(0, 256, dtype=np.uint16) * 16, (16, 1))
    shown = []
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        ds = make_dataset(
            Rows=16, Columns=256, PhotometricInterpretation=photometric, PixelData=pixels.tobytes()
        )
        store_file(client, to_bytes(ds))
        png = client.get(f"{url(ds)}/rendered", headers={"Accept": "image/png"})
        shown.append(np.asarray(Image.open(io.BytesIO(png.content))).astype(int))
    assert shown[0][0, 0] < shown[0][0, -1]
    assert np.abs(shown[0] + shown[1] - 255).max() <= 1


def test_thumbnail_media_types_and_non_image_studies(client: TestClient) -> None:
    ds = make_dataset()
    store_file(client, to_bytes(ds))
    study = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    png = client.get(f"{study}/thumbnail", headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    assert client.get(f"{study}/thumbnail", headers={"Accept": "text/plain"}).status_code == 406
    report = make_dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Modality="SR")
    for keyword in (
        "Rows",
        "Columns",
        "PixelData",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PixelRepresentation",
    ):
        delattr(report, keyword)
    store_file(client, to_bytes(report))
    assert client.get(f"/dicomweb/studies/{report.StudyInstanceUID}/thumbnail").status_code == 404
