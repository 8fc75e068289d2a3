"""Person names: the three component groups and the folded text used for fuzzy matching."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from pydicom.valuerep import PersonName


@dataclass(frozen=True)
class NameGroups:
    alphabetic: str = ""
    ideographic: str = ""
    phonetic: str = ""

    @classmethod
    def from_value(cls, value: PersonName | str | None) -> NameGroups:
        if value is None or value == "":
            return cls()
        if not isinstance(value, PersonName):
            value = PersonName(str(value))
        return cls(
            _strip(value.alphabetic or ""),
            _strip(value.ideographic or ""),
            _strip(value.phonetic or ""),
        )

    def groups(self) -> tuple[str, str, str]:
        return (self.alphabetic, self.ideographic, self.phonetic)

    def search_text(self) -> str:
        """Space-delimited folded words of every group, family+given joined forms included.

        Leading and trailing spaces let ``LIKE '% word%'`` find a word prefix anywhere.
        """
        words: list[str] = []
        for group in self.groups():
            parts = [fold(p) for p in group.split("^") if p.strip()]
            for part in parts:
                words.extend(part.split())
            if len(parts) >= 2:
                # "홍길동" and "honggildong" are how people type names without separators.
                words.append("".join(parts[:2]).replace(" ", ""))
        return f" {' '.join(dict.fromkeys(words))} " if words else ""


def fold(text: str) -> str:
    """Case- and accent-insensitive form; Hangul syllables survive (NFC recomposes them)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return unicodedata.normalize("NFC", stripped).casefold().strip()


def query_words(query: str) -> list[str]:
    """The words of a fuzzy name query: separators are spaces, ``^``, ``=`` and ``,``."""
    cleaned = query.replace("*", " ").replace("?", " ")
    for sep in "^=,":
        cleaned = cleaned.replace(sep, " ")
    return [fold(word) for word in cleaned.split() if fold(word)]


def _strip(value: str) -> str:
    # Trailing empty components ("Hong^Gildong^^^") are not meaningful.
    return value.rstrip("^ ")
