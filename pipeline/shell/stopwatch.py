"""Seconds and CPU seconds per stage of a run, each stage logged as it finishes (SPEC §9 progress)."""

from __future__ import annotations

import logging
import time

from pipeline.shell.interrupts import StopRequest

__all__ = ["Stopwatch"]

log = logging.getLogger(__name__)


class Stopwatch:
    """Seconds spent per named stage, measured between successive ``lap`` calls; each lap is logged, so a long
    run shows its progress stage by stage (on a terminal as readable lines, elsewhere as JSON events).

    A lap is also a stage boundary: a stop requested by a signal is honoured there (``stop.check``).
    """

    def __init__(self, stop: StopRequest | None = None) -> None:
        self.laps: dict[str, float] = {}
        #: CPU seconds of this process per stage (all its threads): what a stage costs whatever else the machine runs
        self.cpu_laps: dict[str, float] = {}
        self._last = time.perf_counter()
        self._last_cpu = time.process_time()
        self._stop = stop

    def lap(self, stage: str, *, stoppable: bool = True) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.laps[stage] = round(now - self._last, 4)
        self.cpu_laps[stage] = round(cpu - self._last_cpu, 4)
        self._last, self._last_cpu = now, cpu
        log.info("stage finished", extra={"stage": stage, "seconds": round(self.laps[stage], 2)})
        if stoppable and self._stop is not None:
            self._stop.check()
