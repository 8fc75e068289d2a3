import pytest

from connrad.archive.attributes import Level, UnknownAttribute, resolve
from connrad.archive.query import QueryError, parse_search, scope_levels


def test_resolve_keyword_and_tag() -> None:
    assert resolve("PatientName")[0] == "00100010"
    assert resolve("00100010")[1] is not None
    assert resolve("00091001") == ("00091001", None)  # private: valid, not indexed
    with pytest.raises(UnknownAttribute):
        resolve("PatientNam")


def test_parse_search_parameters() -> None:
    search = parse_search(
        Level.STUDY,
        [
            ("limit", "5"),
            ("offset", "2"),
            ("includefield", "StudyDescription,00081030"),
            ("includefield", "all"),
            ("fuzzymatching", "true"),
            ("PatientID", "X"),
        ],
    )
    assert (search.limit, search.offset, search.fuzzy) == (5, 2, True)
    assert search.include == ["StudyDescription", "00081030", "all"]
    assert search.filters == {"PatientID": "X"}
    with pytest.raises(QueryError):
        parse_search(Level.STUDY, [("limit", "many")])


def test_scope_levels() -> None:
    assert scope_levels(parse_search(Level.SERIES, [])) == (
        Level.PATIENT,
        Level.STUDY,
        Level.SERIES,
    )
    assert scope_levels(parse_search(Level.SERIES, [], study_uid="1")) == (Level.SERIES,)
    assert scope_levels(parse_search(Level.INSTANCE, [], study_uid="1", series_uid="2")) == (
        Level.INSTANCE,
    )
