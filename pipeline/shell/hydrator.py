"""CacheHydrator: runs the batch on a schedule so Redis always holds fresh results (SPEC §8).

An asyncio application (a FastAPI app embedding the caches) calls ``await start()`` and ``await stop()`` from its
lifespan; the CLI ``hydrate`` runs ``serve()``. A cycle is one ``run_once``: Horde data is fetched once and every
category × variant is computed from it. A failed cycle is logged and retried next interval; Redis keeps the
last good data meanwhile (keys live for the stale TTL while hydrating).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import ClassVar

from pipeline.contracts.settings import Settings

__all__ = [
    "CacheHydrator",
    "HydratorAlreadyRunningError",
]

log = logging.getLogger(__name__)


class HydratorAlreadyRunningError(RuntimeError):
    """A process runs at most one CacheHydrator."""


class CacheHydrator:
    """Wait the startup delay, run, sleep the interval, repeat, until stopped."""

    _active: ClassVar[CacheHydrator | None] = None
    _active_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: Settings, cycle: Callable[[], object]) -> None:
        self.settings = settings
        self._cycle = cycle
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.cycles = 0
        self.failures = 0
        ttl = min(settings.statistics_cache_ttl, settings.deletion_risk_cache_ttl)
        if settings.cache_hydration_interval_seconds >= ttl:
            log.warning(
                "hydration interval is not below the cache TTL: readers will see stale data between cycles",
                extra={"interval": settings.cache_hydration_interval_seconds, "ttl": ttl},
            )

    async def start(self) -> None:
        """Begin the schedule in the running event loop (one hydrator per process)."""
        with CacheHydrator._active_lock:
            if CacheHydrator._active is not None:
                raise HydratorAlreadyRunningError("this process already runs a CacheHydrator")
            CacheHydrator._active = self
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._task = asyncio.create_task(self._schedule(), name="cache-hydrator")

    async def stop(self) -> None:
        """Finish the current cycle (if any) and end the schedule."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        with CacheHydrator._active_lock:
            if CacheHydrator._active is self:
                CacheHydrator._active = None

    def wake(self) -> None:
        """Run the next cycle now (thread-safe; used when an invalidation arrives)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _schedule(self) -> None:
        await self._sleep(self.settings.cache_hydration_startup_delay_seconds)
        while not self._stopping.is_set():
            try:
                # In a worker thread: the event loop keeps serving while the batch computes.
                await asyncio.to_thread(self._cycle)
                log.info("hydration cycle finished", extra={"cycle": self.cycles})
            except Exception as error:
                self.failures += 1
                log.error("hydration cycle failed; retrying next interval", extra={"error": str(error)})
            self.cycles += 1
            if self._stopping.is_set():
                break
            await self._sleep(self.settings.cache_hydration_interval_seconds)

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then finish the current cycle and return."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping_requested, signum)
        await self.start()
        await self._stopping.wait()
        await self.stop()

    def _stopping_requested(self, signum: int) -> None:
        log.info("signal received; finishing the current cycle", extra={"signal": signal.Signals(signum).name})
        self._stopping.set()
        self._wake.set()
