"""Audit records for DICOMweb requests: who read or stored which study, with what outcome.

Details hold UIDs, counts and attribute names, never attribute values (they may be PHI).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from connrad.archive.retrieve import StoredObject, find_instances
from connrad.audit.http import record
from connrad.identity.caller import Caller
from connrad.services import Services

MAX_LISTED_STUDIES = 100


def studies_listed(uids: Iterable[str]) -> dict[str, Any]:
    listed = list(dict.fromkeys(uids))
    return {"studies": listed[:MAX_LISTED_STUDIES], "study_count": len(listed)}


def instances(
    request: Request,
    services: Services,
    caller: Caller,
    study: str,
    series: str | None,
    sop: str | None,
) -> list[StoredObject]:
    """The stored objects asked for, visible to the caller; found or not, the look is audited."""
    found: list[StoredObject] = []
    try:
        with services.engine.connect() as conn:
            found = find_instances(conn, study, series, sop, site_ids=caller.visible_site_ids)
    finally:
        record(
            services,
            request,
            caller,
            action="read",
            resource="instance" if sop else "series" if series else "study",
            outcome=200 if found else 404,
            study_uid=study,
            site_id=found[0].site_id if found else None,
            detail={"instances": len(found)},
        )
    return found
