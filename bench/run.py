"""`make bench`: connrad against Orthanc, same workload, same run.

1. STOW-RS: a realistic CT series, shape A (1 client x 1 instance a request) and shape B
   (4 clients x 10 instances a request), to each server in turn.
2. QIDO-RS: both servers filled with many tiny studies, then study searches timed.
3. C-STORE: storescu sends a CT series in one association to each server.
4. De-identification of CT slices on one core, against Orthanc's /anonymize
   (alone: ``python -m bench.deid``).

Both servers run side by side for the whole run; before every timed phase the bench waits
until neither burns CPU, so one server's background work never slows the other's numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.backup import backup_phase
from bench.connrad_server import connrad_server
from bench.cstore import cstore_phase
from bench.data import ct_payloads, qido_workload
from bench.deid import deid_phase
from bench.orthanc import orthanc_server
from bench.procs import Server, wait_quiet
from bench.qido import measure, query_kinds, stored_instances
from bench.stow_client import StowResult, multipart_bodies, stow

QUIET_TIMEOUT_S = 180.0  # connrad renders a thumbnail per new study after a fill
WARMUP_SINGLE, WARMUP_BATCHED = 10, 40


@dataclass(frozen=True)
class Shape:
    name: str
    clients: int
    per_request: int

    @property
    def label(self) -> str:
        return f"{self.name} {self.clients}x{self.per_request}"


SHAPES = (Shape("A", 1, 1), Shape("B", 4, 10))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=1400, help="CT slices per STOW shape")
    parser.add_argument("--studies", type=int, default=10_000, help="studies for QIDO")
    parser.add_argument("--queries", type=int, default=200, help="timed requests per query")
    parser.add_argument("--only", choices=("connrad", "orthanc"), help="bench one server only")
    parser.add_argument("--skip-qido", action="store_true", help="no QIDO phase")
    parser.add_argument("--skip-stow", action="store_true", help="no STOW phase")
    parser.add_argument("--skip-cstore", action="store_true", help="no C-STORE phase")
    parser.add_argument(
        "--cstore-instances", type=int, default=1400, help="CT slices for the C-STORE phase"
    )
    parser.add_argument("--skip-deid", action="store_true", help="skip the de-identification phase")
    parser.add_argument("--skip-backup", action="store_true", help="skip the PACS backup phase")
    parser.add_argument(
        "--backup-instances", type=int, default=1400, help="CT slices for the backup phase"
    )
    parser.add_argument("--deid-instances", type=int, default=400, help="CT slices for --deid")
    return parser.parse_args(argv)


def start_servers(stack: ExitStack, workdir: Path, only: str | None) -> list[Server]:
    servers = []
    if only in (None, "connrad"):
        (workdir / "connrad").mkdir()
        servers.append(stack.enter_context(connrad_server(workdir / "connrad")))
    if only in (None, "orthanc"):
        (workdir / "orthanc").mkdir()
        servers.append(stack.enter_context(orthanc_server(workdir / "orthanc")))
    return servers


def environment(servers: list[Server]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for server in servers:
        env[server.name.lower()] = server.version
        env.update(server.facts)
    return env


def stow_row(server: Server, result: StowResult, **extra: Any) -> dict[str, Any]:
    return {
        "server": server.name,
        "instances": result.instances,
        "bytes": result.nbytes,
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "instances_per_s": round(result.per_second, 2),
        "mb_per_s": round(result.mb_per_second, 2),
        "failed_requests": result.failed_requests,
        "failed_instances": result.failed_instances,
        "first_error": result.first_error,
        **extra,
    }


def check(results: dict[str, Any], what: str, result: StowResult) -> None:
    if result.failed_instances:
        results["problems"].append(
            f"{what}: {result.failed_instances} instances in {result.failed_requests} "
            f"requests failed; first: {result.first_error}"
        )


def warm_up(servers: list[Server], results: dict[str, Any]) -> None:
    """First requests pay for imports, table creation and cold caches: keep them untimed."""
    series = ct_payloads(WARMUP_SINGLE + WARMUP_BATCHED, "warm-up", seed=0)
    single = multipart_bodies(series.payloads[:WARMUP_SINGLE], 1)
    batched = multipart_bodies(series.payloads[WARMUP_SINGLE:], 10)
    for server in servers:
        check(
            results, f"{server.name} warm-up", stow(server.studies_url, single, 1, server.headers)
        )
        check(
            results, f"{server.name} warm-up", stow(server.studies_url, batched, 4, server.headers)
        )


def stow_phase(servers: list[Server], instances: int, results: dict[str, Any]) -> None:
    warm_up(servers, results)
    for index, shape in enumerate(SHAPES):
        series = ct_payloads(instances, f"shape-{shape.name}", seed=index + 1)
        bodies = multipart_bodies(series.payloads, shape.per_request)
        # Alternate who goes first, so neither always meets the other's leftovers.
        for server in servers if index % 2 == 0 else servers[::-1]:
            waited, quiet = wait_quiet(servers, timeout=QUIET_TIMEOUT_S)
            report.console.print(f"STOW {shape.label} -> {server.name} ...")
            result = stow(server.studies_url, bodies, shape.clients, server.headers)
            stored = stored_instances(server.studies_url, [series.study_uid], server.headers)
            check(results, f"STOW {shape.name} {server.name}", result)
            if stored != instances:
                results["problems"].append(
                    f"STOW {shape.name} {server.name}: QIDO reports {stored} of "
                    f"{instances} instances stored"
                )
            row = stow_row(server, result, shape=shape.label, stored=stored)
            row.update(quiet_wait_s=round(waited, 1), quiet_reached=quiet)
            report.console.print(
                f"  {result.per_second:.1f} inst/s, {result.mb_per_second:.1f} MB/s, "
                f"{result.failed_instances} failed"
            )
            results["stow"].append(row)


def qido_phase(servers: list[Server], args: argparse.Namespace, results: dict[str, Any]) -> None:
    report.console.print(f"Generating {args.studies} tiny studies ...")
    workload = qido_workload(args.studies)
    bodies = multipart_bodies(workload.payloads, 50)
    for server in servers:
        waited, _ = wait_quiet(servers, timeout=QUIET_TIMEOUT_S)
        report.console.print(f"QIDO fill -> {server.name} ...")
        result = stow(server.studies_url, bodies, 4, server.headers)
        check(results, f"QIDO fill {server.name}", result)
        results["qido_fill"].append(stow_row(server, result, quiet_wait_s=round(waited, 1)))
    for index, kind in enumerate(query_kinds(workload)):
        for server in servers if index % 2 == 0 else servers[::-1]:
            waited, quiet = wait_quiet(servers, timeout=QUIET_TIMEOUT_S)
            if not quiet:
                results["problems"].append(
                    f"QIDO {kind.name} {server.name}: servers still busy after {waited:.0f} s"
                )
            latency = measure(
                server.studies_url, kind, requests=args.queries, headers=server.headers
            )
            if latency.failures:
                results["problems"].append(
                    f"QIDO {kind.name} {server.name}: {latency.failures} failed; "
                    f"first: {latency.first_error}"
                )
            results["qido"].append(
                {
                    "server": server.name,
                    "query": kind.name,
                    "label": kind.label,
                    "requests": len(latency.samples_ms),
                    "p50_ms": round(latency.percentile(50), 2),
                    "p95_ms": round(latency.percentile(95), 2),
                    "mean_results": round(latency.mean_results, 1),
                    "failures": latency.failures,
                    "first_error": latency.first_error,
                    "quiet_wait_s": round(waited, 1),
                    "quiet_reached": quiet,
                }
            )
            report.console.print(
                f"QIDO {kind.name:<12} {server.name:<8} p50 {latency.percentile(50):7.1f} ms  "
                f"p95 {latency.percentile(95):7.1f} ms  ({latency.mean_results:.1f} matches)"
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {
        "started": stamp,
        "args": vars(args),
        "env": {},
        "stow": [],
        "qido_fill": [],
        "qido": [],
        "cstore": [],
        "problems": [],
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="connrad-bench-") as tmp, ExitStack() as stack:
        servers = start_servers(stack, Path(tmp), args.only)
        results["env"] = environment(servers)
        report.console.print(report.environment_line(results["env"]))
        try:
            if not args.skip_stow:
                stow_phase(servers, args.instances, results)
            if not args.skip_qido:
                qido_phase(servers, args, results)
            if not args.skip_cstore:
                cstore_phase(servers, args.cstore_instances, results, QUIET_TIMEOUT_S)
            if not args.skip_deid:
                wait_quiet(servers, timeout=QUIET_TIMEOUT_S)
                orthanc = next((s for s in servers if s.name == "Orthanc"), None)
                deid_phase(args.deid_instances, results, orthanc)
            if not args.skip_backup:
                wait_quiet(servers, timeout=QUIET_TIMEOUT_S)
                backup_phase(args.backup_instances, results)
        except Exception as exc:
            results["problems"].append(f"aborted: {type(exc).__name__}: {exc}")
            raise
        finally:
            for server in servers:
                if server.process.poll() is not None:
                    results["problems"].append(
                        f"{server.name} exited with {server.process.returncode}"
                    )
                if results["problems"]:
                    # The logs live in the temporary directory: show them before it goes.
                    tail = server.log_tail()
                    report.console.print(f"--- {server.name} log tail ---\n{tail or '(empty)'}")
                    results.setdefault("log_tails", {})[server.name] = tail
            results["total_s"] = round(time.monotonic() - began, 1)
            report.print_summary(results)
            report.console.print(f"Results: {report.save(results, stamp)}")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
