"""A destination as the code that talks to it needs it: address, credentials, trust.

Built from a ``destinations`` row (with its secret, which views never carry). Frozen, so a
sender or a retrieval can hold one for a whole association.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DestinationSpec:
    id: int
    site_id: int
    name: str
    kind: str  # "dicom" | "dicomweb"
    trusted: bool = False
    ae_title: str = ""
    host: str = ""
    port: int = 0
    tls: bool = False
    url: str = ""  # DICOMweb root, e.g. http://pacs:8042/dicom-web
    auth_kind: str = ""  # "" | "basic" | "bearer"
    auth_secret: str = field(default="", repr=False)  # "user:password" (basic) or the token

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DestinationSpec:
        return cls(
            id=int(row["id"]),
            site_id=int(row["site_id"]),
            name=str(row["name"]),
            kind=str(row["kind"]),
            trusted=bool(row.get("trusted")),
            ae_title=str(row.get("ae_title") or ""),
            host=str(row.get("host") or ""),
            port=int(row.get("port") or 0),
            tls=bool(row.get("tls")),
            url=str(row.get("url") or ""),
            auth_kind=str(row.get("auth_kind") or ""),
            auth_secret=str(row.get("auth_secret") or ""),
        )


class DestinationUnavailable(Exception):
    """The destination cannot be reached or refused the association: retry the whole batch.

    The message names the destination's condition (refused, timeout, HTTP status), never
    patient data.
    """
