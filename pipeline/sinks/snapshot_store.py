"""The snapshot store's interface: one small protocol, its errors, and the key rule (SPEC §7.2, §9, §12).

Keys are relative POSIX paths (``records/category=x/.../id.parquet``) and are checked here, once: a key never leads
out of the store (no absolute path, no ``..``; a folder store also refuses a symlink that resolves outside its root),
whoever wrote it (SPEC §12: a manifest never makes a reader open a path outside the store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Protocol


class UnsafeKeyError(ValueError):
    """A key that would lead out of the store (absolute, ``..``, empty parts, or a symlink outside the root)."""


class StoreError(OSError):
    """The store could not be reached or refused a request; the message names the location, never a secret."""


def checked_key(key: str) -> str:
    """``key`` when it is a clean relative path inside the store; UnsafeKeyError otherwise."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in parts):
        raise UnsafeKeyError(f"snapshot key {key!r} is not a relative path inside the store (e.g. 'records/x.parquet')")
    if key != "/".join(parts):  # "a//b", "a/./b", trailing "/": not a key this job writes
        raise UnsafeKeyError(f"snapshot key {key!r} is not in normal form")
    return key


def checked_prefix(prefix: str) -> str:
    """``prefix`` when it is ``""`` (the whole store) or a clean key; UnsafeKeyError otherwise."""
    return prefix if prefix == "" else checked_key(prefix)


class SnapshotStore(Protocol):
    """The operations a snapshot needs; ``put`` is whole-or-nothing: a reader never sees half an object."""

    #: Where the store is, as the user wrote it (safe to print: no credentials in it).
    location: str
    #: Options Polars needs to scan ``scan_target`` keys (None for a folder).
    storage_options: dict[str, str] | None

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, replacing any earlier value, atomically."""
        ...

    def put_written(self, key: str, write: Callable[[str], None]) -> None:
        """Store at ``key`` what ``write(path)`` writes into a local file, atomically, as ``put`` does."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Store ``data`` at ``key`` only if nothing is there: its version, or None when something was."""
        ...

    def replace_if_unchanged(self, key: str, data: bytes, version: str) -> str | None:
        """Replace ``key`` only if it still holds the value of ``version``: the new version, or None."""
        ...

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The value at ``key``; FileNotFoundError when absent, StoreError when larger than ``max_bytes``."""
        ...

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The value at ``key`` and a version token for ``replace_if_unchanged``; FileNotFoundError when absent."""
        ...

    def list_after(self, prefix: str, start_after: str) -> list[str]:
        """The direct entries of the folder ``prefix`` whose keys sort after ``start_after`` (a key; S3's
        ``StartAfter``), sorted: only the newer names of a folder of names that sort by time."""
        ...

    def list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        """The keys under the folder ``prefix`` (all of them, or only its direct entries), sorted."""
        ...

    def versions(self, prefix: str) -> dict[str, str]:
        """The direct entries of the folder ``prefix`` (as ``list(prefix, recursive=False)``), each with a token
        that changes whenever the entry is replaced (the ETag of an object; identity, time and size of a file)."""
        ...

    def version(self, key: str) -> str | None:
        """The token ``versions`` gives for ``key``, or None when it is absent."""
        ...

    def remove_empty(self, prefix: str) -> None:
        """Remove the folder ``prefix`` if nothing is left in it (an object store has no folders: nothing)."""
        ...

    def exists(self, key: str) -> bool:
        """True when ``key`` holds a value (a regular file, for a folder)."""
        ...

    def contains(self, key: str) -> bool:
        """True when ``key`` is a clean key that stays inside the store (no symlink out, for a folder)."""
        ...

    def where(self, key: str) -> str:
        """``key`` as a user finds it (a file path or an ``s3://`` URL) for messages; never checked, never opened."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is already gone."""
        ...

    def delete_all(self, keys: Sequence[str]) -> None:
        """``delete`` each of ``keys`` (a bucket: up to 1,000 in one request)."""
        ...

    def scan_target(self, key: str) -> str:
        """The path or URL Polars and DuckDB read ``key`` from."""
        ...
