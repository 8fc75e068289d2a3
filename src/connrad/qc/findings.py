"""What a quality check reports: a finding with a stable code, a severity and a message.

Codes are stable identifiers (``pixel.length-mismatch``): clients, site policies and the docs
key on them, so a code is never renamed, only retired. Messages are for people and never
quote patient data (they go to logs, STOW-RS responses and the worklist).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    FAIL = "fail"  # not good enough to read: rejected (fast) or the study fails QC (deep)
    WARN = "warn"  # readable, but the radiologist and the clinic should know


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """One result of one check.

    ``code``: stable, ``<area>.<defect>`` in lower-case kebab. ``attribute``: the keyword or
    tag the finding is about, when there is one. ``data``: measured values (numbers, keyword
    names, frame numbers; never patient text) for the API and the docs' thresholds.
    """

    code: str
    severity: Severity
    message: str
    attribute: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
        }
        if self.attribute:
            out["attribute"] = self.attribute
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Finding:
        return cls(
            value["code"],
            Severity(value["severity"]),
            value["message"],
            value.get("attribute", ""),
            dict(value.get("data") or {}),
        )


def fail(code: str, message: str, attribute: str = "", **data: Any) -> Finding:
    return Finding(code, Severity.FAIL, message, attribute, data)


def warn(code: str, message: str, attribute: str = "", **data: Any) -> Finding:
    return Finding(code, Severity.WARN, message, attribute, data)


def status_of(findings: Iterable[Finding]) -> Status:
    """fail if any finding fails, warn if any warns, else pass."""
    severities = {finding.severity for finding in findings}
    if Severity.FAIL in severities:
        return Status.FAIL
    if Severity.WARN in severities:
        return Status.WARN
    return Status.PASS


def worst(*statuses: Status | str | None) -> Status:
    """The worst of several statuses (None and unknown values count as pass)."""
    order = [Status.PASS, Status.WARN, Status.FAIL]
    ranks = [order.index(Status(s)) for s in statuses if s in {x.value for x in order}]
    return order[max(ranks, default=0)]


def burned_in_suspected(hold: str | None) -> Finding:
    """The de-identification step held the image: text may be burned into its pixels."""
    return warn(
        "deid.burned-in-suspected",
        "the image may carry burned-in text: it is kept out of the archive until Clean Pixel "
        "Data or a person's review releases it",
        "BurnedInAnnotation",
        hold=hold or "",
    )
