"""QIDO-RS (PS3.18 10.6): search studies, series and instances."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connrad.access import SearchCaller
from connrad.archive import query
from connrad.archive.attributes import Level
from connrad.dicomweb import audit
from connrad.dicomweb.deps import BaseDep, ServicesDep
from connrad.dicomweb.responses import dicom_json, problem

router = APIRouter()


def _search(
    level: Level,
    request: Request,
    services: ServicesDep,
    caller: SearchCaller,
    base: str,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    results: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
    try:
        search = query.parse_search(
            level, list(request.query_params.multi_items()), study_uid=study, series_uid=series
        )
        search.site_ids = caller.visible_site_ids
        with services.engine.connect() as conn:
            results = query.run(conn, search)
        detail = {
            "keys": sorted(search.filters),  # names only: the values may be patient data
            "results": len(results),
            **audit.studies_listed(r["0020000D"]["Value"][0] for r in results),
        }
    except query.QueryError as exc:
        return problem(400, str(exc))
    finally:
        audit.record(
            services,
            request,
            caller,
            action="search",
            resource=level.value,
            outcome=200 if detail else 400,
            study_uid=study,
            detail=detail,
        )
    for result in results:
        url = result["00081190"]["Value"]
        url[0] = f"{base}/{url[0]}"
    return dicom_json(results)


@router.get("/studies", summary="QIDO-RS: search studies")
def search_studies(
    request: Request, services: ServicesDep, caller: SearchCaller, base: BaseDep
) -> Response:
    return _search(Level.STUDY, request, services, caller, base)


@router.get("/series", summary="QIDO-RS: search all series")
def search_series(
    request: Request, services: ServicesDep, caller: SearchCaller, base: BaseDep
) -> Response:
    return _search(Level.SERIES, request, services, caller, base)


@router.get("/instances", summary="QIDO-RS: search all instances")
def search_instances(
    request: Request, services: ServicesDep, caller: SearchCaller, base: BaseDep
) -> Response:
    return _search(Level.INSTANCE, request, services, caller, base)


@router.get("/studies/{study}/series", summary="QIDO-RS: search the series of a study")
def search_study_series(
    study: str, request: Request, services: ServicesDep, caller: SearchCaller, base: BaseDep
) -> Response:
    return _search(Level.SERIES, request, services, caller, base, study)


@router.get("/studies/{study}/instances", summary="QIDO-RS: search the instances of a study")
def search_study_instances(
    study: str, request: Request, services: ServicesDep, caller: SearchCaller, base: BaseDep
) -> Response:
    return _search(Level.INSTANCE, request, services, caller, base, study)


@router.get(
    "/studies/{study}/series/{series}/instances",
    summary="QIDO-RS: search the instances of a series",
)
def search_series_instances(
    study: str,
    series: str,
    request: Request,
    services: ServicesDep,
    caller: SearchCaller,
    base: BaseDep,
) -> Response:
    return _search(Level.INSTANCE, request, services, caller, base, study, series)
