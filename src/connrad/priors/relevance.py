"""Which of a patient's earlier studies are worth fetching for the study being read.

Pure: the PACS's answers and the current study in, the chosen priors out. A prior must be
provably earlier than the current study (a later one is not a prior, and one of unknown date
cannot be placed); a study sharing an imaging modality or a body part is preferred, one the
PACS says nothing about fills remaining places, one known to differ is left out; the most
recent win, at most ``limit``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Objects that ride along with images of any kind: sharing one says nothing about relevance.
NON_IMAGING = frozenset({"SR", "KO", "PR", "REG", "SEG", "RWV", "DOC", "PLAN", "FID", "AU"})
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Candidate:
    """One study as the PACS describes it (original UIDs and dates)."""

    study_uid: str
    study_date: str = ""
    study_time: str = ""
    modalities: frozenset[str] = field(default_factory=frozenset)
    body_parts: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    accession_number: str = ""
    num_instances: int | None = None  # NumberOfStudyRelatedInstances, when reported
    sop_classes: tuple[str, ...] = ()  # SOPClassesInStudy, when reported


@dataclass(frozen=True)
class Current:
    """The study priors are chosen for, as the PACS would know it (original UID, real date)."""

    study_uid: str
    study_date: str
    study_time: str = ""
    modalities: frozenset[str] = field(default_factory=frozenset)
    body_parts: frozenset[str] = field(default_factory=frozenset)


MATCH, UNKNOWN, MISMATCH = 2, 1, 0


def choose(current: Current, candidates: Iterable[Candidate], limit: int) -> list[Candidate]:
    """The relevant earlier studies, most recent first, at most ``limit``."""
    if limit <= 0:
        return []
    now = _moment(current.study_date, current.study_time)
    if now is None:
        return []
    seen: set[str] = set()
    ranked: list[tuple[int, tuple[str, str], Candidate]] = []
    for candidate in candidates:
        uid = candidate.study_uid.strip()
        if not uid or uid == current.study_uid or uid in seen:
            continue
        seen.add(uid)
        when = _moment(candidate.study_date, candidate.study_time)
        if when is None or not _earlier(when, now):
            continue
        score = relevance(current, candidate)
        if score != MISMATCH:
            ranked.append((score, when, candidate))
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    chosen = ranked[:limit]
    chosen.sort(key=lambda item: item[1], reverse=True)
    return [candidate for _, _, candidate in chosen]


def relevance(current: Current, candidate: Candidate) -> int:
    """MATCH (a shared imaging modality or body part), UNKNOWN or MISMATCH."""
    mine_modalities = _imaging(current.modalities)
    mine_parts = _parts(current.body_parts)
    if not mine_modalities and not mine_parts:
        return UNKNOWN  # nothing to compare with: recency alone decides
    theirs_modalities = _imaging(candidate.modalities)
    theirs_parts = _parts(candidate.body_parts)
    if mine_modalities & theirs_modalities or mine_parts & theirs_parts:
        return MATCH
    if not theirs_modalities and not theirs_parts:
        return UNKNOWN
    return MISMATCH


def _imaging(modalities: frozenset[str]) -> frozenset[str]:
    return frozenset(m.strip().upper() for m in modalities if m.strip()) - NON_IMAGING


def _parts(parts: frozenset[str]) -> frozenset[str]:
    return frozenset(p.strip().upper() for p in parts if p.strip())


def _moment(date: str, time: str) -> tuple[str, str] | None:
    """(YYYYMMDD, HHMMSS.ffffff or "") comparable as strings; None without a valid date."""
    day = date.strip().replace(".", "")  # ACR-NEMA YYYY.MM.DD
    if not _DATE.match(day):
        return None
    return day, _time(time)


def _time(time: str) -> str:
    text = time.strip().replace(":", "")  # ACR-NEMA HH:MM:SS
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) > 6 or len(whole) % 2:
        return ""
    fraction = fraction if fraction.isdigit() else ""
    return f"{whole.ljust(6, '0')}.{fraction[:6].ljust(6, '0')}"


def _earlier(when: tuple[str, str], now: tuple[str, str]) -> bool:
    if when[0] != now[0]:
        return when[0] < now[0]
    # The same day: earlier only when both times are known and say so.
    return bool(when[1] and now[1]) and when[1] < now[1]
