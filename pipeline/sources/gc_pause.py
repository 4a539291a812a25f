"""Decoding without the cyclic garbage collector, which the decoders' millions of objects would keep waking."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (re-entrant; restores the previous state).

    Decoding builds millions of small containers (lists, tuples) and every allocation burst triggers a
    collection that walks all of them: at 1000x scale that was 45 % of loading the records. Nothing decoded
    forms a reference cycle, so reference counting alone frees it all. The switch is process-wide: in an app that
    embeds the hydrator, other threads run without cyclic collection while a run loads (reference counting still
    frees their acyclic garbage); overlapping blocks leave the collector as the first one found it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
