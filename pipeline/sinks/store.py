"""Where snapshots live: a local folder or an S3-compatible bucket, behind one small interface (SPEC §7.2, §9).

The snapshot writer, the manifest readers, the sweep, the maintenance and the run lock use only ``SnapshotStore``;
none of them knows whether a key is a file or an object. This module is the seam they import: ``open_store``
picks the store for a location. The interface and the key rule are in ``snapshot_store``, the two stores in
``folder_store`` and ``object_store`` (which loads ``obstore`` only when a bucket is used).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pipeline.sinks.folder_store import FolderStore
from pipeline.sinks.object_store import ObjectStore
from pipeline.sinks.snapshot_store import SnapshotStore, StoreError, UnsafeKeyError, checked_key, checked_prefix

__all__ = [
    "OBJECT_STORE_SCHEMES",
    "FolderStore",
    "ObjectStore",
    "SnapshotStore",
    "StoreError",
    "UnsafeKeyError",
    "checked_key",
    "checked_prefix",
    "is_object_store_url",
    "open_store",
]

#: URL schemes that select the object store (AWS S3, Cloudflare R2, MinIO: all speak the S3 API).
OBJECT_STORE_SCHEMES: Final = ("s3://",)


def is_object_store_url(location: str) -> bool:
    """True when ``location`` names a bucket (``s3://bucket/prefix``) rather than a folder."""
    return location.startswith(OBJECT_STORE_SCHEMES)


def open_store(location: str | Path | SnapshotStore) -> SnapshotStore:
    """The store at ``location``: ``s3://bucket/prefix`` for an object store, anything else a local folder."""
    if not isinstance(location, str | Path):
        return location
    if isinstance(location, str) and is_object_store_url(location):
        return ObjectStore(location)
    return FolderStore(Path(location))
