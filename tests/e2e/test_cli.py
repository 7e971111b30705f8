"""The operator commands as real processes: migrate, seed and shards on the embedded stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from roombook.routing.ring import ShardRing


def roombook(data_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    command = [sys.executable, "-m", "roombook", "--data-dir", str(data_dir), "--runtime", "local", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_shards_lists_each_shard_with_the_rooms_the_ring_gives_it(tmp_path: Path):
    assert "global: applied [" in roombook(tmp_path, "migrate")
    assert "added 60 demo rooms (ids 1..60)" in roombook(tmp_path, "seed", "--rooms", "60")
    assert "not seeding" in roombook(tmp_path, "seed", "--rooms", "5", "--if-empty")

    out = roombook(tmp_path, "--shards", "3", "shards")
    header, *rows = out.strip().splitlines()
    assert header.split()[:6] == ["shard", "rooms", "epoch", "serving", "pending", "rows"]
    table = {int(r.split()[0]): r.split() for r in rows}
    ring = ShardRing(3)
    expected = [sum(ring.shard_of(room_id) == shard for room_id in range(1, 61)) for shard in range(3)]
    assert [int(table[shard][1]) for shard in range(3)] == expected
    assert all(table[shard][3] == "True" and int(table[shard][2]) >= 1 for shard in range(3))
