"""The ingest pipeline's quality gate: fast checks on every door, before anything is stored.

A failing finding rejects the instance with the DIMSE / DICOMweb status its kind calls for:
data the archive cannot make sense of (unreadable values, undecodable text, a digest that
does not match) is "cannot understand" (0xC000); a well-formed data set that does not
satisfy its IOD (missing attributes, bad UIDs, pixel data of the wrong size) is "data set
does not match SOP class" (0xA900). Warnings travel with the stored instance.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from connrad.archive.status import StoreStatus
from connrad.dicom.parse import InstanceHeader
from connrad.qc.digest import digest_findings
from connrad.qc.fast import FastLimits, fast_checks
from connrad.qc.findings import Finding, Severity
from connrad.storage import StagedBlob

log = logging.getLogger(__name__)

_CANNOT_UNDERSTAND_AREAS = ("parse", "charset", "value", "transfer")


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    failure: tuple[StoreStatus, str] | None = None  # set when a finding fails


def status_for(finding: Finding) -> StoreStatus:
    area = finding.code.partition(".")[0]
    if area in _CANNOT_UNDERSTAND_AREAS:
        return StoreStatus.CANNOT_UNDERSTAND
    return StoreStatus.DATASET_MISMATCH


def verdict_of(findings: list[Finding]) -> Verdict:
    failures = [f for f in findings if f.severity is Severity.FAIL]
    if not failures:
        return Verdict(findings)
    first = failures[0]
    return Verdict(findings, (status_for(first), f"{first.code}: {first.message}"))


class FastQuality:
    def __init__(self, fingerprint_key: bytes, limits: FastLimits | None = None) -> None:
        self._key = hmac.new(fingerprint_key, b"connrad qc identity", hashlib.sha256).digest()
        self.limits = limits or FastLimits()

    def check_transfer(self, staged: StagedBlob, declared_sha256: str | None) -> Verdict | None:
        """The digest check; a Verdict only when it fails (cheap: the hash is known)."""
        findings = digest_findings(declared_sha256, staged.sha256)
        return verdict_of(findings) if findings else None

    def check(self, dataset: Dataset, header: InstanceHeader, staged: StagedBlob) -> Verdict:
        findings = fast_checks(
            dataset,
            transfer_syntax_uid=header.transfer_syntax_uid,
            file_size=staged.size,
            path=staged.path,
            limits=self.limits,
        )
        return verdict_of(findings)

    def identity_fingerprint(self, header: InstanceHeader, site_id: int) -> str:
        """A keyed digest of the patient identity as received: equal for the same patient.

        Keyed so that the fingerprint reveals nothing without the deployment's master key.
        """
        name = header.patient_name
        parts = (
            str(site_id),
            header.patient_id,
            header.issuer_of_patient_id,
            header.birth_date,
            header.sex.upper(),
            name.search_text(),
        )
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]
