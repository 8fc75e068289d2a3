"""Modality Worklist SCP (C-FIND, Modality Worklist Information Model - FIND).

A modality sees the open orders of its own site only: the site it stores into. The orders
are opened (they hold the real names the technologist picks the patient by), matched in
Python, and every query is audited, with the number of matches and never its keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from connrad.audit.log import AuditRecord
from connrad.db.base import utcnow
from connrad.dimse.server import caller_of
from connrad.identity.caller import Caller
from connrad.identity.policy import Action, allows
from connrad.orders import service, worklist
from connrad.services import Services

log = logging.getLogger(__name__)

SOP_CLASS_UID = str(ModalityWorklistInformationFind)
PENDING, CANCELLED, SUCCESS = 0xFF00, 0xFE00, 0x0000
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # PS3.4 C.4.1.1.4: the model cannot process it
NOT_AUTHORIZED = 0x0124  # PS3.7 C.5, as the other services answer it

Result = tuple[int | Dataset, Dataset | None]


def register(ae: AE, services: Services) -> list[tuple[Any, Callable[..., Any]]]:
    """Add this service's presentation contexts to ``ae``; return its event handlers."""
    # pynetdicom logs every request and response identifier by default: names and IDs.
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae.add_supported_context(ModalityWorklistInformationFind)

    return [(evt.EVT_C_FIND, partial(find, services))]


def find(services: Services, event: Any) -> Iterator[Result]:
    """The C-FIND responses: one pending per matching order, then success."""
    caller = caller_of(event)
    site_id = caller.site_id
    if site_id is None or not allows(caller, Action.STORE, site_id):
        _audit(services, caller, 403, 0)
        yield _failure(NOT_AUTHORIZED, "this device may not query the worklist"), None
        return
    try:
        identifier: Dataset = event.identifier
        worklist.check(identifier)
        start, end = worklist.window(identifier, utcnow())
    except Exception as exc:  # undecodable or unsupported: pydicom raises many kinds
        log.info("worklist query refused: %s", type(exc).__name__)
        _audit(services, caller, 400, 0)
        yield _failure(IDENTIFIER_DOES_NOT_MATCH, "identifier not supported"), None
        return
    keys = services.site_keys.all(site_id)
    with services.engine.connect() as conn:
        orders = service.scheduled(conn, site_id, keys, start, end) if keys else []
    matches = [r for o in orders if (r := worklist.respond(o, identifier)) is not None]
    # Audited before anything leaves; if the trail cannot be written, nothing does.
    _audit(services, caller, 200, len(matches))
    for response in matches:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        yield PENDING, response


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment
    return ds


def _audit(services: Services, caller: Caller, outcome: int, matches: int) -> None:
    services.audit.record(
        AuditRecord(
            actor=caller.actor,
            actor_site_id=caller.site_id,
            source=caller.address,
            action="search",
            resource="worklist",
            outcome=outcome,
            site_id=caller.site_id,
            detail={"door": "dimse", "matches": matches},
        )
    )
