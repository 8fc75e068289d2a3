"""The ingest pipeline's de-identification step: the sending site's policy, before storage.

- ``identified``: the instance is stored as received.
- ``pseudonymized`` (default): the header is de-identified with the site's key and the
  originals are sealed into the identity vault (see ``records``) in the same transaction
  that indexes the instance, so the clinic and its PACS can get the real identity back.
- ``anonymized``: de-identified the same way, nothing kept: there is no way back.

Images at risk of burned-in identity (BurnedInAnnotation YES, US, SC, ...) are then handled
by the site's pixel policy: ``clean`` holds them until Clean Pixel Data has masked their text
(a job, see ``held``), ``hold`` keeps them for a person's review, ``pass`` stores them with
the header cleaned only (for sites whose devices are known not to burn in text).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import Engine, select

from connrad.deid import records
from connrad.deid.engine import Result, deidentify
from connrad.deid.keys import SiteKeys
from connrad.deid.profiles import ANONYMIZED_POLICY, PSEUDONYMIZED_POLICY, Policy
from connrad.dicom.iods import type_of_for
from connrad.dicom.parse import InstanceHeader, ParseError, read_header
from connrad.identity.models import Site
from connrad.storage import BlobStore, StagedBlob
from connrad.storage.base import StagingWriter

log = logging.getLogger(__name__)

IDENTIFIED, PSEUDONYMIZED, ANONYMIZED = "identified", "pseudonymized", "anonymized"
DEID_POLICIES = (IDENTIFIED, PSEUDONYMIZED, ANONYMIZED)
PIXEL_CLEAN, PIXEL_HOLD, PIXEL_PASS = "clean", "hold", "pass"
PIXEL_POLICIES = (PIXEL_CLEAN, PIXEL_HOLD, PIXEL_PASS)
_ENGINE_POLICIES: dict[str, Policy] = {
    PSEUDONYMIZED: PSEUDONYMIZED_POLICY,
    ANONYMIZED: ANONYMIZED_POLICY,
}
_sites = Site.__table__
_DEFER_BYTES = 1 << 20
POLICY_TTL_SECONDS = 1.0


class DeidentificationError(Exception):
    """The instance could not be de-identified; the message names no value."""


@dataclass(frozen=True)
class SitePolicy:
    deid: str
    pixel: str


@dataclass(frozen=True)
class Prepared:
    """A de-identified instance, staged, with what the index transaction must also write."""

    staged: StagedBlob
    header: InstanceHeader
    vault_rows: tuple[records.VaultRow, ...] = ()
    hold: str | None = None  # None: store; "cleaning" or "held": keep out of the archive
    warnings: tuple[str, ...] = field(default=())


class SiteDeidentifier:
    def __init__(self, engine: Engine, blobs: BlobStore, site_keys: SiteKeys) -> None:
        self.engine = engine
        self.blobs = blobs
        self.site_keys = site_keys
        self._policies: dict[int, tuple[float, SitePolicy]] = {}
        self._lock = threading.Lock()

    def policy(self, site_id: int) -> SitePolicy:
        """The site's policies, read at most once a second per process.

        A change made through this process's API applies to the next instance (``forget``);
        one made elsewhere (the CLI, another worker process) within a second. Reading per
        instance cost a database round trip on every C-STORE of a one-at-a-time modality.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._policies.get(site_id)
        if cached is not None and now - cached[0] < POLICY_TTL_SECONDS:
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_sites.c.deid_policy, _sites.c.pixel_policy).where(_sites.c.id == site_id)
            ).first()
        found = (
            SitePolicy(PSEUDONYMIZED, PIXEL_CLEAN)
            if row is None
            else SitePolicy(str(row.deid_policy), str(row.pixel_policy))
        )
        with self._lock:
            self._policies[site_id] = (now, found)
        return found

    def forget(self, site_id: int | None = None) -> None:
        """Drop cached policies (after this process changed one)."""
        with self._lock:
            if site_id is None:
                self._policies.clear()
            else:
                self._policies.pop(site_id, None)

    def prepare(self, staged: StagedBlob, site_id: int, policy: SitePolicy) -> Prepared:
        """De-identify a staged instance into a new staged file (the caller discards both)."""
        engine_policy = _ENGINE_POLICIES.get(policy.deid)
        if engine_policy is None:
            raise DeidentificationError(f"unknown de-identification policy {policy.deid!r}")
        try:
            # Large values are read when the walk reaches them, so a 500 MB instance is held
            # in memory once (its pixel data), not twice.
            ds = pydicom.dcmread(staged.path, force=True, defer_size=_DEFER_BYTES)
        except Exception as exc:  # pydicom raises many types for malformed input
            raise DeidentificationError(f"unreadable DICOM data ({type(exc).__name__})") from exc
        version, key = self.site_keys.current(site_id)
        sop_class = str(ds.get("SOPClassUID", ""))
        try:
            result = deidentify(ds, engine_policy, key, type_of=type_of_for(sop_class))
        except Exception as exc:
            log.warning("de-identification failed: %s", type(exc).__name__)
            raise DeidentificationError(
                f"the instance could not be de-identified ({type(exc).__name__})"
            ) from exc
        out_staged = self._stage(result.dataset)
        try:
            header = read_header(out_staged.path)
        except ParseError as exc:
            self.blobs.discard(out_staged)
            raise DeidentificationError(f"de-identified output unreadable: {exc}") from exc
        rows = (
            records.build_rows(result, site_id, version, key)
            if policy.deid == PSEUDONYMIZED
            else ()
        )
        return Prepared(out_staged, header, rows, _hold(result, policy), tuple(result.warnings))

    def _stage(self, ds: Dataset) -> StagedBlob:
        """Encode straight into a staging file (hashed as written): no copy in memory."""
        writer = self.blobs.stage()
        try:
            sink = _Sink(writer)
            ds.save_as(sink, enforce_file_format=True)
            sink.flush()
            return writer.finish()
        except OSError:
            writer.abort()
            raise
        except Exception as exc:
            writer.abort()
            raise DeidentificationError(
                f"de-identified output could not be encoded ({type(exc).__name__})"
            ) from exc
        except BaseException:
            writer.abort()
            raise


class _Sink:
    """The file-like face pydicom writes to: appends to a staging writer.

    pydicom writes each tag, length and value separately (thousands of small writes per
    instance); they are gathered here and handed on in blocks, since every write to the
    staging writer also feeds the hash.
    """

    _BLOCK = 1 << 20

    def __init__(self, writer: StagingWriter) -> None:
        self._writer = writer
        self._pending = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        if len(self._pending) >= self._BLOCK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._pending:
            self._writer.write(bytes(self._pending))
            self._pending.clear()

    def tell(self) -> int:
        return self._writer.size + len(self._pending)

    def seek(self, offset: int, whence: int = 0) -> int:
        # pydicom asks for seek() but writes front to back; a real seek would be a bug.
        if (offset, whence) not in ((self.tell(), 0), (0, 1)):
            raise io.UnsupportedOperation("the staging sink is append-only")
        return self.tell()


def _hold(result: Result, policy: SitePolicy) -> str | None:
    if not result.pixel_risk or policy.pixel == PIXEL_PASS:
        return None
    return "cleaning" if policy.pixel == PIXEL_CLEAN else "held"
