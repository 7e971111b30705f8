"""The operations bench.handoff runs under its storm, one after another, and what each measures.

Windows of one operation (by when an attempt ended): `before` is the W seconds before it started,
`during` its span plus 1 s, `after` the W seconds after that. The longest gap is the longest time
in `during` with no answer at all. A failed request is counted by the operation whose span, up to
the next operation's start, it started in.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.handoff.cluster import LocalCluster
from bench.handoff.storm import BOOKED, FAILED, Storm, longest_gap_s, window
from roombook.actors import ray_runtime
from roombook.routing.ring import ShardRing
from roombook.storage.ports import ShardStore

Figures = dict[str, Any]
DURING_TAIL_S = 1.0
OBSERVE_S = 10.0  # how long a node's removal is watched


class Timeline:
    def __init__(self, storm: Storm, cluster: LocalCluster, store: ShardStore, *, namespace: str, window_s: float):
        self.storm = storm
        self.cluster = cluster
        self.store = store
        self.namespace = namespace
        self.window_s = window_s
        self.operations: list[Figures] = []

    async def measure(self, name: str, operation: Callable[[], Awaitable[Figures]]) -> Figures:
        samples = self.storm.samples
        print(f"{time.strftime('%H:%M:%S')} {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            figures = await operation()
        except Exception as exc:  # reported, and the run goes on: the verification still runs
            figures = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        ended = time.monotonic()
        await asyncio.sleep(DURING_TAIL_S + self.window_s)
        during_end = ended + DURING_TAIL_S
        result: Figures = {
            "operation": name,
            "started": started,
            "took_s": ended - started,
            "windows": {
                "before": window(samples, started - self.window_s, started),
                "during": window(samples, started, during_end),
                "after": window(samples, during_end, during_end + self.window_s),
            },
            "longest_gap_s": longest_gap_s(samples, started, during_end),
            "figures": figures,
        }
        self.operations.append(result)
        return result

    def count_failures(self, storm_end: float) -> None:
        starts = [op["started"] for op in self.operations] + [storm_end]
        for op, until in zip(self.operations, starts[1:], strict=True):
            op["failed"] = sum(1 for s in self.storm.samples if s[3] == FAILED and op["started"] <= s[0] < until)

    async def ring(self) -> ShardRing:
        ring = await self.store.ring()
        assert ring is not None  # recorded when the shards started
        return ring

    async def placement(self) -> dict[str, list[int]]:
        """node id -> the shards its actors own now, every worker node listed."""
        ring = await self.ring()
        placed = await asyncio.wait_for(ray_runtime.shard_nodes(ring.shard_count, namespace=self.namespace), 60)
        by_node: dict[str, list[int]] = {node: [] for node in self.cluster.worker_ids()}
        for shard_id, node in placed.items():
            by_node.setdefault(node, []).append(shard_id)
        return by_node

    # -- the operations -------------------------------------------------------------------------

    async def baseline(self) -> Figures:
        await asyncio.sleep(self.window_s)
        return {}

    async def move(self, shard_id: int = 0) -> Figures:
        report = await ray_runtime.move_shard(shard_id, namespace=self.namespace)
        return {
            "shard": shard_id,
            "pause_s": report.pause_s,
            "move_took_s": report.took_s,
            "from_node": report.from_node,
            "to_node": report.to_node,
        }

    async def add_node_and_rebalance(self) -> Figures:
        added = await asyncio.to_thread(self.cluster.add_node)
        ring = await self.ring()
        placed = await ray_runtime.shard_nodes(ring.shard_count, namespace=self.namespace)
        plan = ray_runtime.rebalance_plan(placed, ray_runtime.alive_nodes())
        pauses = []
        for shard_id, node in plan:
            report = await ray_runtime.move_shard(shard_id, namespace=self.namespace, to_node=node)
            pauses.append(report.pause_s)
        return {
            "node_added": added,
            "moves": [[shard_id, node] for shard_id, node in plan],
            "pause_s": max(pauses, default=0.0),
            "pauses_s": pauses,
            "placement_after": await self.placement(),
        }

    async def resize(self, shard_count: int) -> Figures:
        report = await ray_runtime.resize_shards(shard_count, store=self.store, namespace=self.namespace)
        return {
            "from_ring": list(report.from_ring),
            "to_ring": list(report.to_ring),
            "pause_s": report.pause_s,
            "pause_parts_s": {"stop": report.stop_s, "record": report.record_s, "restart": report.restart_s},
            "resize_took_s": report.took_s,
            "placement_after": await self.placement(),
        }

    async def remove_busiest_node(self) -> Figures:
        """Kill the worker node whose actors own the most shards; Ray restarts them elsewhere, they
        reload from the store. Watched for OBSERVE_S after the kill. A shard's recovery: from the
        kill to the end of the first successful booking on it after its longest stretch with none
        (a process of a killed node can go on answering briefly); None if it serves none in the
        last second watched."""
        ring = await self.ring()
        before = await self.placement()
        victim = max(self.cluster.worker_ids(), key=lambda node: len(before.get(node, [])))
        lost_shards = sorted(before[victim])
        acknowledged_before = len(self.storm.acknowledged)
        killed = time.monotonic()
        await asyncio.to_thread(self.cluster.remove_node, victim)
        await asyncio.sleep(max(0.0, killed + OBSERVE_S - time.monotonic()))
        recovery = {
            str(shard_id): _recovery_s(self.storm.samples, ring, shard_id, killed, killed + OBSERVE_S)
            for shard_id in lost_shards
        }
        found = [v for v in recovery.values() if v is not None]
        figures: Figures = {
            "node_removed": victim,
            "shards_on_it": lost_shards,
            "recovery_s": recovery,
            "recovered_s": max(found) if len(found) == len(recovery) else None,
            "acknowledged_before_kill": acknowledged_before,
        }
        try:
            figures["placement_after"] = await asyncio.wait_for(self.placement(), 20)
        except Exception as exc:
            figures["placement_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return figures


def _recovery_s(
    samples: list[tuple[float, float, int, str]], ring: ShardRing, shard_id: int, since: float, until: float
) -> float | None:
    ends = sorted(s[1] for s in samples if s[3] == BOOKED and since <= s[1] < until and ring.shard_of(s[2]) == shard_id)
    if not ends or ends[-1] < until - 1.0:
        return None
    marks = [since, *ends]
    gap_end = max(range(1, len(marks)), key=lambda i: marks[i] - marks[i - 1])
    return marks[gap_end] - since
