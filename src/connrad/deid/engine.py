"""De-identify one DICOM dataset: PS3.15 Annex E Basic Profile and options, as data.

``deidentify(ds, policy, key)`` returns a new dataset (the input is never mutated), the UID
map, the original identifiers (for the encrypted vault), the date offset and warnings.
The element-level rules live in ``_walk.py``; this module adds what PS3.15 E.1.1 and E.3
require of the whole instance: pseudonymous Patient ID/Name, Patient Identity Removed,
De-identification Method (Code Sequence, CID 7050), Longitudinal Temporal Information
Modified, a rebuilt File Meta Information and a zeroed preamble.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from connrad.deid import pseudonyms
from connrad.deid._walk import Walker
from connrad.deid.profiles import (
    ANONYMIZED_POLICY,
    PSEUDONYMIZED_POLICY,
    TABLE_EDITION,
    Option,
    Policy,
    TypeOf,
    load_table,
)

__all__ = [
    "ANONYMIZED_POLICY",
    "CID7050",
    "CONTENT_RISK",
    "PSEUDONYMIZED_POLICY",
    "Policy",
    "Result",
    "deidentify",
    "mapping_rows",
]

# PS3.16 CID 7050 "De-identification Method" (checked against pydicom.sr.codedict cid7050).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CID7050: dict[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}
METHOD_TEXT = f"connrad PS3.15-{TABLE_EDITION} Basic Profile"

# Original values handed to the identity vault (top level only).
ORIGINAL_KEYWORDS = (
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "InstitutionName",
    "ReferringPhysicianName",
)
# Modalities that routinely burn text into pixels (PS3.15 E.3.1 Note 1); SC by SOP Class.
BURNED_IN_MODALITIES = frozenset({"US", "OT", "XC", "ES", "DOC", "SC"})
SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"
# Encapsulated PDF, CDA, STL, OBJ, MTL storage (PS3.4 B.5): a document this engine cannot read.
ENCAPSULATED_DOCUMENT_ROOT = "1.2.840.10008.5.1.4.1.1.104."
ENCAPSULATED_DOCUMENT = 0x00420011
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# Prefix of the pixel_risk_reasons entry for a non-pixel payload that may carry identity,
# so that ingest can quarantine the instance exactly as it does for burned-in pixels.
CONTENT_RISK = "content_risk"


@dataclass
class Result:
    """The output of one ``deidentify`` call; ``originals`` holds PHI (vault only)."""

    dataset: Dataset
    uid_pairs: list[tuple[str, str]]
    originals: dict[str, str] = field(repr=False)
    pseudonym_id: str
    pseudonym_name: str
    date_offset_days: int | None
    warnings: list[str]
    pixel_risk: bool
    pixel_risk_reasons: list[str]


def deidentify(ds: Dataset, policy: Policy, key: bytes, *, type_of: TypeOf | None = None) -> Result:
    """De-identify the header of ``ds`` per PS3.15 Annex E; ``ds`` is left untouched.

    Parameters
    ----------
    ds
        The instance as read by pydicom (with or without ``file_meta``).
    policy
        Options (PS3.15 E.3) and the Retain Safe Private allow-list.
    key
        Per-site secret; every UID, pseudonym and date offset is an HMAC under it.
    type_of
        Type ("1", "2", "3") of an attribute in the instance's IOD, used to resolve
        compound actions (PS3.15 E.1.1); when absent the conservative choice is taken.

    Raises
    ------
    ValueError
        If ``key`` is empty.
    """
    if not key:
        raise ValueError("The de-identification key is empty: pass the site's secret bytes")
    patient_id = str(ds.get("PatientID", "") or "")
    issuer = str(ds.get("IssuerOfPatientID", "") or "")
    walker = Walker(load_table(), policy, key, type_of)
    if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in policy.options:
        walker.date_offset_days = pseudonyms.date_offset_days(key, patient_id, issuer)
    out = walker.walk(ds)
    if _is_dicomdir(ds):
        # Directory records are not in Table E.1-1 and their byte offsets cannot survive
        # re-encoding: they are removed (deny by default), never carried over stale.
        walker.warnings.append(
            "DICOMDIR: directory records removed; rebuild it from the de-identified instances"
        )
    elif not patient_id:
        walker.warnings.append("PatientID absent: the pseudonym is shared by all such patients")
    pid = pseudonyms.pseudonymous_id(key, patient_id, issuer)
    name = pseudonyms.pseudonymous_name(key, patient_id, issuer)
    _mark(out, pid, name, policy.options)
    _rebuild_file_meta(ds, out, walker)
    reasons = _pixel_risk(ds)
    return Result(
        dataset=out,
        uid_pairs=list(walker.uids.items()),
        originals=_originals(ds),
        pseudonym_id=pid,
        pseudonym_name=name,
        date_offset_days=walker.date_offset_days,
        warnings=walker.warnings,
        pixel_risk=bool(reasons),
        pixel_risk_reasons=reasons,
    )


def _mark(out: Dataset, pid: str, name: str, options: Option) -> None:
    """Identity attributes required after de-identification (PS3.15 E.1.1, E.2, E.3.6)."""
    out.PatientID = pid
    out.PatientName = name
    out.PatientIdentityRemoved = "YES"
    applied = [code for option, code in CID7050.items() if option in options]
    texts = _as_list(out.get("DeidentificationMethod", ""))
    out.DeidentificationMethod = [*texts, METHOD_TEXT, *(meaning[:64] for _, meaning in applied)]
    items = list(out.get("DeidentificationMethodCodeSequence", Sequence()))
    for value, meaning in [BASIC_PROFILE_CODE, *applied]:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    out.DeidentificationMethodCodeSequence = Sequence(items)
    if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
        out.LongitudinalTemporalInformationModified = "MODIFIED"
    elif Option.RETAIN_LONGITUDINAL_FULL_DATES in options:
        out.LongitudinalTemporalInformationModified = "UNMODIFIED"
    else:
        out.LongitudinalTemporalInformationModified = "REMOVED"


def _rebuild_file_meta(source: Dataset, out: Dataset, walker: Walker) -> None:
    """PS3.10 7.1 File Meta Information for the new instance, with a zeroed preamble."""
    old = getattr(source, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    sop_class = out.get("SOPClassUID") or old.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if "SOPInstanceUID" in out:
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    elif old.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = walker.remap(str(old.MediaStorageSOPInstanceUID))
    meta.TransferSyntaxUID = old.get("TransferSyntaxUID") or _encoding_syntax(source)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.file_meta = meta
    out.preamble = b"\0" * 128


def _encoding_syntax(source: Dataset) -> UID:
    """Transfer syntax of a dataset read without file meta, from how pydicom decoded it."""
    implicit, little = source.original_encoding
    if implicit is None or little is None or (implicit and little):
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _originals(ds: Dataset) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword in ORIGINAL_KEYWORDS:
        elem = ds.get(keyword)
        if elem is not None and elem != "":
            found[keyword] = "\\".join(_as_list(elem))
    return found


def _as_list(value: object) -> list[str]:
    if isinstance(value, MultiValue | list | tuple):
        return [str(item) for item in value]
    return [str(value)] if value not in (None, "") else []


def _is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    return meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY or (
        "DirectoryRecordSequence" in ds
    )


def _pixel_risk(ds: Dataset) -> list[str]:
    """Reasons to suspect identity in pixels or an opaque payload (no OCR here, PS3.15 E.3.1).

    An Encapsulated Document (PDF, CDA...) is a "content risk": its bytes are not parsed or
    cleaned, so the original may name the patient anywhere. The engine replaces the
    document by a two-byte dummy (Table E.1-1 D), and the reason lets ingest quarantine
    the instance rather than archive a document emptied of its meaning.
    """
    reasons: list[str] = []
    sop_class = str(ds.get("SOPClassUID", ""))
    if ENCAPSULATED_DOCUMENT in ds or sop_class.startswith(ENCAPSULATED_DOCUMENT_ROOT):
        reasons.append(
            f"{CONTENT_RISK}: Encapsulated Document (0042,0011) is not inspected and may "
            "contain identity; its content was removed"
        )
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        reasons.append("Burned In Annotation (0028,0301) is YES")
    if str(ds.get("RecognizableVisualFeatures", "")).upper() == "YES":
        reasons.append("Recognizable Visual Features (0028,0302) is YES")
    modality = str(ds.get("Modality", "")).upper()
    if modality in BURNED_IN_MODALITIES:
        reasons.append(f"Modality {modality} often carries burned-in text")
    if sop_class.startswith(SECONDARY_CAPTURE_ROOT):
        reasons.append("Secondary Capture: pixels may be a screenshot with text")
    return reasons


def mapping_rows(results: Iterable[Result]) -> list[tuple[str, str, str]]:
    """Audit rows ``(kind, old, new)``, deduplicated in first-seen order.

    Kinds: ``patient_id``, ``patient_name``, ``date_offset_days`` (old is the new Patient
    ID, new is the offset) and ``uid``. The old values are PHI: the CSV is confidential.
    """
    rows: dict[tuple[str, str, str], None] = {}
    for result in results:
        rows[("patient_id", result.originals.get("PatientID", ""), result.pseudonym_id)] = None
        old_name = result.originals.get("PatientName", "")
        rows[("patient_name", old_name, result.pseudonym_name)] = None
        if result.date_offset_days is not None:
            rows[("date_offset_days", result.pseudonym_id, str(result.date_offset_days))] = None
        for old, new in result.uid_pairs:
            rows[("uid", old, new)] = None
    return list(rows)
