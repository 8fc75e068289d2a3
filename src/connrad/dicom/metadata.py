"""DICOM JSON metadata of a stored instance (PS3.18 F.2), large values as BulkDataURI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement

from connrad.dicom.parse import PIXEL_DATA_TAGS

BULK_THRESHOLD = 1024
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def instance_metadata(path: Path, instance_url: str) -> dict[str, Any]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)

    def bulk_uri(element: DataElement) -> str:
        return f"{instance_url}/bulkdata/{element.tag:08X}"

    metadata = ds.to_json_dict(
        bulk_data_threshold=BULK_THRESHOLD,
        bulk_data_element_handler=bulk_uri,
        suppress_invalid_tags=True,
    )
    # Pixel data was not read; point at it so viewers fetch it as bulk data or frames.
    pixel_vr = "OB" if ds.file_meta.get("TransferSyntaxUID", "") not in _NATIVE else "OW"
    if "Rows" in ds:
        metadata["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": f"{instance_url}/bulkdata/7FE00010"}
    metadata["00020010"] = {"vr": "UI", "Value": [str(ds.file_meta.TransferSyntaxUID)]}
    return dict(sorted(metadata.items()))


_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def bulk_value(path: Path, tag: str) -> bytes | None:
    """The raw value of a top-level binary element other than pixel data."""
    if len(tag) != 8 or not all(c in "0123456789abcdefABCDEF" for c in tag):
        return None
    number = int(tag, 16)
    if number in PIXEL_DATA_TAGS:
        return None
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    element = ds.get(number)
    if element is None or element.VR == "SQ":
        return None
    value = element.value
    if isinstance(value, bytes):
        return value
    if element.VR in _BINARY_VRS:
        return bytes(value)
    return None
