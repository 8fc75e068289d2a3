"""Who is calling: which sites' data they may see and, when they upload, the ingest source.

Until sites, devices and users are configured (issue 3), every caller acts for the built-in
local site and may see every site's data. All doors take a Caller, so the policy function
that replaces this decides every access in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connrad.archive.ingest import Source


@dataclass(frozen=True)
class Caller:
    site_id: int
    device_id: int | None
    visible_site_ids: Sequence[int] | None  # None: all sites
    actor: str = "anonymous"  # as the audit trail names it: "user:7", "device:3", ...

    def source(self, door: str) -> Source:
        return Source(self.site_id, self.device_id, door)


def local_caller(local_site_id: int) -> Caller:
    return Caller(local_site_id, None, None)
