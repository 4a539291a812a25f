"""One run at a time on the snapshot store itself (SPEC §7.1, §9).

A folder is locked with ``flock`` on ``{root}/.lock`` (the kernel releases it when the process dies). An object
store has no such thing, so the lock is an object, ``_lock.json``, holding a random token and an expiry:

- **take**: a conditional put (``If-None-Match: *``); of several runs exactly one creates it.
- **hold**: renewed every third of its TTL by a conditional replace on the ETag this run last wrote
  (``If-Match``): a renewal that fails means another run took the lock over.
- **take over a stale lock**: a lock whose expiry (plus ``CLOCK_SKEW_SECONDS`` for clocks that disagree) has
  passed belongs to a run that died (SIGKILL, a lost pod). It is replaced by a conditional put on the ETag that
  was read (``If-Match``), so of several runs that see the same stale lock exactly one wins; the others exit 3.
  A holder that was only paused (SIGSTOP, a stalled VM) for longer than its TTL finds the token changed at its
  next renewal or at ``verify`` just before its manifest, and commits nothing (exit 3).
- **release**: delete, only while the token is still ours.

A lock object that cannot be parsed is not ours to judge: it is reported as held (the message names it) and
is never taken over; deleting it by hand is the remedy.

A run takes this lock whether or not Redis fences it (``pipeline.sinks.lock``), as it takes a folder's flock:
``history --rebuild`` and runs without Redis know only this one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol

from pipeline.sinks.lease_renewal import LeaseRenewal
from pipeline.sinks.store import FolderStore, SnapshotStore

log = logging.getLogger(__name__)

LOCK_KEY: Final = "_lock.json"
#: How long a lock object lives without renewal; a killed run blocks the store at most this long (plus skew).
DEFAULT_LOCK_TTL_SECONDS: Final = 60.0
#: Clocks of two machines may disagree by this much; a lock is stale only after its expiry plus this margin.
CLOCK_SKEW_SECONDS: Final = 10.0


class SnapshotLockedError(RuntimeError):
    """Another run holds the snapshot store (exit 3)."""


class SnapshotLockLostError(SnapshotLockedError):
    """This run's lock object was taken over by another run: it must commit nothing (exit 3)."""


class StoreFence(Protocol):
    """What a run holds while it writes: ``verify`` raises SnapshotLockLostError when it no longer does."""

    def verify(self) -> None: ...


class _FolderFence:
    """flock cannot be lost while the process lives: nothing to verify."""

    def verify(self) -> None:
        return None


class ObjectLock:
    """The lock object of an object store (the rules are in the module docstring)."""

    def __init__(
        self,
        store: SnapshotStore,
        ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.token = uuid.uuid4().hex
        self._version: str | None = None
        self._guard = threading.Lock()
        self._renewal = LeaseRenewal("store-lock-renewer")
        self.lost = threading.Event()

    @property
    def where(self) -> str:
        return f"{self.store.location.rstrip('/')}/{LOCK_KEY}"

    def _body(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "expires_at": self.clock() + self.ttl_seconds,
                "holder": f"{socket.gethostname()}:{os.getpid()}",
            }
        ).encode()

    def acquire(self) -> None:
        """Take the lock (or a stale one over), or raise SnapshotLockedError."""
        version = self.store.put_if_absent(LOCK_KEY, self._body())
        if version is None:
            version = self._take_over_stale()
        self._version = version
        self.lost.clear()
        self._renewal.start(self._renew_or_retry, self.ttl_seconds / 3)

    def _take_over_stale(self) -> str:
        try:
            data, version = self.store.get_versioned(LOCK_KEY)
        except FileNotFoundError:  # released between our put and our read: try once more, plainly
            created = self.store.put_if_absent(LOCK_KEY, self._body())
            if created is None:
                raise SnapshotLockedError(f"another run holds the lock {self.where}") from None
            return created
        held = _parsed(data)
        if held is None:
            raise SnapshotLockedError(f"the lock {self.where} cannot be read; if no run is going, delete it")
        expired_for = self.clock() - (held["expires_at"] + CLOCK_SKEW_SECONDS)
        if expired_for <= 0:
            raise SnapshotLockedError(f"another run ({held.get('holder', '?')}) holds the lock {self.where}")
        taken = self.store.replace_if_unchanged(LOCK_KEY, self._body(), version)
        if taken is None:  # another run took it over first
            raise SnapshotLockedError(f"another run holds the lock {self.where}")
        log.warning(
            "stale snapshot lock taken over",
            extra={"lock": self.where, "holder": held.get("holder"), "expired_seconds_ago": round(expired_for, 1)},
        )
        return taken

    def _renew(self) -> bool:
        with self._guard:
            if self._version is None:
                return False
            renewed = self.store.replace_if_unchanged(LOCK_KEY, self._body(), self._version)
            if renewed is None:
                self.lost.set()
                return False
            self._version = renewed
            return True

    def _renew_or_retry(self) -> bool:
        """One renewal; False when the lock is no longer ours (renewing stops)."""
        try:
            if not self._renew():
                log.error("snapshot lock lost while running", extra={"lock": self.where})
                return False
        except OSError as error:  # the store unreachable for a moment: the next renewal tries again
            log.warning("snapshot lock renewal failed", extra={"lock": self.where, "error": str(error)})
        return True

    def verify(self) -> None:
        """Raise SnapshotLockLostError unless the lock object still holds our token (SPEC §12: the fence)."""
        if self.lost.is_set():
            raise SnapshotLockLostError(f"lost the lock {self.where}: another run holds it; nothing committed")
        try:
            held = _parsed(self.store.get(LOCK_KEY))
        except FileNotFoundError:
            held = None
        if held is None or held.get("token") != self.token:
            raise SnapshotLockLostError(f"lost the lock {self.where}: another run holds it; nothing committed")

    def stop_renewing(self) -> None:
        """Stop renewing, keeping the token: unless released first, the lock goes stale after its TTL. This is how
        a paused or dead holder looks to the other runs (tests play one with it)."""
        self._renewal.stop()

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still ours."""
        self.stop_renewing()
        with self._guard:
            try:
                held = _parsed(self.store.get(LOCK_KEY))
                if held is not None and held.get("token") == self.token:
                    self.store.delete(LOCK_KEY)
            except OSError as error:
                log.warning("snapshot lock release failed; it expires by itself", extra={"error": str(error)})
            self._version = None


def _parsed(data: bytes) -> dict[str, Any] | None:
    """A lock object's fields, or None when it is not one this job wrote."""
    try:
        held = json.loads(data)
    except ValueError:
        return None
    if not isinstance(held, dict) or not isinstance(held.get("expires_at"), int | float):
        return None
    return held


@contextmanager
def snapshot_lock(store: SnapshotStore, *, ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS) -> Iterator[StoreFence]:
    """An exclusive, non-blocking lock on the snapshot store; SnapshotLockedError when another run holds it."""
    if isinstance(store, FolderStore):
        with _folder_lock(store):
            yield _FolderFence()
        return
    lock = ObjectLock(store, ttl_seconds=ttl_seconds)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


@contextmanager
def _folder_lock(store: FolderStore) -> Iterator[None]:
    """flock on ``{root}/.lock`` (released when the process dies)."""
    import fcntl

    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotLockedError(f"another run holds {store.root / '.lock'}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
