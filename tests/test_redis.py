from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobs.__main__ import main
from pipeline.contracts import keys
from pipeline.contracts.models import CategoryChanges, CategoryDeletionRiskResponse, CategoryStatistics, LastRun
from pipeline.contracts.settings import Settings, load_settings
from pipeline.shell import batch
from pipeline.shell.hydrator import CacheHydrator, HydratorAlreadyRunningError
from pipeline.sinks.invalidation import InvalidationBus
from pipeline.sinks.lock import LockHeldError, RedisLock
from pipeline.sinks.parquet_snapshot import manifests
from pipeline.sinks.previous_run import PreviousRecords
from pipeline.sinks.redis_cache import DeletionRiskCache, StatisticsCache
from pipeline.sinks.redis_client import redis_client
from pipeline.sinks.redis_publisher import RedisPublisher
from pipeline.sources.http import HttpFetcher
from tests.conftest import SAMPLE_DATA, RedisServer
from tests.run_helpers import GatedHorde, wait_until

SAMPLE_CATEGORIES = ("controlnet", "esrgan", "image_generation", "text_generation")


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _prefix() -> str:
    return os.environ["REDIS_KEY_PREFIX"]


def expected_keys(prefix: str) -> set[str]:
    found = {keys.statistics_key(prefix, c, g) for c in SAMPLE_CATEGORIES for g in (False, True)}
    found |= {
        keys.deletion_risk_key(prefix, c, g) for c in ("image_generation", "text_generation") for g in (False, True)
    }
    found.add(keys.deletion_risk_key(prefix, "text_generation", False, variations=True))
    found.add(keys.last_run_key(prefix))
    found |= {keys.audit_key(prefix, c) for c in SAMPLE_CATEGORIES}
    found |= {keys.changes_key(prefix, c) for c in ("image_generation", "text_generation")}  # SPEC §10
    return found


def test_key_formats_are_the_spec_ones() -> None:
    assert keys.statistics_key("horde:model_ref", "image_generation", True) == (
        "horde:model_ref:stats:image_generation:grouped=true"
    )
    assert keys.deletion_risk_key("p", "text_generation", False, variations=True) == (
        "p:deletion_risk:text_generation:grouped=false:variations=true"
    )
    assert keys.last_run_key("p") == "p:analytics:last_run"
    assert keys.invalidate_channel("p") == "p:analytics:invalidate"
    assert keys.category_of("p", "p:deletion_risk:text_generation:grouped=false") == "text_generation"


def test_a_run_publishes_every_key_and_each_decodes(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["run"]) == 0
    client = _client(redis_url)
    prefix = _prefix()
    written = {key.decode() for key in client.scan_iter(match=f"{prefix}:*")}
    assert written - {keys.published_keys_key(prefix)} == expected_keys(prefix)
    last_run = LastRun.model_validate_json(client.get(keys.last_run_key(prefix)))  # type: ignore[arg-type]
    for key in expected_keys(prefix) - {keys.last_run_key(prefix)}:
        raw = client.get(key)
        assert raw is not None and b"\n" not in raw  # compact JSON
        if ":analytics:audit:" in key:  # SPEC §11: plain JSON, no downstream model
            assert json.loads(raw)["run_id"] == last_run.run_id
            continue
        model = (
            CategoryStatistics
            if ":stats:" in key
            else CategoryChanges
            if ":analytics:changes:" in key
            else CategoryDeletionRiskResponse
        )
        decoded = model.model_validate_json(raw)
        assert decoded.run_id == last_run.run_id
        assert 0 < client.ttl(key) <= 300
    variations = CategoryDeletionRiskResponse.model_validate_json(
        client.get(keys.deletion_risk_key(prefix, "text_generation", False, True))  # type: ignore[arg-type]
    )
    plain = CategoryDeletionRiskResponse.model_validate_json(
        client.get(keys.deletion_risk_key(prefix, "text_generation", False))  # type: ignore[arg-type]
    )
    assert all(m.backend_variations is not None and len(m.backend_variations) == 3 for m in variations.models)
    assert all(m.backend_variations is None for m in plain.models)
    assert client.ttl(keys.last_run_key(prefix)) == -1
    assert last_run.input_hashes.keys() >= {"records:image_generation", "horde:text:status"}


def test_hydration_keys_live_for_the_stale_ttl(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CACHE_HYDRATION_ENABLED", "true")
    assert main(["run"]) == 0
    key = keys.statistics_key(_prefix(), "image_generation", False)
    assert 300 < _client(redis_url).ttl(key) <= 3600


def test_readers_never_see_two_runs_mixed(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings()
    publisher = RedisPublisher.from_settings(settings)
    all_keys = sorted(expected_keys(settings.redis_key_prefix) - {keys.last_run_key(settings.redis_key_prefix)})
    reader = _client(redis_url)
    seen_runs: set[str] = set()
    mixes: list[set[str]] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            values = reader.mget(all_keys)
            if all(value is None for value in values):
                continue
            run_ids = {json.loads(value)["run_id"] for value in values if value is not None}
            if len(run_ids) != 1 or any(value is None for value in values):
                mixes.append(run_ids)
            seen_runs.update(run_ids)

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for _ in range(6):
            batch.run_once(settings, publisher=publisher)
    finally:
        done.set()
        thread.join()
    assert not mixes
    assert len(seen_runs) >= 2  # the reader really watched runs replace each other


def test_keys_a_run_no_longer_writes_are_retired(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["run"]) == 0
    smaller = tmp_path / "ref"
    smaller.mkdir()
    for name in ("stable_diffusion.json", "text_generation.json"):
        (smaller / name).write_bytes((SAMPLE_DATA / "model_reference" / name).read_bytes())
    assert main(["run", "--reference", str(smaller)]) == 0
    client = _client(redis_url)
    assert client.get(keys.statistics_key(_prefix(), "controlnet", False)) is None
    assert client.get(keys.statistics_key(_prefix(), "image_generation", False)) is not None


def test_redis_down_at_start_still_commits_the_snapshot_and_exits_4(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://user:hunter2@127.0.0.1:{free_port()}/0")
    assert main(["run"]) == 4
    assert len(manifests(tmp_path / "snapshots")) == 1
    err = capsys.readouterr().err
    assert "redis unreachable" in err and "redis://user:***@127.0.0.1" in err
    assert "hunter2" not in err


def test_caches_serve_from_memory_when_redis_is_down() -> None:
    from tests.conftest import free_port

    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2)
    cache = StatisticsCache(dead, prefix="p", ttl=60, stale_ttl=600)
    value = CategoryStatistics.model_validate_json(_sample_statistics_json())
    key = cache.key("image_generation", False)
    cache.set(key, value)
    assert cache.get(key) == value
    assert cache.get(cache.key("text_generation", False)) is None


def _sample_statistics_json() -> str:
    from pipeline import load_records
    from pipeline.contracts.rules import AnalysisRules
    from pipeline.steps.outputs import run_outputs

    loaded = load_records(str(SAMPLE_DATA / "model_reference"))
    return run_outputs(loaded, None, AnalysisRules(), 1).statistics[("image_generation", False)].model_dump_json()


class _SilentServer:
    """A TCP server that accepts connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def test_a_hung_redis_costs_one_connection_not_a_retry_storm(
    silent_server: _SilentServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{silent_server.port}/0")
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT", "0.3")
    assert main(["run"]) == 4  # committed, not published
    assert len(manifests(tmp_path / "snapshots")) == 1
    assert silent_server.accepted == 1  # one PING timed out; redis-py's default retries are off


def test_cache_stops_asking_a_dead_redis(silent_server: _SilentServer) -> None:
    client = redis_client(f"redis://127.0.0.1:{silent_server.port}/0", socket_timeout=0.2)
    cache = StatisticsCache(client, prefix="p", ttl=60, stale_ttl=600)
    for _ in range(20):
        assert cache.get("p:stats:x:grouped=false") is None
    assert silent_server.accepted == 1


def test_a_second_run_exits_3_while_the_lock_is_held(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    holder = RedisLock(_client(redis_url), keys.lock_key(_prefix()), ttl_ms=30_000)
    with holder:
        assert main(["run"]) == 3
    assert main(["run"]) == 0


def test_a_crashed_holders_lock_expires(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    # a holder that died: the key with a short expiry and nobody renewing it
    _client(redis_url).set(keys.lock_key(_prefix()), "dead-token", px=300)
    assert main(["run"]) == 3
    lock = _client(redis_url)
    wait_until(lambda: not lock.exists(keys.lock_key(_prefix())), timeout=10, what="the dead holder's lock to expire")
    assert main(["run"]) == 0


def test_lock_release_checks_the_token_and_renewal_keeps_it(redis_url: str) -> None:
    client = _client(redis_url)
    first = RedisLock(client, "p:lock", ttl_ms=300)
    first.acquire()
    # renewed (its time to live rose) more than three times, a third of the TTL apart: held past its first expiry,
    # which only renewal can do
    last_ttl, renewals = [client.pttl("p:lock")], [0]

    def renewed() -> bool:
        ttl = client.pttl("p:lock")
        renewals[0] += ttl > last_ttl[0]
        last_ttl[0] = ttl
        return renewals[0] > 3

    wait_until(renewed, timeout=10, what="four renewals of the lock")
    with pytest.raises(LockHeldError):
        RedisLock(client, "p:lock", ttl_ms=300).acquire()
    first.stop_renewing()  # as a crashed holder would
    wait_until(lambda: not client.exists("p:lock"), timeout=10, what="the unrenewed lock to expire")
    second = RedisLock(client, "p:lock", ttl_ms=5_000)
    second.acquire()
    assert first.release() is False  # the expired holder cannot free the new holder's lock
    assert client.get("p:lock") == second.token.encode()
    assert second.release() is True


def test_stale_while_revalidate_in_memory() -> None:
    now = [1000.0]
    refreshes: list[str] = []
    cache = StatisticsCache(None, prefix="p", ttl=10, stale_ttl=100, on_stale=refreshes.append, clock=lambda: now[0])
    value = CategoryStatistics.model_validate_json(_sample_statistics_json())
    cache.set("p:stats:image_generation:grouped=false", value)
    now[0] += 5
    assert cache.get("p:stats:image_generation:grouped=false") == value and refreshes == []
    now[0] += 45
    assert cache.get("p:stats:image_generation:grouped=false") == value
    assert cache.get("p:stats:image_generation:grouped=false") == value
    assert refreshes == ["p:stats:image_generation:grouped=false"]  # one refresh per stale period
    now[0] += 60
    assert cache.get("p:stats:image_generation:grouped=false") is None


def test_stale_while_revalidate_reads_age_from_redis(redis_url: str) -> None:
    refreshes: list[str] = []
    cache = StatisticsCache(_client(redis_url), prefix="p", ttl=10, stale_ttl=100, on_stale=refreshes.append)
    value = CategoryStatistics.model_validate_json(_sample_statistics_json())
    key = cache.key("image_generation", False)
    cache.set(key, value)
    assert cache.get(key) == value and refreshes == []
    _client(redis_url).pexpire(key, 50_000)  # half of the stale TTL has elapsed: past the fresh TTL
    other = StatisticsCache(_client(redis_url), prefix="p", ttl=10, stale_ttl=100, on_stale=refreshes.append)
    assert other.get(key) == value
    assert refreshes == [key]


def _empty_risk(category: str) -> CategoryDeletionRiskResponse:
    """A deletion-risk response with no models."""
    return CategoryDeletionRiskResponse.model_validate(
        {
            "category": category,
            "category_total_month_usage": 0,
            "total_count": 0,
            "returned_count": 0,
            "models": [],
            "summary": {
                "total_models": 0,
                "models_at_risk": 0,
                "models_critical": 0,
                "models_with_warnings": 0,
                "models_with_zero_day_usage": 0,
                "models_with_zero_month_usage": 0,
                "models_with_zero_total_usage": 0,
                "models_with_no_active_workers": 0,
                "models_with_no_downloads": 0,
                "models_with_non_preferred_hosts": 0,
                "models_with_multiple_hosts": 0,
                "models_with_low_usage": 0,
                "average_risk_score": 0.0,
                "category_total_month_usage": 0,
            },
        }
    )


def test_cache_is_thread_safe(redis_url: str) -> None:
    cache = DeletionRiskCache(_client(redis_url), prefix="p", ttl=60, stale_ttl=600)
    template = _empty_risk("c")
    errors: list[BaseException] = []
    hits = [0]

    def worker(index: int) -> None:
        try:
            for round_ in range(50):
                key = cache.key(f"cat{index % 4}", bool(round_ % 2))
                cache.set(key, template.model_copy(update={"total_count": index}))
                got = cache.get(key)  # None is legal: another thread may have invalidated the category
                if got is not None:
                    assert got.category == "c" and 0 <= got.total_count < 16
                    hits[0] += 1
                if round_ % 10 == 0:
                    cache.invalidate_category(f"cat{(index + 1) % 4}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert hits[0] > 400
    assert all(key.startswith("p:deletion_risk:cat") for key in cache.memory_keys())
    cache.set(cache.key("cat0", False), template)
    assert cache.get(cache.key("cat0", False)) == template


def test_invalidation_drops_a_category_in_every_cache_and_in_redis(redis_url: str) -> None:
    bus = InvalidationBus(_client(redis_url), "p")
    stats = StatisticsCache(_client(redis_url), prefix="p", ttl=60, stale_ttl=600)
    risk = DeletionRiskCache(_client(redis_url), prefix="p", ttl=60, stale_ttl=600)
    stats.register_invalidation(bus)
    risk.register_invalidation(bus)
    value = CategoryStatistics.model_validate_json(_sample_statistics_json())
    for category in ("image_generation", "text_generation"):
        stats.set(stats.key(category, False), value)
        risk.set(risk.key(category, False), _empty_risk(category))
    other_process = _client(redis_url)
    other_process.publish(keys.invalidate_channel("p"), "image_generation")
    wait_until(
        lambda: not any("image_generation" in key for key in stats.memory_keys() + risk.memory_keys()),
        timeout=5,
        what="both caches to drop image_generation",
    )
    wait_until(
        lambda: _client(redis_url).get(stats.key("image_generation", False)) is None,
        timeout=5,
        what="Redis to drop image_generation's statistics",
    )
    assert _client(redis_url).get(risk.key("image_generation", False)) is None
    assert stats.memory_keys() == [stats.key("text_generation", False)]
    assert (
        _client(redis_url).get(risk.key("text_generation", False))
        == _empty_risk("text_generation").model_dump_json().encode()
    )
    bus.close()


def test_hydrator_schedule_failures_and_wake() -> None:
    settings = load_settings(cache_hydration_startup_delay_seconds=0, cache_hydration_interval_seconds=30)
    calls: list[float] = []

    def cycle() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("horde timed out")

    async def scenario() -> CacheHydrator:
        hydrator = CacheHydrator(settings, cycle)
        await hydrator.start()
        with pytest.raises(HydratorAlreadyRunningError):
            await CacheHydrator(settings, cycle).start()
        while not calls:
            await asyncio.sleep(0.01)
        hydrator.wake()  # an invalidation: run again now instead of in 30 s
        while len(calls) < 2:
            await asyncio.sleep(0.01)
        await hydrator.stop()
        return hydrator

    hydrator = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert hydrator.failures == 1 and hydrator.cycles == 2


def test_hydrate_exits_0_on_sigterm_and_keeps_the_last_good_data(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["run"]) == 0
    prefix = _prefix()
    good = _client(redis_url).get(keys.statistics_key(prefix, "image_generation", False))
    env = os.environ | {
        "CACHE_HYDRATION_STARTUP_DELAY_SECONDS": "0",
        "CACHE_HYDRATION_INTERVAL_SECONDS": "0.2",
        "HORDE_SOURCE": str(tmp_path / "missing-horde"),  # every cycle fails
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs", "hydrate"], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert process.stderr is not None
    failures = 0
    for line in process.stderr:
        if "hydration cycle failed" in line:
            failures += 1
            if failures == 2:
                break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert failures == 2
    assert _client(redis_url).get(keys.statistics_key(prefix, "image_generation", False)) == good


def test_hydrate_publishes_with_the_stale_ttl(redis_url: str, tmp_path: Path) -> None:
    env = os.environ | {
        "REDIS_URL": redis_url,
        "CACHE_HYDRATION_STARTUP_DELAY_SECONDS": "0",
        "CACHE_HYDRATION_INTERVAL_SECONDS": "60",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs", "hydrate"], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "hydration cycle finished" in line:
            break
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    ttl = _client(redis_url).ttl(keys.statistics_key(os.environ["REDIS_KEY_PREFIX"], "image_generation", True))
    assert 300 < ttl <= 3600


def test_an_invalidation_over_redis_wakes_the_hydrator(redis_url: str) -> None:
    settings = load_settings(cache_hydration_startup_delay_seconds=0, cache_hydration_interval_seconds=60)
    cycles: list[float] = []

    async def scenario() -> None:
        hydrator = CacheHydrator(settings, lambda: cycles.append(time.monotonic()))
        bus = InvalidationBus(_client(redis_url), "p")
        bus.subscribe(lambda category: hydrator.wake())  # as `horde-analytics hydrate` wires it
        await hydrator.start()
        while not cycles:
            await asyncio.sleep(0.01)
        _client(redis_url).publish(keys.invalidate_channel("p"), "text_generation")  # another process
        deadline = time.monotonic() + 10
        while len(cycles) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await hydrator.stop()
        bus.close()

    asyncio.run(scenario())
    assert len(cycles) == 2  # recomputed at once, not after the 60 s interval


def test_a_cycle_fetches_horde_data_once_for_every_view(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counted(settings: Settings, fetcher: HttpFetcher, previous: PreviousRecords | None) -> batch.RunInputs:
        calls.append("load")
        return batch.load_inputs(settings, fetcher, previous)

    report = batch.run_once(load_settings(), load=counted)
    assert calls == ["load"]
    assert set(report.outputs.deletion_risk) == {
        ("image_generation", False, False),
        ("image_generation", True, False),
        ("text_generation", False, False),
        ("text_generation", True, False),
        ("text_generation", False, True),
    }


def test_caches_take_their_ttls_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATISTICS_CACHE_TTL", "11")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_DELETION_RISK_CACHE_TTL", "22")
    monkeypatch.setenv("CACHE_HYDRATION_STALE_TTL_SECONDS", "99")
    settings = load_settings()
    stats, risk = StatisticsCache.from_settings(settings, None), DeletionRiskCache.from_settings(settings, None)
    assert (stats.ttl, stats.stale_ttl, risk.ttl, risk.stale_ttl) == (11, 99, 22, 99)
    assert (
        isinstance(stats, StatisticsCache)
        and stats.key("c", True) == f"{settings.redis_key_prefix}:stats:c:grouped=true"
    )


def test_a_password_never_reaches_logs_or_errors(
    password_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", password_redis.url)
    assert main(["run"]) == 0  # authenticated: publishes
    assert _client(password_redis.url).get(keys.last_run_key(_prefix_or_default())) is not None
    # Redis dies while the run waits for the Horde API (a real kill, after the run took its lock): the run
    # commits, then cannot publish
    gated = GatedHorde()

    def kill_redis_then_answer() -> None:
        gated.wait_entered()
        password_redis.stop()
        gated.open()

    killer = threading.Thread(target=kill_redis_then_answer, daemon=True)
    killer.start()
    monkeypatch.setenv("HORDE_SOURCE", gated.url)
    try:
        exit_code = main(["run"])
    finally:
        killer.join(timeout=60)
        gated.close()
    assert exit_code == 4  # committed; Redis died before the publish
    captured = capsys.readouterr()
    assert "committed but not published" in captured.err
    assert "s3cret-Hunter2" not in captured.err + captured.out
    assert "default:***@127.0.0.1" in captured.err


def _prefix_or_default() -> str:
    return os.environ.get("REDIS_KEY_PREFIX", "horde:model_ref")


def test_hydrator_warns_when_the_interval_is_not_below_the_ttl(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(cache_hydration_interval_seconds=400)  # TTLs are 300 by default
    with caplog.at_level("WARNING"):
        CacheHydrator(settings, lambda: None)
    assert any("interval is not below the cache TTL" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        CacheHydrator(load_settings(cache_hydration_interval_seconds=240), lambda: None)
    assert not caplog.records
