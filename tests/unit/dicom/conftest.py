"""Real files from ../shared, chosen by what MANIFEST.tsv says about each, and helpers.

Test parameters are read at collection without skipping, so the pure tests still run where
../shared is absent; each data test then asks ``public_dir()``, which skips there (and fails
under CI).
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.shared_data import REPO, public_dir

_MANIFEST = REPO.parent / "shared" / "dicom-data" / "public" / "MANIFEST.tsv"
ABSENT = "(shared data absent)"


def _rows() -> list[dict[str, str]]:
    if not _MANIFEST.is_file():
        return []
    with _MANIFEST.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _relative_name(row: dict[str, str]) -> str:
    """The file's path under public/ (series files sit in sub-folders)."""
    folder = row["folder"].partition("/")[2]
    return f"{folder}/{row['file_name']}" if folder else row["file_name"]


def _names(keep: Callable[[dict[str, str]], bool]) -> list[str]:
    return [_relative_name(row) for row in _rows() if keep(row)] or [ABSENT]


def _decodes(row: dict[str, str]) -> bool:
    return row["pixel_decode_pydicom_pylibjpeg"].startswith("ok")


def _is_encapsulated(row: dict[str, str]) -> bool:
    return pydicom.uid.UID(row["transfer_syntax_uid"] or "1.2.840.10008.1.2").is_encapsulated


# Which files each parameter name runs over.
SELECTIONS: dict[str, Callable[[dict[str, str]], bool]] = {
    "decodable": _decodes,
    "encapsulated": lambda row: _decodes(row) and _is_encapsulated(row),
    "broken": lambda row: row["pixel_decode_pydicom_pylibjpeg"].startswith("FAIL"),
    "no_pixels": lambda row: row["pixel_decode_pydicom_pylibjpeg"].startswith("n/a"),
    "any_file": lambda row: True,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, keep in SELECTIONS.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, _names(keep))


@pytest.fixture
def public() -> Path:
    return public_dir()


@pytest.fixture
def reference_frames() -> Callable[[Path], tuple[Dataset, np.ndarray]]:
    """pydicom's own decoding of a whole file, shaped (frames, rows, columns[, samples])."""

    def decode(path: Path) -> tuple[Dataset, np.ndarray]:
        ds = pydicom.dcmread(path, force=True)
        if not ds.file_meta.get("TransferSyntaxUID"):  # no file meta: the syntax it was read as
            implicit = ds.original_encoding[0]
            ds.file_meta.TransferSyntaxUID = (
                pydicom.uid.ImplicitVRLittleEndian
                if implicit
                else pydicom.uid.ExplicitVRLittleEndian
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pydicom.pixels.pixel_array(ds)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        return ds, (arr if frames > 1 else arr[np.newaxis])

    return decode


@pytest.fixture
def write_instance(tmp_path: Path) -> Callable[..., Path]:
    """Write a small synthetic image instance; keyword arguments become attributes."""
    counter = iter(range(1, 1000))

    def write(
        pixel_data: bytes,
        *,
        transfer_syntax: str = pydicom.uid.ExplicitVRLittleEndian,
        **attributes: object,
    ) -> Path:
        ds = Dataset()
        ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "SECRET-ID-42"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelRepresentation = 0
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.PixelData = pixel_data
        syntax = pydicom.uid.UID(transfer_syntax)
        if syntax.is_encapsulated:
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
        else:
            ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        path = tmp_path / f"instance{next(counter)}.dcm"
        ds.save_as(path, enforce_file_format=True, little_endian=syntax.is_little_endian)
        return path

    return write
