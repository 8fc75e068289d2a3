"""Finds stored instances for WADO: by study, series or instance, restricted to sites."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from connrad.archive.models import Instance, Series, Study

S, R, N = Study.__table__, Series.__table__, Instance.__table__


class NotFound(LookupError):
    """No such study/series/instance visible to the caller (message names the level only)."""


@dataclass(frozen=True)
class StoredObject:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_key: str
    size_bytes: int
    sha256: str
    number_of_frames: int | None
    rows: int | None
    site_id: int


def find_instances(
    conn: Connection,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    site_ids: Sequence[int] | None = None,
) -> list[StoredObject]:
    statement = (
        select(
            S.c.study_uid,
            R.c.series_uid,
            N.c.sop_uid,
            N.c.sop_class_uid,
            N.c.transfer_syntax_uid,
            N.c.blob_key,
            N.c.size_bytes,
            N.c.sha256,
            N.c.number_of_frames,
            N.c.rows,
            N.c.site_id,
        )
        .select_from(S.join(R, R.c.study_pk == S.c.id).join(N, N.c.series_pk == R.c.id))
        .where(S.c.study_uid == study_uid)
        .order_by(R.c.series_number, R.c.id, N.c.instance_number, N.c.id)
    )
    if series_uid is not None:
        statement = statement.where(R.c.series_uid == series_uid)
    if sop_uid is not None:
        statement = statement.where(N.c.sop_uid == sop_uid)
    if site_ids is not None:
        statement = statement.where(S.c.site_id.in_(list(site_ids)))
    found = [StoredObject(**row) for row in conn.execute(statement).mappings()]
    if not found:
        level = "instance" if sop_uid else "series" if series_uid else "study"
        raise NotFound(f"{level} not found")
    return found
