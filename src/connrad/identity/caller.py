"""Who is calling: a user, a device, the local operator (CLI) or nobody.

A Caller is resolved once per request (or association) by the authenticator and handed to
every door; what it may do is decided by :mod:`connrad.identity.policy`, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from connrad.archive.ingest import Source


class Role(StrEnum):
    CLINIC_STAFF = "clinic_staff"
    RADIOLOGIST = "radiologist"
    SITE_ADMIN = "site_admin"
    ADMIN = "admin"
    RESEARCHER = "researcher"


CallerKind = Literal["user", "device", "system", "anonymous"]


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    actor: str  # as the audit trail names it: "user:7", "device:3", "system:cli", "anonymous"
    site_id: int | None  # home site: what a device or clinic user uploads belongs to it
    role: Role | None = None
    user_id: int | None = None
    device_id: int | None = None
    granted_site_ids: frozenset[int] = frozenset()  # radiologists' reading rights
    scopes: frozenset[str] | None = None  # credential scopes; None: not scope-limited
    must_change_password: bool = False
    address: str = "unknown"

    def source(self, door: str) -> Source:
        if self.site_id is None:
            raise ValueError("a caller without a home site cannot upload")
        return Source(self.site_id, self.device_id, door)

    @property
    def visible_site_ids(self) -> frozenset[int] | None:
        """Sites whose patient data this caller may read; None means every site."""
        from connrad.identity.policy import Action, site_scope

        return site_scope(self, Action.READ)


ANONYMOUS = Caller(kind="anonymous", actor="anonymous", site_id=None)


def system_caller(site_id: int | None, actor: str = "system:cli") -> Caller:
    """The local operator (CLI, demo loader): trusted like an admin, acting for a site."""
    return Caller(kind="system", actor=actor, site_id=site_id, role=Role.ADMIN)
