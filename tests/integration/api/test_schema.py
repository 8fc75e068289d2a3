"""The HTTP API against its own OpenAPI schema, fuzzed with schemathesis (in-process, ASGI).

Every operation of ``/api/openapi.json`` gets generated requests, signed in as an
administrator (session cookie + CSRF header); the DICOMweb operations get a second pass
with an API device's key; logout gets a session of its own per request. No response may be
a 5xx; its status must be documented or a generic error (``GENERIC_ERRORS``); where the
schema documents that status, the media type and the body must match it. Each operation
fails with one example request of each kind of failure found.

The schema alone would keep the fuzz at the door: it has no request body for STOW-RS, no
query keys for QIDO-RS, FHIR search or rendering, and random UIDs and ids find nothing. So
generated requests are also aimed (``_shape``) at a small seeded archive and at existing
sites, devices, keys and users, with Accept headers and extra query keys drawn from lists
of meaningful and malformed values.

SQLite only: the handlers, not the dialect, are under test, and the passes take a minute
or more on two cores.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pydicom
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as conjecture_utils
from jwt.algorithms import ECAlgorithm
from pydicom.uid import RLELossless, generate_uid
from schemathesis.checks import not_a_server_error
from schemathesis.exceptions import CheckFailed
from schemathesis.models import APIOperation, Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update
from starlette_testclient import TestClient

from connrad.app import create_app
from connrad.db.transaction import write_transaction
from connrad.demo.generate import file_meta
from connrad.dicomweb.multipart import multipart_body
from connrad.identity import admin
from connrad.identity.caller import Role
from connrad.identity.models import ApiKey, User
from connrad.identity.sessions import COOKIE, CSRF_HEADER
from connrad.services import Services
from connrad.settings import Settings
from tests.conftest import device_api_key
from tests.factories import make_dataset, to_bytes

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
log = logging.getLogger(__name__)

# Answers FastAPI never documents but any operation may give: bad input, no or wrong
# credentials, absent, wrong method, conflict, too large, wrong media type, throttled; and
# 406, which like 415 refuses a media type the client chose (here, in Accept).
GENERIC_ERRORS = frozenset({400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429})

FUZZ = hypothesis_settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same requests on every run, so a CI failure reproduces locally
    database=None,
    phases=(Phase.explicit, Phase.generate),  # failures are collected, not shrunk
    suppress_health_check=list(HealthCheck),  # aimed requests draw much; slow by nature
)


def status_code_documented_or_generic(ctx: Any, response: Any, case: Case) -> bool | None:
    """schemathesis' status code check, letting the generic error answers through."""
    if response.status_code in GENERIC_ERRORS:
        return None
    return status_code_conformance(ctx, response, case)


CHECKS = (
    not_a_server_error,
    status_code_documented_or_generic,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

# --- values to aim with ----------------------------------------------------------------

BOUNDARY = "fuzz-boundary"
STOW_TYPES = (
    f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
    f"multipart/related; boundary={BOUNDARY}",
    'multipart/related; type="application/dicom"',
    f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
    "application/dicom",
    "",
)
PART_TYPES = ("application/dicom", "application/dicom; transfer-syntax=*", "text/plain", "")
ACCEPTS = (
    "*/*",
    "application/dicom+json",
    "application/json",
    'multipart/related; type="application/dicom"',
    'multipart/related; type="application/dicom"; transfer-syntax=*',
    'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50',
    'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    'multipart/related; type="image/jpeg"',
    "image/png",
    "image/*;q=0.5, image/png;q=x",
    "text/html",
    "multipart/related; type=",
)
HUGE = "100000000000000000000"  # past any 64-bit integer; small images never get large
NUMBERS = ("1", "0", "-1", HUGE, "1.5", "x")
QIDO_KEYS = (
    "PatientName", "PatientID", "00100010", "StudyDate", "StudyTime", "AccessionNumber",
    "ModalitiesInStudy", "Modality", "StudyInstanceUID", "SeriesInstanceUID", "0020000D",
    "SOPInstanceUID", "NotAKeyword", "gggg0010", "fuzzymatching", "includefield",
)  # fmt: skip
QIDO_VALUES = (
    "*", "Doe*", "?oe^Jane", "20260101", "20260101-", "-20260101", "20260101-20261231",
    "2026", "101500-", "CT", "CT\\MR", "1.2.3", "true", "all", "00100010,StudyDescription",
    "NotAKeyword", "%", "_", "\\", "",
)  # fmt: skip
QIDO_NUMBER_KEYS = ("SeriesNumber", "InstanceNumber", "limit", "offset")
FHIR_KEYS = (
    "date", "agent", "agent:identifier", "action", "outcome", "type", "subtype", "address",
    "address:exact", "address:contains", "entity", "entity:identifier", "_sort",
    "date:missing", "unknown",
)  # fmt: skip
FHIR_VALUES = (
    "ge2026-01-01", "lt2020", "2026-13-45", "eq2026-01-01T10:00:00Z", "sa2026", "C", "R",
    "0", "4", "12", "date", "-date", "device:1", "user:1", "dicomweb", "a,b", "",
)  # fmt: skip
QIDO = {**dict.fromkeys(QIDO_KEYS, QIDO_VALUES), **dict.fromkeys(QIDO_NUMBER_KEYS, NUMBERS)}
FHIR = {**dict.fromkeys(FHIR_KEYS, FHIR_VALUES), "_count": NUMBERS, "_offset": NUMBERS}
RENDER = {
    "window": ("40,400", "40,400,sigmoid", "40,400,bogus", "a,b", "nan,nan", "inf,1", "40,0"),
    "viewport": ("16,16", "0,0", "-1,-1", "1", f"{HUGE},{HUGE}"),
    "quality": ("50", "0", "101", "x"),
}
FRAME_LISTS = ("1", "2", "3", "1,3", "0", "4", "1,,2", "1%2C2", HUGE, "x")
TAGS = ("7FE00010", "7fe00010", "00100010", "00280010", "00080016", "zz", "-1", "FFFFFFFFFF")
SIZES = ("1", "64", HUGE)  # WADO-URI rows and columns
WADO_URI_TYPES = ("image/png", "application/dicom", "*/*", "image/gif", "text/plain")
# Hypothesis starts from, and keeps coming back to, the simplest choices: make aiming one.
AIM = st.sampled_from((True, False))
PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=24)

# --- the archive and the objects to aim at ---------------------------------------------


@dataclass(frozen=True)
class Targets:
    instances: tuple[dict[str, str], ...]  # "study", "series", "sop" -> UIDs
    stored: tuple[bytes, ...]  # their part-10 files
    ids: dict[str, tuple[int | str, ...]]  # admin path parameters -> existing ids
    jwk: dict[str, str]  # a public key an API device may register


def _uid(name: str) -> str:
    """The same UID on every run (UID lengths vary, and with them the bodies cut short)."""
    return generate_uid(entropy_srcs=["connrad schema fuzz", name])


def _datasets() -> list[pydicom.Dataset]:
    """One study: an image, a 3-frame image, an RLE image; another without pixel data."""
    study = {"StudyInstanceUID": _uid("study")}
    series = {**study, "SeriesInstanceUID": _uid("series")}
    image = make_dataset(**series, SOPInstanceUID=_uid("image"))
    frames = make_dataset(
        **series,
        SOPInstanceUID=_uid("frames"),
        InstanceNumber=2,
        NumberOfFrames=3,
        PixelData=image.PixelData * 3,
    )
    rle = make_dataset(
        **study, SeriesInstanceUID=_uid("rle series"), SOPInstanceUID=_uid("rle"), SeriesNumber=2
    )
    rle.file_meta = file_meta(rle)
    rle.compress(RLELossless, generate_instance_uid=False)
    no_pixels = make_dataset(
        StudyInstanceUID=_uid("other study"),
        SeriesInstanceUID=_uid("other series"),
        SOPInstanceUID=_uid("no pixels"),
        SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR: no pixel data by design
        Modality="SR",
    )
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit"):
        delattr(no_pixels, keyword)
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "PixelRepresentation"):
        delattr(no_pixels, keyword)
    return [image, frames, rle, no_pixels]


def _part10(ds: pydicom.Dataset) -> bytes:
    """A PS3.10 file; a compressed dataset keeps its file meta (to_bytes would replace it)."""
    if not hasattr(ds, "file_meta"):
        return to_bytes(ds)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _stow_body(parts: list[bytes], part_type: str) -> bytes:
    headers = {"Content-Type": part_type} if part_type else {}
    return b"".join(multipart_body([(headers, [p]) for p in parts], BOUNDARY))


def _seed(client: TestClient, services: Services) -> Targets:
    datasets = _datasets()
    stored = tuple(_part10(ds) for ds in datasets)
    key = device_api_key(services, name="seeding")
    response = client.post(
        "/dicomweb/studies",
        data=_stow_body(list(stored), "application/dicom"),
        headers={"Content-Type": STOW_TYPES[0], "Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    instances = tuple(
        {"study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID, "sop": ds.SOPInstanceUID}
        for ds in datasets
    )
    with services.engine.connect() as conn:
        ids = {
            "site_id": (services.local_site_id,),
            "device_id": tuple(d["id"] for d in admin.list_devices(conn, None)),
            "key_id": tuple(conn.execute(select(ApiKey.__table__.c.id)).scalars()),
            "user_id": tuple(u["id"] for u in admin.list_users(conn, None)),
            "event_id": ("1", "2", "3"),
        }
    public_key = ec.generate_private_key(ec.SECP384R1()).public_key()
    return Targets(instances, stored, ids, json.loads(ECAlgorithm.to_jwk(public_key)))


# --- aiming generated requests ---------------------------------------------------------

WADO_URI_NAMES = {"studyUID": "study", "seriesUID": "series", "objectUID": "sop"}
QIDO_PATHS = {
    "/dicomweb/studies",
    "/dicomweb/series",
    "/dicomweb/instances",
    "/dicomweb/studies/{study}/series",
    "/dicomweb/studies/{study}/instances",
    "/dicomweb/studies/{study}/series/{series}/instances",
}


def _mostly(usual: Any, others: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """`usual` as the simplest choice (hypothesis' favourite), else one of `others`."""
    return st.one_of(st.just(usual), st.sampled_from(others))


def _query(draw: Any, values: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Up to three of the keys, each with one of its values or a random string."""
    keys = draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True))
    return {key: draw(st.one_of(st.sampled_from(values[key]), PRINTABLE)) for key in keys}


def _aim_at_archive(case: Case, draw: Any, targets: Targets) -> None:
    """Replace the generated UIDs (all, some or none) by those of a stored instance."""
    instance = draw(st.sampled_from(targets.instances))
    names = ("study", "series", "sop")
    chosen = draw(_mostly(set(names), (set(), *({n} for n in names), {"study", "series"})))
    params = case.path_parameters or {}
    for name in chosen & set(params):
        params[name] = instance[name]
    for name, values in (("frame_list", FRAME_LISTS), ("frame", (1, 2, 3, 0, 4)), ("tag", TAGS)):
        if name in params and draw(AIM):
            params[name] = draw(_mostly(values[0], values[1:]))
    if case.operation.path == "/dicomweb/wado" and case.query is not None and chosen:
        case.query["requestType"] = "WADO"
        for param, name in WADO_URI_NAMES.items():
            if name in chosen:
                case.query[param] = instance[name]
        case.query["contentType"] = draw(_mostly("image/jpeg", WADO_URI_TYPES))
        case.query["frameNumber"] = draw(_mostly(1, (2, 3, 4)))
        for param in ("rows", "columns"):
            if draw(AIM):
                case.query[param] = draw(st.sampled_from(SIZES))


def _aim_body(case: Case, draw: Any, targets: Targets) -> None:
    """Point a JSON body at the local site, and offer a usable public key for JWKS."""
    body = case.body if isinstance(case.body, dict) else {}
    site_id = targets.ids["site_id"][0]
    if "site_id" in body and draw(AIM):
        body["site_id"] = site_id
    if "site_ids" in body and draw(AIM):
        body["site_ids"] = [site_id]
    if case.operation.path.endswith("/jwks") and draw(AIM):
        body["keys"] = [targets.jwk]


def _stow_request(draw: Any, targets: Targets) -> tuple[str, bytes]:
    part = st.one_of(
        st.sampled_from(targets.stored),  # stored again: a duplicate
        st.sampled_from(targets.stored).map(lambda b: b[: len(b) // 2]),  # cut short
        st.sampled_from(targets.stored).map(lambda b: b.replace(b"Doe^Jane", b"Doe^Joan")),
        st.binary(max_size=64),
    )
    parts = draw(st.lists(part, max_size=3))
    body = _stow_body(parts, draw(_mostly(PART_TYPES[0], PART_TYPES[1:])))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # the multipart body itself broken
    return draw(_mostly(STOW_TYPES[0], STOW_TYPES[1:])), body


def _shape(case: Case, draw: Any, targets: Targets) -> tuple[dict[str, str], dict[str, Any]]:
    """Aim a generated request at existing objects; extra headers and request arguments."""
    path, method = case.operation.path, case.method.upper()
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for name, ids in targets.ids.items():
        if name in (case.path_parameters or {}) and draw(AIM):
            case.path_parameters[name] = draw(st.sampled_from(ids))
    _aim_body(case, draw, targets)
    if path.startswith("/dicomweb/"):
        _aim_at_archive(case, draw, targets)
        if method == "GET" and draw(st.booleans()):
            headers["Accept"] = draw(st.one_of(st.sampled_from(ACCEPTS), PRINTABLE))
    if method == "POST" and path.startswith("/dicomweb/studies"):
        headers["Content-Type"], extra["data"] = _stow_request(draw, targets)
    query: dict[str, str] = {}
    if method == "GET" and path in QIDO_PATHS:
        query = _query(draw, QIDO)
    elif path == "/fhir/AuditEvent":
        query = _query(draw, FHIR)
    elif path.endswith(("/rendered", "/thumbnail")):
        query = _query(draw, RENDER)
    if query:
        case.query = {**(case.query or {}), **query}
    return headers, extra


# --- running ---------------------------------------------------------------------------

QUIET_HEADERS = {"user-agent", "accept-encoding", "connection", "x-schemathesis-testcaseid"}
SECRET_HEADERS = {"cookie", "authorization", CSRF_HEADER.lower()}


def _kind(exc: CheckFailed, response: Any) -> tuple[Any, ...]:
    """What makes two failures the same: the checks failed, the status and media type."""
    titles = sorted(
        c.context.title if isinstance(c, CheckFailed) and c.context else type(c).__name__
        for c in exc.causes or (exc,)
    )
    media_type = response.headers.get("content-type", "").split(";")[0]
    return (*titles, response.status_code, media_type)


def _request_sent(request: Any) -> str:
    """The request as sent (schemathesis' curl line leaves out Accept and extra bodies)."""
    lines = [f"{request.method} {request.url}"]
    for name, value in request.headers.items():
        if name.lower() not in QUIET_HEADERS:
            lines.append(f"{name}: {'***' if name.lower() in SECRET_HEADERS else value}")
    if request.body:
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        shown = repr(body) if len(body) <= 400 else f"{body[:200]!r} ... {body[-150:]!r}"
        lines.append(f"body ({len(body)} bytes): {shown}")
    return "\n    ".join(lines)


def _fuzz(
    operation: APIOperation,
    client: TestClient,
    headers: dict[str, str],
    targets: Targets,
    spare: Callable[[Case], None] | None = None,
) -> None:
    """Send generated requests to one operation; fail with one example of each failure.

    Failures are collected, not raised: the first one (often the same documentation gap on
    every 200) would otherwise end the search before the rarer ones are reached.
    """
    failures: dict[tuple[Any, ...], str] = {}
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(case=operation.as_strategy(), data=st.data())
    def run(case: Case, data: st.DataObject) -> None:
        extra_headers, extra = _shape(case, data.draw, targets)
        if spare is not None:
            spare(case)
        kwargs = case.as_transport_kwargs(headers={**headers, **extra_headers})
        response = client.request(**kwargs, **extra)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except CheckFailed as exc:
            sent = _request_sent(response.request)
            failures.setdefault(_kind(exc, response), f"Request:\n    {sent}\n{exc}")

    run()
    log.info("%s: statuses %s", operation.verbose_name, dict(statuses))
    if failures:
        pytest.fail(f"{len(failures)} kind(s) of failure:\n" + "\n----\n".join(failures.values()))


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return create_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """The requests-based client schemathesis' checks expect; a server error is a 500."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def api_schema(app: FastAPI) -> Iterator[Any]:
    # hypothesis 6.170.10 dropped the `many.more()` that hypothesis-jsonschema 0.23.1
    # (schemathesis' body generator) calls: no JSON body could be generated.
    if not hasattr(conjecture_utils.many, "more"):
        pytest.fail("hypothesis>=6.170.10 breaks hypothesis-jsonschema: pin hypothesis<6.170.10")
    # FastAPI writes OpenAPI 3.1; schemathesis 3.x validates responses by its JSON Schema
    # dialect (2020-12) only with this experiment on. Switched back off afterwards.
    experiment = schemathesis.experimental.OPEN_API_3_1
    was_enabled = experiment.is_enabled
    experiment.enable()
    try:
        # Credentials are the test's to give (the schema declares them as parameters).
        config = schemathesis.GenerationConfig(with_security_parameters=False)
        yield schemathesis.from_asgi("/api/openapi.json", app, generation_config=config)
    finally:
        if not was_enabled:
            experiment.disable()


@dataclass(frozen=True)
class FuzzAdmin:
    user_id: int
    password: str
    other_user_id: int  # where requests that would lock the fuzz out are sent instead


@pytest.fixture
def fuzz_admin(services: Services) -> FuzzAdmin:
    """An administrator with a usable password (no change due), and another account."""
    with write_transaction(services.engine) as conn:
        view, password = admin.create_user(conn, "fuzzadmin", Role.ADMIN, None)
        conn.execute(
            update(User.__table__)
            .where(User.__table__.c.id == view["id"])
            .values(must_change_password=False)
        )
        other, _ = admin.create_user(conn, "fuzztarget", Role.RADIOLOGIST, None)
    return FuzzAdmin(view["id"], password, other["id"])


def _sign_in(client: TestClient, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": "fuzzadmin", "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()  # each request names its credentials itself
    return {
        "Cookie": f"{COOKIE}={response.cookies[COOKIE]}",
        CSRF_HEADER: response.json()["csrf_token"],
    }


def _signed_in(client: TestClient, headers: dict[str, str]) -> bool:
    return client.get("/api/auth/me", headers=headers).status_code == 200


def _ends_own_account(case: Case, own_id: int) -> bool:
    """Would this request demote the account or end its sessions?"""
    if (case.path_parameters or {}).get("user_id") != own_id:
        return False
    if case.operation.path.endswith("/password-reset"):
        return True
    body = case.body if isinstance(case.body, dict) else {}
    return case.method.upper() == "PATCH" and body.get("role") not in (None, Role.ADMIN)


# --- tests -----------------------------------------------------------------------------


def test_admin_session(
    client: TestClient,
    services: Services,
    api_schema: Any,
    fuzz_admin: FuzzAdmin,
    subtests: Any,
) -> None:
    targets = _seed(client, services)
    headers = _sign_in(client, fuzz_admin.password)

    def spare_own_account(case: Case) -> None:
        # Demoting or resetting the fuzz's own account would end the fuzz: such requests
        # go to another account instead, so they are still made.
        if _ends_own_account(case, fuzz_admin.user_id):
            case.path_parameters["user_id"] = fuzz_admin.other_user_id

    # Logout would end the session every later request relies on: it is fuzzed in
    # test_logout instead, with a session of its own per request.
    operations = api_schema.exclude(path="/api/auth/logout", method="POST")
    for result in operations.get_all_operations():
        operation = result.ok()
        with subtests.test(msg=operation.verbose_name):
            _fuzz(operation, client, headers, targets, spare_own_account)
            assert _signed_in(client, headers), "this operation ended the fuzz's session"
        if not _signed_in(client, headers):
            headers = _sign_in(client, fuzz_admin.password)


def test_device_key(client: TestClient, services: Services, api_schema: Any, subtests: Any) -> None:
    targets = _seed(client, services)
    headers = {"Authorization": f"Bearer {device_api_key(services, name='fuzz device')}"}
    assert _signed_in(client, headers)
    for result in api_schema.include(tag="dicomweb").get_all_operations():
        operation = result.ok()
        with subtests.test(msg=operation.verbose_name):
            _fuzz(operation, client, headers, targets)


def test_logout(client: TestClient, api_schema: Any, fuzz_admin: FuzzAdmin) -> None:
    operation = api_schema["/api/auth/logout"]["POST"]

    @hypothesis_settings(FUZZ, max_examples=5)
    @given(case=operation.as_strategy())
    def run(case: Case) -> None:
        headers = _sign_in(client, fuzz_admin.password)  # a session for this request only
        response = client.request(**case.as_transport_kwargs(headers=headers))
        case.validate_response(response, checks=CHECKS, headers=headers)
        assert not _signed_in(client, headers), "the session outlived its logout"

    run()
