"""Accept-header negotiation for WADO-RS (PS3.18 8.7): media types and transfer syntaxes."""

from __future__ import annotations

from dataclasses import dataclass

from connrad.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from connrad.dicomweb.multipart import parse_media_type

ANY_TS = "*"

# The media type of a frame encoded in each transfer syntax (PS3.18 Table 8.7.3-5).
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.1": "application/octet-stream",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}


@dataclass(frozen=True)
class Acceptable:
    part_type: str  # media type of each part, or "*/*"
    transfer_syntax: str | None  # None: the default for the part type


def acceptable(accept_header: str | None, default_part_type: str) -> list[Acceptable]:
    """The client's choices in order of preference (q-values honoured, stable otherwise)."""
    if not accept_header:
        return [Acceptable(default_part_type, None)]
    choices: list[tuple[float, int, Acceptable]] = []
    for position, item in enumerate(accept_header.split(",")):
        media = parse_media_type(item)
        if not media.type:
            continue
        try:
            weight = float(media.params.get("q", "1"))
        except ValueError:
            weight = 1.0
        transfer_syntax = media.params.get("transfer-syntax")
        if media.type == "multipart/related":
            part_type = media.params.get("type", default_part_type).lower()
        elif media.type in ("*/*", "multipart/*"):
            part_type = "*/*"
        else:
            part_type = media.type
        choices.append((-weight, position, Acceptable(part_type, transfer_syntax)))
    return [choice for _, _, choice in sorted(choices, key=lambda c: (c[0], c[1]))]


def default_transfer_syntax() -> str:
    return EXPLICIT_VR_LITTLE_ENDIAN
