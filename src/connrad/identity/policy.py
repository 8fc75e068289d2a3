"""The one access policy: which caller may do which action on which site's data.

Every door asks here — DICOMweb, DIMSE, FHIR, the web app, file and frame URLs, the admin
API — and filters its database queries with :func:`site_scope`, so data of a site the
caller may not see is never fetched.
"""

from __future__ import annotations

from enum import StrEnum

from connrad.identity.caller import Caller, Role
from connrad.identity.scopes import covers


class Action(StrEnum):
    SEARCH = "search"  # find patients, studies, series, instances
    READ = "read"  # metadata, pixels, downloads, rendered images
    STORE = "store"  # upload instances
    REIDENTIFY = "reidentify"  # see the real identity behind a pseudonym
    AUDIT_READ = "audit.read"  # read the audit trail
    MANAGE = "manage"  # a site's devices and users
    MANAGE_SYSTEM = "manage.system"  # sites, administrators, reading grants across sites


EVERY_SITE = None
NO_SITE: frozenset[int] = frozenset()

_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.CLINIC_STAFF: frozenset({Action.SEARCH, Action.READ, Action.STORE, Action.REIDENTIFY}),
    Role.RADIOLOGIST: frozenset({Action.SEARCH, Action.READ}),
    Role.SITE_ADMIN: frozenset(
        {
            Action.SEARCH,
            Action.READ,
            Action.STORE,
            Action.REIDENTIFY,
            Action.AUDIT_READ,
            Action.MANAGE,
        }
    ),
    Role.RESEARCHER: frozenset(),  # research data comes from the CDM, not patient images
}

# The credential scope a device needs for each action (any one of them).
_DEVICE_SCOPES: dict[Action, tuple[str, ...]] = {
    Action.SEARCH: ("dicomweb.read", "system/ImagingStudy.s"),
    Action.READ: ("dicomweb.read", "system/ImagingStudy.r"),
    Action.STORE: ("dicomweb.stow",),
    Action.AUDIT_READ: ("system/AuditEvent.rs",),
}


def site_scope(caller: Caller, action: Action) -> frozenset[int] | None:
    """The sites whose data ``caller`` may act on with ``action``: None means every site."""
    if caller.kind == "anonymous" or caller.must_change_password:
        return NO_SITE
    home = frozenset() if caller.site_id is None else frozenset({caller.site_id})
    if action is Action.STORE and not home:
        return NO_SITE  # what is uploaded belongs to the uploader's home site: none, no upload
    if action is Action.REIDENTIFY and caller.kind != "system" and caller.role is Role.ADMIN:
        # Running the system is no reason to see who its patients are: only the sending
        # site's own people (and the local operator, who holds the master key anyway).
        return home
    if caller.kind == "system" or caller.role is Role.ADMIN:
        return _limited_by_scopes(caller, action, home if action is Action.STORE else EVERY_SITE)
    if caller.kind == "device":
        needed = _DEVICE_SCOPES.get(action, ())
        granted = caller.scopes or frozenset()
        return home if any(covers(granted, scope) for scope in needed) else NO_SITE
    if caller.role is None or action not in _ROLE_ACTIONS[caller.role]:
        return NO_SITE
    if caller.role is Role.RADIOLOGIST:
        return home | caller.granted_site_ids
    return home


def _limited_by_scopes(
    caller: Caller, action: Action, sites: frozenset[int] | None
) -> frozenset[int] | None:
    if caller.scopes is None:
        return sites
    needed = _DEVICE_SCOPES.get(action, ())
    return sites if any(covers(caller.scopes, s) for s in needed) else NO_SITE


def allows(caller: Caller, action: Action, site_id: int | None = None) -> bool:
    """May ``caller`` do ``action`` at all (site_id None) or on this site's data?"""
    sites = site_scope(caller, action)
    if sites is None:
        return True
    return bool(sites) if site_id is None else site_id in sites
