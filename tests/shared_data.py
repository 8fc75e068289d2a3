"""Access to ../shared (real DICOM files): skipped outside this workplace, never under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    shared = REPO.parent / "shared"
    if not (shared / "dicom-data" / "public").is_dir():
        if os.environ.get("CI"):
            pytest.fail("../shared/dicom-data/public is missing under CI")
        pytest.skip("../shared is absent (outside this workplace)")
    return shared


def public_dir() -> Path:
    return shared_dir() / "dicom-data" / "public"


def public_files() -> list[Path]:
    root = public_dir()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")


def manifest() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file name."""
    lines = (public_dir() / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line]
    return {row["file_name"]: row for row in rows}
