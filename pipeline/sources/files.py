"""Input files that exist are regular files, checked before they are opened (SPEC §2.2: a folder, FIFO or device
where a file belongs is an error naming the path, never skipped and never a read that hangs)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

_KINDS: Final = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFileError(ValueError):
    """A path where an input file belongs holds something else; the message names the path and what it is."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: Path, what: str) -> NotRegularFileError:
    return NotRegularFileError(f"{path}: is {what}, not a regular file; replace it with the JSON file or remove it")


def is_present(path: Path) -> bool:
    """Whether an input file is at ``path``: False when nothing is there, True for a regular file (or a symlink to
    one); anything else (a folder, FIFO, device, dangling symlink) raises, so it is never taken for "absent"."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: a link to /dev/zero is a device
    except (FileNotFoundError, NotADirectoryError):
        if os.path.lexists(path):
            raise _not_regular(path, "a symlink to nothing") from None
        return False
    if not stat.S_ISREG(mode):
        raise _not_regular(path, _kind(mode))
    return True


@contextmanager
def _regular_file(path: Path) -> Iterator[io.BufferedReader]:
    """The regular file at ``path``, open for reading. Opened without blocking and checked again once open, so a
    FIFO swapped in after ``is_present`` raises instead of waiting for a writer."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(descriptor, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, _kind(mode))
        yield file


def regular_file_bytes(path: Path) -> bytes:
    """The bytes of the regular file at ``path`` (opened as ``_regular_file`` says)."""
    with _regular_file(path) as file:
        return file.read()


def regular_file_sha256(path: Path) -> str:
    """The sha256 hex digest of the regular file at ``path``, read in small pieces: the file is never held whole
    (reading 86 MB into one new buffer costs as much CPU as hashing it)."""
    with _regular_file(path) as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
