"""`roombook shards`: each shard's rooms and lease in the store and, given a Ray cluster to ask,
its live actor's status beside them.

Read-only: it creates no shard actor, starts no shard and migrates nothing. Taking a shard writes
a new epoch into `shard_leases`, which fences the shard's current owner for good, so a status
command that brought shards up would stop a running deployment's writes.
"""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import asyncmy.errors

from roombook import bootstrap
from roombook.config import Settings, env_name
from roombook.routing.ring import ShardRing
from roombook.storage.ports import ShardLease
from roombook.storage.sql.sqlite_db import sqlite_path

if TYPE_CHECKING:
    from roombook.actors.ray_runtime import FoundShard

_NONE = "-"
_MYSQL_NO_SUCH_TABLE = 1146


async def show_shards(settings: Settings) -> None:
    ring, leases, rooms = await _read_store(settings)
    shard_ids = sorted(set(range(ring.shard_count)) | leases.keys())
    if settings.runtime == "ray" and settings.ray_address:
        found = await bootstrap.live_shard_actors(settings, shard_ids)
        print(
            f"live shard actors of the Ray cluster at {settings.ray_address} (namespace {settings.ray_namespace}),"
            f" beside the store's leases; {_ring_words(ring)}"
        )
        print(f"{'shard':>5} {'rooms':>7} {'epoch':>6} {'serving':>7} {'pending':>7} {'rows':>8} {'lease':>6}  owner")
        for shard in found:
            print(_live_row(shard, ring, rooms, leases.get(shard.shard_id)))
        return
    print(
        f"the store's view (leases as last taken, rooms by {_ring_words(ring)}); to ask the live shard actors,"
        " name their Ray cluster: --ray-address or RAY_ADDRESS (with the ray runtime)"
    )
    print(
        f"{'shard':>5} {'rooms':>7} {'epoch':>6} {'commits':>8} {'renewed':>8} {'live':>4}  {'acquired_at':<25}  owner"
    )
    for shard_id in shard_ids:
        lease = leases.get(shard_id)
        row = f"{shard_id:>5} {_rooms(shard_id, ring, rooms):>7} "
        if lease is None:
            row += f"{_NONE:>6} {_NONE:>8} {_NONE:>8} {_NONE:>4}  {_NONE:<25}  (no lease)"
        else:
            acquired_at = lease.acquired_at.isoformat(timespec="seconds")
            renewed = _NONE if lease.renewed_s_ago is None else f"{lease.renewed_s_ago:.1f}s"
            live = "yes" if lease.live else "no"
            row += f"{lease.epoch:>6} {lease.commits:>8} {renewed:>8} {live:>4}  {acquired_at:<25}  {lease.owner}"
            if lease.actor or lease.deployment:
                row += f" (actor {lease.actor or _NONE}, deployment {lease.deployment or _NONE})"
        print(row + _outside(shard_id, ring))


def _live_row(shard: FoundShard, ring: ShardRing, rooms: collections.Counter[int], lease: ShardLease | None) -> str:
    s = shard.status
    row = f"{shard.shard_id:>5} {_rooms(shard.shard_id, ring, rooms):>7} "
    lease_epoch = _NONE if lease is None else str(lease.epoch)
    if s is None:
        row += f"{_NONE:>6} {_NONE:>7} {_NONE:>7} {_NONE:>8} {lease_epoch:>6}  {shard.missing}"
    else:
        row += f"{s.epoch:>6} {s.serving!s:>7} {s.pending:>7} {s.rows:>8} {lease_epoch:>6}  {s.owner}"
    if lease is not None and (s is None or lease.owner != s.owner):
        row += f" (lease held by {lease.owner})"
    return row + _outside(shard.shard_id, ring)


def _rooms(shard_id: int, ring: ShardRing, rooms: collections.Counter[int]) -> str:
    return str(rooms[shard_id]) if shard_id < ring.shard_count else _NONE


def _outside(shard_id: int, ring: ShardRing) -> str:
    """The mark of a shard id another shard count wrote a lease for."""
    return "" if shard_id < ring.shard_count else f"  [not in the ring of {ring.shard_count} shards]"


def _ring_words(ring: ShardRing) -> str:
    if ring.version == 0:
        return f"the ring of {ring.shard_count} shards ({env_name('shards')}: the store records none yet)"
    return f"the store's ring of {ring.shard_count} shards (version {ring.version})"


async def _read_store(
    settings: Settings,
) -> tuple[ShardRing, dict[int, ShardLease], collections.Counter[int]]:
    """The store's ring (else, while it records none, ROOMBOOK_SHARDS'), every lease by shard id, and
    the catalogue's rooms counted per shard of that ring. Reads only."""
    _refuse_a_missing_sqlite_file(settings.dsn("global"))
    async with bootstrap.global_store(settings) as store:
        try:
            ring = await store.ring() or ShardRing(settings.shards)
            leases = await store.leases()
            room_ids = await store.room_ids()
        except (sqlite3.OperationalError, asyncmy.errors.ProgrammingError) as exc:
            if not _no_such_table(exc):
                raise
            raise SystemExit("roombook: the store has no schema yet (`roombook migrate` creates it)") from None
    return ring, {lease.shard_id: lease for lease in leases}, collections.Counter(map(ring.shard_of, room_ids))


def _refuse_a_missing_sqlite_file(dsn: str) -> None:
    """Opening a SQLite store creates its file: a status command must not (a mistyped data dir)."""
    if dsn.startswith("sqlite:///") and not Path(sqlite_path(dsn)).is_file():
        raise SystemExit(f"roombook: no store at {sqlite_path(dsn)} (`roombook migrate` creates it)")


def _no_such_table(exc: sqlite3.OperationalError | asyncmy.errors.ProgrammingError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).startswith("no such table")
    return bool(exc.args) and exc.args[0] == _MYSQL_NO_SUCH_TABLE


# -- operations on a running deployment (they need its Ray cluster) -------------------------------


async def move_shard(settings: Settings, shard_id: int, to_node: str | None) -> None:
    ring = ShardRing(settings.shards)
    if not 0 <= shard_id < ring.shard_count:
        raise SystemExit(f"roombook: shard {shard_id} is not in the ring of {ring.shard_count} shards")
    async with bootstrap.deployment_cluster(settings) as cluster:
        node = None if to_node is None else cluster.node_named(to_node)
        report = await cluster.move(shard_id, node)
    print(
        f"shard {report.shard_id}: {report.from_actor} on {report.from_node[:12]} -> {report.to_actor} on"
        f" {report.to_node[:12]}, epoch {report.epoch}; paused {report.pause_s * 1000:.0f} ms,"
        f" took {report.took_s:.2f} s"
    )


async def rebalance_shards(settings: Settings) -> None:
    async with bootstrap.deployment_cluster(settings) as cluster:
        placed = await cluster.shard_nodes()
        plan = cluster.rebalance_plan(placed)
        if not plan:
            print(f"{len(placed)} shards over {len(cluster.nodes())} nodes: already even, nothing moved")
            return
        for shard_id, node in plan:
            report = await cluster.move(shard_id, node)
            print(
                f"shard {shard_id}: {report.from_node[:12]} -> {report.to_node[:12]}, epoch {report.epoch};"
                f" paused {report.pause_s * 1000:.0f} ms"
            )
        print(f"moved {len(plan)} of {len(placed)} shards over {len(cluster.nodes())} nodes")


async def resize_shards(settings: Settings, shard_count: int) -> None:
    """Live, through the deployment's Ray cluster; else, with nothing serving, in the store alone."""
    if settings.runtime == "ray" and settings.ray_address:
        async with bootstrap.deployment_cluster(settings) as cluster:
            report = await cluster.resize(shard_count)
        if report.from_ring == report.to_ring:
            print(f"the ring has {shard_count} shards already (version {report.to_ring[0]}): nothing changed")
            return
        print(
            f"ring {report.from_ring[0]} ({report.from_ring[1]} shards) -> ring {report.to_ring[0]}"
            f" ({report.to_ring[1]} shards); paused {report.pause_s * 1000:.0f} ms (stop {report.stop_s * 1000:.0f},"
            f" record {report.record_s * 1000:.0f}, restart {report.restart_s * 1000:.0f}), took {report.took_s:.2f} s"
        )
        return
    ring, leases, _ = await _read_store(settings)
    live = sorted(shard_id for shard_id, lease in leases.items() if lease.live)
    if live:
        raise SystemExit(
            f"roombook: shards {', '.join(map(str, live))} are owned by a running deployment: resize it through"
            " its Ray cluster (--ray-address or RAY_ADDRESS), or stop it first"
        )
    async with bootstrap.global_store(settings) as store:
        new = await store.change_ring(ring.version, shard_count)
        for shard_id in range(shard_count, ring.shard_count):  # fence whatever may be left of them
            await store.acquire_shard(shard_id, f"retired by ring {new.version}")
    print(
        f"ring {ring.version} ({ring.shard_count} shards) -> ring {new.version} ({new.shard_count} shards), in the"
        " store: the shards load by it when the deployment starts"
    )


async def stop_shards(settings: Settings) -> None:
    async with bootstrap.deployment_cluster(settings) as cluster:
        ended = await cluster.stop()
    print(f"drained and ended {len(ended)} shard actors" + (f": {', '.join(ended)}" if ended else ""))
