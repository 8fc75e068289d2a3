"""`connrad deid IN_DIR OUT_DIR`: de-identify a folder of DICOM files with a site key.

For exports outside the archive (research, teaching, a vendor's support case): the same
engine and key as the archive's pseudonymization, so a rerun with the same key gives the
same bytes and the same pseudonyms. Exit status: 0 all files fine, 1 some failed (all
were still tried), 2 usage error.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connrad.deid import batch

console = Console()
err_console = Console(stderr=True)
LIST_LIMIT = 50  # per list in the summary; the rest is counted


class PolicyName(StrEnum):
    PSEUDONYMIZED = "pseudonymized"
    ANONYMIZED = "anonymized"


def deid(
    in_dir: Annotated[
        Path | None, typer.Argument(help="Folder of DICOM files (read recursively).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Argument(help="Output folder (mirrors IN_DIR); not inside IN_DIR.")
    ] = None,
    policy: Annotated[
        PolicyName | None, typer.Option(help="What to keep: shifted dates or nothing.")
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(help="Key file (base64url or hex, mode 0600); same key, same output."),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="Write the old->new CSV (kind,old,new) here; it holds identifiers."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes (default: CPU count).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing output files.")
    ] = False,
    quarantine_pixel_risk: Annotated[
        bool,
        typer.Option(
            "--quarantine-pixel-risk",
            help=f"Write files that may show identity in pixels under {batch.QUARANTINE_DIR}/.",
        ),
    ] = False,
    generate_key_file: Annotated[
        Path | None,
        typer.Option(help="Create a new key file (mode 0600) at this path and exit."),
    ] = None,
) -> None:
    """De-identify every DICOM file under IN_DIR into OUT_DIR (PS3.15 Basic Profile)."""
    if generate_key_file is not None:
        _generate(generate_key_file, in_dir)
        return
    if in_dir is None or out_dir is None:
        raise typer.BadParameter("IN_DIR and OUT_DIR are required", param_hint="IN_DIR OUT_DIR")
    if policy is None:
        raise typer.BadParameter("choose pseudonymized or anonymized", param_hint="--policy")
    if key_file is None:
        raise typer.BadParameter(
            "pass a key file (create one with --generate-key-file)", param_hint="--key-file"
        )
    try:
        key = batch.load_key(key_file)
        batch.check_dirs(in_dir, out_dir)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if mapping is not None:
        _check_mapping_path(mapping, out_dir, overwrite)
    job = batch.Job(
        in_dir=in_dir,
        out_dir=out_dir,
        policy=batch.POLICIES[policy.value],
        key=key,
        overwrite=overwrite,
        quarantine_pixel_risk=quarantine_pixel_risk,
        want_mapping=mapping is not None,
    )
    report = _run_with_progress(job, workers)
    if mapping is not None:
        _write_mapping(mapping, report, overwrite)
    _print_summary(report, out_dir)
    if report.count(batch.Status.FAILED):
        raise typer.Exit(1)


def _generate(path: Path, in_dir: Path | None) -> None:
    if in_dir is not None:
        raise typer.BadParameter(
            "--generate-key-file only creates a key; run deid again with --key-file",
            param_hint="--generate-key-file",
        )
    try:
        batch.generate_key_file(path)
    except batch.BatchError as exc:
        raise typer.BadParameter(str(exc), param_hint="--generate-key-file") from None
    console.print(
        f"New key in {escape(str(path))} (mode 0600). Keep a copy: without it the "
        "pseudonyms cannot be reproduced."
    )


def _check_mapping_path(mapping: Path, out_dir: Path, overwrite: bool) -> None:
    """Fail before the run, not after it; and never ship the identifiers with the data."""
    if out_dir.resolve() in mapping.resolve().parents:
        raise typer.BadParameter(
            "keep the mapping outside OUT_DIR: it holds identifiers and OUT_DIR is for sharing",
            param_hint="--mapping",
        )
    if mapping.exists() and not overwrite:
        raise typer.BadParameter(f"{mapping} exists (use --overwrite)", param_hint="--mapping")


def _run_with_progress(job: batch.Job, workers: int | None) -> batch.Report:
    files = batch.find_files(job.in_dir)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("de-identifying", total=len(files))
        return batch.run(job, files, workers=workers, on_outcome=lambda _: progress.advance(task))


def _write_mapping(path: Path, report: batch.Report, overwrite: bool) -> None:
    try:
        batch.write_mapping(path, report.mapping_rows(), overwrite=overwrite)
    except FileExistsError:
        err_console.print(
            f"[red]{escape(str(path))} exists; mapping not written (use --overwrite)[/red]"
        )
        raise typer.Exit(1) from None
    console.print(
        f"[yellow]Warning: {escape(str(path))} holds the original identifiers (patient IDs, "
        "names, UIDs). Keep it as confidential as the source files.[/yellow]",
        soft_wrap=True,
    )


def _print_summary(report: batch.Report, out_dir: Path) -> None:
    table = Table(title="de-identification")
    table.add_column("files")
    table.add_column("count", justify="right")
    table.add_row("ok", str(report.count(batch.Status.OK)))
    table.add_row("skipped (not DICOM)", str(report.count(batch.Status.SKIPPED)))
    table.add_row("failed", str(report.count(batch.Status.FAILED)))
    table.add_row("pixel risk", str(len(report.pixel_risk)))
    table.add_row("engine warnings", str(sum(o.warnings for o in report.outcomes)))
    table.add_row("seconds", f"{report.seconds:.2f}")
    table.add_row("instances/s", f"{report.instances_per_s:.1f}")
    console.print(table)
    skipped = [o for o in report.outcomes if o.status is batch.Status.SKIPPED]
    failed = [o for o in report.outcomes if o.status is batch.Status.FAILED]
    _print_list("Skipped", [f"{o.source}: {o.reason}" for o in skipped])
    _print_list("Failed", [f"{o.source}: {o.reason}" for o in failed], style="red")
    _print_list(
        f"Pixel risk (check the pixels before sharing; written to {out_dir})",
        [f"{o.output}: {'; '.join(o.pixel_risk_reasons)}" for o in report.pixel_risk],
        style="yellow",
    )


def _print_list(title: str, lines: list[str], style: str = "") -> None:
    if not lines:
        return
    console.print(f"[{style or 'bold'}]{escape(title)}:[/{style or 'bold'}]", soft_wrap=True)
    for line in lines[:LIST_LIMIT]:
        console.print(f"  {escape(line)}", soft_wrap=True, highlight=False)
    if len(lines) > LIST_LIMIT:
        console.print(f"  ... and {len(lines) - LIST_LIMIT} more")
