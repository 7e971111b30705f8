"""An asyncio event loop on virtual time: when nothing is ready, time jumps to the next timer.

The product's own asyncio code (sleeps, wait_for, the shard's linger and sweep timers) runs on it
unchanged. Nothing here does I/O, so the selector never waits: a select with a timeout is the
moment time moves. Callbacks run in the loop's FIFO order and timers in deadline order, so one
seed gives one interleaving.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

START_S = 1_000_000.0  # virtual seconds since the epoch at the start of every run


class SimulationStuck(RuntimeError):
    """Every task waits and no timer is set: nothing can ever happen again."""


class _VirtualSelector(selectors.BaseSelector):
    """Keeps registrations (the loop's self-pipe) and turns a select's timeout into virtual time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._keys: dict[FileDescriptorLike, selectors.SelectorKey] = {}  # by file descriptor

    def register(self, fileobj: FileDescriptorLike, events: int, data: object = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise SimulationStuck("no callback is ready and no timer is set")
        if timeout > 0:
            self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`time()` is virtual; pass it as the product's clock too, so every part sees one time."""

    def __init__(self, start_s: float = START_S) -> None:
        self._now = start_s
        self.advances = 0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self.advances += 1
