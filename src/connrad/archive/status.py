"""Store outcome codes shared by STOW-RS (FailureReason/WarningReason) and DIMSE C-STORE."""

from __future__ import annotations

from enum import IntEnum


class StoreStatus(IntEnum):
    SUCCESS = 0x0000
    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    DATASET_MISMATCH = 0xA900  # does not match SOP class, or the study of the request
    CANNOT_UNDERSTAND = 0xC000
    # Warning: an instance with this SOP Instance UID but other content is already stored;
    # the first is kept and the new data set discarded (PS3.18 "Elements Discarded").
    ELEMENTS_DISCARDED = 0xB006
    # Warning: stored, but data elements will be changed (PS3.4 B.2.3 "Coercion of Data
    # Elements"): an image held until its burned-in text is masked.
    COERCED = 0xB000

    @property
    def is_failure(self) -> bool:
        return self not in (StoreStatus.SUCCESS, *_WARNINGS)

    @property
    def is_warning(self) -> bool:
        return self in _WARNINGS


_WARNINGS = (StoreStatus.ELEMENTS_DISCARDED, StoreStatus.COERCED)
