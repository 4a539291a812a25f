"""One run at a time: a Redis lock (SET NX PX, token-checked release, renewed while held) (SPEC §7.1)."""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType
from typing import Final

import redis

log = logging.getLogger(__name__)

# Release and renew only while we still own the lock: a crashed holder's lock may have expired and been
# taken by another run, which a plain DEL or PEXPIRE would then break.
_RELEASE: Final = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)


class LockHeldError(RuntimeError):
    """Another run holds the lock."""


class RedisLock:
    """A context manager holding ``key`` for ``ttl_ms``, renewed every third of it until released."""

    def __init__(self, client: redis.Redis, key: str, ttl_ms: int = 60_000) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockHeldError."""
        if not self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            raise LockHeldError(f"another run holds the lock {self.key}")
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="lock-renewer", daemon=True)
        self._renewer.start()

    def release(self) -> bool:
        """Give the lock back; False when it was no longer ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            return bool(self.client.eval(_RELEASE, 1, self.key, self.token))
        except redis.RedisError as error:
            log.warning("lock release failed; it expires by itself", extra={"error": str(error)})
            return False

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                    log.error("lock lost while running", extra={"key": self.key})
                    return
            except redis.RedisError as error:
                log.warning("lock renewal failed", extra={"error": str(error)})

    def __enter__(self) -> RedisLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
