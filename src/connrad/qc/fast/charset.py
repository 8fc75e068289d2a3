"""Specific Character Set: defined terms only, and text that decodes strictly under them.

Terms are those of PS3.3 C.12.1.1.2 (pydicom's ``python_encoding`` table, which also takes
the common ``ISO_IR 6``). Several values mean code extensions (ISO 2022): every term must
then be an ``ISO 2022`` one; UTF-8, GB18030 and GBK stand alone.

Decoding follows pydicom's rules (PS3.5 6.1.2.5: a fragment's escape sequence selects the
set, a delimiter returns to the first one) but is strict whatever pydicom's global reading
mode says (the reader is lenient on purpose, and that setting is process-wide), and the
default repertoire is ASCII, not pydicom's permissive Latin-1: bytes that do not decode
are replaced on display, so a name the radiologist reads could be wrong. Text pydicom
already decoded (the reader looked at it) is judged by what lenient decoding left: the
replacement character, or non-ASCII text with no charset declared; person names keep their
stored bytes and are decoded again here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from pydicom.charset import (
    CODES_TO_ENCODINGS,
    STAND_ALONE_ENCODINGS,
    default_encoding,
    handled_encodings,
    python_encoding,
)
from pydicom.valuerep import TEXT_VR_DELIMS

from connrad.qc.fast._elements import CHARSET_TAG, TEXT_VRS, Leaf, parse_terms
from connrad.qc.findings import Finding, warn

_ESC = b"\x1b"
_FRAGMENTS = re.compile(b"(^[^\x1b]+|[\x1b][^\x1b]*)")
_ASCII = "ascii"
_PN_DELIMITERS = frozenset({0x5E, 0x3D, 0x5C})  # ^ = and the value delimiter
_TEXT_DELIMITERS = frozenset(TEXT_VR_DELIMS) | {0x5C}
_SINGLE_VALUED = frozenset({"ST", "LT", "UT"})  # backslash is text there, not a delimiter
_REPLACEMENT = "\ufffd"  # what pydicom's lenient decoding puts for undecodable bytes


def _strict(encoding: str) -> str:
    """pydicom decodes the default repertoire as Latin-1; strictly it is ASCII."""
    return _ASCII if encoding == default_encoding else encoding


@cache
def encodings_for(terms: tuple[str, ...]) -> tuple[str, ...] | None:
    """Python codecs for the terms (first value empty = ISO 2022 IR 6); None if any unknown."""
    if not terms:
        return (_ASCII,)
    found = []
    for index, term in enumerate(terms):
        if not term and index == 0:
            found.append(_ASCII)
        elif term in python_encoding:
            found.append(_strict(python_encoding[term]))
        else:
            return None
    return tuple(found)


def check_terms(terms: tuple[str, ...], path: str) -> list[Finding]:
    unknown = [
        index
        for index, term in enumerate(terms)
        if (term or index) and term not in python_encoding  # only value 1 may be empty
    ]
    if unknown:
        return [
            warn(
                "charset.unknown",
                "SpecificCharacterSet holds a term that is not a defined term of PS3.3 "
                "C.12.1.1.2; text may be shown wrongly",
                "SpecificCharacterSet",
                path=path,
                value_index=unknown[0],
            )
        ]
    if len(terms) > 1:
        standalone = [i for i, term in enumerate(terms) if term in STAND_ALONE_ENCODINGS]
        single = [i for i, term in enumerate(terms) if term.startswith("ISO_IR")]
        if standalone or single:
            return [
                warn(
                    "charset.invalid-extension",
                    "SpecificCharacterSet has several values (code extensions) but uses a "
                    "term that does not allow them",
                    "SpecificCharacterSet",
                    path=path,
                    value_index=(standalone or single)[0],
                )
            ]
    return []


def decode_strictly(
    value: bytes, encodings: tuple[str, ...], delimiters: frozenset[int]
) -> str | None:
    """``value`` decoded as pydicom would, but strictly; None when any byte does not decode."""
    try:
        if _ESC not in value:
            return value.decode(encodings[0])
        parts: list[str] = []
        for fragment in _FRAGMENTS.findall(value):
            if not fragment.startswith(_ESC):
                parts.append(fragment.decode(encodings[0]))
                continue
            size = 4 if fragment.startswith((b"\x1b$(", b"\x1b$)")) else 3
            encoding = _strict(CODES_TO_ENCODINGS.get(fragment[:size], ""))
            if not encoding or (encoding not in encodings and encoding != _ASCII):
                return None  # unknown escape, or a set the charset does not declare
            if encoding in handled_encodings:
                parts.append(fragment.decode(encoding))  # the codec reads the escape itself
                continue
            body = fragment[size:]
            cut = next((i for i, byte in enumerate(body) if byte in delimiters), len(body))
            parts += [body[:cut].decode(encoding), body[cut:].decode(encodings[0])]
    except (UnicodeError, LookupError):
        return None
    return "".join(parts)


def decodes(value: bytes, encodings: tuple[str, ...], delimiters: frozenset[int]) -> bool:
    """Decodes strictly, to no replacement character (pydicom re-encodes a person name it
    decoded leniently, so its remembered bytes may carry U+FFFD for the bytes it lost)."""
    text = decode_strictly(value, encodings, delimiters)
    return text is not None and _REPLACEMENT not in text


def _delimiters(vr: str) -> frozenset[int]:
    if vr == "PN":
        return _PN_DELIMITERS
    return frozenset(TEXT_VR_DELIMS) if vr in _SINGLE_VALUED else _TEXT_DELIMITERS


def _decoded_cleanly(text: str, charset: tuple[str, ...]) -> bool:
    """For text pydicom decoded already (leniently): no replacement character, and no
    character beyond ASCII when no charset is declared (pydicom reads that as Latin-1)."""
    return _REPLACEMENT not in text and (bool(charset) or text.isascii())


def check_charset(leaves: Iterable[Leaf]) -> list[Finding]:
    findings: list[Finding] = []
    for leaf in leaves:
        if leaf.tag == CHARSET_TAG:
            findings.extend(check_terms(parse_terms(leaf.value), leaf.path))
            continue
        if leaf.vr not in TEXT_VRS:
            continue
        value = leaf.value
        if value.isascii() and (isinstance(value, str) or _ESC not in value):
            continue  # ASCII decodes under every DICOM character set
        if isinstance(value, str):
            if _decoded_cleanly(value, leaf.charset):
                continue
        else:
            encodings = encodings_for(leaf.charset)
            if encodings is None:
                continue  # unknown term: reported once, on SpecificCharacterSet
            if decodes(value, encodings, _delimiters(leaf.vr)):
                continue
        declared = bool(leaf.charset)
        under = "the declared SpecificCharacterSet" if declared else "ASCII (no charset declared)"
        findings.append(
            warn(
                "charset.undecodable",
                f"{leaf.keyword} has bytes that do not decode under {under}",
                leaf.keyword,
                path=leaf.path,
                charset_declared=declared,
            )
        )
    return findings
