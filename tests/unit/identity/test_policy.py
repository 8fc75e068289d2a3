"""The policy as a table: role or credential, action, and whose site."""

from __future__ import annotations

import pytest

from connrad.identity.caller import ANONYMOUS, Caller, Role, system_caller
from connrad.identity.policy import Action, allows, site_scope

A, B, C = 1, 2, 3


def user(role: Role, site: int | None = A, grants: frozenset[int] = frozenset()) -> Caller:
    return Caller(kind="user", actor="user:1", site_id=site, role=role, granted_site_ids=grants)


def device(*scopes: str, site: int = A) -> Caller:
    return Caller(kind="device", actor="device:1", site_id=site, scopes=frozenset(scopes))


@pytest.mark.parametrize(
    ("caller", "action", "expected"),
    [
        (ANONYMOUS, Action.READ, frozenset()),
        (user(Role.ADMIN, None), Action.READ, None),
        (user(Role.ADMIN, None), Action.STORE, frozenset()),
        (user(Role.ADMIN, A), Action.STORE, {A}),
        (user(Role.SITE_ADMIN), Action.MANAGE, {A}),
        (user(Role.SITE_ADMIN), Action.MANAGE_SYSTEM, frozenset()),
        (user(Role.SITE_ADMIN), Action.AUDIT_READ, {A}),
        (user(Role.CLINIC_STAFF), Action.SEARCH, {A}),
        (user(Role.CLINIC_STAFF), Action.STORE, {A}),
        (user(Role.CLINIC_STAFF), Action.REIDENTIFY, {A}),
        (user(Role.CLINIC_STAFF), Action.MANAGE, frozenset()),
        (user(Role.RADIOLOGIST, None, frozenset({B, C})), Action.READ, {B, C}),
        (user(Role.RADIOLOGIST, A, frozenset({B})), Action.SEARCH, {A, B}),
        (user(Role.RADIOLOGIST, None, frozenset({B})), Action.STORE, frozenset()),
        (user(Role.RADIOLOGIST, None, frozenset({B})), Action.REIDENTIFY, frozenset()),
        (user(Role.RESEARCHER, None), Action.READ, frozenset()),
        (device("dicomweb.read"), Action.READ, {A}),
        (device("dicomweb.read"), Action.STORE, frozenset()),
        (device("dicomweb.stow"), Action.STORE, {A}),
        (device("dicomweb.stow"), Action.SEARCH, frozenset()),
        (device("system/*.rs"), Action.SEARCH, {A}),
        (device("system/*.rs"), Action.AUDIT_READ, {A}),
        (device("system/*.rs"), Action.MANAGE, frozenset()),
        (device(), Action.READ, frozenset()),
        (system_caller(A), Action.READ, None),
        (system_caller(A), Action.STORE, {A}),
    ],
)
def test_site_scope(caller: Caller, action: Action, expected: object) -> None:
    assert site_scope(caller, action) == expected


def test_a_pending_password_change_blocks_everything() -> None:
    caller = Caller(kind="user", actor="user:1", site_id=A, role=Role.ADMIN)
    pending = Caller(
        kind="user", actor="user:1", site_id=A, role=Role.ADMIN, must_change_password=True
    )
    assert allows(caller, Action.READ, B)
    assert not any(allows(pending, action) for action in Action)


def test_allows_checks_the_site() -> None:
    clinic = user(Role.CLINIC_STAFF)
    assert allows(clinic, Action.READ, A)
    assert not allows(clinic, Action.READ, B)
    assert allows(clinic, Action.READ)
    assert not allows(user(Role.RESEARCHER), Action.READ)
