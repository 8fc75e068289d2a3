"""De-identify a folder of DICOM files into another folder, one process per core.

Used by ``connrad deid``: a site exports studies for research or teaching without running
the archive. Each file goes through :func:`connrad.deid.engine.deidentify` on its own, so
the outputs are consistent across files only because the engine is keyed: the same key
gives the same UIDs, pseudonyms and date offsets in every file and on every rerun.

Key: the key file holds 32 random bytes as text, in the vault master key format
(:func:`connrad.deid.vault.load_master_key`). Those bytes are used directly as the site
data key the engine takes, which derives its own per-purpose HMAC keys from it (HKDF,
:func:`connrad.deid.vault.derive`), exactly as the archive does with a site's data key.

Nothing this module reports holds attribute values: a failure is a stage, an exception
type and at most the attribute keyword, because file-level reports get pasted into
tickets and chats. Outputs appear atomically (temporary file, fsync, rename), so a crash
or Ctrl-C never leaves a half-written file under the output name.
"""

from __future__ import annotations

import contextlib
import csv
import io
import multiprocessing
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from connrad.deid import vault
from connrad.deid.engine import deidentify, mapping_rows
from connrad.deid.profiles import ANONYMIZED_POLICY, PSEUDONYMIZED_POLICY, Policy
from connrad.dicom.iods import type_of_for

__all__ = [
    "POLICIES",
    "BatchError",
    "Job",
    "Outcome",
    "Report",
    "Status",
    "deidentify_file",
    "find_files",
    "generate_key_file",
    "load_key",
    "run",
    "write_mapping",
]

# "identified" (the third site policy) keeps identities, so it has no place here. The
# same policies as the archive's, so an export matches what the cloud stores.
POLICIES: dict[str, Policy] = {
    "pseudonymized": PSEUDONYMIZED_POLICY,
    "anonymized": ANONYMIZED_POLICY,
}
QUARANTINE_DIR = "_quarantine"
MAPPING_HEADER = ("kind", "old", "new")
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# First tag group of a Part 10 file without preamble, or of an ACR-NEMA style file
# (groups 0002 or 0008, little or big endian): anything else is not worth a forced read.
_BARE_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
_UNDEFINED_LENGTH = 0xFFFFFFFF
_TAG_IN_TEXT = re.compile(r"\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")


class BatchError(ValueError):
    """The folders or files given cannot be used; the message says why and what to do."""


class Status(StrEnum):
    OK = "ok"
    SKIPPED = "skipped-not-dicom"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """What every worker needs; sent with each file (a few hundred bytes)."""

    in_dir: Path
    out_dir: Path
    policy: Policy
    key: bytes = field(repr=False)
    overwrite: bool = False
    quarantine_pixel_risk: bool = False
    want_mapping: bool = False


@dataclass(frozen=True)
class Outcome:
    """One input file's fate; ``source`` and ``output`` are relative to their folders."""

    source: Path
    status: Status
    output: Path | None = None
    reason: str = ""
    pixel_risk_reasons: tuple[str, ...] = ()
    warnings: int = 0
    mapping: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)  # PHI

    @property
    def pixel_risk(self) -> bool:
        return bool(self.pixel_risk_reasons)


@dataclass
class Report:
    """All outcomes in input order, and the wall time of the run."""

    outcomes: list[Outcome]
    seconds: float

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    @property
    def pixel_risk(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.OK and o.pixel_risk]

    @property
    def instances_per_s(self) -> float:
        return self.count(Status.OK) / self.seconds if self.seconds > 0 else 0.0

    def mapping_rows(self) -> list[tuple[str, str, str]]:
        """``engine.mapping_rows`` over all files: deduplicated, first seen first."""
        rows: dict[tuple[str, str, str], None] = {}
        for outcome in self.outcomes:
            rows.update(dict.fromkeys(outcome.mapping))
        return list(rows)


class _NotDicom(Exception):
    pass


class _Truncated(Exception):
    pass


# --- keys ---------------------------------------------------------------------------------


def load_key(path: Path) -> bytes:
    """The 32-byte site key held by a key file (base64url or hex text, mode 0600)."""
    return vault.load_master_key(None, path)


def generate_key_file(path: Path) -> None:
    """Write a new random key to ``path`` (mode 0600); never replaces an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BatchError(f"{path} exists: a key file is never overwritten") from None
    except OSError as exc:
        raise BatchError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(vault.generate_master_key() + "\n")
        out.flush()
        os.fsync(out.fileno())


# --- folders ------------------------------------------------------------------------------


def check_dirs(in_dir: Path, out_dir: Path) -> None:
    """Refuse folders that overlap: outputs would land among (or be read as) inputs."""
    if not in_dir.is_dir():
        raise BatchError(f"{in_dir} is not a folder")
    src, dst = in_dir.resolve(), out_dir.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise BatchError(
            f"the output folder {out_dir} overlaps the input folder {in_dir}: "
            "choose a folder outside it"
        )
    if dst.exists() and not dst.is_dir():
        raise BatchError(f"{out_dir} exists and is not a folder")


def find_files(in_dir: Path) -> list[Path]:
    """Every regular file under ``in_dir``, relative and sorted (symlinked folders skipped)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(in_dir):
        dirs.sort()
        base = Path(root)
        found.extend((base / name).relative_to(in_dir) for name in files)
    return sorted(p for p in found if (in_dir / p).is_file())


# --- one file -----------------------------------------------------------------------------


def deidentify_file(job: Job, source: Path) -> Outcome:
    """Read, de-identify and write one file; every error becomes a PHI-free outcome."""
    try:
        ds = read_dicom(job.in_dir / source)
    except _NotDicom as exc:
        return Outcome(source, Status.SKIPPED, reason=str(exc))
    except _Truncated:
        return Outcome(source, Status.FAILED, reason="read: file is truncated")
    except Exception as exc:
        return Outcome(source, Status.FAILED, reason=_reason("read", exc))
    missing = [k for k in ("SOPClassUID", "SOPInstanceUID") if not _has_value(ds, k)]
    if missing:
        reason = f"read: no {' or '.join(missing)} (not a storable instance)"
        return Outcome(source, Status.FAILED, reason=reason)
    try:
        type_of = type_of_for(str(ds.get("SOPClassUID", "")))
        result = deidentify(ds, job.policy, job.key, type_of=type_of)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, result.dataset, enforce_file_format=True)
    except Exception as exc:
        return Outcome(source, Status.FAILED, reason=_reason("de-identify", exc))
    quarantined = result.pixel_risk and job.quarantine_pixel_risk
    output = Path(QUARANTINE_DIR) / source if quarantined else source
    try:
        atomic_write(job.out_dir / output, buffer.getvalue(), overwrite=job.overwrite)
    except FileExistsError:
        return Outcome(source, Status.FAILED, reason="write: output exists (use --overwrite)")
    except OSError as exc:
        return Outcome(source, Status.FAILED, reason=f"write: {exc.strerror or type(exc).__name__}")
    return Outcome(
        source,
        Status.OK,
        output=output,
        pixel_risk_reasons=tuple(result.pixel_risk_reasons),
        warnings=len(result.warnings),
        mapping=tuple(mapping_rows([result])) if job.want_mapping else (),
    )


def read_dicom(path: Path) -> Dataset:
    """The whole dataset; raises _NotDicom (not DICOM, DICOMDIR) or _Truncated.

    pydicom reads a truncated file without raising (it warns, or returns a short last
    value), and writing that back would publish a damaged instance: both are caught here.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            ds = _read_bare(path)
    if any(str(w.message).startswith("End of file reached") for w in caught):
        raise _Truncated
    if _ends_short(ds):
        raise _Truncated
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP_CLASS:
        raise _NotDicom("DICOMDIR: not copied (its file references would be stale)")
    return ds


def _read_bare(path: Path) -> Dataset:
    """A file without preamble: Part 10 without the 128 bytes, or ACR-NEMA style."""
    with path.open("rb") as handle:
        start = handle.read(2)
    if start not in _BARE_STARTS:
        raise _NotDicom("not DICOM")
    try:
        ds = pydicom.dcmread(path, force=True)
        sop_class = str(ds.get("SOPClassUID", "") or "")
    except Exception:
        raise _NotDicom("not DICOM") from None
    if not sop_class:
        raise _NotDicom("not DICOM (no SOP Class UID)")
    return ds


def _has_value(ds: Dataset, keyword: str) -> bool:
    try:
        return bool(ds.get(keyword))
    except Exception:  # a value that does not decode counts as absent
        return False


def _ends_short(ds: Dataset) -> bool:
    """True when the last element holds fewer bytes than its length says (cut-off file)."""
    if not ds.keys():
        return True
    raw = ds.get_item(max(ds.keys()))
    length, value = getattr(raw, "length", None), getattr(raw, "value", None)
    if not isinstance(value, bytes) or not isinstance(length, int):
        return False
    return length != _UNDEFINED_LENGTH and len(value) < length


def _reason(stage: str, exc: BaseException) -> str:
    """Stage, exception type and the attribute keyword if the message names a tag.

    The message itself is dropped: pydicom quotes values in it (names, IDs).
    """
    match = _TAG_IN_TEXT.search(str(exc))
    if match is None:
        return f"{stage}: {type(exc).__name__}"
    group, element = match.groups()
    where = keyword_for_tag(int(group + element, 16)) or f"({group},{element})"
    return f"{stage}: {type(exc).__name__} at {where}"


# --- writing ------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, *, overwrite: bool, mode: int = 0o600) -> None:
    """Write ``path`` whole or not at all: temporary file in the same folder, fsync, rename.

    Without ``overwrite`` an existing file raises FileExistsError, decided atomically by
    ``link`` (a check-then-rename would race with another writer).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX: a directory entry is data of the directory)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_mapping(path: Path, rows: Iterable[tuple[str, str, str]], *, overwrite: bool) -> None:
    """The ``kind,old,new`` CSV (mode 0600: the old values are identifiers)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(MAPPING_HEADER)
    writer.writerows(rows)
    atomic_write(path, text.getvalue().encode("utf-8"), overwrite=overwrite, mode=0o600)


# --- the run ------------------------------------------------------------------------------


def run(
    job: Job,
    files: list[Path] | None = None,
    *,
    workers: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Report:
    """De-identify ``files`` (default: all under ``job.in_dir``) and report every one.

    ``workers`` defaults to the CPU count; 1 runs in this process (no pool to start).
    A failing file never stops the run.
    """
    check_dirs(job.in_dir, job.out_dir)
    files = find_files(job.in_dir) if files is None else files
    workers = workers or os.cpu_count() or 1
    began = time.monotonic()
    if workers == 1 or len(files) <= 1:
        outcomes = [_notify(deidentify_file(job, source), on_outcome) for source in files]
    else:
        outcomes = _in_pool(job, files, min(workers, len(files)), on_outcome)
    return Report(outcomes, time.monotonic() - began)


def _in_pool(
    job: Job, files: list[Path], workers: int, on_outcome: Callable[[Outcome], None] | None
) -> list[Outcome]:
    # spawn, not fork: the parent may hold threads (rich's refresh thread) and locks.
    context = multiprocessing.get_context("spawn")
    results: dict[Path, Outcome] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future[Outcome], Path] = {
            pool.submit(deidentify_file, job, source): source for source in files
        }
        try:
            for future in as_completed(futures):
                source = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died (killed, out of memory)
                    outcome = Outcome(source, Status.FAILED, reason=_reason("worker", exc))
                results[source] = _notify(outcome, on_outcome)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [results[source] for source in files]


def _notify(outcome: Outcome, on_outcome: Callable[[Outcome], None] | None) -> Outcome:
    if on_outcome is not None:
        on_outcome(outcome)
    return outcome
