"""Publishing a committed run to Redis in one transaction, fenced by the run lock (SPEC §7.1, §12)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import polars as pl
import redis

from pipeline.contracts import keys
from pipeline.contracts.masking import masked_url
from pipeline.contracts.models import LastRun
from pipeline.contracts.settings import Settings
from pipeline.sinks.lock import RedisLock
from pipeline.sinks.redis_client import CONFIG_ERRORS, RedisConfigError, redis_client
from pipeline.sinks.redis_values import RedisValues, output_values, restored_values, run_values, stored_values

if TYPE_CHECKING:
    from pipeline.steps.outputs import RunOutputs

__all__ = [
    "PublishError",
    "RedisPublisher",
]

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """A committed run could not be published; Redis still serves the previous run (exit 4)."""


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
        except CONFIG_ERRORS as error:
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

    def values(self, outputs: RunOutputs, run_id: str) -> RedisValues:
        """key -> (compact JSON, expiry seconds) for every object of a run (``redis_values.output_values``)."""
        return output_values(outputs, run_id, self.settings)

    def run_values(self, outputs: RunOutputs, last_run: LastRun) -> RedisValues:
        """Everything a run writes to Redis (``redis_values.run_values``)."""
        return run_values(outputs, last_run, self.settings)

    def stored(self, values: RedisValues) -> pl.DataFrame:
        """``values`` as a snapshot artifact: keys without the prefix, so a republish uses today's prefix."""
        return stored_values(values, self.settings.redis_key_prefix)

    def restored(self, stored: pl.DataFrame | dict[str, Any]) -> RedisValues:
        """The values of a stored artifact, under this publisher's prefix."""
        return restored_values(stored, self.settings.redis_key_prefix)

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
                # bytes go to the socket as they are (redis-py encodes a str again, and copies small values)
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

    def _announce_changes(self, previous_run: Any, this_run: tuple[bytes, int | None] | None) -> None:
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
