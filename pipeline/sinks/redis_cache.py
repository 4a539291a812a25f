"""Typed caches of published values: Redis first, then an in-process dict, stale-while-revalidate (SPEC §7.1).

Publishing lives in ``redis_publisher``, the values in ``redis_values``, invalidation in ``invalidation``, the
client in ``redis_client``.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC
from collections.abc import Callable
from typing import ClassVar, Generic, Self, TypeVar

import redis
from pydantic import BaseModel

from pipeline.contracts import keys
from pipeline.contracts.models import CategoryDeletionRiskResponse, CategoryStatistics
from pipeline.contracts.settings import Settings
from pipeline.sinks.invalidation import InvalidationBus
from pipeline.sinks.redis_client import REDIS_RETRY_AFTER_SECONDS

__all__ = [
    "DeletionRiskCache",
    "RedisCache",
    "StatisticsCache",
]

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)


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
