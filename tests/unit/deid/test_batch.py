"""Folder de-identification (connrad.deid.batch) on real files from ../shared/dicom-data.

Skipped outside this workplace; under CI a missing ../shared fails (tests.shared_data).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pydicom
import pytest

from connrad.deid import batch
from connrad.deid.batch import Job, Status
from tests.shared_data import public_dir

KEY = b"batch-test-key-0123456789abcdef!"
OTHER_KEY = b"another-key-0123456789abcdefghi!"
FLAT = ("pydicom__CT_small.dcm", "pydicom__MR_small.dcm", "pydicom__SC_rgb_small_odd.dcm")
SERIES = "ct_series_philips_head_1mm"
SLICES = ("I10", "I100", "I1000")
PIXEL_RISK = "pydicom__SC_rgb_small_odd.dcm"  # OT Secondary Capture


def build_folder(root: Path) -> Path:
    """in/: three flat files, a nested series, a text file and a truncated DICOM file."""
    public = public_dir()
    in_dir = root / "in"
    nested = in_dir / "study" / "series"
    nested.mkdir(parents=True)
    for name in FLAT:
        shutil.copyfile(public / name, in_dir / name)
    for name in SLICES:
        shutil.copyfile(public / SERIES / name, nested / name)
    (in_dir / "notes.txt").write_text("not an image\n")
    whole = (public / "pydicom__CT_small.dcm").read_bytes()
    (in_dir / "cut.dcm").write_bytes(whole[: len(whole) - 1000])
    return in_dir


@pytest.fixture
def in_dir(tmp_path: Path) -> Path:
    return build_folder(tmp_path)


def job(in_dir: Path, out_dir: Path, key: bytes = KEY, **extra: bool) -> Job:
    return Job(in_dir, out_dir, batch.POLICIES["pseudonymized"], key, **extra)


def by_source(report: batch.Report) -> dict[str, batch.Outcome]:
    return {outcome.source.as_posix(): outcome for outcome in report.outcomes}


def test_every_file_gets_an_outcome(in_dir: Path, tmp_path: Path) -> None:
    report = batch.run(job(in_dir, tmp_path / "out"), workers=1)
    outcomes = by_source(report)
    nested = [f"study/series/{name}" for name in SLICES]
    assert {s for s, o in outcomes.items() if o.status is Status.OK} == {*FLAT, *nested}
    assert outcomes["notes.txt"].status is Status.SKIPPED
    assert outcomes["cut.dcm"].status is Status.FAILED
    assert outcomes["cut.dcm"].reason == "read: file is truncated"
    for source in [*FLAT, *nested]:
        out = pydicom.dcmread(tmp_path / "out" / source)
        assert out.PatientIdentityRemoved == "YES"
    assert not (tmp_path / "out" / "notes.txt").exists()
    assert not (tmp_path / "out" / "cut.dcm").exists()


def test_uids_consistent_across_files(in_dir: Path, tmp_path: Path) -> None:
    batch.run(job(in_dir, tmp_path / "out"), workers=1)
    nested = tmp_path / "out" / "study" / "series"
    outs = [pydicom.dcmread(nested / name) for name in SLICES]
    ins = [pydicom.dcmread(in_dir / "study" / "series" / name) for name in SLICES]
    assert len({ds.StudyInstanceUID for ds in outs}) == 1
    assert len({ds.SeriesInstanceUID for ds in outs}) == 1
    assert len({ds.PatientID for ds in outs}) == 1
    assert outs[0].StudyInstanceUID != ins[0].StudyInstanceUID
    assert len({ds.SOPInstanceUID for ds in outs}) == len(SLICES)


def test_same_key_same_bytes_other_key_other_bytes(in_dir: Path, tmp_path: Path) -> None:
    batch.run(job(in_dir, tmp_path / "a"), workers=1)
    batch.run(job(in_dir, tmp_path / "b"), workers=1)
    batch.run(job(in_dir, tmp_path / "c", OTHER_KEY), workers=1)
    for name in FLAT:
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes()
        assert first != (tmp_path / "c" / name).read_bytes()


def test_process_pool_matches_one_process(in_dir: Path, tmp_path: Path) -> None:
    inline = batch.run(job(in_dir, tmp_path / "a", want_mapping=True), workers=1)
    pooled = batch.run(job(in_dir, tmp_path / "b", want_mapping=True), workers=2)
    assert [(o.source, o.status, o.reason) for o in pooled.outcomes] == [
        (o.source, o.status, o.reason) for o in inline.outcomes
    ]
    assert pooled.mapping_rows() == inline.mapping_rows()
    for outcome in inline.outcomes:
        if outcome.output is not None:
            assert (tmp_path / "a" / outcome.output).read_bytes() == (
                tmp_path / "b" / outcome.output
            ).read_bytes()


def test_no_original_identifiers_in_outputs(in_dir: Path, tmp_path: Path) -> None:
    batch.run(job(in_dir, tmp_path / "out"), workers=1)
    for name in FLAT:
        original = pydicom.dcmread(in_dir / name)
        data = (tmp_path / "out" / name).read_bytes()
        assert str(original.PatientName).encode() not in data
        assert str(original.PatientID).encode() not in data


def test_existing_outputs_need_overwrite(in_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    batch.run(job(in_dir, out), workers=1)
    again = by_source(batch.run(job(in_dir, out), workers=1))
    assert again[FLAT[0]].status is Status.FAILED
    assert "output exists" in again[FLAT[0]].reason
    replaced = by_source(batch.run(job(in_dir, out, overwrite=True), workers=1))
    assert replaced[FLAT[0]].status is Status.OK


@pytest.mark.parametrize("inside", ["same", "out-in-in", "in-in-out"])
def test_overlapping_folders_refused(in_dir: Path, tmp_path: Path, inside: str) -> None:
    out = {"same": in_dir, "out-in-in": in_dir / "out", "in-in-out": tmp_path}[inside]
    with pytest.raises(batch.BatchError, match="overlaps"):
        batch.run(job(in_dir, out), workers=1)


def test_quarantine_pixel_risk(in_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = batch.run(job(in_dir, out, quarantine_pixel_risk=True), workers=1)
    risky = by_source(report)[PIXEL_RISK]
    assert risky.pixel_risk and risky.output == Path(batch.QUARANTINE_DIR) / PIXEL_RISK
    assert (out / batch.QUARANTINE_DIR / PIXEL_RISK).is_file()
    assert not (out / PIXEL_RISK).exists()
    assert [o.source.as_posix() for o in report.pixel_risk] == [PIXEL_RISK]


def test_mapping_rows_and_file(in_dir: Path, tmp_path: Path) -> None:
    report = batch.run(job(in_dir, tmp_path / "out", want_mapping=True), workers=1)
    rows = report.mapping_rows()
    kinds = {kind for kind, _, _ in rows}
    assert {"patient_id", "patient_name", "uid", "date_offset_days"} <= kinds
    assert ("patient_id", "1CT1", pydicom.dcmread(tmp_path / "out" / FLAT[0]).PatientID) in rows
    assert len(rows) == len(set(rows))
    path = tmp_path / "map.csv"
    batch.write_mapping(path, rows, overwrite=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[0] == "kind,old,new"
    with pytest.raises(FileExistsError):
        batch.write_mapping(path, rows, overwrite=False)


def test_no_temporary_files_left(in_dir: Path, tmp_path: Path) -> None:
    batch.run(job(in_dir, tmp_path / "out"), workers=1)
    assert not [p for p in (tmp_path / "out").rglob(".*")]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        batch.atomic_write(tmp_path / "x.dcm", b"data", overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_reason_names_the_attribute_never_the_value() -> None:
    exc = ValueError("Smith^John is not valid for (0010,0010) in 1CT1")
    assert batch._reason("read", exc) == "read: ValueError at PatientName"
    assert batch._reason("write", KeyError("1CT1")) == "write: KeyError"


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    batch.generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(batch.load_key(path)) == 32
    with pytest.raises(batch.BatchError, match="never overwritten"):
        batch.generate_key_file(path)
    path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        batch.load_key(path)


def test_hex_key_file(tmp_path: Path) -> None:
    path = tmp_path / "hex.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o600)
    assert batch.load_key(path) == KEY
