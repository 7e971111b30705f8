import functools
import json
import os
import pathlib
import subprocess
import sys

import pytest

import roombook
from roombook.routing.ring import ShardRing, jump_hash

ROOM_COUNT = 100_000


@functools.cache
def placements(shard_count: int) -> tuple[int, ...]:
    """The shard of rooms 1..ROOM_COUNT (room ids are assigned sequentially by the store)."""
    ring = ShardRing(shard_count)
    return tuple(ring.shard_of(room_id) for room_id in range(1, ROOM_COUNT + 1))


def placements_in_another_process(hash_seed: str, shard_counts: list[int], room_ids: list[int]):
    code = (
        "import json, sys\n"
        "from roombook.routing.ring import ShardRing\n"
        "shard_counts, room_ids = json.load(sys.stdin)\n"
        "print(json.dumps([[ShardRing(n).shard_of(r) for r in room_ids] for n in shard_counts]))\n"
    )
    source_root = str(pathlib.Path(roombook.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": pythonpath}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([shard_counts, room_ids]),
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


# -- stability ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_placements_are_the_same_in_another_process_with_another_hash_seed(hash_seed):
    shard_counts = [1, 7, 64, 1000]
    room_ids = [*range(2_000), 2**31, 2**40 + 3, 2**63 - 1]

    theirs = placements_in_another_process(hash_seed, shard_counts, room_ids)

    ours = [[ShardRing(n).shard_of(r) for r in room_ids] for n in shard_counts]
    assert theirs == ours


def test_placements_do_not_change_between_releases():
    """Pinned values: changing them moves every room of a running deployment to another shard."""
    assert [ShardRing(10).shard_of(r) for r in (0, 1, 42, 123456789)] == [8, 9, 0, 4]
    assert [ShardRing(1000).shard_of(r) for r in (0, 1, 42, 123456789)] == [258, 527, 151, 534]


@pytest.mark.parametrize(
    ("key", "buckets", "bucket"),
    [(1, 1, 0), (42, 57, 43), (256, 1024, 520), (0xDEAD10CC, 1, 0), (0xDEAD10CC, 666, 361),
     (16045690984833335023, 255, 237), (0, 60, 0), (1, 60, 55), (2, 60, 46)],
)  # fmt: skip
def test_jump_hash_gives_the_published_algorithms_answers(key, buckets, bucket):
    """Known answers of the paper's C++ code (as checked by ClickHouse and the Go and Rust ports)."""
    assert jump_hash(key, buckets) == bucket


# -- balance -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shard_count", [2, 3, 5, 8, 13, 32])
def test_rooms_spread_over_shards_within_ten_percent_of_even(shard_count):
    counts = [0] * shard_count
    for shard_id in placements(shard_count):
        counts[shard_id] += 1

    even = ROOM_COUNT / shard_count
    assert min(counts) >= 0.9 * even
    assert max(counts) <= 1.1 * even


def test_one_shard_owns_every_room():
    assert set(placements(1)) == {0}


# -- growth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shard_count", [1, 2, 4, 7, 16, 31])
def test_growing_by_one_shard_moves_rooms_only_to_the_new_shard(shard_count):
    moved_to = {
        new for old, new in zip(placements(shard_count), placements(shard_count + 1), strict=True) if old != new
    }

    assert moved_to == {shard_count}


@pytest.mark.parametrize("shard_count", [1, 2, 4, 7, 16, 31])
def test_growing_by_one_shard_moves_about_one_room_in_n_plus_one(shard_count):
    moved = sum(old != new for old, new in zip(placements(shard_count), placements(shard_count + 1), strict=True))

    expected = ROOM_COUNT / (shard_count + 1)
    assert abs(moved - expected) <= 0.1 * expected


# -- the ring's contract -----------------------------------------------------------------------


def test_a_room_is_owned_by_exactly_the_shard_it_is_placed_on():
    ring = ShardRing(5)

    for room_id in range(200):
        owners = [shard_id for shard_id in range(5) if ring.owns(shard_id, room_id)]
        assert owners == [ring.shard_of(room_id)]


def test_every_placement_is_a_valid_shard_id():
    assert set(placements(13)) == set(range(13))


@pytest.mark.parametrize("shard_count", [0, -1])
def test_a_ring_needs_at_least_one_shard(shard_count):
    with pytest.raises(ValueError, match="at least 1"):
        ShardRing(shard_count)


def test_jump_hash_needs_at_least_one_bucket():
    with pytest.raises(ValueError, match="at least 1"):
        jump_hash(42, 0)
