"""Incremental runs (SPEC §9): a reference file whose bytes are the previous committed run's is read back from
that run's snapshot instead of decoded, and every output is the same as a cold run's."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.contracts.settings import load_settings
from pipeline.shell.batch import RunResult, run_once
from pipeline.sinks.parquet_snapshot import latest_table, manifests
from tests.conftest import SAMPLE_DATA

REUSED = "input unchanged: records read from the previous run"
#: Columns that name the run itself, so differ between any two runs.
RUN_FIELDS = ("run_id", "run_at", "computed_at")


def reused_categories(caplog: pytest.LogCaptureFixture, derived_tables: bool | None = None) -> set[str]:
    """The categories read back; with ``derived_tables``, only those whose derived tables (names, families,
    statistics, audit) were (or were not)."""
    return {
        getattr(record, "category", "")
        for record in caplog.records
        if record.getMessage() == REUSED
        and (derived_tables is None or getattr(record, "derived_tables", None) is derived_tables)
    }


def run(snapshots: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> RunResult:
    monkeypatch.setenv("SNAPSHOT_DIR", str(snapshots))
    return run_once(load_settings(), **options)


def without_run_fields(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop(RUN_FIELDS, strict=False)


def assert_same_outputs(warm: RunResult, cold: RunResult) -> None:
    """Every table, statistics object and risk view of ``warm`` equals ``cold``'s, but for the run's own fields."""
    assert warm.input_hashes == cold.input_hashes
    assert set(warm.outputs.tables) == set(cold.outputs.tables)
    for key, frame in cold.outputs.tables.items():
        try:
            assert_frame_equal(without_run_fields(warm.outputs.tables[key]), without_run_fields(frame))
        except AssertionError as error:
            raise AssertionError(f"table {key} differs: {error}") from None
    assert_frame_equal(warm.problems, cold.problems)
    assert warm.problems.height > 0, "the sample data has input problems: they are carried over too"
    exclude = set(RUN_FIELDS)
    assert set(warm.outputs.statistics) == set(cold.outputs.statistics)
    for stats_key, stats in cold.outputs.statistics.items():
        warm_stats = warm.outputs.statistics[stats_key].model_dump(exclude=exclude)
        assert warm_stats == stats.model_dump(exclude=exclude), stats_key
    assert set(warm.outputs.deletion_risk) == set(cold.outputs.deletion_risk)
    for risk_key, view in cold.outputs.deletion_risk.items():
        warm_response = warm.outputs.deletion_risk[risk_key].response().model_dump(exclude=exclude)
        assert warm_response == view.response().model_dump(exclude=exclude), risk_key


def test_a_warm_run_reads_unchanged_records_back_and_matches_a_cold_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first = run(tmp_path / "warm", monkeypatch, as_of=datetime(2026, 1, 1, tzinfo=UTC))
    assert reused_categories(caplog) == set(), "a store without history decodes everything"
    # the same history in both stores, then the same second run: read back in one, decoded in the other
    shutil.copytree(tmp_path / "warm", tmp_path / "cold")
    second_run = datetime(2026, 1, 2, tzinfo=UTC)
    cold = run(tmp_path / "cold", monkeypatch, as_of=second_run, reuse_inputs=False)
    assert reused_categories(caplog) == set()
    warm = run(tmp_path / "warm", monkeypatch, as_of=second_run)
    loaded = {category for table, category in first.outputs.tables if table == "records"}
    assert reused_categories(caplog) == loaded and loaded
    # the tables derived from the records alone are read back with them (SPEC §9): the loop below compares them too
    assert reused_categories(caplog, derived_tables=True) == loaded

    assert_same_outputs(warm, cold)
    # the stored tables of the warm run equal the cold run's, problems included
    for category in loaded:
        for table in ("records", "problems", "deletion_risk"):
            cold_table = latest_table(tmp_path / "cold", table, category)
            warm_table = latest_table(tmp_path / "warm", table, category)
            if cold_table is None:
                assert warm_table is None
                continue
            assert warm_table is not None
            assert_frame_equal(
                without_run_fields(warm_table).drop("run_date"), without_run_fields(cold_table).drop("run_date")
            )


def test_a_changed_file_is_decoded_again_and_the_others_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(SAMPLE_DATA / "model_reference", reference)
    monkeypatch.setenv("MODEL_REFERENCE_SOURCE", str(reference))
    first = run(tmp_path / "snapshots", monkeypatch)
    changed = reference / CATEGORY_FILES["image_generation"]
    changed.write_bytes(changed.read_bytes() + b"\n")  # the same records, other bytes: another hash
    caplog.set_level(logging.INFO)
    second = run(tmp_path / "snapshots", monkeypatch)
    reused = reused_categories(caplog)
    assert "image_generation" not in reused and "text_generation" in reused
    assert second.input_hashes["records:image_generation"] != first.input_hashes["records:image_generation"]
    assert manifests(tmp_path / "snapshots")[-1]["input_hashes"] == second.input_hashes


def test_an_unreadable_previous_snapshot_means_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "snapshots"
    first = run(root, monkeypatch)
    entry = manifests(root)[-1]["tables"]["records"]["text_generation"]
    (root / entry["path"]).write_bytes(b"not parquet")
    caplog.set_level(logging.INFO)
    second = run(root, monkeypatch)
    assert "text_generation" not in reused_categories(caplog)
    warnings = [record for record in caplog.records if "previous run's records unreadable" in record.getMessage()]
    assert warnings and str(root / entry["path"]) in getattr(warnings[0], "error", ""), "the warning names the file"
    assert_frame_equal(
        second.outputs.tables[("records", "text_generation")], first.outputs.tables[("records", "text_generation")]
    )


@pytest.mark.parametrize("group_by_variant", [True, False])
def test_parsed_tables_are_read_back_only_under_the_same_grouping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, group_by_variant: bool
) -> None:
    monkeypatch.setenv("GROUP_BY_VARIANT", str(not group_by_variant).lower())
    run(tmp_path / "warm", monkeypatch, as_of=datetime(2026, 1, 1, tzinfo=UTC))
    shutil.copytree(tmp_path / "warm", tmp_path / "cold")
    monkeypatch.setenv("GROUP_BY_VARIANT", str(group_by_variant).lower())
    caplog.set_level(logging.INFO)
    second_run = datetime(2026, 1, 2, tzinfo=UTC)
    warm = run(tmp_path / "warm", monkeypatch, as_of=second_run)
    # the records are the same bytes, but the families of the other grouping are not this run's: parsed again
    assert "text_generation" in reused_categories(caplog, derived_tables=False)
    assert reused_categories(caplog, derived_tables=True) == set()
    cold = run(tmp_path / "cold", monkeypatch, as_of=second_run, reuse_inputs=False)
    for table in ("names", "families"):
        key = (table, "text_generation")
        assert_frame_equal(warm.outputs.tables[key], cold.outputs.tables[key])
    caplog.clear()
    # the next run under this grouping reads them back, and they are this grouping's
    third = run(tmp_path / "warm", monkeypatch, as_of=datetime(2026, 1, 3, tzinfo=UTC))
    assert "text_generation" in reused_categories(caplog, derived_tables=True) == reused_categories(caplog)
    assert_frame_equal(third.outputs.tables[("families", "text_generation")], cold.outputs.tables[key])


def test_derived_tables_read_back_beside_new_horde_data_match_a_cold_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A hydrator's steady state: the reference unchanged, the Horde data new. The audit read back keeps its findings
    # about the reference and takes this run's served_not_referenced (one name gone, one new).
    horde = tmp_path / "horde"
    shutil.copytree(SAMPLE_DATA / "horde", horde)
    sources = {"model_reference_source": str(SAMPLE_DATA / "model_reference"), "horde_source": str(horde)}
    first = run_once(
        load_settings(snapshot_dir=str(tmp_path / "warm"), **sources), as_of=datetime(2026, 1, 1, tzinfo=UTC)
    )
    shutil.copytree(tmp_path / "warm", tmp_path / "cold")
    for path in horde.glob("*_text.json"):
        path.write_text(path.read_text().replace("Meta-Llama-3-405B-Instruct", "Never-Referenced-7B"))
    caplog.set_level(logging.INFO)
    second_run = datetime(2026, 1, 2, tzinfo=UTC)
    cold = run_once(load_settings(snapshot_dir=str(tmp_path / "cold"), **sources), as_of=second_run, reuse_inputs=False)
    warm = run_once(load_settings(snapshot_dir=str(tmp_path / "warm"), **sources), as_of=second_run)
    loaded = {category for table, category in first.outputs.tables if table == "records"}
    assert reused_categories(caplog, derived_tables=True) == loaded
    assert_same_outputs(warm, cold)

    def served(result: RunResult) -> set[str]:
        audit = result.outputs.tables[("audit", "text_generation")]
        return set(audit.filter(pl.col("kind") == "served_not_referenced")["name"])

    assert served(first) == {"koboldcpp/Meta-Llama-3-405B-Instruct", "koboldcpp/MyRoleplayMerge-13B"}
    assert served(warm) == {"koboldcpp/Never-Referenced-7B", "koboldcpp/MyRoleplayMerge-13B"}


def test_derived_tables_are_computed_again_under_other_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = str(tmp_path / "snapshots")
    run_once(load_settings(snapshot_dir=root), as_of=datetime(2026, 1, 1, tzinfo=UTC))
    caplog.set_level(logging.INFO)
    # the statistics' top-tags limit is a rule the derived tables depend on (derived_tables_key)
    second_run = datetime(2026, 1, 2, tzinfo=UTC)
    warm = run_once(load_settings(snapshot_dir=root, top_tags_limit=1), as_of=second_run)
    assert reused_categories(caplog, derived_tables=False) == reused_categories(caplog) != set()
    assert reused_categories(caplog, derived_tables=True) == set()
    cold = run_once(
        load_settings(snapshot_dir=str(tmp_path / "cold"), top_tags_limit=1), as_of=second_run, reuse_inputs=False
    )
    assert warm.outputs.tables[("tags", "text_generation")].height == 2  # one top tag, ungrouped and grouped
    for table in ("tags", "styles", "audit", "names", "families"):
        key = (table, "text_generation")
        assert_frame_equal(warm.outputs.tables[key], cold.outputs.tables[key])
