"""Where snapshots live: a local folder or an S3-compatible bucket, behind one small interface (SPEC §7.2, §9).

The snapshot writer, the manifest readers, the sweep and the run lock use only ``SnapshotStore``; none of them
knows whether a key is a file or an object. Keys are relative POSIX paths (``records/category=x/.../id.parquet``)
and are checked here, once: a key never leads out of the store (no absolute path, no ``..``, and for folders no
symlink that resolves outside the root), whoever wrote it (SPEC §12: a manifest never makes a reader open a path
outside the store).

Object stores go through ``obstore`` (the Rust ``object_store`` crate that Polars itself uses for cloud I/O), and
Polars scans the same objects natively. Endpoint and credentials come from the standard variables
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (and the rest of the
``AWS_*`` family), read by those libraries the way every AWS tool reads them; this module never logs or formats
them, and its error messages name only the ``s3://bucket/prefix`` location.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol

#: URL schemes that select the object store (AWS S3, Cloudflare R2, MinIO: all speak the S3 API).
OBJECT_STORE_SCHEMES: Final = ("s3://",)


class UnsafeKeyError(ValueError):
    """A key that would lead out of the store (absolute, ``..``, empty parts, or a symlink outside the root)."""


class KeyExistsError(FileExistsError):
    """A conditional put found the key already there (or changed since it was read)."""


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


class FolderStore:
    """A local folder; ``put`` writes a ``.tmp`` beside the file and renames it over (atomic on one file system)."""

    storage_options: dict[str, str] | None = None

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        #: folder -> whether it resolves inside the root: thousands of manifest entries share a few folders
        self._inside: dict[Path, bool] = {}

    def _path(self, key: str) -> Path:
        path = self.root / checked_key(key)
        # A symlinked folder or file inside the store must not lead a reader (or the sweep) outside it.
        if path.exists() or path.is_symlink():
            root = self.root.resolve()
            if not path.resolve().is_relative_to(root):
                raise UnsafeKeyError(f"snapshot key {key!r} leads outside {self.root} through a symlink")
        return path

    @contextmanager
    def _tmp_beside(self, path: Path) -> Iterator[Path]:
        """A temporary file next to ``path``, removed on any failure (a full disk, a signal)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._tmp_beside(path) as tmp:
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        path = self._path(key)
        with self._tmp_beside(path) as tmp:
            tmp.write_bytes(data)
            try:
                os.link(tmp, path)  # atomic and exclusive: fails when the name exists; readers see it whole
            except FileExistsError:
                return None
        return _file_version(path)

    def replace_if_unchanged(self, key: str, data: bytes, version: str) -> str | None:
        # Folders are locked with flock, not with lock objects; this keeps the protocol whole for tools and
        # tests: compare, then rename (not atomic between processes, unlike the object store's If-Match).
        path = self._path(key)
        try:
            if _file_version(path) != version:
                return None
        except FileNotFoundError:
            return None
        self.put(key, data)
        return _file_version(path)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        path = self._path(key)
        if path.exists() and not path.is_file():  # a folder, FIFO or device: opening a FIFO would block
            raise StoreError(f"{path} is not a regular file")
        if max_bytes is not None and path.is_file() and path.stat().st_size > max_bytes:
            raise StoreError(f"{path} is larger than {max_bytes} bytes")
        return path.read_bytes()

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        version = _file_version(path)
        return path.read_bytes(), version

    def list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        folder = self.root / checked_prefix(prefix) if prefix else self.root
        if not folder.is_dir() or folder.is_symlink():
            return []
        if not recursive:  # every entry, whatever its kind: a folder named *.json is reported, not skipped
            return sorted(f"{prefix}/{entry.name}" if prefix else entry.name for entry in os.scandir(folder))
        keys = []
        # followlinks=False: a symlinked folder is never walked into, so nothing outside the root is listed.
        for parent, _, files in os.walk(folder, followlinks=False):
            relative = Path(parent).relative_to(self.root).as_posix()
            keys += [f"{relative}/{name}" for name in files]
        return sorted(keys)

    def versions(self, prefix: str) -> dict[str, str]:
        folder = self.root / checked_prefix(prefix) if prefix else self.root
        if not folder.is_dir() or folder.is_symlink():
            return {}
        found = {}
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    stat = entry.stat()
                    version = f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
                except OSError:  # a dangling symlink: listed (it is an entry), never current
                    version = ""
                found[f"{prefix}/{entry.name}" if prefix else entry.name] = version
        return dict(sorted(found.items()))

    def version(self, key: str) -> str | None:
        try:
            return _file_version(self._path(key))
        except FileNotFoundError:
            return None

    def remove_empty(self, prefix: str) -> None:
        folder = self.root / checked_key(prefix)
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()

    def delete(self, key: str) -> None:
        path = self.root / checked_key(key)
        if path.is_symlink() or path.is_file():  # a symlink is removed itself, never what it points to
            path.unlink(missing_ok=True)

    def delete_all(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def scan_target(self, key: str) -> str:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def contains(self, key: str) -> bool:
        try:
            path = self.root / checked_key(key)
        except UnsafeKeyError:
            return False
        if path.parent not in self._inside:
            self._inside[path.parent] = path.parent.resolve().is_relative_to(self.root.resolve())
        return self._inside[path.parent] and (
            not path.is_symlink() or path.resolve().is_relative_to(self.root.resolve())
        )

    def where(self, key: str) -> str:
        return str(self.root / key)


def _file_version(path: Path) -> str:
    """A file's identity and age: changes whenever the file is replaced."""
    stat = path.stat()
    return f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"


def _object_store_error(location: str, error: Exception) -> StoreError:
    """A StoreError naming the location and the failure's kind; the library's text is kept only when it
    carries no credential (it names the request URL, never the secret key, but be explicit about it)."""
    text = str(error)
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if secret and secret in text:
        text = text.replace(secret, "***")
    return StoreError(f"object store {location}: {type(error).__name__}: {text.splitlines()[0] if text else ''}")


class ObjectStore:
    """An S3-compatible bucket (AWS S3, Cloudflare R2, MinIO) under ``s3://bucket/prefix``.

    Objects are put whole, so there is no ``.tmp`` step: an object is either absent or complete. Conditional
    writes (``If-None-Match: *`` and ``If-Match: <etag>``) carry the lock object (``snapshot_lock``).
    """

    def __init__(self, location: str) -> None:
        # imported here, as in every method below: a folder store (the default) never pays for loading obstore
        from obstore.store import S3Store

        bucket_and_prefix = location.removeprefix("s3://").strip("/")
        bucket, _, prefix = bucket_and_prefix.partition("/")
        if not bucket:
            raise ValueError(f"SNAPSHOT_DIR {location!r} names no bucket; expected s3://bucket/prefix")
        self.location = f"s3://{bucket_and_prefix}"
        self.bucket = bucket
        self.prefix = prefix
        # allow_http: a plain-http endpoint (MinIO or a test server on 127.0.0.1) is the user's explicit choice in
        # AWS_ENDPOINT_URL; the default AWS endpoint is https either way.
        self._store = S3Store(bucket, prefix=prefix or None, client_options={"allow_http": True})
        self.storage_options: dict[str, str] | None = _polars_storage_options()

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{checked_key(key)}"

    def put(self, key: str, data: bytes) -> None:
        import obstore

        key = checked_key(key)
        try:
            obstore.put(self._store, key, data)
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        key = checked_key(key)
        try:  # If-None-Match: *
            result = obstore.put(self._store, key, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return None
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return str(result["e_tag"])

    def replace_if_unchanged(self, key: str, data: bytes, version: str) -> str | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, NotFoundError, PreconditionError

        key = checked_key(key)
        try:  # If-Match: <etag>
            result = obstore.put(self._store, key, data, mode={"e_tag": version})
        except (AlreadyExistsError, PreconditionError, NotFoundError, FileNotFoundError):
            return None
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return str(result["e_tag"])

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        data, _ = self._get(key, max_bytes)
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data, version = self._get(key, None)
        return data, version

    def _get(self, key: str, max_bytes: int | None) -> tuple[bytes, str]:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            result = obstore.get(self._store, key)
            meta: Any = result.meta
            if max_bytes is not None and meta["size"] > max_bytes:
                raise StoreError(f"{self._url(key)} is larger than {max_bytes} bytes")
            return bytes(result.bytes()), str(meta["e_tag"])
        except (NotFoundError, FileNotFoundError):
            raise FileNotFoundError(f"{self._url(key)} does not exist") from None
        except StoreError:
            raise
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        import obstore

        prefix = checked_prefix(prefix)
        try:
            if recursive:
                keys = [str(meta["path"]) for batch in obstore.list(self._store, prefix=prefix) for meta in batch]
            else:
                listing = obstore.list_with_delimiter(self._store, prefix=prefix or None)
                keys = [str(meta["path"]) for meta in listing["objects"]]
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return sorted(keys)

    def versions(self, prefix: str) -> dict[str, str]:
        import obstore

        prefix = checked_prefix(prefix)
        try:
            listing = obstore.list_with_delimiter(self._store, prefix=prefix or None)
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return {str(meta["path"]): str(meta["e_tag"]) for meta in sorted(listing["objects"], key=_path_of)}

    def version(self, key: str) -> str | None:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            meta: Any = obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return None
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return str(meta["e_tag"])

    def remove_empty(self, prefix: str) -> None:
        checked_key(prefix)  # objects only: a "folder" is gone with its last object

    def delete(self, key: str) -> None:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            obstore.delete(self._store, key)
        except (NotFoundError, FileNotFoundError):
            pass
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def delete_all(self, keys: Sequence[str]) -> None:
        import obstore

        if not keys:
            return
        try:  # S3 DeleteObjects, 1,000 keys a request; keys already gone are no error
            obstore.delete(self._store, [checked_key(key) for key in keys])
        except Exception as error:
            raise _object_store_error(self.location, error) from None

    def scan_target(self, key: str) -> str:
        return self._url(key)

    def exists(self, key: str) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        key = checked_key(key)
        try:
            obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        except Exception as error:
            raise _object_store_error(self.location, error) from None
        return True

    def contains(self, key: str) -> bool:
        try:
            checked_key(key)
        except UnsafeKeyError:
            return False
        return True

    def where(self, key: str) -> str:
        return f"{self.location}/{key}"


def _path_of(meta: Any) -> str:
    return str(meta["path"])


def _polars_storage_options() -> dict[str, str]:
    """Options for Polars' own S3 reader: it reads the ``AWS_*`` credentials itself; it only needs telling that a
    plain-http endpoint is allowed (the same choice as the writer's)."""
    return {"aws_allow_http": "true"}
