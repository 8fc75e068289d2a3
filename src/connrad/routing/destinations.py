"""Registering a site's destinations and finding the one a C-MOVE names.

Functions take a Connection inside the caller's transaction and return plain views, like
:mod:`connrad.identity.admin`; errors are :class:`~connrad.identity.admin.AdminError`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from connrad.db.base import utcnow
from connrad.identity.admin import AdminError, get_site
from connrad.routing.models import Destination

destinations_t = Destination.__table__

# PS3.5 AE VR, as devices are checked: 1-16 characters, no backslash or control characters.
_AE_TITLE = re.compile(r"^[\x21-\x5b\x5d-\x7e]([\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$")


def create_dicom(
    conn: Connection,
    site_id: int,
    name: str,
    *,
    ae_title: str,
    host: str,
    port: int,
    tls: bool = False,
    trusted: bool = False,
    backup: bool = False,
) -> dict[str, Any]:
    """A DICOM destination (an AE the site's data may be sent to) for the site.

    ``backup``: every study of the site goes there (the default routing rule).
    """
    get_site(conn, site_id)
    if not name.strip() or len(name) > 128:
        raise AdminError("destination name: 1 to 128 characters")
    if not _AE_TITLE.match(ae_title):
        raise AdminError("AE title: 1-16 characters, no backslash")
    if not host.strip() or len(host) > 255:
        raise AdminError("destination host: 1 to 255 characters")
    if not 1 <= port <= 65535:
        raise AdminError("destination port: 1 to 65535")
    values = {
        "site_id": site_id,
        "name": name.strip(),
        "kind": "dicom",
        "ae_title": ae_title,
        "host": host.strip(),
        "port": port,
        "tls": tls,
        "trusted": trusted,
        "paused": False,
        "created_at": utcnow(),
    }
    return _insert(conn, values, backup)


def create_dicomweb(
    conn: Connection,
    site_id: int,
    name: str,
    *,
    url: str,
    auth_kind: str = "",
    auth_secret: str = "",
    trusted: bool = False,
    backup: bool = False,
) -> dict[str, Any]:
    """A DICOMweb destination (STOW-RS root URL, optional basic or bearer credentials)."""
    get_site(conn, site_id)
    if not name.strip() or len(name) > 128:
        raise AdminError("destination name: 1 to 128 characters")
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 2048:
        raise AdminError("DICOMweb URL: an http(s) URL of at most 2048 characters")
    if auth_kind not in ("", "basic", "bearer"):
        raise AdminError("auth: basic or bearer")
    if auth_kind == "basic" and ":" not in auth_secret:
        raise AdminError("basic auth secret: user:password")
    if auth_kind and not auth_secret:
        raise AdminError("auth needs a secret")
    values = {
        "site_id": site_id,
        "name": name.strip(),
        "kind": "dicomweb",
        "url": url.strip().rstrip("/"),
        "auth_kind": auth_kind or None,
        "auth_secret": auth_secret or None,
        "tls": parsed.scheme == "https",
        "trusted": trusted,
        "paused": False,
        "created_at": utcnow(),
    }
    return _insert(conn, values, backup)


def _insert(conn: Connection, values: dict[str, Any], backup: bool) -> dict[str, Any]:
    try:
        with conn.begin_nested():
            destination_id = conn.execute(
                insert(destinations_t).values(**values).returning(destinations_t.c.id)
            ).scalar_one()
    except IntegrityError:
        raise AdminError("the site has a destination with this name or AE title", 409) from None
    if backup:
        from connrad.routing import rules

        rules.create(conn, int(destination_id))
    return get(conn, destination_id)


def set_paused(conn: Connection, destination_id: int, paused: bool) -> dict[str, Any]:
    """Pause (nothing is sent; deliveries wait) or resume a destination."""
    get(conn, destination_id)
    values: dict[str, Any] = {"paused": paused}
    if not paused:
        values.update(failures=0, circuit_open_until=None)  # resuming is a fresh start
    conn.execute(
        update(destinations_t).where(destinations_t.c.id == destination_id).values(**values)
    )
    return get(conn, destination_id)


def spec_of(conn: Connection, destination_id: int) -> Any:
    """The destination with its secret, for the code that connects to it."""
    from connrad.routing.spec import DestinationSpec

    row = (
        conn.execute(select(destinations_t).where(destinations_t.c.id == destination_id))
        .mappings()
        .first()
    )
    if row is None:
        raise AdminError("destination not found", 404)
    return DestinationSpec.from_row(row)


def get(conn: Connection, destination_id: int) -> dict[str, Any]:
    row = (
        conn.execute(select(destinations_t).where(destinations_t.c.id == destination_id))
        .mappings()
        .first()
    )
    if row is None:
        raise AdminError("destination not found", 404)
    return _view(row)


def list_for(conn: Connection, site_ids: frozenset[int] | None) -> list[dict[str, Any]]:
    """The destinations of these sites (None: every site)."""
    query = select(destinations_t).order_by(destinations_t.c.site_id, destinations_t.c.name)
    if site_ids is not None:
        query = query.where(destinations_t.c.site_id.in_(site_ids))
    return [_view(row) for row in conn.execute(query).mappings()]


def dicom_by_ae(conn: Connection, site_id: int, ae_title: str) -> dict[str, Any] | None:
    """The site's usable DICOM destination with this AE title; None when unknown or paused."""
    row = (
        conn.execute(
            select(destinations_t).where(
                destinations_t.c.site_id == site_id,
                destinations_t.c.kind == "dicom",
                destinations_t.c.ae_title == ae_title.strip(),
                destinations_t.c.paused.is_(False),
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _view(row)


def _view(row: Any) -> dict[str, Any]:
    # The secret never leaves this module's callers' sight: views say only whether one is set.
    view = {k: v for k, v in row.items() if k != "auth_secret"}
    view["has_secret"] = row["auth_secret"] is not None
    return view
