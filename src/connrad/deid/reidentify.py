"""Re-identification of a stored instance, for egress to the site's own (trusted) PACS.

The hospital PACS must receive the study under the patient's real identity, or it cannot
file it with the patient's other studies. From the instance's vault record this restores:
every UID the engine replaced (at any nesting level, so references still resolve), the
patient's identifiers (ID, issuer, name, birth date, other IDs), the study's (accession
number, study ID), institution and referring physician, and every DA/DT value shifted by
the patient's date offset. What the profile removed or cleaned (free-text descriptions,
private tags, sequences) is not restored: the vault keeps identifiers, not the whole file.
The de-identification marks (Patient Identity Removed, De-identification Method and its
code sequence, Longitudinal Temporal Information Modified) are removed, since they would
no longer be true.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from connrad.deid import dates, records
from connrad.deid.records import UID_PREFIX

if TYPE_CHECKING:
    from connrad.services import Services

DATE_OFFSET = "date_offset_days"
# Attributes restored verbatim from the record (top level).
RESTORED = (
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "ReferringPhysicianName",
)
_MARKS = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)


def reidentify(ds: Dataset, record: Mapping[str, str | None]) -> Dataset:
    """Restore ``ds`` (changed in place and returned) from its ``instance`` vault record."""
    uids = {k.removeprefix(UID_PREFIX): v for k, v in record.items() if k.startswith(UID_PREFIX)}
    offset_text = record.get(DATE_OFFSET)
    offset = int(offset_text) if offset_text else None
    _walk(ds, uids, offset)
    for keyword in RESTORED:
        value = record.get(keyword)
        if value:
            setattr(ds, keyword, value.split("\\") if "\\" in value else value)
    for keyword in _MARKS:
        if keyword in ds:
            delattr(ds, keyword)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _walk(ds: Dataset, uids: Mapping[str, str | None], offset: int | None) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _walk(item, uids, offset)
        elif elem.VR == "UI" and elem.value:
            elem.value = _each(elem, lambda v: uids.get(v) or v)
        elif elem.VR in ("DA", "DT") and offset and elem.value:
            with contextlib.suppress(dates.MalformedDate):  # the engine removed malformed ones
                elem.value = _each(elem, partial(_unshift, elem.VR, offset))


def _unshift(vr: str, offset: int, value: str) -> str:
    if not value:
        return value
    return (dates.shift_da if vr == "DA" else dates.shift_dt)(value, -offset)


def _each(elem: DataElement, change: Callable[[str], str]) -> str | list[str]:
    if isinstance(elem.value, MultiValue | list):
        return [change(str(v)) for v in elem.value]
    return change(str(elem.value))


def egress_bytes(services: Services, site_id: int, sop_uid: str, blob_key: str) -> bytes | None:
    """The stored instance as the clinic sent it (identifiers restored), as Part 10 bytes.

    None when the vault holds no record for it (an identified site's instance is sent as
    stored; an anonymized one can never be re-identified).
    """
    with services.engine.connect() as conn:
        record = records.read(
            conn, site_id, records.INSTANCE, sop_uid, services.site_keys.all(site_id)
        )
    if record is None:
        return None
    with services.blobs.open(blob_key) as handle:
        ds = pydicom.dcmread(handle, force=True)
    buffer = io.BytesIO()
    reidentify(ds, record).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
