"""Writes run one at a time, in order, on one thread of their own, while the caller goes on computing.

A run's snapshot tables are written as each becomes final (SPEC §12 is unchanged: the manifest still goes last,
and a failed run removes every file it wrote). Polars encodes and compresses a table without the GIL, so the
writes use the core that compute leaves idle.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["WriteQueue"]


class WriteQueue:
    """Calls run in submission order on one thread; ``wait`` raises the first that failed; ``stop`` drops those
    not started and waits for the one running (so nothing is still writing when a failed run cleans up)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[object]] = []

    def submit(self, call: Callable[..., object], *args: object) -> None:
        """Queue ``call(*args)``."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._pending.append(self._pool.submit(call, *args))

    def wait(self) -> None:
        """Return once every queued call has run, and end the thread (``submit`` starts another); raise the first
        failure (in submission order)."""
        for future in self._pending:
            future.result()
        self.stop()

    def stop(self) -> None:
        """Cancel the calls not started, wait for the one running, and end the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
