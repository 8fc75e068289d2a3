"""The blob store contract.

A door streams bytes into a *staging* writer (a private temporary file, hashed as it is
written); the ingest pipeline inspects the staged file and then *commits* it under its
content-addressed key. Commit is durable before it returns (fsync of file and folder), so an
index row written after it never points at a missing or partial file.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class StagedBlob:
    path: Path  # local, private; readable by the pipeline until committed or discarded
    sha256: str
    size: int

    @property
    def key(self) -> str:
        """Content-addressed key: identical content is stored once.

        One level of 256 folders, created up front: creating folders on the ingest path
        would cost a journal commit each.
        """
        return f"{self.sha256[:2]}/{self.sha256}"


class StagingWriter:
    """Writes one blob to a temporary file while hashing it."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed in finish/abort
        self._hash = hashlib.sha256()
        self._size = 0
        self._fsync = fsync

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def finish(self) -> StagedBlob:
        self._file.flush()
        if self._fsync:
            import os

            os.fsync(self._file.fileno())
        self._file.close()
        return StagedBlob(self.path, self._hash.hexdigest(), self._size)

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class BlobStore(ABC):
    @abstractmethod
    def stage(self) -> StagingWriter: ...

    @abstractmethod
    def commit(self, staged: StagedBlob) -> str:
        """Make the staged blob durable under its key; returns the key. Idempotent."""

    @abstractmethod
    def discard(self, staged: StagedBlob) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A readable local file for the blob (pydicom reads from it)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(key) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def recover(self) -> int:
        """Remove staging leftovers of a crash; returns how many were removed."""
