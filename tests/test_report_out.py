"""``report --out DIR`` never deletes what it did not write (SPEC §9): it writes into an absent or empty folder or
one that holds an earlier report (its marker lists every file); anything else is refused with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.__main__ import main
from pipeline.sinks.report_files import REPORT_MARKER


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` and the bytes of each file (None for folders)."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    assert main(["run"]) == 0
    return tmp_path / "snapshots"


def test_report_into_the_snapshot_folder_is_refused_and_touches_nothing(
    snapshots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(snapshots)
    assert any(name.startswith("_runs/") for name in before) and ".lock" in before
    capsys.readouterr()
    assert main(["report", "--out", str(snapshots)]) == 2
    err = capsys.readouterr().err
    assert str(snapshots) in err and REPORT_MARKER in err
    assert listing(snapshots) == before
    assert [path.name for path in snapshots.parent.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize("kind", ["a-file", "a-folder-with-a-file", "a-symlink"])
def test_a_folder_that_is_not_a_report_is_refused(
    kind: str, snapshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    if kind == "a-file":
        out.write_text("mine")
    elif kind == "a-folder-with-a-file":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        (tmp_path / "target").mkdir()
        out.symlink_to(tmp_path / "target")
    before = listing(tmp_path / "out") if out.is_dir() else {}
    capsys.readouterr()
    assert main(["report", "--out", str(out)]) == 2
    assert str(out) in capsys.readouterr().err
    assert out.exists()
    if kind == "a-file":
        assert out.read_text() == "mine"
    else:
        assert listing(out) == before


def test_an_empty_folder_then_an_earlier_report_are_written(snapshots: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert main(["report", "--out", str(out)]) == 0
    marker = json.loads((out / REPORT_MARKER).read_text())
    assert "report.html" in marker["files"]
    assert set(marker["files"]) == {path.name for path in out.iterdir()} - {REPORT_MARKER}
    assert main(["report", "--out", str(out)]) == 0  # an earlier report is replaced
    assert (out / "report.html").is_file()


def test_an_earlier_report_with_a_file_it_did_not_write_is_refused(
    snapshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["report", "--out", str(out)]) == 0
    (out / "my-notes.md").write_text("keep me")
    capsys.readouterr()
    assert main(["report", "--out", str(out)]) == 2
    assert "my-notes.md" in capsys.readouterr().err
    assert (out / "my-notes.md").read_text() == "keep me"


def test_a_folder_beside_the_report_is_never_swept(snapshots: Path, tmp_path: Path) -> None:
    """The old report was retired to ``.NAME-old`` and that name deleted first, whatever it held."""
    out = tmp_path / "out"
    (tmp_path / ".out-old").mkdir()
    (tmp_path / ".out-old" / "keep.txt").write_text("mine")
    assert main(["report", "--out", str(out)]) == 0
    assert main(["report", "--out", str(out)]) == 0
    assert (tmp_path / ".out-old" / "keep.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".out")) == [".out-old"]
