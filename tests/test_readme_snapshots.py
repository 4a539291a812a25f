"""The README's snapshot queries read committed runs only: run as written, against a store that holds a killed
run's files (written, never committed), they give what the committed runs alone give. Section "Snapshots" on a
folder; section "Snapshots on object storage" on a real S3-compatible server (moto's, on 127.0.0.1), with DuckDB
reading it through the httpfs extension that the `duckdb-extension-httpfs` package ships."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.sinks.parquet_snapshot import SnapshotWriter, latest_table, manifests, run_tables
from pipeline.sinks.store import open_store
from tests.conftest import REPO
from tests.s3_server import SECRET_KEY

KILLED_RUN = "29990101T000000Z-deadbeef"
#: The bucket the README's object-storage examples name; the tests put their own bucket in its place.
README_BUCKET = "s3://horde-analytics/snapshots"


def readme_snippets(section: str, language: str) -> list[str]:
    """The ``language`` code blocks of the README's section ``section``, in order."""
    text = (REPO / "README.md").read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, f"no {language} block in the README's {section} section"
    return [str(block) for block in blocks]


def readme_snippet(language: str) -> str:
    """The first ``language`` code block of the README's "Snapshots" section."""
    return readme_snippets("Snapshots", language)[0]


#: What tells the README's two object-storage examples apart.
S3_EXAMPLES = {"polars": "from pipeline.sinks.parquet_snapshot import history", "duckdb": "import duckdb"}


def s3_snippet(kind: str, location: str) -> str:
    """The README's object-storage example ``kind`` (``polars`` or ``duckdb``), reading ``location``."""
    (block,) = [b for b in readme_snippets("Snapshots on object storage", "python") if S3_EXAMPLES[kind] in b]
    assert README_BUCKET in block
    return block.replace(README_BUCKET, location)


def two_runs_and_a_killed_one(root: Path | str) -> None:
    """Two committed runs, then a run that wrote every deletion-risk file (all at risk, no workers, a later
    time) and was killed before its manifest."""
    assert main(["run"]) == 0
    assert main(["run"]) == 0
    latest = manifests(root)[-1]
    killed = SnapshotWriter(root=root, run_id=KILLED_RUN, run_at=datetime(2999, 1, 1, tzinfo=UTC))
    for (table, category), frame in run_tables(root, latest, ["deletion_risk"]).items():
        killed.write(table, category, frame.with_columns(at_risk=True, no_active_workers=True))
    killed_keys = [key for key in open_store(root).list("deletion_risk") if KILLED_RUN in key]
    assert len(killed_keys) == 2, killed_keys


def latest_at_risk_per_category(root: Path | str) -> list[tuple[str, int, int]]:
    """(category, at risk, models) of the latest committed run, as the library reader gives them."""
    expected = []
    for category in ("image_generation", "text_generation"):
        risk = latest_table(root, "deletion_risk", category)
        assert risk is not None
        models = risk.filter(~pl.col("grouped"))
        expected.append((category, int(models["at_risk"].sum()), models.height))
    return expected


@pytest.fixture
def store_with_a_killed_run(tmp_path: Path) -> Path:
    root = tmp_path / "snapshots"
    two_runs_and_a_killed_one(root)
    return root


@pytest.fixture
def bucket_with_a_killed_run(s3_location: str) -> str:
    two_runs_and_a_killed_one(s3_location)
    return s3_location


def test_the_polars_example_ignores_a_killed_run(store_with_a_killed_run: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(readme_snippet("python"), namespace)
    result = namespace["days_without_workers"]
    latest = latest_table(store_with_a_killed_run, "deletion_risk", "text_generation")
    assert latest is not None
    committed = latest.filter(~pl.col("grouped"), pl.col("no_active_workers"))
    # two committed runs on one day: one day each, and only the models without workers in the committed runs
    assert sorted(result["name"].to_list()) == sorted(committed["name"].to_list())
    assert set(result["days_without_workers"].to_list()) <= {1}
    raw = pl.scan_parquet("snapshots/deletion_risk/**/*.parquet", hive_partitioning=True)
    assert KILLED_RUN in raw.select("run_id").collect()["run_id"].to_list(), "the killed run's files are there"


def test_the_duckdb_example_ignores_a_killed_run(store_with_a_killed_run: Path) -> None:
    rows = duckdb.sql(readme_snippet("sql")).fetchall()
    assert rows == latest_at_risk_per_category(store_with_a_killed_run)
    assert all(at_risk < models for _, at_risk, models in rows), "the killed run had every model at risk"


def test_the_object_storage_duckdb_query_is_the_folder_query() -> None:
    """One query, two places: the bucket's example differs from the folder's only in where it reads."""
    query = re.search(r'con\.sql\("""\n(.*?)"""\)', s3_snippet("duckdb", "snapshots"), flags=re.DOTALL)
    assert query is not None, 'the DuckDB object-storage example runs one con.sql("""...""") query'
    assert query.group(1) == readme_snippet("sql").split("\n", 1)[1]  # less the folder query's comment line


def test_the_polars_example_reads_committed_runs_from_a_bucket(bucket_with_a_killed_run: str) -> None:
    namespace: dict[str, Any] = {}
    exec(s3_snippet("polars", bucket_with_a_killed_run), namespace)
    run_ids = set(namespace["risk"].select("run_id").collect()["run_id"].to_list())
    assert run_ids == {manifest["run_id"] for manifest in manifests(bucket_with_a_killed_run)}
    assert len(run_ids) == 2 and KILLED_RUN not in run_ids


def test_the_duckdb_example_reads_committed_runs_from_a_bucket(
    bucket_with_a_killed_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # import_extension installs into ~/.duckdb: this test's own home, not the machine's
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    namespace: dict[str, Any] = {}
    exec(s3_snippet("duckdb", bucket_with_a_killed_run), namespace)
    rows = namespace["at_risk"]
    assert rows == latest_at_risk_per_category(bucket_with_a_killed_run)
    assert all(at_risk < models for _, at_risk, models in rows), "the killed run had every model at risk"

    con: duckdb.DuckDBPyConnection = namespace["con"]
    (installed,) = con.sql(
        "select install_path from duckdb_extensions() where loaded and extension_name = 'httpfs'"
    ).fetchall()
    assert installed[0].startswith(str(home)), "httpfs came from the package, installed under this test's home"

    # the raw glob does see the killed run's files: the manifests are what keeps them out
    raw = con.sql(f"select distinct run_id from read_parquet('{bucket_with_a_killed_run}/deletion_risk/**/*.parquet')")
    assert KILLED_RUN in {run_id for (run_id,) in raw.fetchall()}

    # the secret is never shown: not by DuckDB's own listing, not in a failure, not on the output
    listed = con.sql("select secret_string from duckdb_secrets() where name = 'horde'").fetchall()
    assert len(listed) == 1 and SECRET_KEY not in str(listed)
    missing = bucket_with_a_killed_run.replace("s3://snap-", "s3://no-such-bucket-")
    with pytest.raises(duckdb.Error) as failure:
        con.sql(f"select * from read_json('{missing}/_runs/*.json')").fetchall()
    assert "no-such-bucket" in str(failure.value) and SECRET_KEY not in str(failure.value)
    captured = capfd.readouterr()  # the file descriptors: DuckDB writes there directly
    assert SECRET_KEY not in captured.out + captured.err


def test_both_examples_read_a_compacted_store_exactly(tmp_path: Path) -> None:
    # SPEC §13: after compaction the README's readers see the same rows as before (each kept run's rows once)
    root = tmp_path / "snapshots"
    for when in ("2026-03-01T06:00:00Z", "2026-03-01T12:00:00Z", "2026-03-02T06:00:00Z"):
        assert main(["run", "--as-of", when]) == 0  # the third run's maintenance compacts 2026-03-01
    compacted = list(root.glob("deletion_risk/category=*/run_date=2026-03-01/compact-*.parquet"))
    assert len(compacted) == 2 and not list(root.glob("deletion_risk/category=*/run_date=2026-03-01/2026*"))

    namespace: dict[str, Any] = {}
    exec(readme_snippet("python"), namespace)
    result = namespace["days_without_workers"]
    without = {
        name
        for manifest in manifests(root)
        for (_, category), risk in run_tables(root, manifest, ["deletion_risk"]).items()
        if category == "text_generation"
        for name in risk.filter(~pl.col("grouped"), pl.col("no_active_workers"))["name"].to_list()
    }
    assert sorted(result["name"].to_list()) == sorted(without)
    assert set(result["days_without_workers"].to_list()) <= {1, 2}
    assert duckdb.sql(readme_snippet("sql")).fetchall() == latest_at_risk_per_category(root)
