from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.contracts.settings import load_settings
from pipeline.shell.batch import run_once
from pipeline.sinks.parquet_snapshot import TABLES, SnapshotWriter, history, latest_table, manifests

# Written out from SPEC §7.2 on purpose (not imported): the test checks TABLES against the spec.
EXPECTED_TABLES = {
    "records",
    "names",
    "families",
    "horde_status",
    "horde_usage",
    "merged",
    "baselines",
    "buckets",
    "tags",
    "styles",
    "hosts",
    "deletion_risk",
    "unmatched",
    "audit",
    "model_state",
    "changes",
    "problems",  # not in SPEC §7.2 yet: the input problems, which incremental runs read back (SPEC §9)
}


def test_a_run_writes_every_table_in_the_hive_layout(tmp_path: Path) -> None:
    report = run_once(load_settings())
    root = tmp_path / "snapshots"
    (manifest,) = manifests(root)
    assert manifest["run_id"] == report.run_id
    assert set(manifest["tables"]) == EXPECTED_TABLES == set(TABLES)
    run_date = manifest["run_at"][:10]
    for table, categories in manifest["tables"].items():
        for category, entry in categories.items():
            expected = f"{table}/category={category}/run_date={run_date}/{report.run_id}.parquet"
            assert entry["path"] == expected
            path = root / expected
            frame = pl.read_parquet(path)
            assert frame.height == entry["rows"]
            assert frame.schema["run_at"] == pl.Datetime("us", "UTC")
            if frame.height:
                assert frame["run_id"].unique().to_list() == [report.run_id]
                codecs = duckdb.sql(f"select distinct compression from parquet_metadata('{path}')").fetchall()
                assert codecs == [("ZSTD",)]
    assert not list(root.glob("**/*.tmp"))


def test_polars_and_duckdb_read_the_history_directly(tmp_path: Path) -> None:
    run_once(load_settings())
    run_once(load_settings())
    lazy = pl.scan_parquet("snapshots/deletion_risk/**/*.parquet", hive_partitioning=True)
    runs = lazy.select(pl.col("run_id").n_unique()).collect().item()
    assert runs == 2
    categories = set(lazy.select("category").unique().collect()["category"])
    assert categories == {"image_generation", "text_generation"}
    count = duckdb.sql(
        "select count(distinct run_id)"
        " from read_parquet('snapshots/deletion_risk/**/*.parquet', hive_partitioning=true)"
        " where category = 'text_generation' and not grouped"
    ).fetchall()
    assert count == [(2,)]
    frame = history(Path("snapshots"), "deletion_risk", "image_generation")
    assert frame is not None and frame.select(pl.col("run_id").n_unique()).collect().item() == 2


def test_a_writer_failure_leaves_history_intact_and_the_run_invisible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = run_once(load_settings())
    before = history(tmp_path / "snapshots", "records")
    assert before is not None
    rows_before = before.collect().height

    class DiskFullOnTheFifthTable(SnapshotWriter):
        calls = 0

        def write(self, table: str, category: str, frame: pl.DataFrame) -> str:
            DiskFullOnTheFifthTable.calls += 1
            if DiskFullOnTheFifthTable.calls == 5:
                raise OSError("disk full (simulated)")
            return super().write(table, category, frame)

    with pytest.raises(OSError, match="disk full"):
        run_once(load_settings(), snapshot_writer=DiskFullOnTheFifthTable)
    assert [m["run_id"] for m in manifests(tmp_path / "snapshots")] == [good.run_id]
    after = history(tmp_path / "snapshots", "records")
    assert after is not None and after.collect().height == rows_before
    # the failed run removed what it wrote: even a plain glob sees only the good run
    files = list(Path("snapshots").glob("**/*.parquet"))
    stamped = {run_id for path in files for run_id in pl.read_parquet(path, columns=["run_id"])["run_id"].unique()}
    assert stamped == {good.run_id}
    assert {path.stem for path in files} == {good.run_id}


def test_a_killed_run_is_invisible_and_swept_by_the_next(tmp_path: Path) -> None:
    good = run_once(load_settings())
    script = textwrap.dedent(
        """
        import os, signal
        from pipeline.sinks import parquet_snapshot
        from pipeline.shell.batch import run_once
        from pipeline.contracts.settings import load_settings
        real = parquet_snapshot.SnapshotWriter.write
        calls = []
        def write(self, *args):
            calls.append(1)
            if len(calls) == 6:
                os.kill(os.getpid(), signal.SIGKILL)  # die between two table writes
            return real(self, *args)
        parquet_snapshot.SnapshotWriter.write = write
        run_once(load_settings())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, timeout=120)
    assert result.returncode == -9
    root = tmp_path / "snapshots"
    orphans = [p for p in root.glob("**/*.parquet") if good.run_id not in p.name]
    assert len(orphans) == 5  # the killed run's five finished files, with no manifest
    assert [m["run_id"] for m in manifests(root)] == [good.run_id]
    latest = latest_table(root, "records", "image_generation")
    assert latest is not None and latest["run_id"].unique().to_list() == [good.run_id]
    followed = history(root, "merged")
    assert followed is not None
    assert followed.select("run_id").unique().collect()["run_id"].to_list() == [good.run_id]

    second = run_once(load_settings())
    assert not [p for p in root.glob("**/*.parquet") if p.stem not in {good.run_id, second.run_id}]


def test_run_prints_a_summary_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "image_generation" in out and "text_generation" in out and "input problems: 1" in out
    assert main(["run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    stats = {(s["category"], s["grouped"]): s for s in document["statistics"]}
    assert stats[("image_generation", False)]["total_models"] == 20
    assert stats[("text_generation", False)]["total_models"] == 10
    assert stats[("text_generation", True)]["total_models"] == 9  # the two Cydonia-24B versions are one family
    assert len(manifests(tmp_path / "snapshots")) == 2


def test_python_dash_m_jobs_works(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "jobs", "run"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "text_generation" in result.stdout
    # logs go to stderr as one JSON object per line when not a terminal
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert any(event["event"] == "run finished" for event in events)
    # progress: one event per finished stage, in order, with its duration
    stages = [(event["stage"], event["seconds"]) for event in events if event["event"] == "stage finished"]
    assert [stage for stage, _ in stages] == ["load", "compute", "snapshot", "commit", "maintain"]
    assert all(isinstance(seconds, float | int) and seconds >= 0 for _, seconds in stages)


def test_progress_on_a_terminal_is_readable_lines(tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "jobs", "run"], stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert result.returncode == 0
    lines = b"".join(chunks).decode().splitlines()
    stages = [match.group(1) for line in lines if (match := re.search(r"stage finished stage=(\w+)", line))]
    assert stages == ["load", "compute", "snapshot", "commit", "maintain"]
    assert not any(line.lstrip().startswith("{") for line in lines)  # not JSON on a terminal
