"""Input paths that exist but are not regular files: real folders, FIFOs, devices and symlinks (SPEC §2.2)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.__main__ import main
from pipeline import load_records
from pipeline.sources.files import NotRegularFileError
from pipeline.sources.horde import load_horde
from tests.conftest import SAMPLE_DATA


def _folder(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # nobody ever writes to it: a read would wait forever


def _link_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


NOT_FILES = {
    "folder": (_folder, "is a folder"),
    "fifo": (_fifo, "is a FIFO"),
    "link to /dev/zero": (_link_to("/dev/zero"), "is a character device"),
    "link to /dev/null": (_link_to("/dev/null"), "is a character device"),
    "dangling link": (_link_to("/nonexistent/stable_diffusion.json"), "is a symlink to nothing"),
}


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE_DATA / "model_reference", tmp_path / "reference"))


@pytest.fixture
def horde(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE_DATA / "horde", tmp_path / "horde"))


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    path.unlink(missing_ok=True)
    make(path)


@pytest.mark.parametrize("kind", NOT_FILES)
@pytest.mark.parametrize("file_name", ["controlnet.json", "stable_diffusion.json"])  # optional, required
def test_a_category_path_that_is_not_a_regular_file_is_an_error_naming_it(
    reference: Path, kind: str, file_name: str
) -> None:
    make, what = NOT_FILES[kind]
    _replace(reference / file_name, make)
    with pytest.raises(NotRegularFileError) as caught:
        load_records(str(reference))
    assert str(reference / file_name) in str(caught.value) and what in str(caught.value)


@pytest.mark.parametrize("kind", NOT_FILES)
@pytest.mark.parametrize("file_name", ["workers_text.json", "status_image.json", "stats_text.json"])
def test_a_horde_path_that_is_not_a_regular_file_is_an_error_naming_it(horde: Path, kind: str, file_name: str) -> None:
    make, what = NOT_FILES[kind]
    _replace(horde / file_name, make)
    # for workers: never a silent fall-back to the status counts
    with pytest.raises(NotRegularFileError) as caught:
        load_horde(str(horde))
    assert str(horde / file_name) in str(caught.value) and what in str(caught.value)


def test_an_absent_workers_file_still_falls_back_to_status_counts(horde: Path) -> None:
    (horde / "workers_text.json").unlink()
    frames, _ = load_horde(str(horde))
    assert frames["text"].workers is None and frames["image"].workers is not None


def test_an_absent_optional_category_is_still_just_absent(reference: Path) -> None:
    (reference / "controlnet.json").unlink()
    assert "controlnet" not in load_records(str(reference))


def test_a_run_with_a_fifo_for_a_category_fails_naming_it_and_commits_nothing(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--reference", str(reference)]) == 0
    _replace(reference / "esrgan.json", _fifo)
    assert main(["run", "--reference", str(reference)]) == 1
    assert f"{reference / 'esrgan.json'}: is a FIFO" in capsys.readouterr().err
    assert len(list((tmp_path / "snapshots" / "_runs").glob("*.json"))) == 1  # the good run stays the latest
