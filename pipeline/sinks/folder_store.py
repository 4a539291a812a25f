"""A snapshot store in a local folder: ``put`` writes a ``.tmp`` beside the file and renames it over."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pipeline.sinks.snapshot_store import StoreError, UnsafeKeyError, checked_key, checked_prefix


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

    def put_written(self, key: str, write: Callable[[str], None]) -> None:
        path = self._path(key)
        with self._tmp_beside(path) as tmp:
            write(str(tmp))
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

    def list_after(self, prefix: str, start_after: str) -> list[str]:
        return [key for key in self.list(prefix, recursive=False) if key > start_after]

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
