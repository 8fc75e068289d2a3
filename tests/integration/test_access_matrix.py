"""Every route the app registers, called by every kind of caller: own site, other site, no
rights, nobody. The routes come from the app's own route table, so a new route without an
access rule, or without a row here, fails this test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from connrad.access import Access
from connrad.app import create_app
from connrad.archive.models import Patient, Study
from connrad.audit.models import AuditEvent
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.deid import held
from connrad.identity import admin
from connrad.identity import sessions as session_store
from connrad.identity.caller import Role
from connrad.identity.models import User
from connrad.orders import service
from connrad.routing import destinations, rules
from connrad.services import Services
from connrad.settings import Settings
from tests.conftest import set_site_policy
from tests.factories import STOW_TYPE, make_dataset, stow_body, to_bytes

# Expected outcomes: OK (2xx, or a 4xx other than 401/403/404: the handler was reached),
# EMPTY (2xx without the own site's data), and the refusals.
OK, EMPTY, UNAUTHENTICATED, FORBIDDEN, HIDDEN = "ok", "empty", "401", "403", "404"

CALLERS = (
    "anonymous",
    "admin",
    "site_admin_a",
    "clinic_a",
    "radiologist_a",
    "radiologist_none",
    "researcher",
    "clinic_b",
    "site_admin_b",
    "device_a",
    "device_a_stow",
    "device_a_audit",
    "device_b",
)


def _row(**outcomes: str) -> dict[str, str]:
    assert set(outcomes) == set(CALLERS), set(CALLERS) ^ set(outcomes)
    return outcomes


# What each kind of route allows, per caller: the policy as the issue states it.
RULES: dict[str, dict[str, str]] = {
    "public": dict.fromkeys(CALLERS, OK),
    "search": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=OK,
        radiologist_a=OK,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=EMPTY,
        site_admin_b=EMPTY,
        device_a=OK,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=EMPTY,
    ),
    "read": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=OK,
        radiologist_a=OK,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=HIDDEN,
        site_admin_b=HIDDEN,
        device_a=OK,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=HIDDEN,
    ),
    "store": _row(
        anonymous=UNAUTHENTICATED,
        admin=FORBIDDEN,  # no home site to store into
        site_admin_a=OK,
        clinic_a=OK,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=OK,  # into its own site
        site_admin_b=OK,
        device_a=OK,
        device_a_stow=OK,
        device_a_audit=FORBIDDEN,
        device_b=OK,
    ),
    "manage_list": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=FORBIDDEN,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=FORBIDDEN,
        site_admin_b=EMPTY,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=FORBIDDEN,
    ),
    "manage": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=FORBIDDEN,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=FORBIDDEN,
        site_admin_b=HIDDEN,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=FORBIDDEN,
    ),
    "system": {
        **dict.fromkeys(CALLERS, FORBIDDEN),
        "anonymous": UNAUTHENTICATED,
        "admin": OK,
    },
    "audit_search": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=FORBIDDEN,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=FORBIDDEN,
        site_admin_b=EMPTY,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=OK,
        device_b=FORBIDDEN,
    ),
    "audit_read": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=FORBIDDEN,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=FORBIDDEN,
        site_admin_b=HIDDEN,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=OK,
        device_b=FORBIDDEN,
    ),
    # The real identity behind a pseudonym: the sending site's own people, nobody else,
    # not even the system's administrators.
    "reidentify": _row(
        anonymous=UNAUTHENTICATED,
        admin=FORBIDDEN,
        site_admin_a=OK,
        clinic_a=OK,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=HIDDEN,
        site_admin_b=HIDDEN,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=FORBIDDEN,
    ),
    "reidentify_search": _row(
        anonymous=UNAUTHENTICATED,
        admin=FORBIDDEN,
        site_admin_a=OK,
        clinic_a=OK,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=EMPTY,
        site_admin_b=EMPTY,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=FORBIDDEN,
    ),
    # Scheduling an order for site A: its own people and the system's administrators
    # (who schedule on a site's behalf without seeing identities back).
    "schedule": _row(
        anonymous=UNAUTHENTICATED,
        admin=OK,
        site_admin_a=OK,
        clinic_a=OK,
        radiologist_a=FORBIDDEN,
        radiologist_none=FORBIDDEN,
        researcher=FORBIDDEN,
        clinic_b=HIDDEN,
        site_admin_b=HIDDEN,
        device_a=FORBIDDEN,
        device_a_stow=FORBIDDEN,
        device_a_audit=FORBIDDEN,
        device_b=FORBIDDEN,
    ),
    # The account's own session, password and second factor: users only.
    "account": {
        **dict.fromkeys(CALLERS, OK),
        "anonymous": UNAUTHENTICATED,
        **{c: FORBIDDEN for c in CALLERS if c.startswith("device")},
    },
    "whoami": {**dict.fromkeys(CALLERS, OK), "anonymous": UNAUTHENTICATED},
}


@dataclass
class World:
    """Site A (local) and site B, their data and the callers' credentials."""

    site_a: int
    site_b: int
    study: str
    series: str
    sop: str
    device_target: int  # a device of site A that the admin routes act on
    key_target: int
    user_target: int
    audit_event_a: int
    patient_id: str  # the real PatientID behind site A's pseudonym
    pseudonym: str
    held: int  # an image of site A held for review of burned-in text
    held_sop: str
    order: int  # an order scheduled for site A
    destination: int  # site A's (unreachable) PACS
    new_rule: Callable[[], int]
    jwks: dict[str, Any]
    credentials: dict[str, dict[str, str]]  # caller -> headers (cookie or bearer)
    cookies: dict[str, str]
    rule: int = 0  # the rule the next DELETE names

    def fresh_rule(self) -> dict[str, Any]:
        """Make a new rule the next DELETE names (a call's body hook: no body)."""
        self.rule = self.new_rule()
        return {}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    rule: str
    body: Callable[[World], dict[str, Any]] | None = None
    visible: Callable[[World], str] | None = None  # text proving own-site data is shown


def _unique() -> str:
    return uuid.uuid4().hex[:10]


def _stow(world: World) -> dict[str, Any]:
    return {"content": stow_body(to_bytes(make_dataset())), "headers": {"Content-Type": STOW_TYPE}}


def _json(payload: Callable[[World], Any]) -> Callable[[World], dict[str, Any]]:
    return lambda world: {"json": payload(world)}


_INSTANCE = "/dicomweb/studies/{study}/series/{series}/instances/{sop}"
_STUDY_SHOWN: Callable[[World], str] = lambda w: w.study  # noqa: E731

CALLS: tuple[Call, ...] = (
    Call("GET", "/healthz", "public"),
    Call("POST", "/dicomweb/studies", "store", _stow),
    Call("POST", "/dicomweb/studies/{study}", "store", _stow),
    Call("GET", "/dicomweb/studies", "search", visible=_STUDY_SHOWN),
    Call("GET", "/dicomweb/series", "search", visible=lambda w: w.series),
    Call("GET", "/dicomweb/instances", "search", visible=lambda w: w.sop),
    Call("GET", "/dicomweb/studies/{study}/series", "search", visible=lambda w: w.series),
    Call("GET", "/dicomweb/studies/{study}/instances", "search", visible=lambda w: w.sop),
    Call(
        "GET",
        "/dicomweb/studies/{study}/series/{series}/instances",
        "search",
        visible=lambda w: w.sop,
    ),
    Call("GET", "/dicomweb/studies/{study}", "read"),
    Call("GET", "/dicomweb/studies/{study}/series/{series}", "read"),
    Call("GET", _INSTANCE, "read"),
    Call("GET", "/dicomweb/studies/{study}/metadata", "read"),
    Call("GET", "/dicomweb/studies/{study}/series/{series}/metadata", "read"),
    Call("GET", _INSTANCE + "/metadata", "read"),
    Call("GET", _INSTANCE + "/frames/{frame_list}", "read"),
    Call("GET", _INSTANCE + "/bulkdata/{tag}", "read"),
    Call("GET", _INSTANCE + "/rendered", "read"),
    Call("GET", _INSTANCE + "/frames/{frame}/rendered", "read"),
    Call("GET", "/dicomweb/studies/{study}/thumbnail", "read"),
    Call("GET", "/dicomweb/studies/{study}/series/{series}/thumbnail", "read"),
    Call("GET", _INSTANCE + "/thumbnail", "read"),
    Call("GET", _INSTANCE + "/frames/{frame}/thumbnail", "read"),
    Call("GET", "/dicomweb/wado", "read"),
    Call("GET", "/wado", "read"),
    Call("POST", "/api/auth/login", "public", _json(lambda w: {})),
    Call("GET", "/api/auth/me", "whoami"),
    Call("POST", "/api/auth/password", "account", _json(lambda w: {})),
    Call("POST", "/api/auth/totp/setup", "account"),
    Call("POST", "/api/auth/totp/enable", "account", _json(lambda w: {"code": "000000"})),
    Call("POST", "/api/auth/totp/disable", "account", _json(lambda w: {})),
    Call("POST", "/oauth/token", "public", lambda w: {"data": {"grant_type": "password"}}),
    Call("GET", "/.well-known/smart-configuration", "public"),
    Call("GET", "/api/admin/sites", "manage_list", visible=lambda w: '"code":"local"'),
    Call(
        "POST",
        "/api/admin/sites",
        "system",
        _json(lambda w: {"code": f"s-{_unique()}", "name": "New site"}),
    ),
    Call("PATCH", "/api/admin/sites/{site_id}", "system", _json(lambda w: {"name": "Site A"})),
    Call("GET", "/api/admin/devices", "manage_list", visible=lambda w: '"name":"target"'),
    Call(
        "POST",
        "/api/admin/devices",
        "manage",
        _json(lambda w: {"site_id": w.site_a, "name": f"d-{_unique()}", "kind": "api"}),
    ),
    Call("GET", "/api/admin/devices/{device_id}", "manage"),
    Call(
        "PATCH",
        "/api/admin/devices/{device_id}",
        "manage",
        _json(lambda w: {"hosts": ["10.0.0.9"]}),
    ),
    Call("PUT", "/api/admin/devices/{device_id}/jwks", "manage", _json(lambda w: w.jwks)),
    Call("GET", "/api/admin/devices/{device_id}/api-keys", "manage"),
    Call("POST", "/api/admin/devices/{device_id}/api-keys", "manage", _json(lambda w: {})),
    Call("DELETE", "/api/admin/devices/{device_id}/api-keys/{key_id}", "manage"),
    Call("GET", "/api/admin/users", "manage_list", visible=lambda w: '"username":"target"'),
    Call(
        "POST",
        "/api/admin/users",
        "manage",
        _json(
            lambda w: {"username": f"u-{_unique()}", "role": "clinic_staff", "site_id": w.site_a}
        ),
    ),
    Call("GET", "/api/admin/users/{user_id}", "manage"),
    Call("PATCH", "/api/admin/users/{user_id}", "manage", _json(lambda w: {"display_name": "T"})),
    Call("POST", "/api/admin/users/{user_id}/password-reset", "manage"),
    Call(
        "PUT",
        "/api/admin/users/{user_id}/reading-grants",
        "manage",
        _json(lambda w: {"site_ids": [w.site_a]}),
    ),
    Call(
        "GET",
        "/fhir/AuditEvent",
        "audit_search",
        visible=lambda w: f'"id":"{w.audit_event_a}"',
    ),
    Call("GET", "/fhir/AuditEvent/{event_id}", "audit_read"),
    Call(
        "POST",
        "/api/identity/search",
        "reidentify_search",
        _json(lambda w: {"patient_id": w.patient_id}),
        visible=lambda w: w.pseudonym,
    ),
    Call("GET", "/api/identity/studies/{study_uid}", "reidentify"),
    Call("GET", "/api/identity/instances/{sop_uid}", "reidentify"),
    Call("GET", "/api/held", "manage_list", visible=lambda w: w.held_sop),
    Call("POST", "/api/held/{held_id}/release", "manage", _json(lambda w: {"clean": True})),
    Call("DELETE", "/api/held/{held_id}", "manage"),
    Call("GET", "/api/studies/{study_uid}/qc", "read"),
    Call("GET", "/api/studies/{study_uid}/series/{series_uid}/qc", "read"),
    Call("GET", "/api/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/qc", "read"),
    Call("POST", "/api/studies/{study_uid}/qc/release", "manage"),
    Call("POST", "/api/studies/{study_uid}/qc/recheck", "manage"),
    Call("GET", "/api/worklist", "search", visible=_STUDY_SHOWN),
    Call("POST", "/api/orders", "schedule", _json(lambda w: {**ORDER, "site_id": w.site_a})),
    Call("GET", "/api/orders", "search", visible=lambda w: f'"id":{w.order}'),
    Call("PATCH", "/api/orders/{order_id}", "schedule", _json(lambda w: {"status": "in-progress"})),
    Call("GET", "/api/admin/destinations", "manage_list", visible=lambda w: '"name":"matrix-pacs"'),
    Call(
        "POST",
        "/api/admin/destinations",
        "manage",
        _json(
            lambda w: {
                "site_id": w.site_a,
                "name": f"d-{_unique()}",
                "kind": "dicom",
                "ae_title": f"M{_unique()}",
                "host": "127.0.0.1",
                "port": 9,
                "backup": False,
            }
        ),
    ),
    Call("POST", "/api/admin/destinations/{destination_id}/test", "manage"),
    Call("POST", "/api/admin/destinations/{destination_id}/pause", "manage"),
    Call("POST", "/api/admin/destinations/{destination_id}/resume", "manage"),
    Call(
        "GET",
        "/api/admin/routing-rules",
        "manage_list",
        visible=lambda w: f'"destination_id":{w.destination}',
    ),
    Call(
        "POST",
        "/api/admin/routing-rules",
        "manage",
        _json(lambda w: {"destination_id": w.destination, "modality": "CR"}),
    ),
    # A fresh rule for every caller: the first successful DELETE would leave 404s behind.
    Call("DELETE", "/api/admin/routing-rules/{rule_id}", "manage", lambda w: w.fresh_rule()),
    Call(
        "GET", "/api/queues", "manage_list", visible=lambda w: f'"destination_id":{w.destination}'
    ),
    Call("POST", "/api/queues/{destination_id}/retry", "manage"),
    Call("POST", "/api/queues/{destination_id}/purge", "manage"),
    Call("GET", "/api/studies/{study_uid}/backup", "read"),
    Call("GET", "/api/studies/{study_uid}/priors", "read"),
    Call("POST", "/api/auth/logout", "account"),  # last: it ends the caller's session
)


def _app_routes(app: Any) -> Iterator[tuple[str, str, APIRoute]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, str(context.path), route


def _access_rules(route: APIRoute) -> list[Access]:
    found: list[Access] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, Access):
            found.append(dependency.call)
        pending.extend(dependency.dependencies)
    return found


def test_every_route_declares_exactly_one_access_rule(settings: Settings) -> None:
    app = create_app(settings)
    missing = [
        f"{method} {path}: {len(_access_rules(route))} rules"
        for method, path, route in _app_routes(app)
        if len(_access_rules(route)) != 1
    ]
    assert not missing, missing


def test_every_route_is_in_the_matrix(settings: Settings) -> None:
    routes = {(method, path) for method, path, _ in _app_routes(create_app(settings))}
    listed = {(call.method, call.path) for call in CALLS}
    assert routes - listed == set(), "add the new routes to CALLS"
    assert listed - routes == set(), "CALLS lists routes the app no longer has"


def _user(services: Services, name: str, role: Role, site: int | None) -> int:
    with write_transaction(services.engine) as conn:
        view, _ = admin.create_user(conn, name, role, site)
        conn.execute(
            update(User.__table__)
            .where(User.__table__.c.id == view["id"])
            .values(must_change_password=False)
        )
    return int(view["id"])


def _session(services: Services, user_id: int) -> tuple[str, str]:
    with write_transaction(services.engine) as conn:
        new = session_store.create(conn, user_id, "testclient", _HOURS, utcnow())
    return new.token, new.csrf_token


from datetime import datetime, timedelta  # noqa: E402

_HOURS = timedelta(hours=1)


def _device(services: Services, site: int, name: str, scopes: list[str]) -> str:
    with write_transaction(services.engine) as conn:
        device = admin.create_device(conn, site, name, "api", device_scopes=scopes)
        _, key = admin.issue_api_key(conn, device["id"])
    return key


ORDER: dict[str, Any] = {
    "patient_id": "P-MATRIX-1",
    "patient_name": "Hong^Gildong",
    "accession_number": "MATRIX-ACC",
    "modality": "CR",
    "scheduled_start": "2026-12-01T09:30:00+09:00",
    "procedure_code": "CXR-PA",
    "procedure_meaning": "Chest PA",
}


def _order(services: Services, site: int) -> int:
    new = service.NewOrder(
        patient_id="P-MATRIX-0",
        patient_name="Kim^Minsu",
        accession_number="MATRIX-ACC-0",
        modality="CR",
        scheduled_start=datetime.fromisoformat("2026-12-01T09:00:00+09:00"),
        procedure=service.Procedure("CXR-PA", "Chest PA"),
    )
    ring = service.keyring(services.site_keys, site)
    with write_transaction(services.engine) as conn:
        return service.create(conn, ring, new).id


@pytest.fixture
def world(services: Services, settings: Settings) -> World:
    site_a = services.local_site_id
    with write_transaction(services.engine) as conn:
        site_b = admin.create_site(conn, "site-b", "Site B")["id"]
        target = admin.create_device(conn, site_a, "target", "api")
        target_key, _ = admin.issue_api_key(conn, target["id"])
    users = {
        "admin": _user(services, "admin1", Role.ADMIN, None),
        "site_admin_a": _user(services, "sadmin-a", Role.SITE_ADMIN, site_a),
        "clinic_a": _user(services, "clinic-a", Role.CLINIC_STAFF, site_a),
        "radiologist_a": _user(services, "rad-a", Role.RADIOLOGIST, None),
        "radiologist_none": _user(services, "rad-none", Role.RADIOLOGIST, None),
        "researcher": _user(services, "researcher", Role.RESEARCHER, None),
        "clinic_b": _user(services, "clinic-b", Role.CLINIC_STAFF, site_b),
        "site_admin_b": _user(services, "sadmin-b", Role.SITE_ADMIN, site_b),
    }
    user_target = _user(services, "target", Role.RADIOLOGIST, site_a)
    with write_transaction(services.engine) as conn:
        admin.set_reading_grants(conn, users["radiologist_a"], [site_a])
    credentials: dict[str, dict[str, str]] = {"anonymous": {}}
    cookies: dict[str, str] = {}
    for name, user_id in users.items():
        token, csrf = _session(services, user_id)
        cookies[name] = token
        credentials[name] = {session_store.CSRF_HEADER: csrf}
    devices = {
        "device_a": (site_a, ["dicomweb.read", "dicomweb.stow"]),
        "device_a_stow": (site_a, ["dicomweb.stow"]),
        "device_a_audit": (site_a, ["system/AuditEvent.rs"]),
        "device_b": (site_b, ["dicomweb.read", "dicomweb.stow"]),
    }
    for name, (site, scopes) in devices.items():
        key = _device(services, site, name, scopes)
        credentials[name] = {"Authorization": f"Bearer {key}"}

    # Site A pseudonymizes (so its study has an identity to re-identify) and holds images
    # at risk of burned-in text for review.
    set_site_policy(services, site_a, "pseudonymized", "hold")
    ds = make_dataset()
    with TestClient(create_app(settings, services)) as http:
        stored = http.post(
            "/dicomweb/studies",
            content=stow_body(to_bytes(ds)),
            headers={"Content-Type": STOW_TYPE, **credentials["device_a"]},
        )
        assert stored.status_code == 200, stored.text
        url = stored.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
        study, series, sop = url.split("/")[-5::2]
        at_risk = http.post(
            "/dicomweb/studies",
            content=stow_body(to_bytes(make_dataset(BurnedInAnnotation="YES"))),
            headers={"Content-Type": STOW_TYPE, **credentials["device_a"]},
        )
        assert at_risk.status_code == 202, at_risk.text
        other = http.post(
            "/dicomweb/studies",
            content=stow_body(to_bytes(make_dataset())),
            headers={"Content-Type": STOW_TYPE, **credentials["device_b"]},
        )
        assert other.status_code == 200, other.text
    (held_view,) = held.list_held(services, None)
    with services.engine.connect() as conn:
        events = AuditEvent.__table__
        audit_event_a = conn.execute(
            select(events.c.id).where(events.c.study_uid == study).limit(1)
        ).scalar_one()
        pseudonym = conn.execute(
            select(Patient.__table__.c.patient_id)
            .join(Study.__table__, Study.__table__.c.patient_pk == Patient.__table__.c.id)
            .where(Study.__table__.c.study_uid == study)
        ).scalar_one()
    with write_transaction(services.engine) as conn:
        destination = int(
            destinations.create_dicom(
                conn, site_a, "matrix-pacs", ae_title="MPACS", host="127.0.0.1", port=9, backup=True
            )["id"]
        )

    def new_rule() -> int:
        with write_transaction(services.engine) as conn:
            return int(rules.create(conn, destination, modality="MR")["id"])

    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    from jwt.algorithms import ECAlgorithm

    jwk = json.loads(ECAlgorithm.to_jwk(key))
    return World(
        site_a=site_a,
        site_b=site_b,
        study=study,
        series=series,
        sop=sop,
        device_target=target["id"],
        key_target=target_key["id"],
        user_target=user_target,
        audit_event_a=audit_event_a,
        patient_id=str(ds.PatientID),
        pseudonym=pseudonym,
        held=held_view.id,
        held_sop=held_view.sop_uid,
        order=_order(services, site_a),
        destination=destination,
        new_rule=new_rule,
        jwks={"keys": [{**jwk, "alg": "ES384", "kid": "k1"}]},
        credentials=credentials,
        cookies=cookies,
    )


def _url(call: Call, world: World) -> str:
    path = call.path.format(
        study=world.study,
        series=world.series,
        sop=world.sop,
        frame_list="1",
        frame="1",
        tag="7FE00010",
        site_id=world.site_a,
        device_id=world.device_target,
        key_id=world.key_target,
        user_id=world.user_target,
        event_id=world.audit_event_a,
        held_id=world.held,
        study_uid=world.study,
        series_uid=world.series,
        sop_uid=world.sop,
        order_id=world.order,
        destination_id=world.destination,
        rule_id=world.rule,
    )
    if path == "/fhir/AuditEvent":
        return f"{path}?entity={world.study}&_count=500"
    if path.endswith("/wado"):
        return (
            f"{path}?requestType=WADO&studyUID={world.study}&seriesUID={world.series}"
            f"&objectUID={world.sop}"
        )
    return path


def _outcome(status: int, text: str, call: Call, world: World) -> str:
    if status in (401, 403, 404):
        return str(status)
    assert status < 500, f"{status}: {text[:200]}"
    if call.visible is not None and 200 <= status < 300:
        return OK if call.visible(world) in text.replace(" ", "") else EMPTY
    return OK


def test_access_matrix(settings: Settings, services: Services, world: World) -> None:
    app = create_app(settings, services)
    wrong: list[str] = []
    with TestClient(app) as http:
        for caller in CALLERS:
            for call in CALLS:
                http.cookies.clear()
                if caller in world.cookies:
                    http.cookies.set(session_store.COOKIE, world.cookies[caller])
                extra = call.body(world) if call.body else {}
                headers = {**world.credentials[caller], **extra.pop("headers", {})}
                response = http.request(call.method, _url(call, world), headers=headers, **extra)
                got = _outcome(response.status_code, response.text, call, world)
                expected = RULES[call.rule][caller]
                if got != expected:
                    wrong.append(f"{caller:17} {call.method} {call.path}: {got}, want {expected}")
    assert not wrong, "\n".join(wrong)
