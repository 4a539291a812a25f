"""Keep the comparison and decoder bench tools working: compare_outputs finds a planted difference, json_decoders
runs at 1x. No timings asserted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))


def test_compare_outputs_dumps_both_runs_from_the_store_and_finds_a_planted_difference(tmp_path: Path) -> None:
    import compare_outputs

    sample = REPO / "sample_data"
    before, after = tmp_path / "before", tmp_path / "after"
    compare_outputs.dump(str(sample / "model_reference"), str(sample / "horde"), before)
    for group_by_variant in ("false", "true"):
        for run in ("run1", "run2"):
            tables = {
                path.name.split(".")[0]
                for path in (before / f"group_by_variant={group_by_variant}" / run / "tables").iterdir()
            }
            assert {"problems", "model_state", "changes", "audit", "deletion_risk"} <= tables
    shutil.copytree(before, after)
    assert compare_outputs.differences(before, after) == []
    # a loader problem changed in the second (incremental) run only: the one-run, in-memory dump missed both
    planted = next(
        path
        for path in sorted((after / "group_by_variant=true" / "run2" / "tables").glob("problems.*.parquet"))
        if pl.read_parquet(path).height
    )
    problems = pl.read_parquet(planted)
    problems.with_columns(pl.col("reason").str.replace("^", "planted: ")).write_parquet(planted)
    found = compare_outputs.differences(before, after)
    assert len(found) == 1 and found[0].startswith(str(planted.relative_to(after))), found


def test_json_decoders_bench_runs(shared_data: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "json_decoders.py"),
            str(shared_data / "model_reference" / "text_generation.json"),
            "--decoders",
            "checked",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(" 2157 entries ") == 2 and "peak RSS" in done.stdout
