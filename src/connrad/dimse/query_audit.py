"""Audit records for Query/Retrieve: one per C-FIND, one per study a C-MOVE/C-GET sends.

Like the DICOMweb records (``dicomweb/audit.py``): details hold UIDs, counts, key names and
statuses, never attribute values (they may be PHI).
"""

from __future__ import annotations

from typing import Any

from connrad.audit.log import AuditRecord
from connrad.identity.caller import Caller
from connrad.services import Services


def peer_address(event: Any) -> str:
    return str(event.assoc.requestor.address)


def record(
    services: Services,
    caller: Caller,
    event: Any,
    *,
    action: str,
    resource: str,
    outcome: int,
    study_uid: str | None = None,
    site_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    services.audit.record(
        AuditRecord(
            actor=caller.actor,
            actor_site_id=caller.site_id,
            source=peer_address(event),
            action=action,
            resource=resource,
            outcome=outcome,
            study_uid=study_uid,
            site_id=site_id,
            detail={"door": "dimse", **(detail or {})},
        )
    )
