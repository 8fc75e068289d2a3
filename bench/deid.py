"""De-identification throughput on the bench's CT slices: one core, header only.

The target (issue): at least 400 instances/s on one core for ~525 KB CT slices, pixels
passed through. Ingest parses the upload, de-identifies it and writes it back to bytes, so
the headline figure times all three; the engine alone is reported beside it. Orthanc's
``POST /instances/{id}/anonymize`` (which answers with the anonymized file) is the peer:
it includes HTTP and Orthanc's own storage read, so it is an upper bound on its work.

    python -m bench.deid [--instances 400] [--no-orthanc]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
from rich.table import Table

from bench import report
from bench.data import ct_payloads
from connrad.deid.batch import POLICIES
from connrad.deid.engine import deidentify
from connrad.deid.profiles import Policy, TypeOf

TARGET_PER_S = 400.0
KEY = bytes(range(32))  # a fixed key: the figures do not depend on it
WARMUP = 20


@dataclass(frozen=True)
class Timing:
    """Per-instance samples of one measurement, in seconds."""

    label: str
    samples: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95_ms(self) -> float:
        return statistics.quantiles(self.samples, n=20)[-1] * 1000

    @property
    def per_s(self) -> float:
        """Sequential throughput: instances over the summed time."""
        return len(self.samples) / sum(self.samples)

    def row(self) -> dict[str, Any]:
        return {
            "what": self.label,
            "instances": len(self.samples),
            "median_ms": round(self.median_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "instances_per_s": round(self.per_s, 1),
        }


def type_of_lookup() -> Callable[[str], TypeOf | None]:
    """The IOD Type lookup ingest uses."""
    from connrad.dicom.iods import type_of_for

    return type_of_for


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Pin this process to one CPU for the measurement (Linux), then restore."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def measure_connrad(payloads: Sequence[bytes], policy: str = "pseudonymized") -> list[Timing]:
    """Engine only, and parse + de-identify + write back, per instance, sequentially."""
    engine_policy, type_of = POLICIES[policy], type_of_lookup()
    for payload in payloads[:WARMUP]:  # table load, HKDF, imports: not per-instance costs
        _one(payload, engine_policy, type_of)
    engine, full = [], []
    for payload in payloads:
        engine_s, full_s = _one(payload, engine_policy, type_of)
        engine.append(engine_s)
        full.append(full_s)
    return [Timing("connrad engine only", engine), Timing("connrad parse+deid+write", full)]


def _one(
    payload: bytes, policy: Policy, type_of: Callable[[str], TypeOf | None]
) -> tuple[float, float]:
    clock = time.perf_counter
    start = clock()
    ds = pydicom.dcmread(io.BytesIO(payload))
    parsed = clock()
    result = deidentify(ds, policy, KEY, type_of=type_of(str(ds.get("SOPClassUID", ""))))
    done = clock()
    out = io.BytesIO()
    pydicom.dcmwrite(out, result.dataset, enforce_file_format=True)
    written = clock()
    assert result.dataset.PatientIdentityRemoved == "YES"
    return done - parsed, written - start


def measure_orthanc(payloads: Sequence[bytes], base_url: str) -> Timing:
    """Upload untimed, then time ``POST /instances/{id}/anonymize`` one at a time."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        ids = [_upload(client, payload) for payload in payloads]
        for instance in ids[:WARMUP]:
            _anonymize(client, instance)
        samples = []
        for instance in ids:
            start = time.perf_counter()
            _anonymize(client, instance)
            samples.append(time.perf_counter() - start)
    return Timing("Orthanc /anonymize (REST)", samples)


def _upload(client: httpx.Client, payload: bytes) -> str:
    response = client.post("/instances", content=payload)
    response.raise_for_status()
    return str(response.json()["ID"])


def _anonymize(client: httpx.Client, instance: str) -> None:
    response = client.post(f"/instances/{instance}/anonymize", json={})
    response.raise_for_status()
    if response.content[128:132] != b"DICM":
        raise RuntimeError("Orthanc's /anonymize did not answer with a DICOM file")


def pin_process(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` to ``cpu`` (affinity is per thread on Linux)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {cpu})


def orthanc_timing(payloads: Sequence[bytes], base_url: str, pid: int) -> Timing:
    """Orthanc on one core (a different one from this client when there are two)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        pin_process(pid, cpus[-1])
    return measure_orthanc(payloads, base_url)


def deid_phase(n: int, results: dict[str, Any], orthanc: Any | None = None) -> None:
    """The bench phase: connrad always, Orthanc when a running server is handed in."""
    report.console.print(f"De-identification: {n} CT slices, one core ...")
    payloads = ct_payloads(n, "deid", seed=11).payloads
    with one_core():
        timings = measure_connrad(payloads)
    if orthanc is not None:
        base = orthanc.dicomweb.removesuffix("/dicom-web")
        timings.append(orthanc_timing(payloads, base, orthanc.process.pid))
    results["deid"] = [t.row() for t in timings]
    report.console.print(deid_table(timings))


def deid_table(timings: Sequence[Timing]) -> Table:
    table = Table(title=f"De-identification, one core, header only (target {TARGET_PER_S:.0f}/s)")
    for column in ("What", "Instances", "median ms", "p95 ms", "inst/s", "vs Orthanc"):
        table.add_column(column, justify="left" if column == "What" else "right")
    peer = next((t for t in timings if t.label.startswith("Orthanc")), None)
    for timing in timings:
        ratio = "-" if peer is None or timing is peer else f"{timing.per_s / peer.per_s:.1f}x"
        table.add_row(
            timing.label,
            str(len(timing.samples)),
            f"{timing.median_ms:.2f}",
            f"{timing.p95_ms:.2f}",
            f"{timing.per_s:.0f}",
            ratio,
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.deid", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--instances", type=int, default=400, help="CT slices to de-identify")
    parser.add_argument("--no-orthanc", action="store_true", help="connrad only")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        orthanc = None
        if not args.no_orthanc:
            from bench.orthanc import orthanc_server

            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-deid-")))
            orthanc = stack.enter_context(orthanc_server(workdir))
        deid_phase(args.instances, results, orthanc)
    full = next(row for row in results["deid"] if "write" in row["what"])
    met = full["instances_per_s"] >= TARGET_PER_S
    report.console.print(f"parse+deid+write: {full['instances_per_s']} inst/s; target met: {met}")
    report.console.print_json(data=results)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
