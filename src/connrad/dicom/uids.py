"""UID syntax (PS3.5 9.1) and the transfer syntaxes the archive knows."""

from __future__ import annotations

import re

from pydicom.uid import UID

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and _UID.match(value) is not None


def is_storage_sop_class(uid: str) -> bool:
    """A known storage SOP class (pydicom's registry of the standard's UIDs)."""
    known = UID(uid)
    return known.is_valid and known.type == "SOP Class" and "Storage" in known.name


DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
# Standard syntaxes newer than pydicom's registry (PS3.5 2024: Deflated Image Frame).
_NEWER_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2.8.1"})


def is_known_transfer_syntax(uid: str) -> bool:
    return uid in _NEWER_TRANSFER_SYNTAXES or UID(uid).is_transfer_syntax
