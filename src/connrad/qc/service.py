"""Quality control wired into the archive: fast findings recorded at ingest, deep checks as jobs.

Deep checks wait until a series has been quiet for ``qc_quiet_seconds`` (stable-series
detection: a portable CT may take minutes to push a series over a mountain link), then check
its geometry and a sample of its images. When every series of the study has been checked,
the study-level checks run (one patient per study, agreement with the order) and the study
gets its status; a failed study is quarantined when its site's policy says so.

An instance arriving after its series was checked turns the series back to ``pending`` and
schedules it again; a check that raced with such an arrival notices (the series'
``last_received_at`` moved) and reschedules itself instead of recording a stale verdict.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pydicom
from sqlalchemy import Connection, func, select, update

from connrad.archive.ingest import StoredInstance
from connrad.archive.models import Instance, Series, Study
from connrad.db.base import utcnow
from connrad.db.transaction import write_transaction
from connrad.identity.models import Site
from connrad.jobs import queue
from connrad.qc import record
from connrad.qc.consistency import study_checks
from connrad.qc.deep.geometry import GeometryLimits, SliceGeometry, series_checks
from connrad.qc.deep.pixels import PixelLimits, instance_pixel_checks
from connrad.qc.fast import FastLimits
from connrad.qc.findings import Finding, Status, worst
from connrad.qc.models import PENDING
from connrad.qc.policy import QUARANTINE

if TYPE_CHECKING:
    from connrad.services import Services
    from connrad.settings import Settings

log = logging.getLogger(__name__)

SERIES_JOB = "qc.series"
STUDY_JOB = "qc.study"
S, R, N = Study.__table__, Series.__table__, Instance.__table__
_sites = Site.__table__
# Modalities whose series are a handful of projection images: every image is checked.
_PROJECTION = frozenset({"CR", "DX", "MG", "IO", "PX", "RF", "XA"})
L = TypeVar("L")


def limits_from(settings: Settings, cls: type[L], prefix: str) -> L:
    """A limits dataclass with the thresholds ``settings.qc_thresholds`` overrides.

    Keys are ``<prefix>.<field>`` (``pixel.saturated_fraction``, ``geometry.gap_ratio``, ...).
    """
    overrides = {
        name.partition(".")[2]: value
        for name, value in settings.qc_thresholds.items()
        if name.startswith(prefix + ".")
    }
    default = cls()
    known = {f.name for f in fields(default)}  # type: ignore[arg-type]
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown QC thresholds: {', '.join(sorted(unknown))}")
    return replace(default, **overrides) if overrides else default  # type: ignore[type-var]


def check_thresholds(settings: Settings) -> None:
    """Fail at start-up, not in a job, on a misspelt threshold."""
    prefixes = {"fast": FastLimits, "geometry": GeometryLimits, "pixel": PixelLimits}
    for name in settings.qc_thresholds:
        if name.partition(".")[0] not in prefixes:
            raise ValueError(f"QC threshold {name!r}: prefix is one of {sorted(prefixes)}")
    for prefix, cls in prefixes.items():
        limits_from(settings, cls, prefix)


# --- in the indexing transaction ---------------------------------------------------------


def record_fast_findings(conn: Connection, stored: StoredInstance) -> None:
    if stored.findings:
        record.add(
            conn,
            stored.findings,
            stage=record.FAST,
            study_pk=stored.study_pk,
            series_pk=stored.series_pk,
            instance_pk=stored.instance_pk,
        )


def make_scheduler(quiet: timedelta) -> Any:
    def schedule_series_check(conn: Connection, stored: StoredInstance) -> None:
        """One pending check per series: new series, or a checked one that got more images."""
        if stored.new_series:
            queue.enqueue(conn, SERIES_JOB, {"series_pk": stored.series_pk}, delay=quiet)
            return
        reopened = conn.execute(
            update(R)
            .where(R.c.id == stored.series_pk, R.c.qc_status != PENDING)
            .values(qc_status=PENDING)
        ).rowcount
        if reopened:
            conn.execute(update(S).where(S.c.id == stored.study_pk).values(qc_status=PENDING))
            queue.enqueue(conn, SERIES_JOB, {"series_pk": stored.series_pk}, delay=quiet)

    return schedule_series_check


def register(services: Services) -> None:
    settings = services.settings
    check_thresholds(settings)
    quiet = timedelta(seconds=settings.qc_quiet_seconds)
    services.ingest.follow_ups.append(record_fast_findings)
    services.ingest.follow_ups.append(make_scheduler(quiet))
    services.job_handlers[SERIES_JOB] = lambda payload: check_series(services, payload)
    services.job_handlers[STUDY_JOB] = lambda payload: check_study(services, payload)


# --- deep checks (jobs) --------------------------------------------------------------------


def check_series(services: Services, payload: dict[str, Any]) -> None:
    series_pk = int(payload["series_pk"])
    settings = services.settings
    quiet = timedelta(seconds=settings.qc_quiet_seconds)
    with services.engine.connect() as conn:
        row = conn.execute(
            select(R.c.study_pk, R.c.modality, R.c.last_received_at).where(R.c.id == series_pk)
        ).first()
        if row is None:
            return  # deleted meanwhile
        instances = conn.execute(
            select(N.c.id, N.c.blob_key)
            .where(N.c.series_pk == series_pk)
            .order_by(N.c.instance_number, N.c.id)
        ).all()
    seen = row.last_received_at
    waited = utcnow() - seen
    if waited < quiet:  # still receiving: look again when it has been quiet long enough
        with write_transaction(services.engine) as conn:
            queue.enqueue(conn, SERIES_JOB, payload, delay=quiet - waited)
        return
    findings = _series_findings(services, str(row.modality or ""), instances)
    with write_transaction(services.engine) as conn:
        record.clear_deep(conn, int(row.study_pk), series_pk)
        for instance_pk, found in findings:
            record.add(
                conn,
                found,
                stage=record.DEEP,
                study_pk=int(row.study_pk),
                series_pk=series_pk,
                instance_pk=instance_pk,
            )
        rows = [r for r in record.load(conn, int(row.study_pk)) if r["series_pk"] == series_pk]
        status = record.status_of_rows(rows)
        settled = conn.execute(
            update(R)
            .where(R.c.id == series_pk, R.c.last_received_at == seen)
            .values(qc_status=status.value)
        ).rowcount
        if not settled:  # an instance arrived while checking: check again later
            queue.enqueue(conn, SERIES_JOB, payload, delay=quiet)
            return
        pending = conn.execute(
            select(func.count())
            .select_from(R)
            .where(R.c.study_pk == row.study_pk, R.c.qc_status == PENDING)
        ).scalar_one()
        if not pending:
            queue.enqueue(conn, STUDY_JOB, {"study_pk": int(row.study_pk)})


def _series_findings(
    services: Services, modality: str, instances: list[Any]
) -> list[tuple[int | None, list[Finding]]]:
    """(instance_pk or None for the series, findings) of one series."""
    settings = services.settings
    geometry_limits = limits_from(settings, GeometryLimits, "geometry")
    pixel_limits = limits_from(settings, PixelLimits, "pixel")
    slices: list[SliceGeometry] = []
    out: list[tuple[int | None, list[Finding]]] = []
    sample = _sample(instances, modality, settings.qc_pixel_images_per_series)
    for instance in instances:
        path = services.blobs.local_path(instance.blob_key)
        try:
            if instance.id in sample:
                ds = pydicom.dcmread(path)
                found = instance_pixel_checks(
                    ds, max_frames=settings.qc_pixel_frames_per_image, limits=pixel_limits
                )
                if found:
                    out.append((int(instance.id), found))
            else:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            slices.append(SliceGeometry.from_dataset(ds))
        except Exception as exc:  # stored instances passed the fast checks; still, never crash
            log.warning("QC could not read a stored instance: %s", type(exc).__name__)
    series_found = series_checks(slices, modality=modality, limits=geometry_limits)
    if series_found:
        out.append((None, series_found))
    return out


def _sample(instances: list[Any], modality: str, count: int) -> set[int]:
    """Images whose pixels are checked: all of a projection series, else spread evenly."""
    ids = [int(i.id) for i in instances]
    if modality in _PROJECTION or len(ids) <= count:
        return set(ids)
    if count <= 1:
        return {ids[len(ids) // 2]}
    step = (len(ids) - 1) / (count - 1)
    return {ids[round(k * step)] for k in range(count)}


def check_study(services: Services, payload: dict[str, Any]) -> None:
    study_pk = int(payload["study_pk"])
    with services.engine.connect() as conn:
        study = conn.execute(
            select(S.c.site_id, S.c.study_uid, S.c.last_received_at).where(S.c.id == study_pk)
        ).first()
        if study is None:
            return
        found = study_checks(services, conn, study_pk)
    with write_transaction(services.engine) as conn:
        record.clear_deep(conn, study_pk, None)
        record.add(conn, found, stage=record.DEEP, study_pk=study_pk)
        statuses = conn.execute(select(R.c.qc_status).where(R.c.study_pk == study_pk)).scalars()
        series_statuses = list(statuses)
        if PENDING in series_statuses:
            return  # a series reopened meanwhile: its check schedules this one again
        study_rows = [r for r in record.load(conn, study_pk) if r["series_pk"] is None]
        status = worst(record.status_of_rows(study_rows), *series_statuses)
        policy = conn.execute(
            select(_sites.c.qc_policy).where(_sites.c.id == study.site_id)
        ).scalar_one()
        conn.execute(
            update(S)
            .where(S.c.id == study_pk)
            .values(
                qc_status=status.value,
                qc_checked_at=utcnow(),
                quarantined=status is Status.FAIL and policy == QUARANTINE,
            )
        )
