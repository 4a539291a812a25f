"""SIGKILL the real CLI at every stage boundary (SPEC §12): Redis and history still agree, and the next run
succeeds and sweeps the killed run's files."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis

from jobs.__main__ import main
from pipeline.contracts import keys
from tests.conftest import RedisServer
from tests.run_helpers import CliRun, child_env, committed_ids, redis_run_ids, uncommitted_files, wait_until

PREFIX = "horde:model_ref"
STAGES = ("load", "compute", "snapshot", "commit", "publish")


@pytest.mark.parametrize("stage", STAGES)
def test_killed_after_a_stage_redis_and_history_agree(
    stage: str, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    root = tmp_path / "snapshots"
    assert main(["run"]) == 0
    (previous,) = committed_ids(root)
    client = redis.Redis.from_url(own_redis.url)

    killed = CliRun(["run"], child_env(REDIS_LOCK_TTL_SECONDS="2"), tmp_path)  # its lock expires soon after
    killed.wait_for_stage(stage)
    killed.process.send_signal(signal.SIGKILL)
    assert killed.finish()[0] == -signal.SIGKILL

    committed = committed_ids(root)
    assert committed[0] == previous and len(committed) in (1, 2)
    if stage in ("load", "compute"):
        assert committed == [previous]  # nothing of the killed run is history
    if stage in ("commit", "publish"):
        assert len(committed) == 2  # the manifest was written: the run is history
    last, carried = redis_run_ids(client, PREFIX)
    # Redis shows the latest committed run, or the one before it when the kill came before the publish;
    # never a run history does not have, never two runs mixed.
    assert last in (committed[-1], previous) and carried == {last}
    if stage == "publish":
        assert last == committed[-1]
    if stage == "snapshot" and len(committed) == 1:
        assert uncommitted_files(root)  # killed between its tables and its manifest: orphans to sweep

    wait_until(lambda: not client.exists(keys.lock_key(PREFIX)), what="the killed run's lock to expire")
    assert main(["run"]) == 0
    after = committed_ids(root)
    assert after[: len(committed)] == committed and len(after) == len(committed) + 1
    assert uncommitted_files(root) == []  # the killed run's files were swept
    last, carried = redis_run_ids(client, PREFIX)
    assert last == after[-1] and carried == {last}
