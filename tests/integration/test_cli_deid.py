"""`connrad deid` end to end: exit codes, summary, outputs, mapping CSV, reruns.

Runs the real command (typer's CliRunner in process, and once the installed script) on a
folder built from ../shared/dicom-data; skipped outside this workplace, failed under CI.
"""

from __future__ import annotations

import csv
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner, Result

from connrad.cli import app
from tests.shared_data import public_dir

FILES = ("pydicom__CT_small.dcm", "pydicom__MR_small.dcm", "pydicom__SC_rgb_small_odd.dcm")
SERIES = "ct_series_ge_head_tilt_irregular"


def build(root: Path) -> tuple[Path, Path]:
    """in/ with three files and a nested sub-folder of two slices; a fresh key file."""
    public = public_dir()
    in_dir = root / "in"
    (in_dir / "sub").mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(public / name, in_dir / name)
    for path in sorted((public / SERIES).iterdir())[:2]:
        shutil.copyfile(path, in_dir / "sub" / path.name)
    key = root / "site.key"
    assert deid("--generate-key-file", str(key)).exit_code == 0
    return in_dir, key


def deid(*args: str) -> Result:
    return CliRunner().invoke(app, ["deid", *args])


def run(in_dir: Path, out: Path, key: Path, *extra: str) -> Result:
    return deid(str(in_dir), str(out), "--policy", "pseudonymized", "--key-file", str(key), *extra)


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    return build(tmp_path)


def test_clean_run(folder: tuple[Path, Path], tmp_path: Path) -> None:
    in_dir, key = folder
    out, mapping = tmp_path / "out", tmp_path / "map.csv"
    result = run(in_dir, out, key, "--mapping", str(mapping), "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "instances/s" in result.output
    assert "holds the original identifiers" in result.output
    assert "pydicom__SC_rgb_small_odd.dcm" in result.output  # listed under pixel risk
    outputs = dicom_files(out)
    assert [p.relative_to(out) for p in outputs] == [
        p.relative_to(in_dir) for p in dicom_files(in_dir)
    ]
    for source in dicom_files(in_dir):
        original = pydicom.dcmread(source)
        target = out / source.relative_to(in_dir)
        assert pydicom.dcmread(target).PatientIdentityRemoved == "YES"
        data = target.read_bytes()
        for value in (str(original.PatientName), str(original.PatientID)):
            assert value.encode() not in data, f"{value!r} left in {target.name}"
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600
    rows = list(csv.reader(mapping.open()))
    assert rows[0] == ["kind", "old", "new"]
    assert [
        "patient_name",
        "CompressedSamples^CT1",
        pydicom.dcmread(out / FILES[0]).PatientName,
    ] in rows


def test_failures_give_exit_1_and_the_rest_is_done(
    folder: tuple[Path, Path], tmp_path: Path
) -> None:
    in_dir, key = folder
    whole = (in_dir / FILES[0]).read_bytes()
    (in_dir / "cut.dcm").write_bytes(whole[:-500])
    (in_dir / "readme.txt").write_text("hello")
    result = run(in_dir, tmp_path / "out", key)
    assert result.exit_code == 1, result.output
    assert "cut.dcm: read: file is truncated" in result.output
    assert "readme.txt: not DICOM" in result.output
    assert all((tmp_path / "out" / name).is_file() for name in FILES)


def test_rerun_refuses_then_overwrites_with_identical_bytes(
    folder: tuple[Path, Path], tmp_path: Path
) -> None:
    in_dir, key = folder
    out = tmp_path / "out"
    assert run(in_dir, out, key).exit_code == 0
    first = {p: p.read_bytes() for p in dicom_files(out)}
    again = run(in_dir, out, key)
    assert again.exit_code == 1
    assert "output exists" in again.output
    assert run(in_dir, out, key, "--overwrite").exit_code == 0
    assert {p: p.read_bytes() for p in dicom_files(out)} == first


def test_quarantine(folder: tuple[Path, Path], tmp_path: Path) -> None:
    in_dir, key = folder
    out = tmp_path / "out"
    assert run(in_dir, out, key, "--quarantine-pixel-risk").exit_code == 0
    assert (out / "_quarantine" / "pydicom__SC_rgb_small_odd.dcm").is_file()
    assert not (out / "pydicom__SC_rgb_small_odd.dcm").exists()


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_in_input_is_a_usage_error(folder: tuple[Path, Path], where: str) -> None:
    in_dir, key = folder
    out = in_dir if where == "same" else in_dir / "out"
    result = run(in_dir, out, key)
    assert result.exit_code == 2
    assert "overlaps" in result.output
    assert not (in_dir / "out").exists()


def test_usage_errors(folder: tuple[Path, Path], tmp_path: Path) -> None:
    in_dir, key = folder
    out = str(tmp_path / "out")
    assert deid(str(in_dir), out, "--key-file", str(key)).exit_code == 2  # no --policy
    assert deid(str(in_dir), out, "--policy", "anonymized").exit_code == 2  # no key
    assert deid(str(in_dir), out, "--policy", "identified", "--key-file", str(key)).exit_code == 2
    key.chmod(0o644)
    loose = run(in_dir, tmp_path / "out", key)
    assert loose.exit_code == 2
    assert "chmod 600" in loose.output


def test_mapping_path_checked_before_the_run(folder: tuple[Path, Path], tmp_path: Path) -> None:
    in_dir, key = folder
    out = tmp_path / "out"
    inside = run(in_dir, out, key, "--mapping", str(out / "map.csv"))
    assert inside.exit_code == 2
    assert "outside OUT_DIR" in inside.output
    existing = tmp_path / "map.csv"
    existing.write_text("")
    assert run(in_dir, out, key, "--mapping", str(existing)).exit_code == 2
    assert not out.exists()


def test_generate_key_file(tmp_path: Path) -> None:
    key = tmp_path / "new.key"
    assert deid("--generate-key-file", str(key)).exit_code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert deid("--generate-key-file", str(key)).exit_code == 2  # never overwritten


def test_installed_script(folder: tuple[Path, Path], tmp_path: Path) -> None:
    """The console script, with its process pool, in a real subprocess."""
    in_dir, key = folder
    script = Path(sys.executable).parent / "connrad"
    if not script.exists():
        pytest.skip("the connrad console script is not installed next to this Python")
    args = [str(script), "deid", str(in_dir), str(tmp_path / "out"), "--policy", "anonymized"]
    done = subprocess.run(
        [*args, "--key-file", str(key), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(dicom_files(tmp_path / "out")) == len(dicom_files(in_dir))
