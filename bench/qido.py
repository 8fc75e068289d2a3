"""QIDO-RS study search latency on a server holding many studies."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from bench.data import QidoWorkload

_HEADERS = {"Accept": "application/dicom+json", "Accept-Encoding": "identity"}
_INSTANCES_IN_STUDY = "00201208"  # NumberOfStudyRelatedInstances
Params = list[tuple[str, str]]


@dataclass(frozen=True)
class QueryKind:
    name: str
    label: str  # how the report shows it
    params: list[Params]  # cycled through, so no server sees one query repeated


@dataclass
class Latency:
    samples_ms: list[float] = field(default_factory=list)
    results: list[int] = field(default_factory=list)  # matches returned per request
    failures: int = 0
    first_error: str | None = None

    def percentile(self, q: float) -> float:
        if len(self.samples_ms) < 2:
            return self.samples_ms[0] if self.samples_ms else float("nan")
        return statistics.quantiles(self.samples_ms, n=100, method="inclusive")[round(q) - 1]

    @property
    def mean_results(self) -> float:
        return statistics.fmean(self.results) if self.results else 0.0


def query_url(studies_url: str, params: Params) -> str:
    """The URL with `*` left literal: Orthanc 1.10 does not match a percent-encoded %2A."""
    return studies_url + "?" + "&".join(f"{k}={quote(v, safe='*')}" for k, v in params)


def query_kinds(workload: QidoWorkload) -> list[QueryKind]:
    return [
        QueryKind("worklist", "limit=25 (worklist page)", [[("limit", "25")]]),
        QueryKind(
            "patient_id",
            "PatientID=<exact>",
            [[("PatientID", value)] for value in workload.patient_ids],
        ),
        QueryKind(
            "name_prefix",
            "PatientName=<prefix>*",
            [[("PatientName", value)] for value in workload.name_prefixes],
        ),
        QueryKind(
            "date_range",
            "StudyDate=<31 days>&limit=50",
            [[("StudyDate", value), ("limit", "50")] for value in workload.date_ranges],
        ),
    ]


def measure(
    studies_url: str,
    kind: QueryKind,
    *,
    requests: int,
    warmup: int = 5,
    budget_s: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Latency:
    """Sequential requests on one keep-alive connection; stops early after `budget_s`."""
    latency = Latency()
    params = itertools.cycle(kind.params)
    with httpx.Client(headers={**_HEADERS, **(headers or {})}, timeout=60.0) as client:
        for _ in range(warmup):
            client.get(query_url(studies_url, next(params)))
        deadline = time.monotonic() + budget_s
        for _ in range(requests):
            query = next(params)
            began = time.perf_counter()
            try:
                response = client.get(query_url(studies_url, query))
                body = response.content
            except httpx.HTTPError as exc:
                _fail(latency, f"{type(exc).__name__}: {exc}")
                continue
            latency.samples_ms.append((time.perf_counter() - began) * 1000)
            if response.status_code == 204:  # QIDO-RS may answer "no matches" this way
                latency.results.append(0)
            elif response.status_code == 200:
                latency.results.append(len(response.json()) if body else 0)
            else:
                _fail(latency, f"HTTP {response.status_code}: {response.text[:300]}")
            if time.monotonic() > deadline:
                break
    return latency


def _fail(latency: Latency, error: str) -> None:
    latency.failures += 1
    latency.first_error = latency.first_error or error


def stored_instances(
    studies_url: str, study_uids: Sequence[str], headers: dict[str, str] | None = None
) -> int | None:
    """Instances the server reports for these studies (None when it cannot tell)."""
    total = 0
    with httpx.Client(headers={**_HEADERS, **(headers or {})}, timeout=60.0) as client:
        for study_uid in study_uids:
            response = client.get(
                studies_url,
                params=[("StudyInstanceUID", study_uid), ("includefield", _INSTANCES_IN_STUDY)],
            )
            if response.status_code == 204:
                continue
            if response.status_code != 200:
                return None
            for study in response.json():
                values = study.get(_INSTANCES_IN_STUDY, {}).get("Value", [])
                if not values:
                    return None
                total += int(values[0])
    return total
