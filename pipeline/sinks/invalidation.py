"""Invalidation over Redis pub/sub: a category announced on ``{prefix}:analytics:invalidate`` reaches every
subscriber of every process (SPEC §7.1)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import redis

from pipeline.contracts import keys
from pipeline.sinks.redis_client import REDIS_RETRY_AFTER_SECONDS

__all__ = [
    "InvalidationBus",
]

log = logging.getLogger(__name__)


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
