"""The summary: rich tables on the terminal and the same facts as JSON in bench/results/."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
P95_TARGET_MS = 20.0
# Piped output (make bench | tee) would otherwise be cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 130)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


def _by_server(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row[key], {})[row["server"]] = row
    return grouped


def environment_line(env: dict[str, Any]) -> str:
    return (
        f"CPUs: {env['cpu_count']}  Python {env['python']}  connrad {env.get('connrad', '-')}  "
        f"Orthanc {env.get('orthanc', '-')} (DICOMweb plugin {env.get('dicomweb_plugin', '-')})"
    )


def stow_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="STOW-RS throughput (CT 512x512x16, ~525 KB/instance; MB = 10^6 bytes)")
    for column in ("Shape", "Server", "Instances", "Seconds", "inst/s", "MB/s", "Failed"):
        table.add_column(column, justify="left" if column in ("Shape", "Server") else "right")
    table.add_column("Stored", justify="right")
    table.add_column("connrad/Orthanc", justify="right")
    for shape, servers in _by_server(rows, "shape").items():
        connrad, orthanc = servers.get("connrad"), servers.get("Orthanc")
        ratio = _ratio(
            connrad and connrad["instances_per_s"], orthanc and orthanc["instances_per_s"]
        )
        for index, row in enumerate(servers.values()):
            failed = row["failed_instances"]
            table.add_row(
                shape if index == 0 else "",
                row["server"],
                str(row["instances"]),
                f"{row['seconds']:.1f}",
                f"{row['instances_per_s']:.1f}",
                f"{row['mb_per_s']:.1f}",
                f"[red]{failed}[/red]" if failed else "0",
                "?" if row["stored"] is None else str(row["stored"]),
                ratio if index == 0 else "",
            )
    return table


def fill_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="QIDO fill: tiny one-instance studies, 4 clients x 50 per request")
    for column in ("Server", "Studies", "Seconds", "inst/s", "Failed"):
        table.add_column(column, justify="left" if column == "Server" else "right")
    for row in rows:
        failed = row["failed_instances"]
        table.add_row(
            row["server"],
            str(row["instances"]),
            f"{row['seconds']:.1f}",
            f"{row['instances_per_s']:.0f}",
            f"[red]{failed}[/red]" if failed else "0",
        )
    return table


def qido_table(rows: list[dict[str, Any]], studies: int) -> Table:
    table = Table(title=f"QIDO-RS /studies latency with {studies} studies (ms)")
    table.add_column("Query", no_wrap=True)
    for column in ("connrad p50", "connrad p95", "Orthanc p50", "Orthanc p95"):
        table.add_column(column, justify="right")
    table.add_column("p95 c/O", justify="right")
    table.add_column("matches c/O", justify="right")
    table.add_column(f"connrad p95 < {P95_TARGET_MS:.0f}", justify="center")
    for _, servers in _by_server(rows, "query").items():
        connrad, orthanc = servers.get("connrad"), servers.get("Orthanc")
        label = next(iter(servers.values()))["label"]

        def cell(row: dict[str, Any] | None, key: str) -> str:
            if row is None:
                return "-"
            text = f"{row[key]:.1f}"
            return f"{text} [red]({row['failures']} failed)[/red]" if row["failures"] else text

        target = "-"
        if connrad is not None:
            target = "[green]yes[/green]" if connrad["p95_ms"] < P95_TARGET_MS else "[red]no[/red]"
        matches = "/".join(
            f"{row['mean_results']:.1f}" if row else "-" for row in (connrad, orthanc)
        )
        table.add_row(
            label,
            cell(connrad, "p50_ms"),
            cell(connrad, "p95_ms"),
            cell(orthanc, "p50_ms"),
            cell(orthanc, "p95_ms"),
            _ratio(connrad and connrad["p95_ms"], orthanc and orthanc["p95_ms"]),
            matches,
            target,
        )
    return table


def cstore_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="C-STORE ingest (storescu, one association)")
    for column in ("Server", "Policy", "Instances", "Stored", "Seconds", "inst/s", "c/O"):
        table.add_column(column, justify="left" if column in ("Server", "Policy") else "right")
    orthanc = next((r["instances_per_s"] for r in rows if r["server"] == "Orthanc"), None)
    for row in rows:
        ratio = (
            f"{row['instances_per_s'] / orthanc:.2f}x"
            if orthanc and row["server"] != "Orthanc"
            else ""
        )
        table.add_row(
            row["server"],
            row["label"],
            str(row["instances"]),
            str(row["stored"]),
            f"{row['seconds']:.1f}",
            f"{row['instances_per_s']:.1f}",
            ratio,
        )
    return table


def print_summary(results: dict[str, Any]) -> None:
    console.rule("connrad vs Orthanc")
    console.print(environment_line(results["env"]))
    if results.get("stow"):
        console.print(stow_table(results["stow"]))
        console.print(
            "Shape NxK: N concurrent clients x K instances a request. "
            "connrad/Orthanc > 1 means connrad stores faster."
        )
    if results.get("qido_fill"):
        console.print(fill_table(results["qido_fill"]))
    if results.get("qido"):
        console.print(qido_table(results["qido"], results["args"]["studies"]))
        console.print(
            "p95 c/O = connrad/Orthanc, < 1 means connrad answers faster. matches c/O: mean "
            "studies returned. For limit=25 Orthanc applies no order; connrad sorts newest first."
        )
    if results.get("cstore"):
        console.print(cstore_table(results["cstore"]))
        console.print("C-STORE: one storescu association per run; c/O > 1 means connrad is faster.")
    if results.get("backup"):
        row = results["backup"]
        console.print(
            f"PACS backup of {row['instances']} CT slices to Orthanc: direct storescu "
            f"{row['direct_per_s']} inst/s; connrad backup {row['backup_sent_per_s']} inst/s "
            f"acknowledged ({row['ratio_sent']}x), {row['backup_confirmed_per_s']} inst/s "
            f"confirmed ({row['ratio_confirmed']}x). Target 0.8x."
        )
    for problem in results["problems"]:
        console.print(f"[red]PROBLEM[/red] {problem}")


def save(results: dict[str, Any], stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path
