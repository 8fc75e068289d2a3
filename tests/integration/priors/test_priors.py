"""Prior studies fetched from a real Orthanc (the site's PACS) when a new study arrives.

Orthanc holds, for patient P: two earlier CT studies, an earlier MR, a later CT and the new
study itself (as the backup filed it); and a CT of another patient. When a new CT of P
arrives, the two earlier CTs (and nothing else) are retrieved, stored (de-identified under
the site's policy, under the same pseudonym) and linked as priors.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from connrad.app import create_app
from connrad.archive.models import Instance, Patient, Study
from connrad.audit.models import AuditEvent
from connrad.priors import retrieve, service
from connrad.priors.links import priors_of
from connrad.priors.models import StudyPrior
from connrad.priors.query import PatientKey, find_studies
from connrad.priors.relevance import Candidate
from connrad.routing.spec import DestinationUnavailable
from connrad.services import Services
from tests.conftest import device_api_key, set_site_policy
from tests.factories import to_bytes
from tests.integration.priors.conftest import (
    NEW_DATE,
    OTHER_ID,
    OTHER_NAME,
    PATIENT_ID,
    PATIENT_NAME,
    PacsStudy,
    add_pacs,
    fetch_jobs,
    ingest,
    run_fetch_jobs,
    study_files,
    upload,
)
from tests.orthanc import Orthanc

S, PT, N, SP = Study.__table__, Patient.__table__, Instance.__table__, StudyPrior.__table__
A = AuditEvent.__table__


def pacs_holdings(pacs: Orthanc, new: PacsStudy) -> dict[str, PacsStudy]:
    return {
        "prior-2025": upload(pacs, study_files("20250101", instances=2)),
        "prior-2024": upload(pacs, study_files("20240601")),
        "mr-2023": upload(pacs, study_files("20230101", modality="MR")),
        "later": upload(pacs, study_files("20260401")),
        "other": upload(pacs, study_files("20250301", patient_id=OTHER_ID, name=OTHER_NAME)),
        "itself": upload(pacs, new),
    }


def new_study_arrives(services: Services, new: PacsStudy) -> int:
    """The new study, stored through the STOW door; its archive key."""
    results = [ingest(services, to_bytes(ds)) for ds in new.datasets]
    with services.engine.connect() as conn:
        return int(
            conn.execute(select(S.c.id).where(S.c.study_uid == results[0].study_uid)).scalar_one()
        )


def study_rows(services: Services) -> list[dict[str, object]]:
    with services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(S).order_by(S.c.id)).mappings()]


def links(services: Services) -> list[tuple[int, int]]:
    with services.engine.connect() as conn:
        return sorted((r.study_pk, r.prior_study_pk) for r in conn.execute(select(SP)))


@pytest.mark.peer
@pytest.mark.parametrize("policy", ["identified", "pseudonymized"])
def test_earlier_studies_are_fetched_and_linked(
    services: Services, orthanc: Orthanc, policy: str
) -> None:
    set_site_policy(services, services.local_site_id, policy, "pass")
    service.register(services)
    service.register(services)  # idempotent: one hook, one handler
    new = study_files(NEW_DATE, instances=2)
    held = pacs_holdings(orthanc, new)
    add_pacs(services, orthanc)

    new_pk = new_study_arrives(services, new)
    assert len(fetch_jobs(services)) == 1  # one per new study, not per instance
    started = time.monotonic()
    assert run_fetch_jobs(services) == 1
    elapsed = time.monotonic() - started
    print(f"\nprior fetch ({policy}, 2 studies, 3 instances): {elapsed:.2f} s")

    (job,) = fetch_jobs(services)
    assert job["state"] == "done", job["last_error"]
    studies = study_rows(services)
    assert len(studies) == 3  # the new study and the two earlier CTs of the patient
    priors = {r["id"]: r for r in studies if r["id"] != new_pk}
    assert links(services) == sorted((new_pk, pk) for pk in priors)
    assert sorted(int(r["num_instances"]) for r in priors.values()) == [1, 2]
    assert {r["patient_pk"] for r in studies} == {studies[0]["patient_pk"]}  # one patient

    with services.engine.connect() as conn:
        shown = priors_of(conn, new_pk)
        patients = list(conn.execute(select(PT)).mappings())
        doors = dict(conn.execute(select(N.c.door, func.count()).group_by(N.c.door)).all())
        audit = list(conn.execute(select(A).where(A.c.actor == "system:priors")).mappings())
    assert [p["modalities"] for p in shown] == [["CT"], ["CT"]]
    new_uid = next(r["study_uid"] for r in studies if r["id"] == new_pk)
    with TestClient(create_app(services.settings, services)) as http:
        answer = http.get(
            f"/api/studies/{new_uid}/priors",
            headers={"Authorization": f"Bearer {device_api_key(services)}"},
        )
    assert answer.status_code == 200, answer.text
    assert [p["study_uid"] for p in answer.json()["priors"]] == [p["study_uid"] for p in shown]
    assert doors == {"stow": 2, "prior": 3}
    assert len(patients) == 1
    if policy == "identified":
        assert [p["study_uid"] for p in shown] == [
            held["prior-2025"].study_uid,
            held["prior-2024"].study_uid,
        ]
        assert [p["study_date"] for p in shown] == ["20250101", "20240601"]
        assert patients[0]["patient_id"] == PATIENT_ID
    else:
        # Under the new study's pseudonym; shifted dates keep their order; no identity kept.
        assert patients[0]["patient_id"].startswith("CR")
        assert PATIENT_NAME not in patients[0]["name_alphabetic"]
        assert shown[0]["study_date"] > shown[1]["study_date"]
        assert not {p["study_uid"] for p in shown} & {s.study_uid for s in held.values()}
        with services.engine.connect() as conn:
            keys = conn.execute(select(N.c.blob_key).where(N.c.door == "prior")).scalars().all()
        for key in keys:
            data = services.blobs.local_path(key).read_bytes()
            assert PATIENT_ID.encode() not in data and b"Secret" not in data
    # Retrieval is audited as a system action: one record per fetch, one per stored instance.
    assert sorted(e["action"] for e in audit) == ["create", "create", "create", "read"]
    (fetch,) = [e for e in audit if e["action"] == "read"]
    assert fetch["detail"]["linked"] == 2 and fetch["detail"]["found"] == 5

    # Priors do not fetch priors; a second run finds them complete and links nothing twice.
    assert len(fetch_jobs(services)) == 1
    started = time.monotonic()
    assert service.fetch_priors(services, {"study_pk": new_pk}) == []
    print(f"prior fetch again (all complete here): {time.monotonic() - started:.2f} s")
    assert len(links(services)) == 2
    assert len(study_rows(services)) == 3


@pytest.mark.peer
def test_dicomweb_prior_source(services: Services, orthanc: Orthanc) -> None:
    """QIDO-RS finds, WADO-RS retrieves; pseudonymized like any other door."""
    set_site_policy(services, services.local_site_id, "pseudonymized", "pass")
    service.register(services)
    new = study_files(NEW_DATE)
    pacs_holdings(orthanc, new)
    add_pacs(services, orthanc, kind="dicomweb")
    new_pk = new_study_arrives(services, new)
    started = time.monotonic()
    assert run_fetch_jobs(services) == 1
    print(f"\nprior fetch (DICOMweb, 2 studies, 3 instances): {time.monotonic() - started:.2f} s")
    (job,) = fetch_jobs(services)
    assert job["state"] == "done", job["last_error"]
    assert len(links(services)) == 2
    with services.engine.connect() as conn:
        shown = priors_of(conn, new_pk)
        assert conn.execute(select(func.count()).select_from(PT)).scalar_one() == 1
    assert sorted(p["num_instances"] for p in shown) == [1, 2]


@pytest.mark.peer
def test_pacs_down_the_job_fails_and_is_retried(services: Services, orthanc: Orthanc) -> None:
    set_site_policy(services, services.local_site_id, "pseudonymized", "pass")
    service.register(services)
    new = study_files(NEW_DATE)
    pacs_holdings(orthanc, new)
    add_pacs(services, orthanc)
    new_pk = new_study_arrives(services, new)
    orthanc.stop()

    with pytest.raises(DestinationUnavailable):
        service.fetch_priors(services, {"study_pk": new_pk})
    assert run_fetch_jobs(services) == 1
    (job,) = fetch_jobs(services)
    assert job["state"] == "queued" and job["attempts"] == 1  # retried later
    assert PATIENT_ID not in job["last_error"]
    assert links(services) == [] and len(study_rows(services)) == 1

    orthanc.start()  # back: the retry fetches and links
    assert run_fetch_jobs(services) == 1
    (job,) = fetch_jobs(services)
    assert job["state"] == "done", job["last_error"]
    assert len(links(services)) == 2


@pytest.mark.peer
@pytest.mark.parametrize("policy", ["identified", "anonymized"])
def test_nothing_to_fetch_without_prior_source_or_identity(
    services: Services, orthanc: Orthanc, policy: str
) -> None:
    """An untrusted destination is not the site's PACS; anonymized studies have no way back."""
    set_site_policy(services, services.local_site_id, policy, "pass")
    service.register(services)
    new = study_files(NEW_DATE)
    pacs_holdings(orthanc, new)
    add_pacs(services, orthanc, trusted=policy == "anonymized")
    new_pk = new_study_arrives(services, new)
    assert service.fetch_priors(services, {"study_pk": new_pk}) == []
    assert links(services) == [] and len(study_rows(services)) == 1


@pytest.mark.peer
def test_c_find_answers_and_c_get_without_sop_classes(services: Services, orthanc: Orthanc) -> None:
    """The PACS's answer is the patient's only; a study whose SOP classes the PACS did not
    report still arrives, on the common storage contexts."""
    new = study_files(NEW_DATE)
    held = pacs_holdings(orthanc, new)
    add_pacs(services, orthanc)
    with services.engine.connect() as conn:
        (spec,) = service.trusted_sources(conn, services.local_site_id)
    found = find_studies(spec, services.settings, PatientKey(PATIENT_ID))
    assert sorted(c.study_uid for c in found) == sorted(
        s.study_uid for k, s in held.items() if k != "other"
    )
    prior = next(c for c in found if c.study_uid == held["prior-2025"].study_uid)
    assert prior.modalities == {"CT"} and prior.study_date == "20250101"
    assert prior.num_instances == 2
    assert prior.sop_classes == ("1.2.840.10008.5.1.4.1.1.2",)  # CT Image Storage
    assert find_studies(spec, services.settings, PatientKey("SECRET-*")) == []  # no wildcards

    got = retrieve.c_get(services, spec, Candidate(prior.study_uid))
    assert (got.stored, got.refused, got.remote_failed) == (2, 0, 0)
    assert got.study_uids == {prior.study_uid}
