"""Blob stores: where instance files live. The index only ever points at committed blobs."""

from connrad.storage.base import BlobStore, StagedBlob, StagingWriter
from connrad.storage.factory import open_blob_store

__all__ = ["BlobStore", "StagedBlob", "StagingWriter", "open_blob_store"]
