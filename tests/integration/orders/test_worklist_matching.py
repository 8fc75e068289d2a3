"""Worklist matching (PS3.4 C.2.2.2) on an opened order, without a network or database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydicom import Dataset

from connrad.orders.service import Identity, Order, Procedure, Status
from connrad.orders.worklist import QueryError, check, respond, window

KST = timezone(timedelta(hours=9))
START = datetime(2026, 12, 1, 9, 30, tzinfo=KST)


def order(name: str = "Müller^José=홍^길동", **changes: object) -> Order:
    identity = Identity(
        patient_id="P-1",
        patient_name=name,
        accession_number="ACC-77",
        study_uid="1.2.3.4",
        birth_date="19800101",
    )
    fields: dict[str, object] = {
        "id": 1,
        "site_id": 1,
        "status": Status.SCHEDULED,
        "modality": "CR",
        "station_ae": "PORTCR",
        "scheduled_start": START,
        "procedure": Procedure("CXR-PA", "Chest PA"),
        "created_at": START,
        "updated_at": START,
        "identity": identity,
        **changes,
    }
    return Order(**fields)  # type: ignore[arg-type]


def q(step: dict[str, object] | None = None, **keys: object) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    if step is not None:
        item = Dataset()
        for keyword, value in step.items():
            setattr(item, keyword, value)
        ds.ScheduledProcedureStepSequence = [item]
    return ds


@pytest.mark.parametrize(
    ("keys", "hit"),
    [
        ({"PatientName": "MULLER^JOSE"}, True),  # case and accents folded
        ({"PatientName": "홍*"}, True),  # wildcard, any group
        ({"PatientName": "?^길동"}, True),
        ({"PatientName": "Muller"}, False),  # single value: the whole name
        ({"PatientName": "*"}, True),  # universal
        ({"AccessionNumber": "ACC-*"}, True),
        ({"AccessionNumber": "acc-77"}, False),  # not a name: case matters
        ({"PatientID": "P-1"}, True),
        ({"IssuerOfPatientID": "ISLAND"}, False),  # an empty value matches universal keys only
        ({"PatientBirthDate": "19790101-19801231"}, True),
        ({"PatientBirthDate": "-19791231"}, False),
        ({"StudyInstanceUID": ["9.9", "1.2.3.4"]}, True),  # list of UIDs
        ({"StudyInstanceUID": "1.2.3"}, False),
        ({"RequestedProcedureCodeSequence": [Dataset()]}, True),
        ({"step": {"Modality": "CR", "ScheduledStationAETitle": "PORT*"}}, True),
        ({"step": {"Modality": "cr"}}, False),
        ({"step": {"ScheduledProcedureStepStartTime": "0900-1000"}}, True),  # local time
        ({"step": {"ScheduledProcedureStepStartTime": "-0929"}}, False),
        ({"step": {"ScheduledProcedureStepStartTime": "-09"}}, True),  # up to 09:59:59
        ({"step": {"ScheduledProcedureStepStartDate": "20261201"}}, True),
        ({"step": {"ScheduledProcedureStepStatus": "SCHEDULED"}}, True),
        ({"PatientWeight": "70"}, True),  # not in the model: never filters
    ],
)
def test_matching(keys: dict[str, object], hit: bool) -> None:
    keys = dict(keys)
    step = keys.pop("step", None)
    assert (respond(order(), q(step, **keys)) is not None) is hit  # type: ignore[arg-type]


def test_code_sequence_item_matching() -> None:
    code = Dataset()
    code.CodeValue = "CXR-PA"
    assert respond(order(), q(RequestedProcedureCodeSequence=[code])) is not None
    code.CodeValue = "CT-HEAD"
    assert respond(order(), q(RequestedProcedureCodeSequence=[code])) is None


def test_response_holds_the_requested_keys_only() -> None:
    found = respond(order(name="Hong^Gildong"), q({"Modality": ""}, PatientID="", PatientWeight=""))
    assert found is not None
    assert [e.keyword for e in found] == [
        "PatientID",
        "PatientWeight",
        "ScheduledProcedureStepSequence",
    ]
    assert found.PatientWeight in (None, "")
    assert [e.keyword for e in found.ScheduledProcedureStepSequence[0]] == ["Modality"]
    assert "SpecificCharacterSet" not in found  # all ASCII

    korean = respond(order(), q(PatientName=""))
    assert korean is not None and korean.SpecificCharacterSet == "ISO_IR 192"

    whole = respond(order(), q(ScheduledProcedureStepSequence=[]))  # zero items: all of it
    assert whole is not None
    step = whole.ScheduledProcedureStepSequence[0]
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261201",
        "093000",
    )


def test_window_defaults_to_a_week_ahead_and_follows_the_query() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert window(q(PatientID=""), now) == (now - timedelta(days=1), now + timedelta(days=7))
    start, end = window(q({"ScheduledProcedureStepStartDate": "20261201-20261202"}), now)
    assert start is not None and end is not None
    assert start <= START.astimezone(UTC) < end
    assert start == datetime(2026, 11, 30, 10, tzinfo=UTC)  # 1 December begins at UTC+14
    assert end == datetime(2026, 12, 3, 12, tzinfo=UTC)  # 2 December ends at UTC-12
    assert window(q({"ScheduledProcedureStepStartDate": "20261201-"}), now)[1] is None


@pytest.mark.parametrize(
    "bad",
    [
        q({"ScheduledProcedureStepStartDate": "2026-12-01"}),
        q({"ScheduledProcedureStepStartDate": "20261201-20261202-20261203"}),
        q({"ScheduledProcedureStepStartTime": "9h30"}),
        q(PatientBirthDate="1980"),
    ],
)
def test_identifiers_the_model_cannot_process(bad: Dataset) -> None:
    with pytest.raises(QueryError):
        check(bad)


def test_two_step_items_cannot_be_processed() -> None:
    query = q({"Modality": "CR"})
    query.ScheduledProcedureStepSequence.append(Dataset())
    with pytest.raises(QueryError):
        check(query)
