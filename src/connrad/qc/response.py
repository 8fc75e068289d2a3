"""Fast findings in a STOW-RS response: a private block in each referenced/failed SOP item.

PS3.18 gives a store response Warning/Failure Reason codes but no room for what exactly is
wrong, and a clinic needs that while the patient is still there. Private elements are the
standard's way to carry it: clients that do not know the block ignore it.

Block (group 0009, private creator ``CONNRAD QC``, element offsets within the block):

- ``xx01`` CS: the instance's fast QC status (pass, warn, fail)
- ``xx02`` SQ: one item per finding: ``xx03`` LO code, ``xx04`` CS severity,
  ``xx05`` LT message, ``xx06`` LO attribute (when the finding names one)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connrad.qc.findings import Finding, status_of

PRIVATE_CREATOR = "CONNRAD QC"
_GROUP, _BLOCK = "0009", "10"


def _tag(offset: int) -> str:
    return f"{_GROUP}{_BLOCK}{offset:02X}"


STATUS_TAG, FINDINGS_TAG = _tag(0x01), _tag(0x02)
CODE_TAG, SEVERITY_TAG, MESSAGE_TAG, ATTRIBUTE_TAG = (_tag(n) for n in (0x03, 0x04, 0x05, 0x06))


def qc_elements(findings: Sequence[Finding]) -> dict[str, Any]:
    """The private block in DICOM JSON; empty when there is nothing to report."""
    if not findings:
        return {}
    items = []
    for finding in findings:
        item: dict[str, Any] = {
            CODE_TAG: {"vr": "LO", "Value": [finding.code]},
            SEVERITY_TAG: {"vr": "CS", "Value": [finding.severity.value.upper()]},
            MESSAGE_TAG: {"vr": "LT", "Value": [finding.message]},
        }
        if finding.attribute:
            item[ATTRIBUTE_TAG] = {"vr": "LO", "Value": [finding.attribute[:64]]}
        items.append(item)
    return {
        f"{_GROUP}0010": {"vr": "LO", "Value": [PRIVATE_CREATOR]},
        STATUS_TAG: {"vr": "CS", "Value": [status_of(findings).value.upper()]},
        FINDINGS_TAG: {"vr": "SQ", "Value": items},
    }


def findings_from(item: dict[str, Any]) -> list[dict[str, str]]:
    """The findings of one response item as plain dicts (for clients and tests)."""
    if item.get(f"{_GROUP}0010", {}).get("Value") != [PRIVATE_CREATOR]:
        return []
    out = []
    for entry in item.get(FINDINGS_TAG, {}).get("Value", []):
        out.append(
            {
                "code": entry[CODE_TAG]["Value"][0],
                "severity": entry[SEVERITY_TAG]["Value"][0].lower(),
                "message": entry[MESSAGE_TAG]["Value"][0],
                "attribute": entry.get(ATTRIBUTE_TAG, {}).get("Value", [""])[0],
            }
        )
    return out
