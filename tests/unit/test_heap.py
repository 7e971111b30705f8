"""roombook.heap: freezing the start-up heap out of the cyclic GC, and timing its collections."""

from __future__ import annotations

import gc
import weakref

from roombook.heap import GcPauses, freeze_startup_heap, frozen_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_a_frozen_block_hides_the_heap_from_the_collector_and_gives_it_back_after():
    kept = [Node() for _ in range(100)]
    with frozen_heap() as count:
        assert count >= 100 and gc.get_freeze_count() >= 100
        assert not any(kept[0] is obj for obj in gc.get_objects())  # frozen: out of every generation
    assert gc.get_freeze_count() == 0
    assert any(kept[0] is obj for obj in gc.get_objects())


def test_freezing_collects_the_garbage_first_so_no_cycle_is_frozen_dead():
    node = Node()
    garbage = weakref.ref(node)
    del node  # unreachable now, but a cycle: reference counting cannot free it
    try:
        freeze_startup_heap()
        assert garbage() is None  # collected before the freeze, not kept frozen for ever
    finally:
        gc.unfreeze()


def test_a_disabled_frozen_block_freezes_nothing():
    with frozen_heap(enabled=False) as count:
        assert count == 0 == gc.get_freeze_count()


def test_pauses_are_recorded_per_collection_and_taken_once():
    recorder = GcPauses()
    try:
        gc.collect(2)
        gc.collect(0)
        pauses = recorder.take()
        assert [generation for generation, _ in pauses][-2:] == [2, 0]
        assert all(seconds >= 0 for _, seconds in pauses)
        assert recorder.take() == []
    finally:
        recorder.close()
    gc.collect()
    assert recorder.take() == []  # closed: no longer told


def test_only_the_most_recent_pauses_are_kept():
    recorder = GcPauses(keep=3)
    try:
        for _ in range(5):
            gc.collect(0)
        assert len(recorder.take()) == 3
    finally:
        recorder.close()
