"""UID syntax (PS3.5 9.1): digits and dots, no leading zero in a component, at most 64 chars.

The four UIDs that identify the instance and place it in the hierarchy (SOP Class, SOP
Instance, Study, Series) fail: the archive files and deduplicates by them. Any other UID,
at any sequence depth, warns: a bad reference degrades a link, not the image.
"""

from __future__ import annotations

from collections.abc import Iterable

from connrad.dicom.uids import is_valid_uid
from connrad.qc.fast._elements import Leaf
from connrad.qc.findings import Finding, fail, warn

KEY_UIDS = frozenset({0x00080016, 0x00080018, 0x0020000D, 0x0020000E})
_PADDING = b" \x00"
_DIGITS_AND_DOTS = frozenset("0123456789.")
_REASONS = {
    "too-long": "longer than 64 characters",
    "characters": "characters other than digits and dots",
    "empty-component": "an empty component",
    "leading-zero": "a component with a leading zero",
}


def _reason(text: str) -> str:
    if len(text) > 64:
        return "too-long"
    if not set(text) <= _DIGITS_AND_DOTS:
        return "characters"
    if "" in text.split("."):
        return "empty-component"
    return "leading-zero"


def check_uids(leaves: Iterable[Leaf]) -> list[Finding]:
    findings: list[Finding] = []
    for leaf in leaves:
        if leaf.vr != "UI":
            continue
        raw = leaf.value if isinstance(leaf.value, bytes) else leaf.value.encode("utf-8")
        for index, value in enumerate(raw.strip(_PADDING).split(b"\\")):
            if not value:
                continue  # absence and emptiness are the attribute check's
            text = value.decode("latin-1")
            if is_valid_uid(text):
                continue
            key = leaf.tag in KEY_UIDS and not leaf.prefix
            report = fail if key else warn
            reason = _reason(text)
            findings.append(
                report(
                    "uid.invalid",
                    f"{leaf.keyword} is not a valid UID: {_REASONS[reason]}",
                    leaf.keyword,
                    path=leaf.path,
                    value_index=index,
                    length=len(text),
                    reason=reason,
                )
            )
            break  # one finding per element
    return findings
