"""The renewal both run locks share (the Redis lock, the store's lock object): a daemon thread that renews a lease
every third of its TTL, so a run longer than the TTL keeps its lock and a dead run's lock expires."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["LeaseRenewal"]


class LeaseRenewal:
    """Calls ``renew`` every ``interval`` seconds on its own thread until ``stop``, or until ``renew`` returns False
    (the lease is no longer ours: renewing it further would be wrong)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, renew: Callable[[], bool], interval: float) -> None:
        self._stop.clear()

        def renew_until_stopped() -> None:
            while not self._stop.wait(interval):
                if not renew():
                    return

        self._thread = threading.Thread(target=renew_until_stopped, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the lease then lapses after its TTL unless it is released)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
