"""Filesystem blob store: staging under ``tmp/``, blobs under ``aa/bb/<sha256>``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO

from connrad.storage.base import BlobStore, StagedBlob, StagingWriter


class FileBlobStore(BlobStore):
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.staging_dir = root / "tmp"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self._create_fanout()

    def stage(self) -> StagingWriter:
        return StagingWriter(self.staging_dir / f"{uuid.uuid4().hex}.part", self.fsync)

    def commit(self, staged: StagedBlob) -> str:
        target = self.root / staged.key
        if target.exists():
            # Same content already committed: nothing new to store.
            staged.path.unlink(missing_ok=True)
            return staged.key
        os.replace(staged.path, target)
        if self.fsync:
            _fsync_dir(target.parent)
        return staged.key

    def discard(self, staged: StagedBlob) -> None:
        staged.path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def local_path(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str) -> BinaryIO:
        return open(self.root / key, "rb")

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def recover(self) -> int:
        removed = 0
        for leftover in self.staging_dir.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def _create_fanout(self) -> None:
        created = False
        for n in range(256):
            folder = self.root / f"{n:02x}"
            if not folder.is_dir():
                folder.mkdir(exist_ok=True)
                created = True
        if created and self.fsync:
            _fsync_dir(self.root)
            _fsync_dir(self.root.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
