"""`connrad vault export SITE`: the old-to-new mapping of a site's pseudonymized data.

For audits (PS3.15 E.1.1 asks that the mapping be kept and protected): one CSV row per
replaced identifier — ``kind,old,new`` with kinds ``patient_id``, ``patient_name``,
``date_offset_days`` and ``uid``, the same format as ``connrad deid --mapping``. The file
holds identifiers in clear: it is written with mode 0600 and its export is audited.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from connrad.audit.log import AuditRecord
from connrad.deid import records
from connrad.deid.pseudonyms import PSEUDONYM_NAME_PREFIX, PSEUDONYM_PREFIX
from connrad.identity import admin
from connrad.settings import Settings

vault_app = typer.Typer(help="The identity vault.", no_args_is_help=True)
console = Console(stderr=True)


@vault_app.command("export")
def export(
    site: Annotated[str, typer.Argument(help="Site code.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write (0600).")],
) -> None:
    """Write the old-to-new mapping (PatientIDs, names, date offsets, UIDs) of SITE."""
    from connrad.services import build_services

    services = build_services(Settings())
    try:
        with services.engine.connect() as conn:
            site_id = int(admin.site_by_code(conn, site)["id"])
            keys = services.site_keys.all(site_id)
            pseudonyms = conn.execute(
                select(records.records.c.kind, records.records.c.pseudonym)
                .where(records.records.c.site_id == site_id)
                .order_by(records.records.c.id)
            ).all()
            rows = _mapping(
                (kind, pseudonym, records.read(conn, site_id, kind, pseudonym, keys))
                for kind, pseudonym in pseudonyms
            )
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["kind", "old", "new"])
            writer.writerows(rows)
        services.audit.record(
            AuditRecord(
                actor="system:cli",
                source="cli",
                action="reidentify",
                resource="mapping",
                outcome=200,
                site_id=site_id,
                detail={"rows": len(rows)},
            )
        )
    except admin.AdminError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.close()
    console.print(f"{len(rows)} rows written to {out}; the file holds identifiers: keep it safe")


def _mapping(found: object) -> list[tuple[str, str, str]]:
    rows: dict[tuple[str, str, str], None] = {}
    pseudonym_of: dict[str, str] = {}  # real PatientID -> pseudonymous one
    for kind, pseudonym, values in found:  # type: ignore[attr-defined]
        if values is None:
            continue
        if kind == records.PATIENT:
            real = values.get("PatientID") or ""
            pseudonym_of[real] = pseudonym
            rows[("patient_id", real, pseudonym)] = None
            name = PSEUDONYM_NAME_PREFIX + pseudonym.removeprefix(PSEUDONYM_PREFIX)
            rows[("patient_name", values.get("PatientName") or "", name)] = None
        elif kind == records.INSTANCE:
            for key, old in sorted(values.items()):
                if key.startswith(records.UID_PREFIX) and old:
                    rows[("uid", old, key.removeprefix(records.UID_PREFIX))] = None
            offset = values.get("date_offset_days")
            patient = pseudonym_of.get(values.get("PatientID") or "")
            if offset and patient:
                rows[("date_offset_days", patient, offset)] = None
    return list(rows)
