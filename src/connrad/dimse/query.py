"""Query/Retrieve SCP: C-FIND here, C-MOVE and C-GET in :mod:`connrad.dimse.move`.

C-FIND (Patient Root and Study Root, hierarchical) runs the QIDO-RS search engine, so the
two doors match alike (PS3.4 C.2.2.2: wildcards, ranges, UID lists, person names in any
component group) and see only what the caller's site may see. Statuses (PS3.4 C.4.1.1.4):
0xFF00 per match, then 0x0000; 0xFE00 when cancelled; 0xA900 for an identifier that does
not fit the model (no or a wrong QueryRetrieveLevel, a missing unique key above the level);
0xC000 for a value the engine cannot use (a malformed date range); 0xC310 for an identifier
that cannot be decoded; 0x0124 for a device without the right to search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from connrad.archive import query
from connrad.archive.attributes import Level
from connrad.dicomweb.audit import studies_listed
from connrad.dimse import move, query_audit
from connrad.dimse.query_keys import (
    CANCELLED,
    NOT_AUTHORIZED,
    PENDING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    IdentifierError,
    Root,
    decoded_identifier,
    distinct_patients,
    parse_find,
    response,
)
from connrad.dimse.server import caller_of
from connrad.identity.policy import NO_SITE, Action, site_scope
from connrad.services import Services

log = logging.getLogger(__name__)


FIND_MODELS: dict[str, Root] = {
    str(PatientRootQueryRetrieveInformationModelFind): Root.PATIENT,
    str(StudyRootQueryRetrieveInformationModelFind): Root.STUDY,
}
# Identifiers are small: the uncompressed syntaxes every SCU proposes are enough.
QR_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


def register(ae: AE, services: Services) -> list[tuple[Any, Callable[..., Any]]]:
    """Find, move and get contexts of both information models; their handlers."""
    # pynetdicom logs whole identifiers at INFO by default: names and IDs would reach the
    # logs. Process-wide, as the SCP process is pynetdicom's only user.
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    for sop_class in FIND_MODELS:
        ae.add_supported_context(sop_class, QR_SYNTAXES)
    return [(evt.EVT_C_FIND, partial(handle_find, services)), *move.register(ae, services)]


def handle_find(services: Services, event: Any) -> Iterator[tuple[int, Dataset | None]]:
    caller = caller_of(event)
    root = FIND_MODELS[str(event.request.AffectedSOPClassUID)]
    sites = site_scope(caller, Action.SEARCH)
    status, matches, resource = SUCCESS, [], "study"
    detail: dict[str, Any] = {"model": root.value}
    try:
        if sites == NO_SITE:
            raise IdentifierError("no right to search", NOT_AUTHORIZED)
        request = parse_find(decoded_identifier(event), root)
        resource = request.level.value
        search = query.parse_search(request.search_level, request.params)
        search.site_ids = sites
        with services.engine.connect() as conn:
            rows = query.run(conn, search)
        if len(rows) == query.MAX_LIMIT:
            log.info("C-FIND answered with the first %d matches only", query.MAX_LIMIT)
        if request.level is Level.PATIENT:
            rows = distinct_patients(rows)
        else:
            detail.update(studies_listed(r["0020000D"]["Value"][0] for r in rows))
        matches = [response(request, row, services.settings.ae_title) for row in rows]
        detail.update(keys=request.keywords, results=len(matches))
    except IdentifierError as exc:
        status = exc.status
        log.info("C-FIND refused: 0x%04X %s", status, exc)
    except query.QueryError as exc:
        status = UNABLE_TO_PROCESS
        log.info("C-FIND refused: 0x%04X %s", status, exc)
    detail["status"] = f"0x{status:04X}"
    query_audit.record(
        services,
        caller,
        event,
        action="search",
        resource=resource,
        outcome=_outcome(status),
        detail=detail,
    )
    if status != SUCCESS:
        yield status, None
        return
    for match in matches:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        yield PENDING, match
    yield SUCCESS, None


def _outcome(status: int) -> int:
    """The HTTP-like outcome the audit trail records for a DIMSE status."""
    if status == NOT_AUTHORIZED:
        return 403
    return 200 if status in (SUCCESS, CANCELLED) else 400
