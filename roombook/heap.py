"""The cyclic garbage collector in long-lived processes.

A serving process imports and builds a large heap before its first request (a Ray worker alone
holds about 100,000 objects the collector tracks), and every full collection (generation 2) walks
all of it while the event loop stands still: tens of milliseconds in the shard actors and the
client, each one a stall of every command in flight (`bench.knobs --knob gc-freeze` shows them).
`gc.freeze` after start-up takes what start-up built out of the collector's sight. Objects freed
by reference counting are freed as before; only cycles among frozen objects are never collected,
so a process freezes once, after start-up.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any


def freeze_startup_heap(*, collect: bool = True) -> int:
    """Collect what start-up left behind (unless done already), then freeze the rest; returns how
    many objects are frozen."""
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextlib.contextmanager
def frozen_heap(enabled: bool = True) -> Iterator[int]:
    """freeze_startup_heap for the length of a block, then back to normal (for a process that
    builds and drops whole systems, such as a benchmark between rounds). Yields the frozen count."""
    if not enabled:
        yield 0
        return
    try:
        yield freeze_startup_heap()
    finally:
        gc.unfreeze()


class GcPauses:
    """Records how long each collection of this process stops it: (generation, seconds), the most
    recent `keep` of them (a process nobody asks keeps a bounded record, not a growing one)."""

    def __init__(self, keep: int = 4096) -> None:
        self._pauses: collections.deque[tuple[int, float]] = collections.deque(maxlen=keep)
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pauses.append((info["generation"], time.perf_counter() - self._started))

    def take(self) -> list[tuple[int, float]]:
        """The pauses since the last take (or since recording began)."""
        pauses = list(self._pauses)
        self._pauses.clear()
        return pauses

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._observe)
