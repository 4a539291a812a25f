"""Redis: atomic publishing of a run, typed caches with stale-while-revalidate, invalidation (SPEC §7.1)."""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import redis
from pydantic import BaseModel
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.contracts import keys
from pipeline.contracts.masking import masked_url
from pipeline.contracts.models import CategoryDeletionRiskResponse, CategoryStatistics, LastRun
from pipeline.contracts.settings import Settings
from pipeline.sinks.lock import RedisLock
from pipeline.steps.audit import audit_json
from pipeline.steps.changes import changes_json

if TYPE_CHECKING:
    from pipeline.steps.outputs import RunOutputs

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
#: How long a cache stops asking Redis after it failed (no retry storm against a dead server).
REDIS_RETRY_AFTER_SECONDS = 5.0


class PublishError(RuntimeError):
    """A committed run could not be published; Redis still serves the previous run (exit 4)."""


class RedisConfigError(RuntimeError):
    """Redis refused this configuration (bad URL, credentials or database): exit 2, before any work."""


#: Server replies that mean the configuration is wrong, not that Redis is away (SPEC §1: exit 2).
_CONFIG_ERRORS = (redis.AuthenticationError, redis.exceptions.AuthorizationError, redis.ResponseError)


def redis_client(url: str, socket_timeout: float = 2.0) -> redis.Redis:
    """A client that fails fast: short timeouts and no retries (redis-py would otherwise retry with backoff)."""
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    except ValueError as error:
        raise RedisConfigError(
            f"REDIS_URL {masked_url(url)!r} is not a Redis URL ({error}); e.g. redis://:password@host:6379/0"
        ) from None


def _compact(model: BaseModel) -> str:
    return model.model_dump_json()


#: key -> (value, expiry seconds or None for no expiry): what one run writes to Redis.
RedisValues = dict[str, tuple[str, int | None]]


class RedisPublisher:
    """Writes every key of a run in one MULTI/EXEC transaction (a reader never sees two runs mixed)."""

    def __init__(self, client: redis.Redis, settings: Settings, *, url: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self.url = masked_url(url) or "redis"
        #: Why Redis was found away by ``unreachable_reason`` (then a run does not wait for it a second time).
        self.down: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisPublisher:
        assert settings.redis_url, "REDIS_URL is not set"
        return cls(redis_client(settings.redis_url, settings.redis_socket_timeout), settings, url=settings.redis_url)

    def unreachable_reason(self) -> str | None:
        """None when Redis answers; why not when it is away (down, timing out).

        Raises RedisConfigError when the server answers but refuses us (wrong or missing password, a database
        index it does not have): those are configuration errors, with the server's own reason.
        """
        try:
            self.client.ping()
        except _CONFIG_ERRORS as error:
            raise RedisConfigError(f"redis at {self.url} refused the configuration: {error}") from None
        except redis.RedisError as error:
            self.down = f"{type(error).__name__}: {error}"
        else:
            self.down = None
        return self.down

    def lock(self, ttl_ms: int | None = None) -> RedisLock:
        """The one-run-at-a-time lock of this prefix."""
        ttl = ttl_ms if ttl_ms is not None else int(self.settings.redis_lock_ttl_seconds * 1000)
        return RedisLock(self.client, keys.lock_key(self.settings.redis_key_prefix), ttl)

    @contextmanager
    def run_lock(self) -> Iterator[RedisLock | None]:
        """Hold the lock for a run; None (with a warning) when Redis cannot give it, so the run commits its
        snapshot under the store's own lock and exits 4. Raises LockHeldError when another run holds it."""
        lock = self.lock()
        if self.down is None:  # found away already: not asked again, a hung server costs one timeout
            try:
                lock.acquire()
            except redis.RedisError as error:  # down, read-only replica, out of memory: no publish possible
                self.down = f"{type(error).__name__}: {error}"
        if self.down is not None:
            log.warning(
                "redis unusable: committing the snapshot only, not publishing",
                extra={"redis": self.url, "error": self.down},
            )
            yield None
            return
        try:
            yield lock
        finally:
            lock.release()

    def _expiry(self, ttl: int) -> int:
        # While hydration is enabled keys outlive their TTL so readers keep the last good data (SPEC §7.1).
        return self.settings.cache_hydration_stale_ttl_seconds if self.settings.cache_hydration_enabled else ttl

    def values(self, outputs: RunOutputs, run_id: str) -> dict[str, tuple[str, int]]:
        """key -> (compact JSON, expiry seconds) for every object of a run."""
        prefix = self.settings.redis_key_prefix
        found: dict[str, tuple[str, int]] = {}
        for (category, grouped), stats in outputs.statistics.items():
            found[keys.statistics_key(prefix, category, grouped)] = (
                _compact(stats),
                self._expiry(self.settings.statistics_cache_ttl),
            )
        # Each value is built once: views that share their table and shape (image grouped and ungrouped, where
        # grouping changes nothing, SPEC §5) share one JSON string.
        built: dict[tuple[Any, ...], str] = {}
        for (category, grouped, variations), risk in outputs.deletion_risk.items():
            shape = (id(risk.table), risk.category, risk.with_variations, risk.run_id, risk.limit, risk.total_count)
            if shape not in built:
                built[shape] = risk.json()
            found[keys.deletion_risk_key(prefix, category, grouped, variations)] = (
                built[shape],
                self._expiry(self.settings.deletion_risk_cache_ttl),
            )
        for (table, category), findings in outputs.tables.items():
            if table == "audit":  # SPEC §11; expires like the statistics it sits beside
                audit = audit_json(findings, category=category, run_id=run_id)
                found[keys.audit_key(prefix, category)] = (audit, self._expiry(self.settings.statistics_cache_ttl))
        for (table, category), frame in outputs.tables.items():
            if table == "changes":  # SPEC §10: the latest run's changes, in the same transaction
                found[keys.changes_key(prefix, category)] = (
                    changes_json(frame, category=category, run_id=run_id),
                    self._expiry(self.settings.deletion_risk_cache_ttl),
                )
        return found

    def run_values(self, outputs: RunOutputs, last_run: LastRun) -> RedisValues:
        """Everything a run writes to Redis: ``values`` plus ``last_run`` (which never expires).

        The one place a run's outputs become Redis values: the run stores them in its snapshot before the
        commit, and both the publish and ``run --republish`` send exactly these.
        """
        found: RedisValues = dict(self.values(outputs, last_run.run_id))
        found[keys.last_run_key(self.settings.redis_key_prefix)] = (_compact(last_run), None)
        return found

    def stored(self, run_id: str, values: RedisValues) -> dict[str, Any]:
        """``values`` as a snapshot artifact: keys without the prefix, so a republish uses today's prefix."""
        head = self.settings.redis_key_prefix + ":"
        assert all(key.startswith(head) for key in values), "a run value outside REDIS_KEY_PREFIX"
        return {
            "run_id": run_id,
            "keys": {key[len(head) :]: [value, expiry] for key, (value, expiry) in values.items()},
        }

    def restored(self, document: dict[str, Any]) -> RedisValues:
        """The values of a stored artifact, under this publisher's prefix."""
        prefix = self.settings.redis_key_prefix
        return {f"{prefix}:{key}": (value, expiry) for key, (value, expiry) in document["keys"].items()}

    def publish(self, values: RedisValues, fence: RedisLock) -> list[str]:
        """Publish ``values`` in one transaction that applies only while ``fence`` is ours.

        Raises LockLostError (nothing applied) when the lock is no longer ours, PublishError (nothing applied,
        as far as this process can tell) when Redis fails. A timed-out EXEC may still be applied by a stalled
        server later; that is harmless because only committed runs are ever published (SPEC §12).
        """
        prefix = self.settings.redis_key_prefix
        last_run_key = keys.last_run_key(prefix)
        index = keys.published_keys_key(prefix)
        published = sorted(key for key in values if key != last_run_key)
        try:
            previous = {member.decode() for member in self.client.smembers(index)}  # type: ignore[union-attr]
            previous_run = self.client.get(last_run_key)

            def queue(pipe: Any) -> None:
                for key, (value, expiry) in values.items():
                    pipe.set(key, value, ex=expiry)
                retired = sorted(previous - set(published))
                if retired:
                    pipe.delete(*retired)  # keys the last run wrote and this one does not: no mix of runs
                pipe.delete(index)
                if published:
                    pipe.sadd(index, *published)

            fence.transaction(queue)
        except redis.RedisError as error:
            raise PublishError(
                f"publishing to {self.url} failed, Redis still serves the previous run: {error}"
            ) from None
        self._announce_changes(previous_run, values.get(last_run_key))
        return sorted(values)

    def _announce_changes(self, previous_run: Any, this_run: tuple[str, int | None] | None) -> None:
        """Publish an invalidation for each category whose input hash changed since the last run."""
        if previous_run is None or this_run is None:
            return
        old = json.loads(previous_run).get("input_hashes", {})
        new = json.loads(this_run[0]).get("input_hashes", {})
        changed = sorted(
            category
            for key, digest in new.items()
            if (category := keys.category_of_hash_key(key)) is not None and old.get(key) != digest
        )
        for category in changed:
            try:
                self.client.publish(keys.invalidate_channel(self.settings.redis_key_prefix), category)
            except redis.RedisError as error:
                log.warning("invalidation not announced", extra={"category": category, "error": str(error)})


class InvalidationBus:
    """One pub/sub listener per process and prefix; calls every subscriber with the invalidated category."""

    def __init__(self, client: redis.Redis | None, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._subscribers: list[Callable[[str], None]] = []
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._pubsub: Any = None
        self._ready = threading.Event()

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(category)`` on every invalidation message (starts the listener once)."""
        with self._lock:
            self._subscribers.append(callback)
            if self._thread is None and self.client is not None:
                self._thread = threading.Thread(target=self._listen, name="invalidation-listener", daemon=True)
                self._thread.start()
        self._ready.wait(timeout=5)

    def deliver(self, category: str) -> None:
        """Hand ``category`` to every subscriber (also used in-process when Redis is down)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(category)
            except Exception:
                log.exception("invalidation subscriber failed", extra={"category": category})

    def _listen(self) -> None:
        assert self.client is not None
        while True:
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(keys.invalidate_channel(self.prefix))
                self._pubsub = pubsub
                self._ready.set()
                log.info("invalidation listener subscribed", extra={"channel": keys.invalidate_channel(self.prefix)})
                for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self.deliver(data.decode() if isinstance(data, bytes) else str(data))
            except redis.RedisError:
                self._ready.set()
                time.sleep(REDIS_RETRY_AFTER_SECONDS)  # Redis away: keep trying quietly, slowly
            except Exception:  # the pubsub was closed by close()
                return

    def close(self) -> None:
        if self._pubsub is not None:
            with suppress(Exception):
                self._pubsub.close()


class RedisCache(ABC, Generic[ModelT]):
    """A typed cache: Redis first, then an in-process dict with timestamps (SPEC §7.1).

    A subclass names its key prefix (``namespace``), its TTL, its Pydantic model, and how it learns about
    invalidation (``register_invalidation``). ``get`` returns a fresh value, a stale value while younger than the
    stale TTL (and calls ``on_stale`` once per key and stale period, so the caller gets the value at once and a
    refresh starts), or None.
    """

    namespace: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    #: The Settings field holding this cache's TTL.
    ttl_setting: ClassVar[str]

    def __init__(
        self,
        client: redis.Redis | None,
        *,
        prefix: str,
        ttl: float,
        stale_ttl: float,
        on_stale: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.stale_ttl = max(stale_ttl, ttl)
        self.on_stale = on_stale
        self._clock = clock
        self._memory: dict[str, tuple[ModelT, float]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.RLock()
        self._redis_down_until = 0.0

    @classmethod
    def from_settings(
        cls, settings: Settings, client: redis.Redis | None, on_stale: Callable[[str], None] | None = None
    ) -> Self:
        """The cache configured from settings: its own TTL (``ttl_setting``), the shared stale TTL."""
        return cls(
            client,
            prefix=settings.redis_key_prefix,
            ttl=getattr(settings, cls.ttl_setting),
            stale_ttl=settings.cache_hydration_stale_ttl_seconds,
            on_stale=on_stale,
        )

    def register_invalidation(self, bus: InvalidationBus) -> None:
        """Learn about data changes: drop a category's entries when the bus announces it."""
        bus.subscribe(self.invalidate_category)

    def key_prefix(self) -> str:
        return f"{self.prefix}:{self.namespace}:"

    # --- Redis, guarded so that a dead server costs one short timeout per REDIS_RETRY_AFTER_SECONDS --------

    def _redis(self) -> redis.Redis | None:
        if self.client is None or self._clock() < self._redis_down_until:
            return None
        return self.client

    def _redis_failed(self, error: Exception) -> None:
        self._redis_down_until = self._clock() + REDIS_RETRY_AFTER_SECONDS
        log.warning("redis unavailable; serving from memory", extra={"error": str(error)})

    def _decode(self, raw: bytes | str) -> ModelT:
        value: ModelT = self.model.model_validate_json(raw)  # type: ignore[assignment]
        return value

    # --- the cache ----------------------------------------------------------------------------------

    def set(self, key: str, value: ModelT) -> None:
        """Store ``value`` in Redis (expiring after the stale TTL) and in memory."""
        with self._lock:
            self._memory[key] = (value, self._clock())
            self._refreshing.discard(key)
        client = self._redis()
        if client is not None:
            try:
                client.set(key, value.model_dump_json(), ex=int(self.stale_ttl))
            except redis.RedisError as error:
                self._redis_failed(error)

    def get(self, key: str) -> ModelT | None:
        """The value of ``key``: fresh, stale-while-revalidate, or None (SPEC §7.1)."""
        client = self._redis()
        if client is not None:
            try:
                pipe = client.pipeline(transaction=False)
                pipe.get(key)
                pipe.pttl(key)
                raw, remaining_ms = pipe.execute()
            except redis.RedisError as error:
                self._redis_failed(error)
            else:
                if raw is not None:
                    value = self._decode(raw)
                    # Keys are written to expire after the stale TTL: what has elapsed of it is the value's age.
                    age = self.stale_ttl - remaining_ms / 1000 if remaining_ms and remaining_ms > 0 else 0.0
                    with self._lock:
                        self._memory[key] = (value, self._clock() - age)
                    return self._served(key, value, age)
        with self._lock:
            entry = self._memory.get(key)
        if entry is None:
            return None
        value, stored_at = entry
        age = self._clock() - stored_at
        if age >= self.stale_ttl:
            with self._lock:
                self._memory.pop(key, None)
            return None
        return self._served(key, value, age)

    def _served(self, key: str, value: ModelT, age: float) -> ModelT:
        if age >= self.ttl and self.on_stale is not None:
            with self._lock:
                first = key not in self._refreshing
                self._refreshing.add(key)
            if first:
                self.on_stale(key)
        return value

    def invalidate_category(self, category: str) -> None:
        """Drop every entry of ``category`` from memory and from Redis."""
        with self._lock:
            doomed = [key for key in self._memory if keys.category_of(self.prefix, key) == category]
            for key in doomed:
                self._memory.pop(key, None)
                self._refreshing.discard(key)
        client = self._redis()
        if client is not None:
            try:
                pattern = f"{self.key_prefix()}{category}:*"
                redis_keys = list(client.scan_iter(match=pattern, count=500))
                if redis_keys:
                    client.delete(*redis_keys)
            except redis.RedisError as error:
                self._redis_failed(error)

    def memory_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._memory)


class StatisticsCache(RedisCache[CategoryStatistics]):
    """``{prefix}:stats:{category}:grouped=...`` -> CategoryStatistics."""

    namespace = "stats"
    model = CategoryStatistics
    ttl_setting = "statistics_cache_ttl"

    def key(self, category: str, grouped: bool) -> str:
        return keys.statistics_key(self.prefix, category, grouped)


class DeletionRiskCache(RedisCache[CategoryDeletionRiskResponse]):
    """``{prefix}:deletion_risk:{category}:grouped=...[:variations=true]`` -> CategoryDeletionRiskResponse."""

    namespace = "deletion_risk"
    model = CategoryDeletionRiskResponse
    ttl_setting = "deletion_risk_cache_ttl"

    def key(self, category: str, grouped: bool, variations: bool = False) -> str:
        return keys.deletion_risk_key(self.prefix, category, grouped, variations)
