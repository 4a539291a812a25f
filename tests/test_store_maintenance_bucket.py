"""Retention, compaction and the run index are for folder stores (README "History that stays small"): on a bucket
(a real S3-compatible server on 127.0.0.1) a run writes no index and no maintenance marker, readers follow the
manifests, and ``compact`` refuses with a clear message instead of touching the bucket."""

from __future__ import annotations

import logging

import pytest

from jobs.__main__ import main
from pipeline.sinks.history_store import newest_run_time
from pipeline.sinks.parquet_snapshot import latest_table, manifests
from pipeline.sinks.run_index import INDEX_PATH, JOURNAL_DIR, latest_manifest
from pipeline.sinks.store import open_store


def test_a_bucket_gets_no_index_and_compact_refuses_it(
    s3_location: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="pipeline.shell.batch"):  # the skip is logged at debug (once per run)
        assert main(["run"]) == 0
    assert "store maintenance and run index skipped: not a folder store" in capsys.readouterr().err
    store = open_store(s3_location)
    assert not store.exists(INDEX_PATH)
    assert store.list(JOURNAL_DIR) == []
    (manifest,) = manifests(store)
    latest = latest_manifest(store)
    assert latest is not None and latest["run_id"] == manifest["run_id"]
    assert newest_run_time(store) is not None
    risk = latest_table(store, "deletion_risk", "image_generation")
    assert risk is not None and set(risk["run_id"].to_list()) == {manifest["run_id"]}
    capsys.readouterr()

    assert main(["compact"]) == 2
    err = capsys.readouterr().err
    assert "folder store" in err and s3_location in err
    assert len(manifests(store)) == 1 and not store.exists(INDEX_PATH)
