from __future__ import annotations

import pytest

from connrad.identity.scopes import covers, is_valid


@pytest.mark.parametrize(
    ("granted", "wanted", "expected"),
    [
        (["dicomweb.read"], "dicomweb.read", True),
        (["dicomweb.stow"], "dicomweb.read", False),
        (["system/*.rs"], "system/AuditEvent.rs", True),
        (["system/*.rs"], "system/ImagingStudy.r", True),
        (["system/*.rs"], "system/ImagingStudy.c", False),
        (["system/AuditEvent.rs"], "system/ImagingStudy.r", False),
        (["system/*.read"], "system/AuditEvent.s", True),
        (["system/*.write"], "system/AuditEvent.r", False),
        (["system/*.*"], "system/Patient.cruds", True),
        ([], "dicomweb.read", False),
        (["dicomweb.read"], "system/*.rs", False),
    ],
)
def test_covers(granted: list[str], wanted: str, expected: bool) -> None:
    assert covers(granted, wanted) is expected


@pytest.mark.parametrize(
    ("scope", "valid"),
    [
        ("dicomweb.read", True),
        ("dicomweb.stow", True),
        ("system/*.rs", True),
        ("system/AuditEvent.read", True),
        ("system/AuditEvent.", False),
        ("system/*.sr", False),  # permissions in the order c r u d s
        ("patient/*.rs", False),
        ("dicomweb.delete", False),
        ("", False),
    ],
)
def test_is_valid(scope: str, valid: bool) -> None:
    assert is_valid(scope) is valid
