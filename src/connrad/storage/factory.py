"""Opens the blob store named by a storage URL."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from connrad.storage.base import BlobStore
from connrad.storage.filesystem import FileBlobStore


class UnsupportedStorageURL(ValueError):
    pass


def open_blob_store(url: str, *, fsync: bool = True) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from pathlib import Path

        return FileBlobStore(Path(unquote(parsed.path)), fsync=fsync)
    raise UnsupportedStorageURL(f"unsupported storage URL scheme: {parsed.scheme!r}")
