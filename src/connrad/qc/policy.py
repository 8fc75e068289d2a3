"""A site's choice for studies that fail quality control.

``quarantine`` (default): the study is kept but leaves the worklist and is not routed until
a person releases it; ``accept``: it stays on the worklist with its failed badge. Fast-check
failures are rejected at the door either way: they are not readable instances.
"""

from __future__ import annotations

QUARANTINE, ACCEPT = "quarantine", "accept"
QC_POLICIES = (QUARANTINE, ACCEPT)
