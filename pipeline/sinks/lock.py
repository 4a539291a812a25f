"""One run at a time: a Redis lock that fences the commit and the Redis transaction (SPEC §7.1, §12).

Built on redis-py's own ``redis.lock.Lock`` (``SET NX PX`` with a random token, token-checked release and
renewal in Lua). What this module adds is the fence: a run may lose its lock without knowing it (paused by
SIGSTOP, a stalled VM, a long GC) while another run takes it, so the run checks the token just before its
manifest (``verify``) and inside its Redis transaction (``transaction``: WATCH the lock key, check the token,
MULTI/EXEC — an EXEC aborted by the watch means someone else wrote the key).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import redis
from redis.exceptions import LockError, WatchError
from redis.lock import Lock

from pipeline.sinks.lease_renewal import LeaseRenewal

__all__ = [
    "LockHeldError",
    "LockLostError",
    "RedisLock",
]

log = logging.getLogger(__name__)


class LockHeldError(RuntimeError):
    """Another run holds the lock."""


class LockLostError(RuntimeError):
    """This run's lock expired or was taken by another run: it must commit and publish nothing (exit 3)."""


class RedisLock:
    """A context manager holding ``key`` for ``ttl_ms``, renewed every third of it until released. ``ttl_ms`` has
    no default: a run passes ``REDIS_LOCK_TTL_SECONDS`` (whose default is ``Settings``')."""

    def __init__(self, client: redis.Redis, key: str, ttl_ms: int) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex
        # thread_local=False: the renewal thread must see the token the main thread acquired with.
        self._lock = Lock(client, key, timeout=ttl_ms / 1000, blocking=False, thread_local=False)
        self._renewal = LeaseRenewal("lock-renewer")
        #: Held by renewal and by a fenced transaction: our own PEXPIRE would otherwise trip the WATCH.
        self._renewing = threading.Lock()
        #: Set when a renewal found the key no longer ours.
        self.lost = threading.Event()

    def acquire(self) -> None:
        """Take the lock or raise LockHeldError (RedisError when Redis cannot be asked)."""
        if not self._lock.acquire(blocking=False, token=self.token):
            raise LockHeldError(f"another run holds the lock {self.key}")
        self.lost.clear()
        self._renewal.start(self._renew, self.ttl_ms / 3000)

    def stop_renewing(self) -> None:
        """Stop renewing, keeping the token: unless released first, the lock expires after its TTL. This is how
        a paused or dead holder looks to the other runs (tests play one with it)."""
        self._renewal.stop()

    def release(self) -> bool:
        """Give the lock back; False when it was no longer ours (or Redis could not be reached)."""
        self.stop_renewing()
        try:
            self._lock.release()
            return True
        except LockError:
            return False  # expired, maybe taken by another run: never delete a lock that is not ours
        except redis.RedisError as error:
            log.warning("lock release failed; it expires by itself", extra={"error": str(error)})
            return False

    def verify(self) -> None:
        """Raise LockLostError unless Redis still holds our token.

        When Redis cannot be asked the run goes on: the snapshot store has its own lock (flock), and the Redis
        transaction checks the token again, so an unverifiable lock can never publish.
        """
        if self.lost.is_set():
            raise LockLostError(f"lost the lock {self.key}: another run may hold it; nothing committed")
        try:
            owned = self._lock.owned()
        except redis.RedisError as error:
            log.warning("lock not verifiable: redis unreachable", extra={"error": str(error)})
            return
        if not owned:
            raise LockLostError(f"lost the lock {self.key}: another run may hold it; nothing committed")

    def transaction(self, queue: Callable[[Any], None]) -> list[Any]:
        """Run the commands ``queue(pipe)`` adds in one MULTI/EXEC that applies only while we hold the lock.

        Raises LockLostError (nothing applied) when the token is not ours or the key changed before EXEC.
        """
        with self._renewing:
            pipe = self.client.pipeline(transaction=True)
            try:
                pipe.watch(self.key)  # type: ignore[no-untyped-call]
                if pipe.get(self.key) != self.token.encode():
                    raise LockLostError(f"lost the lock {self.key} before publishing; nothing published")
                pipe.multi()
                queue(pipe)
                return list(pipe.execute())
            except WatchError:
                raise LockLostError(f"the lock {self.key} changed while publishing; nothing published") from None
            finally:
                pipe.reset()

    def _renew(self) -> bool:
        """One renewal; False when the lock is no longer ours (renewing stops)."""
        try:
            with self._renewing:
                self._lock.reacquire()  # back to the full TTL, only while the token is ours
        except LockError:
            log.error("lock lost while running", extra={"key": self.key})
            self.lost.set()
            return False
        except redis.RedisError as error:  # Redis away for a moment: the next renewal tries again
            log.warning("lock renewal failed", extra={"error": str(error)})
        return True

    def __enter__(self) -> RedisLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
