"""Readers of the snapshot store facing damage (SPEC §12): an unreadable manifest is reported by path and ignored
by readers and by the next run; manifest paths never lead a reader (or the sweep) outside the store; `query` and
`report` fail with a clear message and exit 1, never a traceback, on a committed file that is gone or corrupt."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.sinks.parquet_snapshot import SnapshotReadError, history, latest_table, manifests
from pipeline.sinks.uncommitted import sweep_uncommitted

BAD_MANIFESTS: dict[str, Callable[[Path], object]] = {
    "empty": lambda path: path.write_bytes(b""),
    "truncated": lambda path: path.write_text('{"run_id": "20260101T000000Z-00000000", "tab'),
    "not-utf8": lambda path: path.write_bytes(b'{"run_id": "\xe9"}'),
    "deeply-nested": lambda path: path.write_text("[" * 100_000 + "]" * 100_000),
    "a-list": lambda path: path.write_text("[1, 2]"),
    "wrong-run-id": lambda path: path.write_text(json.dumps({"run_id": "other", "run_at": "2026-01-01", "tables": {}})),
    "bad-tables": lambda path: path.write_text(
        json.dumps({"run_id": path.stem, "run_at": "2026-01-01T00:00:00+00:00", "tables": [1]})
    ),
    "a-folder": lambda path: path.mkdir(),
    "a-fifo": lambda path: os.mkfifo(path),
    "a-symlink-to-a-device": lambda path: path.symlink_to("/dev/zero"),
}


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.parametrize("damage", sorted(BAD_MANIFESTS))
def test_an_unreadable_manifest_is_named_and_ignored(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 0
    root = tmp_path / "snapshots"
    (good,) = manifests(root)
    bad = root / "_runs" / "20990101T000000Z-0badf11e.json"  # newer than the good run: it would be "the latest"
    BAD_MANIFESTS[damage](bad)
    capsys.readouterr()

    assert [manifest["run_id"] for manifest in manifests(root)] == [good["run_id"]]
    assert json.dumps(str(bad)) in capsys.readouterr().err  # the warning names the file

    # readers and the next run go on; the run names the file in its log
    assert main(["query", "--category", "image_generation", "--limit", "1"]) == 0
    assert main(["run"]) == 0
    output = printed(capsys)
    assert "snapshot manifest ignored" in output and bad.name in output
    assert len(manifests(root)) == 2
    assert os.path.lexists(bad), "the damaged file is left for the operator to look at"


def test_the_files_of_a_run_with_an_unreadable_manifest_are_not_swept(tmp_path: Path) -> None:
    assert main(["run"]) == 0
    root = tmp_path / "snapshots"
    (first,) = manifests(root)
    files = sorted(root.glob(f"*/category=*/run_date=*/{first['run_id']}.parquet"))
    assert files
    (root / "_runs" / f"{first['run_id']}.json").write_text("{ half a manifest")
    assert main(["run"]) == 0
    assert all(path.is_file() for path in files), "a repaired manifest can bring the run back"


def hostile_manifest(root: Path, path: str) -> Path:
    """A committed-looking newer manifest whose deletion-risk entry for image_generation names ``path``."""
    (good,) = manifests(root)
    run_id = "20990101T000000Z-0e711e55"
    tables = {"deletion_risk": {"image_generation": {"path": path, "rows": 1}}}
    manifest = {**good, "run_id": run_id, "run_at": "2099-01-01T00:00:00+00:00", "tables": tables}
    target = root / "_runs" / f"{run_id}.json"
    target.write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("kind", ["absolute", "dot-dot", "symlink-out"])
def test_a_manifest_never_makes_a_reader_open_a_file_outside_the_store(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 0
    root = tmp_path / "snapshots"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    risk = latest_table(root, "deletion_risk", "image_generation")
    assert risk is not None
    risk.head(1).with_columns(name=pl.lit("FROM OUTSIDE")).write_parquet(outside / "x.parquet")
    if kind == "absolute":
        path = str(outside / "x.parquet")
    elif kind == "dot-dot":
        path = "../elsewhere/x.parquet"
    else:
        (root / "deletion_risk" / "category=image_generation" / "run_date=2099-01-01").symlink_to(outside)
        path = "deletion_risk/category=image_generation/run_date=2099-01-01/x.parquet"
    manifest = hostile_manifest(root, path)
    capsys.readouterr()

    latest = latest_table(root, "deletion_risk", "image_generation")
    followed = history(root, "deletion_risk", "image_generation")
    assert latest is not None and followed is not None
    assert "FROM OUTSIDE" not in latest["name"].to_list()
    assert "FROM OUTSIDE" not in followed.collect()["name"].to_list()
    warnings = capsys.readouterr().err
    assert "path leads outside the store" in warnings and json.dumps(str(manifest)) in warnings


def test_the_sweep_does_not_delete_through_a_symlink_out_of_the_store(tmp_path: Path) -> None:
    assert main(["run"]) == 0
    root = tmp_path / "snapshots"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.parquet").write_bytes(b"not ours")
    (root / "records" / "category=linked").mkdir(parents=True)
    (root / "records" / "category=linked" / "run_date=2026-01-01").symlink_to(outside)
    sweep_uncommitted(root)
    assert (outside / "data.parquet").read_bytes() == b"not ours"


def latest_risk_file(root: Path) -> Path:
    entry = manifests(root)[-1]["tables"]["deletion_risk"]["image_generation"]
    return root / entry["path"]


@pytest.mark.parametrize("damage", ["truncated", "missing", "not-parquet", "a-folder"])
@pytest.mark.parametrize("command", ["query", "report"])
def test_query_and_report_fail_cleanly_on_a_damaged_committed_file(
    damage: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 0
    path = latest_risk_file(tmp_path / "snapshots")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "missing":
        path.unlink()
    elif damage == "not-parquet":
        path.write_text("hello")
    else:
        path.unlink()
        path.mkdir()
    capsys.readouterr()
    argv = ["query", "--category", "image_generation"] if command == "query" else ["report"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(path) in err
    assert "Traceback" not in err


def test_history_names_a_missing_committed_file(tmp_path: Path) -> None:
    assert main(["run"]) == 0
    path = latest_risk_file(tmp_path / "snapshots")
    path.unlink()
    with pytest.raises(SnapshotReadError, match=str(path)):
        history(tmp_path / "snapshots", "deletion_risk")
