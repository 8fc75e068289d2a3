"""Choosing priors: earlier only, relevant first, most recent N, the current study never."""

from __future__ import annotations

from connrad.priors.relevance import MATCH, MISMATCH, UNKNOWN, Candidate, Current, choose, relevance

CT_CHEST = Current("1.2.3", "20260301", "101500", frozenset({"CT"}), frozenset({"CHEST"}))


def study(uid: str, date: str, *modalities: str, time: str = "", parts: str = "") -> Candidate:
    return Candidate(
        uid,
        date,
        time,
        frozenset(modalities),
        frozenset(p for p in parts.split(",") if p),
    )


def uids(chosen: list[Candidate]) -> list[str]:
    return [c.study_uid for c in chosen]


def test_most_recent_earlier_studies_of_the_same_modality() -> None:
    candidates = [
        study("a", "20200101", "CT"),
        study("b", "20250101", "CT"),
        study("c", "20240101", "CT"),
        study("d", "20230101", "CT"),
    ]
    assert uids(choose(CT_CHEST, candidates, 3)) == ["b", "c", "d"]


def test_the_current_study_and_later_ones_are_never_priors() -> None:
    candidates = [
        study("1.2.3", "20250101", "CT"),  # the current study, as the PACS holds it
        study("later", "20260401", "CT"),
        study("same-day-later", "20260301", "CT", time="120000"),
        study("same-day-earlier", "20260301", "CT", time="0800"),
        study("earlier", "20250101", "CT"),
    ]
    assert uids(choose(CT_CHEST, candidates, 5)) == ["same-day-earlier", "earlier"]


def test_undated_studies_cannot_be_placed() -> None:
    candidates = [
        study("undated", "", "CT"),
        study("garbled", "2025-01-01", "CT"),
        study("same-day-no-time", "20260301", "CT"),
        study("acr-nema", "2025.01.01", "CT"),
    ]
    assert uids(choose(CT_CHEST, candidates, 5)) == ["acr-nema"]
    undated = Current("x", "", "", frozenset({"CT"}))
    assert choose(undated, [study("a", "20200101", "CT")], 3) == []


def test_same_body_part_counts_as_relevant() -> None:
    candidates = [
        study("mr-chest", "20250101", "MR", parts="chest"),
        study("mr-head", "20250201", "MR", parts="HEAD"),
    ]
    assert uids(choose(CT_CHEST, candidates, 3)) == ["mr-chest"]


def test_matches_are_preferred_and_unknowns_only_fill_places() -> None:
    candidates = [
        study("unknown-recent", "20260201"),
        study("ct-old", "20100101", "CT"),
        study("us", "20260101", "US"),
        study("unknown-older", "20250101"),
    ]
    assert uids(choose(CT_CHEST, candidates, 1)) == ["ct-old"]
    assert uids(choose(CT_CHEST, candidates, 2)) == ["unknown-recent", "ct-old"]
    assert uids(choose(CT_CHEST, candidates, 5)) == ["unknown-recent", "unknown-older", "ct-old"]


def test_non_imaging_modalities_say_nothing_about_relevance() -> None:
    current = Current("1", "20260301", "", frozenset({"CT", "SR"}))
    assert relevance(current, study("us-sr", "20250101", "US", "SR")) == MISMATCH
    assert relevance(current, study("sr-only", "20250101", "SR")) == UNKNOWN
    assert relevance(current, study("ct", "20250101", "ct")) == MATCH


def test_a_current_study_without_modality_or_body_part_goes_by_recency() -> None:
    current = Current("1", "20260301")
    candidates = [study("us", "20240101", "US"), study("mr", "20250101", "MR")]
    assert uids(choose(current, candidates, 1)) == ["mr"]


def test_limit_and_duplicate_answers() -> None:
    candidates = [study("a", "20250101", "CT"), study("a", "20250101", "CT")]
    assert uids(choose(CT_CHEST, candidates, 3)) == ["a"]
    assert choose(CT_CHEST, candidates, 0) == []
