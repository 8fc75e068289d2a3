import pytest

from connrad.dicom.names import NameGroups, fold, query_words


def test_groups_from_korean_value() -> None:
    groups = NameGroups.from_value("Hong^Gildong=洪^吉洞=홍^길동")
    assert groups.groups() == ("Hong^Gildong", "洪^吉洞", "홍^길동")
    words = groups.search_text().split()
    assert {"hong", "gildong", "honggildong", "洪", "吉洞", "홍", "길동", "홍길동"} <= set(words)
    assert groups.search_text().startswith(" ") and groups.search_text().endswith(" ")


@pytest.mark.parametrize(
    ("text", "folded"),
    [("MÜLLER", "muller"), ("José", "jose"), ("홍길동", "홍길동"), ("Ångström", "angstrom")],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_query_words_split_on_separators() -> None:
    assert query_words("Hong^Gil*=洪") == ["hong", "gil", "洪"]


def test_empty_name() -> None:
    assert NameGroups.from_value(None).search_text() == ""
    assert NameGroups.from_value("Doe^John^^^").alphabetic == "Doe^John"
