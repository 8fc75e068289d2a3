"""Prior studies wired into the archive: a hook when a study is new, a job that fetches.

The hook runs in the indexing transaction of the instance that created a study's first
series and enqueues ``priors.fetch`` a few seconds later (the rest of the study is still
arriving: the job looks at its modalities and body parts then). Instances retrieved as
priors (door ``prior``) never schedule a fetch: priors do not fetch priors.

The job asks the site's prior source (its trusted DICOM or DICOMweb destinations: the
site's own PACS; the first that answers) for the patient's studies, chooses the relevant
ones (``relevance``), retrieves those not already complete in the archive, and links them
in one transaction at the end: a PACS failing half-way leaves no link (what was stored is
deduplicated on the retry, which the raised error makes the queue do). Linking is
idempotent. Settings (read with defaults until the settings module has them):
``priors_enabled``, ``priors_max``, ``priors_delay_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, exists, select

from connrad.archive.ingest import StoredInstance
from connrad.archive.models import Instance, Study
from connrad.audit import log as audit_log
from connrad.audit.log import AuditRecord
from connrad.db.transaction import write_transaction
from connrad.jobs import queue
from connrad.priors import context, links
from connrad.priors.peer import Unsupported
from connrad.priors.query import PatientKey, find_studies
from connrad.priors.relevance import Candidate, choose
from connrad.priors.retrieve import ACTOR, PRIOR_DOOR, Retrieved, retrieve, source_for
from connrad.routing.models import Destination
from connrad.routing.spec import DestinationSpec, DestinationUnavailable

if TYPE_CHECKING:
    from connrad.services import Services
    from connrad.settings import Settings

log = logging.getLogger(__name__)

FETCH_JOB = "priors.fetch"
S, N, D = Study.__table__, Instance.__table__, Destination.__table__

_DOOR_AND_SERIES = (
    select(
        N.c.door,
        S.c.num_series,
        exists()
        .where(D.c.site_id == S.c.site_id, D.c.trusted.is_(True), D.c.paused.is_(False))
        .label("has_source"),
    )
    .join(S, S.c.id == N.c.study_pk)
    .where(N.c.id == bindparam("pk"))
)


def enabled(settings: Settings) -> bool:
    return bool(getattr(settings, "priors_enabled", True))


def max_priors(settings: Settings) -> int:
    return int(getattr(settings, "priors_max", 3))


def delay(settings: Settings) -> timedelta:
    return timedelta(seconds=float(getattr(settings, "priors_delay_seconds", 5.0)))


# --- in the indexing transaction ---------------------------------------------------------


def make_hook(wait: timedelta) -> Callable[[Connection, StoredInstance], None]:
    def enqueue_prior_fetch(conn: Connection, stored: StoredInstance) -> None:
        """A fetch for a new study: its first series, not itself retrieved as a prior."""
        if not stored.new_series:
            return
        row = conn.execute(_DOOR_AND_SERIES, {"pk": stored.instance_pk}).first()
        if row is None or row.door == PRIOR_DOOR or row.num_series != 1 or not row.has_source:
            return  # a site without its own PACS has nowhere to look
        queue.enqueue(conn, FETCH_JOB, {"study_pk": stored.study_pk}, delay=wait)

    return enqueue_prior_fetch


def register(services: Services) -> None:
    """Add the hook and the job handler, once (a second call changes nothing)."""
    if FETCH_JOB in services.job_handlers:
        return
    # The handler is registered even when disabled, so jobs queued before drain quietly.
    services.job_handlers[FETCH_JOB] = lambda payload: fetch_priors(services, payload)
    if enabled(services.settings):
        services.ingest.follow_ups.append(make_hook(delay(services.settings)))


# --- the job -------------------------------------------------------------------------------


def trusted_sources(conn: Connection, site_id: int) -> list[DestinationSpec]:
    """The site's own PACS: its trusted, unpaused DICOM and DICOMweb destinations."""
    rows = conn.execute(
        select(D)
        .where(
            D.c.site_id == site_id,
            D.c.trusted.is_(True),
            D.c.paused.is_(False),
            D.c.kind.in_(("dicom", "dicomweb")),
        )
        .order_by(D.c.id)
    ).mappings()
    return [DestinationSpec.from_row(row) for row in rows]


def fetch_priors(services: Services, payload: dict[str, Any]) -> list[int]:
    """Fetch and link the priors of ``payload["study_pk"]``; the prior study keys linked now.

    Raises DestinationUnavailable when the PACS cannot be asked or fails during a
    retrieval (the queue retries the job).
    """
    settings = services.settings
    if not enabled(settings):
        return []
    study_pk = int(payload["study_pk"])
    started = time.monotonic()
    current = context.load(services, study_pk)
    if current is None:
        return []
    with services.engine.connect() as conn:
        sources = trusted_sources(conn, current.site_id)
    if not sources:
        return []
    spec: DestinationSpec | None = None
    try:
        spec, candidates = _ask(services, sources, current.patient)
        if spec is None:
            return []
        chosen = choose(current.relevance, candidates, max_priors(settings))
        prior_pks, totals = _fetch(services, spec, current, chosen)
        with write_transaction(services.engine) as conn:
            added = links.link(conn, study_pk, prior_pks)
            audit_log.append(
                conn,
                [
                    _audit(
                        current,
                        spec,
                        200,
                        found=len(candidates),
                        chosen=len(chosen),
                        stored=totals.stored,
                        refused=totals.refused + totals.held + totals.remote_failed,
                        linked=len(added),
                    )
                ],
            )
    except DestinationUnavailable as exc:
        services.audit.record(_audit(current, spec or sources[0], 503, error=str(exc)[:120]))
        log.warning("priors of study %d: prior source unavailable: %s", study_pk, exc)
        raise
    log.info(
        "priors of study %d: %d found, %d chosen, %d instances stored, %d linked in %.2f s",
        study_pk,
        len(candidates),
        len(chosen),
        totals.stored,
        len(added),
        time.monotonic() - started,
    )
    return added


def _ask(
    services: Services, sources: list[DestinationSpec], patient: PatientKey
) -> tuple[DestinationSpec | None, list[Candidate]]:
    """The first source that answers, with its answer; (None, []) when none can be asked."""
    failure: DestinationUnavailable | None = None
    for spec in sources:
        try:
            return spec, find_studies(spec, services.settings, patient)
        except Unsupported as exc:
            log.info("prior source %d cannot be queried: %s", spec.id, exc)
        except DestinationUnavailable as exc:
            failure = exc
    if failure is not None:
        raise failure
    return None, []


def _fetch(
    services: Services,
    spec: DestinationSpec,
    current: context.CurrentStudy,
    chosen: list[Candidate],
) -> tuple[list[int], Retrieved]:
    """Archive study keys of the chosen priors, retrieving those not complete here."""
    totals = Retrieved()
    wanted = {c.study_uid: current.stored_uid_of(c.study_uid) for c in chosen}
    with services.engine.connect() as conn:
        here = {
            str(r.study_uid): (int(r.id), int(r.num_instances))
            for r in conn.execute(
                select(S.c.id, S.c.study_uid, S.c.num_instances).where(
                    S.c.site_id == current.site_id, S.c.study_uid.in_(list(wanted.values()))
                )
            )
        }
    prior_pks: list[int] = []
    for candidate in chosen:
        found = here.get(wanted[candidate.study_uid])
        if found and candidate.num_instances is not None and found[1] >= candidate.num_instances:
            prior_pks.append(found[0])  # complete already (an earlier fetch, or the clinic)
            continue
        try:
            got = retrieve(services, spec, candidate)
        except Unsupported as exc:
            log.warning("prior source %d cannot retrieve: %s", spec.id, exc)
            continue
        _add(totals, got)
        if got.refused or got.remote_failed or got.held:
            log.warning(
                "prior study of study %d: %d instances not stored, %d held, %d not sent",
                current.study_pk,
                got.refused,
                got.held,
                got.remote_failed,
            )
        if got.study_uids:
            with services.engine.connect() as conn:
                prior_pks += conn.execute(
                    select(S.c.id).where(
                        S.c.site_id == current.site_id, S.c.study_uid.in_(sorted(got.study_uids))
                    )
                ).scalars()
    return prior_pks, totals


def _add(totals: Retrieved, got: Retrieved) -> None:
    totals.stored += got.stored
    totals.held += got.held
    totals.refused += got.refused
    totals.remote_failed += got.remote_failed


def _audit(
    current: context.CurrentStudy, spec: DestinationSpec, outcome: int, **detail: Any
) -> AuditRecord:
    """The fetch as a system action: the PACS asked, the counts; no identifier of the patient."""
    return AuditRecord(
        actor=ACTOR,
        actor_site_id=current.site_id,
        source=source_for(spec).address,
        action="read",
        resource="study",
        outcome=outcome,
        study_uid=current.stored_uid,
        site_id=current.site_id,
        detail={"service": "priors", "destination": spec.name, **detail},
    )
