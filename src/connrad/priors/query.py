"""Asking the site's PACS for a patient's studies: C-FIND (Study Root) or QIDO-RS.

The patient is matched by the real PatientID (and issuer, when known): the PACS files
studies under the identity the clinic uses, not connrad's pseudonym. A PatientID that is
empty or holds a wildcard character is never sent: it would match other patients. Answers
whose PatientID differs from the one asked for are dropped, whatever the PACS did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from connrad.priors.peer import (
    association,
    check_status,
    http_client,
    http_failure,
    require_context,
)
from connrad.priors.relevance import Candidate
from connrad.routing.spec import DestinationSpec, DestinationUnavailable
from connrad.settings import Settings

MAX_ANSWERS = 1000  # a patient with more studies than this is a query gone wrong
_WILDCARDS = frozenset("*?\\")
_RETURN_KEYS = {
    "StudyInstanceUID": "0020000D",
    "StudyDate": "00080020",
    "StudyTime": "00080030",
    "ModalitiesInStudy": "00080061",
    "StudyDescription": "00081030",
    "AccessionNumber": "00080050",
    "BodyPartExamined": "00180015",  # a series attribute: some PACS answer it for studies
    "NumberOfStudyRelatedInstances": "00201208",
    "SOPClassesInStudy": "00080062",
}
_PATIENT_ID, _ISSUER = "00100020", "00100021"
_PENDING = (0xFF00, 0xFF01)


@dataclass(frozen=True)
class PatientKey:
    """The patient as the PACS knows them (real identifiers: never logged)."""

    patient_id: str
    issuer: str = ""

    def __repr__(self) -> str:  # keep identifiers out of tracebacks and logs
        return "PatientKey(<redacted>)"

    @property
    def usable(self) -> bool:
        pid = self.patient_id.strip()
        return bool(pid) and not (_WILDCARDS & set(pid + self.issuer))


def find_studies(spec: DestinationSpec, settings: Settings, patient: PatientKey) -> list[Candidate]:
    """The patient's studies on the destination; DestinationUnavailable when it fails."""
    if not patient.usable:
        return []
    if spec.kind == "dicom":
        return c_find(spec, settings, patient)
    if spec.kind == "dicomweb":
        return qido(spec, patient)
    return []


# --- DIMSE ---------------------------------------------------------------------------------


def c_find(spec: DestinationSpec, settings: Settings, patient: PatientKey) -> list[Candidate]:
    identifier = Dataset()
    if not (patient.patient_id + patient.issuer).isascii():
        identifier.SpecificCharacterSet = "ISO_IR 192"
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientID = patient.patient_id
    if patient.issuer:
        identifier.IssuerOfPatientID = patient.issuer
    for keyword in _RETURN_KEYS:
        setattr(identifier, keyword, None)
    found: list[Candidate] = []
    context = build_context(StudyRootQueryRetrieveInformationModelFind)
    with association(spec, settings, [context]) as assoc:
        require_context(assoc, StudyRootQueryRetrieveInformationModelFind, "C-FIND")
        final: int | None = None
        for status, answer in assoc.send_c_find(
            identifier, StudyRootQueryRetrieveInformationModelFind
        ):
            code = int(status.get("Status", -1)) if status else -1
            if code in _PENDING:
                if answer is not None and len(found) < MAX_ANSWERS:
                    candidate = _from_dataset(answer, patient)
                    if candidate is not None:
                        found.append(candidate)
                continue
            final = code
    if final is None or final == -1:
        raise DestinationUnavailable("C-FIND ended without a final status")
    if final != 0x0000:
        raise DestinationUnavailable(f"C-FIND failed: 0x{final:04X}")
    return found


def _from_dataset(answer: Dataset, patient: PatientKey) -> Candidate | None:
    if _text(answer.get("PatientID", patient.patient_id)) != patient.patient_id.strip():
        return None
    issuer = _text(answer.get("IssuerOfPatientID"))
    if patient.issuer and issuer and issuer != patient.issuer.strip():
        return None
    uid = str(answer.get("StudyInstanceUID", "") or "").strip()
    if not uid:
        return None
    return Candidate(
        study_uid=uid,
        study_date=_text(answer.get("StudyDate")),
        study_time=_text(answer.get("StudyTime")),
        modalities=frozenset(_values(answer.get("ModalitiesInStudy"))),
        body_parts=frozenset(_values(answer.get("BodyPartExamined"))),
        description=_text(answer.get("StudyDescription")),
        accession_number=_text(answer.get("AccessionNumber")),
        num_instances=_count(answer.get("NumberOfStudyRelatedInstances")),
        sop_classes=tuple(_values(answer.get("SOPClassesInStudy"))),
    )


def _values(value: Any) -> list[str]:
    """The values of a possibly multi-valued element (pydicom: str or MultiValue)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str | bytes | int | float) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _count(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


# --- DICOMweb ------------------------------------------------------------------------------


def qido(spec: DestinationSpec, patient: PatientKey) -> list[Candidate]:
    params: list[tuple[str, str]] = [("PatientID", patient.patient_id)]
    if patient.issuer:
        params.append(("IssuerOfPatientID", patient.issuer))
    params += [("includefield", tag) for tag in _RETURN_KEYS.values()]
    params.append(("limit", str(MAX_ANSWERS)))
    try:
        with http_client(spec) as client:
            response = client.get(
                "studies", params=params, headers={"Accept": "application/dicom+json"}
            )
    except httpx.HTTPError as exc:
        raise http_failure(exc) from None
    check_status(response, "QIDO-RS")
    if response.status_code in (204, 404) or not response.content.strip():
        return []
    try:
        rows = response.json()
    except ValueError:
        raise DestinationUnavailable("QIDO-RS answer is not JSON") from None
    if not isinstance(rows, list):
        raise DestinationUnavailable("QIDO-RS answer is not a list")
    found = [c for c in (_from_json(row, patient) for row in rows[:MAX_ANSWERS]) if c]
    return found


def _from_json(row: Any, patient: PatientKey) -> Candidate | None:
    if not isinstance(row, Mapping):
        return None
    returned_pid = _json_values(row, _PATIENT_ID)
    if returned_pid and returned_pid[0] != patient.patient_id.strip():
        return None
    issuer = _json_values(row, _ISSUER)
    if patient.issuer and issuer and issuer[0] != patient.issuer.strip():
        return None
    uids = _json_values(row, _RETURN_KEYS["StudyInstanceUID"])
    if not uids:
        return None

    def first(keyword: str) -> str:
        values = _json_values(row, _RETURN_KEYS[keyword])
        return values[0] if values else ""

    return Candidate(
        study_uid=uids[0],
        study_date=first("StudyDate"),
        study_time=first("StudyTime"),
        modalities=frozenset(_json_values(row, _RETURN_KEYS["ModalitiesInStudy"])),
        body_parts=frozenset(_json_values(row, _RETURN_KEYS["BodyPartExamined"])),
        description=first("StudyDescription"),
        accession_number=first("AccessionNumber"),
        num_instances=_count(first("NumberOfStudyRelatedInstances")),
        sop_classes=tuple(_json_values(row, _RETURN_KEYS["SOPClassesInStudy"])),
    )


def _json_values(row: Mapping[str, Any], tag: str) -> list[str]:
    element = row.get(tag)
    if not isinstance(element, Mapping):
        return []
    values: Iterable[Any] = element.get("Value") or []
    return [str(v).strip() for v in values if v is not None and str(v).strip()]
