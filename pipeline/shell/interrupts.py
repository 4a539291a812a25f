"""SIGTERM / SIGINT during a run: stop at the next stage boundary, clean up, exit non-zero (SPEC §12).

A handler only records the request; the run checks it between stages (``StopRequest.check``), so a stop never
leaves a half-written file and the usual failure path removes the run's uncommitted files and releases its
locks. A second signal raises at once (the same cleanup runs), for an operator who does not want to wait.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = [
    "STOP_SIGNALS",
    "RunInterrupted",
    "StopRequest",
    "stop_on_signals",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(Exception):
    """The run was asked to stop by a signal; nothing of it was committed."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; nothing committed")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal."""
        return 128 + self.signum


class StopRequest:
    """Whether a stop was asked for, and by which signal (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise RunInterrupted when a stop was requested (called at each stage boundary)."""
        if self.signum is not None and self._event.is_set():
            raise RunInterrupted(self.signum)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """Route SIGTERM and SIGINT to ``stop`` while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise RunInterrupted(signum)  # asked twice: stop now, through the same cleanup
        stop.request(signum)

    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
