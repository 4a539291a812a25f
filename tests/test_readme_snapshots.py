"""The README's snapshot queries (section "Snapshots") read committed runs only: run as written, against a store
that holds a killed run's files (written, never committed), they give what the committed runs alone give."""

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
from tests.conftest import REPO

KILLED_RUN = "29990101T000000Z-deadbeef"


def readme_snippet(language: str) -> str:
    """The first ``language`` code block of the README's "Snapshots" section."""
    section = (REPO / "README.md").read_text().split("\n## Snapshots\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"no {language} block in the README's Snapshots section"
    return str(blocks[0])


@pytest.fixture
def store_with_a_killed_run(tmp_path: Path) -> Path:
    """Two committed runs, then a run that wrote every deletion-risk file (all at risk, no workers, a later
    time) and was killed before its manifest."""
    assert main(["run"]) == 0
    assert main(["run"]) == 0
    root = tmp_path / "snapshots"
    latest = manifests(root)[-1]
    killed = SnapshotWriter(root=root, run_id=KILLED_RUN, run_at=datetime(2999, 1, 1, tzinfo=UTC))
    for (table, category), frame in run_tables(root, latest, ["deletion_risk"]).items():
        killed.write(table, category, frame.with_columns(at_risk=True, no_active_workers=True))
    assert len(list(root.glob(f"deletion_risk/*/*/{KILLED_RUN}.parquet"))) == 2
    return root


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
    expected = []
    for category in ("image_generation", "text_generation"):
        risk = latest_table(store_with_a_killed_run, "deletion_risk", category)
        assert risk is not None
        models = risk.filter(~pl.col("grouped"))
        expected.append((category, int(models["at_risk"].sum()), models.height))
    assert rows == expected
    assert all(at_risk < models for _, at_risk, models in rows), "the killed run had every model at risk"
