"""Where an input lives: a folder or an http(s) base URL (SPEC §2, §8), read through one protocol.

The one place the two are told apart: the sources name the files they want (``InputFile``) and read them from
whichever ``InputLocation`` the setting gives, so both give the same bytes and therefore the same frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline.sources.files import is_present, regular_file_bytes
from pipeline.sources.http import HttpFetcher

_URL_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class InputFile:
    """One input: its file name in a folder, and its path (and query) under a base URL."""

    file_name: str
    url_path: str
    params: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: A required file that is absent fails the load; an optional one is skipped.
    required: bool = True


class InputLocation(Protocol):
    """A folder or a base URL holding input files."""

    @property
    def remote(self) -> bool:
        """True for a base URL (a live API, which serves every endpoint it has), False for a folder (a snapshot,
        which may lack an optional file)."""
        ...

    def exists(self) -> bool:
        """Whether the location itself is there: a folder that exists; a URL until a read says otherwise."""
        ...

    def label(self, file: InputFile) -> str:
        """How messages and logs name ``file``: its path or its URL."""
        ...

    def present(self, files: Sequence[InputFile]) -> list[InputFile]:
        """The files of ``files`` that are there, found before any is read."""
        ...

    def read(self, file: InputFile) -> bytes | None:
        """The bytes of a present file; None when an optional one turns out absent."""
        ...

    def path(self, file: InputFile) -> Path | None:
        """Where a present file lies on this machine, to be read or hashed when wanted (a folder); None for a URL,
        which says whether an optional file is there only when it is fetched (``read``)."""
        ...


class FolderLocation:
    """Input files in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def remote(self) -> bool:
        return False

    def exists(self) -> bool:
        return self.folder.is_dir()

    def label(self, file: InputFile) -> str:
        return str(self.folder / file.file_name)

    def present(self, files: Sequence[InputFile]) -> list[InputFile]:
        # Every path is checked before any file is read: a folder, FIFO or device in a file's place is an error
        # naming it (never "absent", which would retire a category's keys), and no read waits on a FIFO.
        return [file for file in files if is_present(self.folder / file.file_name)]

    def read(self, file: InputFile) -> bytes | None:
        return regular_file_bytes(self.folder / file.file_name)

    def path(self, file: InputFile) -> Path | None:
        return self.folder / file.file_name


class UrlLocation:
    """Input files under an http(s) base URL, fetched with one pooled client (SPEC §2.2)."""

    def __init__(self, base: str, fetcher: HttpFetcher) -> None:
        self.base = base.rstrip("/")
        self.fetcher = fetcher

    @property
    def remote(self) -> bool:
        return True

    def exists(self) -> bool:
        return True  # a URL says whether it is there only when asked: ``read``

    def url(self, file: InputFile) -> str:
        return f"{self.base}/{file.url_path}"

    def label(self, file: InputFile) -> str:
        # the Horde endpoints serve both model types: the label says which one a payload was for
        return f"{self.url(file)}?type={file.params.get('type', '')}" if file.params else self.url(file)

    def present(self, files: Sequence[InputFile]) -> list[InputFile]:
        return list(files)  # a URL says whether it is there only when asked: ``read``

    def read(self, file: InputFile) -> bytes | None:
        # an absent required file is the fetcher's error (its URL and "HTTP 404"); an optional one is None
        return self.fetcher.get_bytes(self.url(file), dict(file.params) or None, missing_ok=not file.required)

    def path(self, file: InputFile) -> Path | None:
        return None


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) base URL rather than a folder."""
    return source.startswith(_URL_SCHEMES)


def input_location(source: str, fetcher: HttpFetcher | None) -> InputLocation:
    """The location ``source`` (a folder or an http(s) base URL) names."""
    if not is_url(source):
        return FolderLocation(Path(source))
    if fetcher is None:
        raise ValueError(f"a URL source needs an HttpFetcher: {source}")
    return UrlLocation(source, fetcher)


def present_files(
    location: InputLocation, files: Sequence[InputFile], missing: Callable[[InputFile, str], Exception]
) -> list[InputFile]:
    """The files of ``files`` that are there, in order; an absent required file raises ``missing(file, label)``
    before any file is read."""
    there = location.present(files)
    for file in files:
        if file.required and file not in there:
            raise missing(file, location.label(file))
    return there


def input_files(
    location: InputLocation, files: Sequence[InputFile], missing: Callable[[InputFile, str], Exception]
) -> Iterator[tuple[InputFile, str, bytes | None]]:
    """``(file, label, bytes)`` of each file of ``files`` that is there, in order, read one at a time so that
    only one file's bytes are in memory (bytes None: an optional file that turned out absent). An absent required
    file raises ``missing(file, label)`` before any file is read."""
    for file in present_files(location, files, missing):
        yield file, location.label(file), location.read(file)  # no local keeps the bytes: the reader owns them
