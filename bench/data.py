"""The workloads: a realistic CT series per STOW shape and many tiny studies for QIDO."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from pydicom.dataset import Dataset

from connrad.demo.generate import DEMO_PATIENTS, ct_series, demo_uid, tiny_ct, to_part10_bytes


@dataclass(frozen=True)
class Series:
    """One CT series as PS3.10 files, sent unchanged to every server."""

    study_uid: str
    payloads: list[bytes]

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.payloads)


def ct_payloads(n_slices: int, tag: str, seed: int) -> Series:
    """512x512 16-bit head CT slices (~525 KB each); `tag` keeps the UIDs of each shape apart."""
    study_uid = demo_uid("bench", tag, "study")
    series_uid = demo_uid("bench", tag, "series")
    datasets = ct_series(
        n_slices, patient=DEMO_PATIENTS[0], study_uid=study_uid, series_uid=series_uid, seed=seed
    )
    return Series(study_uid, [to_part10_bytes(ds) for ds in datasets])


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Surnames are root + suffix, so a typed prefix like "Bergst*" selects a handful of patients.
_ROOTS = _words(
    "Berg Lind Holm Stein Wald Rosen Kessel Nord Sand Eck "
    "Hart Brun Falk Gold Feld Kron Dahl Wester Kirch Ahl"
)
_SUFFIXES = _words(
    "mann berg strom qvist holm stedt feld hoff ner ling "
    "gren dahl wall mark son sen bach hagen rath ow"
)
_GIVEN = _words(
    "Anna Ben Clara David Emma Felix Greta Hugo Ida Jonas Karin Lars Maja Nils Olga "
    "Paul Rita Sven Tove Ulf Vera Willem Xenia Yusuf Zoe Ahmed Mei Ravi Sofia Tomas"
)
_DESCRIPTIONS = ("CT Head", "CT Chest", "CT Abdomen", "CT Spine", "CT Angio")
_FIRST_DAY, _DAYS = date(2015, 1, 1), 3653  # ten years of study dates


@dataclass
class QidoWorkload:
    """Tiny one-instance studies plus query parameters that hit real data."""

    payloads: list[bytes] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)  # for PatientID=<exact>
    name_prefixes: list[str] = field(default_factory=list)  # for PatientName=<prefix>*
    date_ranges: list[str] = field(default_factory=list)  # for StudyDate=<from>-<to>


def _template() -> Dataset:
    return tiny_ct(
        SpecificCharacterSet="ISO_IR 100",
        ReferringPhysicianName="Lee^Sora",
        InstitutionName="connrad Bench Clinic",
    )


def qido_workload(n_studies: int, *, seed: int = 7, n_queries: int = 50) -> QidoWorkload:
    """`n_studies` 8x8 CT studies over ~n/3 patients, dates spread over ten years."""
    rng = np.random.default_rng(seed)
    n_patients = max(1, n_studies // 3)
    roots = rng.integers(len(_ROOTS), size=n_patients)
    suffixes = rng.integers(len(_SUFFIXES), size=n_patients)
    given = rng.integers(len(_GIVEN), size=n_patients)
    births = rng.integers(365 * 20, 365 * 90, size=n_patients)
    owners = rng.integers(n_patients, size=n_studies)
    days = rng.integers(_DAYS, size=n_studies)
    workload = QidoWorkload()
    ds = _template()
    for index in range(n_studies):
        patient = int(owners[index])
        surname = _ROOTS[roots[patient]] + _SUFFIXES[suffixes[patient]]
        study_day = _FIRST_DAY + timedelta(days=int(days[index]))
        ds.PatientName = f"{surname}^{_GIVEN[given[patient]]}"
        ds.PatientID = f"BP{patient:07d}"
        ds.PatientBirthDate = (study_day - timedelta(days=int(births[patient]))).strftime("%Y%m%d")
        ds.PatientSex = "FM"[patient % 2]
        ds.StudyInstanceUID = demo_uid("bench-qido", index, "study")
        ds.SeriesInstanceUID = demo_uid("bench-qido", index, "series")
        ds.SOPInstanceUID = demo_uid("bench-qido", index, "sop")
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_day.strftime("%Y%m%d")
        ds.StudyTime = f"{8 + index % 10:02d}{index % 60:02d}00"
        ds.AccessionNumber = f"BA{index:08d}"
        ds.StudyID = str(index % 10_000)
        ds.StudyDescription = _DESCRIPTIONS[index % len(_DESCRIPTIONS)]
        workload.payloads.append(to_part10_bytes(ds))
    for pick in rng.integers(n_studies, size=n_queries):
        patient = int(owners[pick])
        workload.patient_ids.append(f"BP{patient:07d}")
        suffix = _SUFFIXES[suffixes[patient]]
        workload.name_prefixes.append(f"{_ROOTS[roots[patient]]}{suffix[:3]}*")
    for start in rng.integers(_DAYS - 30, size=n_queries):
        first = _FIRST_DAY + timedelta(days=int(start))
        last = first + timedelta(days=30)
        workload.date_ranges.append(f"{first:%Y%m%d}-{last:%Y%m%d}")
    return workload
