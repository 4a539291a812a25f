"""SPEC §1, §12: the manifest is the commit, Redis a projection of the latest committed run; the lock fences
both; configuration errors exit 2, a Redis that is away or refuses the publish exits 4; signals and full disks
leave nothing behind. Everything here runs against real redis-servers, real processes and real files."""

from __future__ import annotations

import json
import logging
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobs.__main__ import main
from pipeline.contracts import keys
from pipeline.contracts.settings import load_settings
from pipeline.shell.batch import run_once
from pipeline.shell.interrupts import RunInterrupted, StopRequest
from pipeline.sinks.lock import LockLostError, RedisLock
from pipeline.sinks.parquet_snapshot import manifests, read_artifact
from pipeline.sinks.redis_publisher import RedisPublisher
from tests.conftest import RedisServer, free_port
from tests.run_helpers import (
    CliRun,
    GatedHorde,
    child_env,
    committed_ids,
    redis_run_ids,
    uncommitted_files,
    wait_until,
)

PREFIX = "horde:model_ref"  # the default: the isolated environment sets no REDIS_KEY_PREFIX


@pytest.fixture
def gated_horde() -> Iterator[GatedHorde]:
    horde = GatedHorde()
    yield horde
    horde.close()


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def _store(tmp_path: Path) -> Path:
    return tmp_path / "snapshots"


def _assert_redis_shows(client: redis.Redis, run_id: str | None) -> None:
    """Redis holds exactly one run, ``run_id``, in every key."""
    last, carried = redis_run_ids(client, PREFIX)
    assert last == run_id
    assert carried == ({run_id} if run_id else set())


# --- the commit order and what a committed run stores ------------------------------------------------------


def test_a_committed_run_stores_exactly_what_it_published(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run"]) == 0
    (manifest,) = manifests(_store(tmp_path))
    assert manifest["artifacts"] == {"redis": f"_redis/{manifest['run_id']}.arrow"}
    document = read_artifact(_store(tmp_path), manifest, "redis")
    assert document is not None
    client = _client(own_redis.url)
    stored = {f"{PREFIX}:{key}": value for key, value in document.select("key", "value").rows()}
    assert keys.last_run_key(PREFIX) in stored and len(stored) > 10
    assert json.loads(stored[keys.last_run_key(PREFIX)])["run_id"] == manifest["run_id"]
    assert {key: client.get(key) for key in stored} == stored
    _assert_redis_shows(client, manifest["run_id"])


def test_redis_down_commits_exits_4_and_republish_publishes_that_run(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run"]) == 0
    first = committed_ids(_store(tmp_path))[-1]
    own_redis.stop()
    assert main(["run"]) == 4
    err = capsys.readouterr().err
    assert "committed but not published" in err and "--republish" in err
    second = committed_ids(_store(tmp_path))[-1]
    assert second != first
    own_redis.start()  # a fresh, empty server on the same port
    assert main(["run", "--republish"]) == 0
    assert f"republished run {second}" in capsys.readouterr().out
    _assert_redis_shows(_client(own_redis.url), second)


def test_republish_without_a_run_or_without_redis_values(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--republish"]) == 2  # no REDIS_URL: nowhere to publish
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run", "--republish"]) == 1
    assert "no committed run" in capsys.readouterr().err
    monkeypatch.delenv("REDIS_URL")
    assert main(["run"]) == 0  # a run without Redis stores no Redis values
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run", "--republish"]) == 1
    assert "stored no Redis values" in capsys.readouterr().err
    assert _client(own_redis.url).get(keys.last_run_key(PREFIX)) is None


def test_republish_refuses_stored_values_it_cannot_trust(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run"]) == 0
    (manifest_path,) = (_store(tmp_path) / "_runs").glob("*.json")
    manifest = json.loads(manifest_path.read_text())
    artifact = _store(tmp_path) / manifest["artifacts"]["redis"]
    artifact.write_text("{not json")
    assert main(["run", "--republish"]) == 1
    assert "cannot be read" in capsys.readouterr().err
    manifest["artifacts"]["redis"] = "../outside.json"  # a manifest never leads a reader out of the store
    (tmp_path / "outside.json").write_text(json.dumps({"run_id": "x", "keys": {"analytics:last_run": ["{}", None]}}))
    manifest_path.write_text(json.dumps(manifest))
    assert main(["run", "--republish"]) == 1
    err = capsys.readouterr().err
    assert "cannot be read" in err and "Traceback" not in err
    assert _client(own_redis.url).get(keys.last_run_key(PREFIX)) != b"{}"


def test_run_finished_seconds_cover_every_stage_including_publish(own_redis: RedisServer, tmp_path: Path) -> None:
    run = CliRun(["run"], child_env(REDIS_URL=own_redis.url), tmp_path)
    stages = {}
    finished = None
    for event in run.events():
        if event["event"] == "stage finished":
            stages[event["stage"]] = event["seconds"]
        if event["event"] == "run finished":
            finished = event["seconds"]
    assert run.finish()[0] == 0
    assert list(stages) == ["load", "compute", "snapshot", "commit", "publish", "maintain"]
    assert finished is not None and finished >= sum(stages.values()) - 0.03  # laps are rounded to 0.01 s


# --- configuration errors: exit 2 before any work ----------------------------------------------------------


def _nothing_written(tmp_path: Path) -> bool:
    return not _store(tmp_path).exists() or not any(_store(tmp_path).rglob("*.parquet"))


@pytest.mark.parametrize(
    ("url_of", "reason"),
    [
        (lambda server: server.url.replace("s3cret-Hunter2", "wrong-password"), "invalid username-password pair"),
        (lambda server: f"redis://127.0.0.1:{server.port}/0", "authenticate"),
    ],
    ids=["wrong-password", "missing-password"],
)
def test_redis_refusing_the_credentials_exits_2_before_any_work(
    password_redis: RedisServer,
    url_of: object,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", url_of(password_redis))
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert reason in err and "s3cret-Hunter2" not in err and "wrong-password" not in err
    assert _nothing_written(tmp_path) and manifests(_store(tmp_path)) == []


def test_a_database_index_the_server_lacks_exits_2(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{own_redis.port}/99")
    assert main(["run"]) == 2
    assert "DB index is out of range" in capsys.readouterr().err
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("url", ["localhost:6379", "redis://127.0.0.1:notaport/0", "http://127.0.0.1:6379"])
def test_a_malformed_redis_url_exits_2(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert main(["run"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err
    assert _nothing_written(tmp_path)


def test_hydrate_exits_2_when_redis_refuses_the_credentials(
    password_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{password_redis.port}/0")
    assert main(["hydrate"]) == 2


# --- the lock fences the commit and the transaction --------------------------------------------------------


def test_a_run_that_lost_its_lock_while_paused_commits_nothing_and_exits_3(
    own_redis: RedisServer, gated_horde: GatedHorde, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two hosts share one Redis. Host A is paused (SIGSTOP) in its load stage until its lock expires; host B
    takes the lock and publishes; A resumes: it must neither commit nor touch Redis."""
    env = child_env(
        REDIS_URL=own_redis.url,
        REDIS_LOCK_TTL_SECONDS="1",
        HORDE_SOURCE=gated_horde.url,
        HORDE_API_TIMEOUT="120",
        SNAPSHOT_DIR=str(tmp_path / "host-a"),
    )
    paused = CliRun(["run"], env, tmp_path)
    client = _client(own_redis.url)
    try:
        gated_horde.wait_entered()  # A holds the lock and waits for the Horde answer
        assert client.exists(keys.lock_key(PREFIX))
        paused.process.send_signal(signal.SIGSTOP)
        wait_until(lambda: not client.exists(keys.lock_key(PREFIX)), what="A's lock to expire")
        monkeypatch.setenv("REDIS_URL", own_redis.url)
        monkeypatch.setenv("SNAPSHOT_DIR", str(tmp_path / "host-b"))
        assert main(["run"]) == 0  # B
        newer = committed_ids(tmp_path / "host-b")[-1]
    finally:
        gated_horde.open()
        paused.process.send_signal(signal.SIGCONT)
    code, _, err = paused.finish()
    assert code == 3, err
    assert "lost the lock" in err and "Traceback" not in err
    assert committed_ids(tmp_path / "host-a") == []
    assert uncommitted_files(tmp_path / "host-a") == []  # A removed its own tables
    _assert_redis_shows(client, newer)  # B's data stays


def test_the_transaction_itself_checks_the_lock(own_redis: RedisServer) -> None:
    client = _client(own_redis.url)
    lock = RedisLock(client, "p:lock", ttl_ms=30_000)
    lock.acquire()
    try:
        # Another run writes the lock key between our token check and EXEC: the WATCH aborts the EXEC.
        def queue(pipe: redis.client.Pipeline) -> None:
            _client(own_redis.url).set("p:lock", "newer-run", px=30_000)
            pipe.set("p:data", "stale run")

        with pytest.raises(LockLostError):
            lock.transaction(queue)
        assert client.get("p:data") is None
        # The key is another run's now: the token check refuses before queuing anything.
        with pytest.raises(LockLostError):
            lock.transaction(lambda pipe: pipe.set("p:data", "stale run"))
        assert client.get("p:data") is None
        with pytest.raises(LockLostError):
            lock.verify()
    finally:
        assert lock.release() is False  # never deletes the newer run's lock
    assert client.get("p:lock") == b"newer-run"


def test_a_publisher_never_publishes_under_a_lost_lock(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run"]) == 0
    published = committed_ids(_store(tmp_path))[-1]
    settings = load_settings()
    publisher = RedisPublisher.from_settings(settings)
    document = read_artifact(_store(tmp_path), manifests(_store(tmp_path))[-1], "redis")
    assert document is not None
    values = publisher.restored(document)
    values[keys.last_run_key(PREFIX)] = (json.dumps({"run_id": "stale"}).encode(), None)
    lock = publisher.lock(ttl_ms=30_000)
    lock.acquire()
    _client(own_redis.url).set(keys.lock_key(PREFIX), "newer-run")
    with pytest.raises(LockLostError):
        publisher.publish(values, lock)
    lock.release()
    _assert_redis_shows(_client(own_redis.url), published)


# --- Redis that cannot take the publish: exit 4, Redis keeps the previous run ------------------------------


def _held_in_load(env: dict[str, str], tmp_path: Path, gated: GatedHorde) -> CliRun:
    run = CliRun(["run"], {**env, "HORDE_SOURCE": gated.url, "HORDE_API_TIMEOUT": "120"}, tmp_path)
    gated.wait_entered()
    return run


def test_a_read_only_replica_commits_and_exits_4(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run"]) == 0
    previous = committed_ids(_store(tmp_path))[-1]
    client = _client(own_redis.url)
    client.replicaof("127.0.0.1", str(free_port()))  # a failover made it a replica of an unreachable master
    assert main(["run"]) == 4
    assert "read only replica" in capsys.readouterr().err
    assert len(committed_ids(_store(tmp_path))) == 2
    _assert_redis_shows(client, previous)


def test_redis_out_of_memory_at_the_publish_exits_4_and_keeps_the_previous_run(
    own_redis: RedisServer, gated_horde: GatedHorde, tmp_path: Path
) -> None:
    env = child_env(REDIS_URL=own_redis.url)
    assert CliRun(["run"], env, tmp_path).finish()[0] == 0
    previous = committed_ids(_store(tmp_path))[-1]
    client = _client(own_redis.url)
    run = _held_in_load(env, tmp_path, gated_horde)
    client.set("filler", b"x" * 1_500_000)  # other data fills the server past the limit
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1mb")
    gated_horde.open()
    code, _, err = run.finish()
    assert code == 4, err
    assert "OOM" in err or "maxmemory" in err
    assert len(committed_ids(_store(tmp_path))) == 2
    _assert_redis_shows(client, previous)


def test_redis_stalled_at_the_publish_exits_4_and_never_shows_an_uncommitted_run(
    own_redis: RedisServer, gated_horde: GatedHorde, tmp_path: Path
) -> None:
    """SIGSTOP on redis-server before the publish: the run's requests time out (exit 4). Whatever the server
    applies once it resumes, Redis shows one committed run entirely (a late EXEC would show this run, which is
    committed: harmless by the commit order)."""
    env = child_env(REDIS_URL=own_redis.url, REDIS_SOCKET_TIMEOUT="0.5")
    assert CliRun(["run"], env, tmp_path).finish()[0] == 0
    run = _held_in_load(env, tmp_path, gated_horde)
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        gated_horde.open()
        code, _, err = run.finish()
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert code == 4, err
    committed = committed_ids(_store(tmp_path))
    assert len(committed) == 2
    # The stall came before MULTI was sent: once resumed, Redis holds the previous run whole.
    _assert_redis_shows(_client(own_redis.url), committed[0])


# --- signals and a full disk -------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_run_cleans_up_and_releases_the_locks(
    signum: int, own_redis: RedisServer, gated_horde: GatedHorde, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = child_env(REDIS_URL=own_redis.url)
    run = _held_in_load(env, tmp_path, gated_horde)
    client = _client(own_redis.url)
    assert client.exists(keys.lock_key(PREFIX))
    run.process.send_signal(signum)
    gated_horde.open()
    code, _, err = run.finish()
    assert code == 128 + signum
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert committed_ids(_store(tmp_path)) == [] and uncommitted_files(_store(tmp_path)) == []
    assert not client.exists(keys.lock_key(PREFIX))  # released, not left to expire
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    assert main(["run"]) == 0  # and the snapshot lock is free


class _StopAfterStage(logging.Handler):
    """Asks for a stop (as the SIGTERM handler does) when the run logs that ``stage`` finished."""

    def __init__(self, stop: StopRequest, stage: str) -> None:
        super().__init__()
        self.stop, self.stage = stop, stage

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "stage finished" and getattr(record, "stage", None) == self.stage:
            self.stop.request(signal.SIGTERM)


def test_a_stop_after_the_tables_were_written_removes_them(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    settings = load_settings()
    stop = StopRequest()
    handler = _StopAfterStage(stop, "snapshot")
    batch_log = logging.getLogger("pipeline.shell.stopwatch")
    batch_log.addHandler(handler)
    batch_log.setLevel(logging.INFO)
    try:
        with pytest.raises(RunInterrupted) as stopped:
            run_once(settings, publisher=RedisPublisher.from_settings(settings), stop=stop)
    finally:
        batch_log.removeHandler(handler)
        batch_log.setLevel(logging.NOTSET)
    assert stopped.value.exit_code == 143
    root = _store(tmp_path)
    assert committed_ids(root) == [] and uncommitted_files(root) == []
    assert not list(root.rglob("*.parquet")) and not list(root.rglob("_redis/*"))
    assert not _client(own_redis.url).exists(keys.lock_key(PREFIX))
    _assert_redis_shows(_client(own_redis.url), None)


def _limit_file_size() -> None:
    # A full disk as the writer sees it: writes past 16 KiB fail with EFBIG (SIGXFSZ ignored, so no kill).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))


def test_a_full_disk_fails_the_run_and_leaves_no_tmp(tmp_path: Path) -> None:
    run = CliRun(["run"], child_env(), tmp_path, preexec_fn=_limit_file_size)
    code, _, err = run.finish()
    assert code == 1, err
    assert "File too large" in err
    assert "Traceback" not in err
    assert not list(_store(tmp_path).rglob("*.tmp"))
    assert committed_ids(_store(tmp_path)) == [] and uncommitted_files(_store(tmp_path)) == []


# --- the hydrator and a Redis that comes back -------------------------------------------------------------


def test_a_hydrator_started_while_redis_is_down_subscribes_once_it_is_back(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    own_redis.stop()
    env = child_env(
        REDIS_URL=own_redis.url,
        CACHE_HYDRATION_STARTUP_DELAY_SECONDS="0",
        CACHE_HYDRATION_INTERVAL_SECONDS="600",
        REDIS_SOCKET_TIMEOUT="0.5",
    )
    hydrator = CliRun(["hydrate"], env, tmp_path)
    try:
        hydrator.wait_for(lambda event: event["event"].startswith("hydration cycle"))  # one cycle, Redis down
        own_redis.start()
        hydrator.wait_for(lambda event: event["event"] == "invalidation listener subscribed")
        _client(own_redis.url).publish(keys.invalidate_channel(PREFIX), "text_generation")
        cycle = hydrator.wait_for(lambda event: event["event"] == "hydration cycle finished")
        assert cycle["cycle"] == 1  # the second cycle, woken by the invalidation instead of in 600 s
    finally:
        hydrator.process.send_signal(signal.SIGTERM)
    assert hydrator.finish()[0] == 0
    _assert_redis_shows(_client(own_redis.url), committed_ids(_store(tmp_path))[-1])
