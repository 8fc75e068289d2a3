"""Required attributes of the instance's IOD, from the PS3.3 tables kept as data.

What is required comes from ``connrad.dicom.iods.tables.required_attributes``: the
unconditional Type 1 and Type 2 top-level attributes of the IOD's mandatory modules.

Policy (what fails, what warns), decided for real clinic traffic:

* A Type 1 attribute of :data:`CRITICAL` missing or empty fails: without it the instance
  cannot be identified and filed (the four UIDs, Modality) or its pixels cannot be shown
  (the Image Pixel description, Number of Frames).
* Any other Type 1 attribute missing or empty warns, under the same codes: vendors often
  omit Type 1 attributes of minor modules (Series Date in a PET series, Conversion Type in
  a secondary capture) and the images still read fine; rejecting them would refuse
  studies the clinic needs read.
* A Type 2 attribute missing warns (``FastLimits.type2_missing_warns``); empty is allowed.
* A SOP Class the tables do not describe warns ``iod.unknown-sop-class``; only the four
  UIDs every composite instance carries are then required.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from connrad.dicom.iods import tables
from connrad.qc.fast._elements import as_text, get, is_empty
from connrad.qc.findings import Finding, fail, warn

CRITICAL: frozenset[str] = frozenset(
    {
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "NumberOfFrames",
    }
)
"""Type 1 attributes whose absence fails: needed to file the instance or show its pixels."""

_UNIVERSAL = tuple(
    tables.Requirement(keyword, BaseTag(tables.tag_for(keyword)), "1", "SOP Common")
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
)
"""Required of every composite instance, known SOP Class or not."""

_SOP_CLASS = 0x00080016
_MEDIA_SOP_CLASS = 0x00020002


def sop_class_of(ds: Dataset) -> str:
    """The SOP Class UID, from the data set or else from the file meta."""
    element = get(ds, _SOP_CLASS)
    if element is None or is_empty(element):
        meta = getattr(ds, "file_meta", None)
        element = get(meta, _MEDIA_SOP_CLASS) if isinstance(meta, Dataset) else None
    text = None if element is None else as_text(element)
    return (text or "").strip(" \x00")


@lru_cache(maxsize=64)
def _requirements(iod: str, sop_class_uid: str) -> tuple[tables.Requirement, ...]:
    """Cached per IOD (``sop_class_uid`` is one of its classes; same IOD, same answer)."""
    return tuple(tables.required_attributes(sop_class_uid))


def requirements_for(sop_class_uid: str) -> tuple[tables.Requirement, ...] | None:
    """Type 1 / 2 requirements of the SOP Class's IOD; None when the tables do not know it."""
    iod = tables.iod_name(sop_class_uid)
    return None if iod is None else _requirements(iod, sop_class_uid)


def check_attributes(ds: Dataset, *, type2_missing_warns: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    sop_class = sop_class_of(ds)
    required = requirements_for(sop_class) if sop_class else None
    if required is None:
        findings.append(
            warn(
                "iod.unknown-sop-class",
                "the SOP Class is not one the IOD tables describe; only the identifying "
                "UIDs are checked for presence",
                "SOPClassUID",
                sop_class_uid=sop_class if _printable_uid(sop_class) else "",
            )
        )
        required = _UNIVERSAL
    for requirement in required:
        element = get(ds, int(requirement.tag))
        missing = element is None
        if requirement.type == "2":
            if missing and type2_missing_warns:
                findings.append(
                    warn(
                        "attribute.type2-missing",
                        f"Type 2 attribute {requirement.keyword} ({requirement.module} "
                        "module) is missing (it may be empty, not absent)",
                        requirement.keyword,
                        module=requirement.module,
                    )
                )
            continue
        if not missing and not is_empty(element):  # type: ignore[arg-type]
            continue
        report = fail if requirement.keyword in CRITICAL else warn
        state = "missing" if missing else "empty"
        findings.append(
            report(
                f"attribute.type1-{state}",
                f"Type 1 attribute {requirement.keyword} ({requirement.module} module) is {state}",
                requirement.keyword,
                module=requirement.module,
            )
        )
    return findings


def _printable_uid(value: str) -> bool:
    """A SOP Class UID is not patient data, but only a well-formed one goes in a report."""
    return 0 < len(value) <= 64 and set(value) <= set("0123456789.")
