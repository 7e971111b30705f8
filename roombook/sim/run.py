"""One seeded run: build the world, drive it, quiesce it, check it. `simulate` is the entry point.

Everything random comes from one random.Random(seed), and the loop is virtual-time and
single-threaded, so a seed replays step for step; `digest` hashes the trace to show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Sequence

import msgspec

from roombook.actors.client import AvailabilityClient
from roombook.actors.shard import GroupCommit, RoomShard
from roombook.domain.nights import Night
from roombook.routing.ring import ShardRing
from roombook.sim.cluster import Cluster, SimShards
from roombook.sim.loop import START_S, SimulationStuck, VirtualTimeLoop
from roombook.sim.model import Model, Violation
from roombook.sim.network import NetFaults, SimNetwork
from roombook.sim.store import SimStore, StoreFaults
from roombook.sim.workload import Chaos, Shape, Workload

QUIESCE_S = 300.0  # virtual seconds after the faults stop by which every command must be answered
_encoder = msgspec.msgpack.Encoder()


class SimResult(msgspec.Struct, frozen=True, kw_only=True):
    seed: int
    steps: int  # commands sent (guests, reconciler, readers, retries included)
    events: int  # frames delivered, store commits and clock jumps
    virtual_s: float
    commits: int
    lost_acks: int
    faults: int
    digest: str
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


def simulate(
    seed: int,
    *,
    steps: int = 400,
    shard_class: type[RoomShard] = RoomShard,
    store_faults: StoreFaults | None = None,
    trace: bool = False,
) -> SimResult:
    """Run one seed to the end (or to its first violation). store_faults replaces the store's
    faults the seed would draw (the rest of the world stays the seed's); trace=True prints every
    traced step."""
    loop = VirtualTimeLoop()
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # the product logs every fault it survives
    try:
        world = _World(seed, steps, shard_class, store_faults, trace, loop)
        return loop.run_until_complete(world.run())
    finally:
        _cancel_all(loop)
        loop.close()
        logging.disable(disabled)


class _World:
    def __init__(
        self,
        seed: int,
        steps: int,
        shard_class: type[RoomShard],
        store_faults: StoreFaults | None,
        echo: bool,
        loop: VirtualTimeLoop,
    ) -> None:
        self.seed = seed
        self.loop = loop
        self.rng = rng = random.Random(seed)
        self._hash = hashlib.blake2b(digest_size=16)
        self._echo = echo
        self.shape, drawn_faults, net_faults, group_commit, shard_count = _draw(rng)
        self.store = SimStore(random.Random(rng.random()), store_faults or drawn_faults, self.trace)
        self.network = SimNetwork(random.Random(rng.random()), net_faults, self.trace)
        self.ring = ShardRing(shard_count)
        self.cluster = Cluster(
            self.store, self.ring, self.network, shard_class=shard_class, group_commit=group_commit, trace=self.trace
        )
        self.model = Model(self.store.rows, loop.time)
        self.store.after_commit = self.model.check_store
        self.transports = [SimShards(self.cluster, self.network) for _ in range(3)]
        clients = [AvailabilityClient(transport, self.ring) for transport in self.transports]
        fronts, reconciler = clients[:2], clients[2]  # two front processes and the reconciler's
        workload_rng = random.Random(rng.random())
        self.workload = Workload(
            workload_rng, self.shape, fronts, reconciler, self.cluster, self.model, self.trace, steps
        )
        self.chaos = Chaos(random.Random(rng.random()), self.shape, self.store, self.network, self.cluster)
        loop.set_exception_handler(self._unhandled)

    def trace(self, kind: str, *fields: object) -> None:
        record = (round(self.loop.time(), 6), kind, *fields)
        self._hash.update(_encoder.encode(record))
        if self._echo:
            print(*record)

    async def run(self) -> SimResult:
        workload = self.workload
        for shard_id in range(self.ring.shard_count):
            await self.cluster.start_owner(shard_id)
        chaos = asyncio.ensure_future(self.chaos.run())
        tasks = [asyncio.ensure_future(workload.guest(n)) for n in range(self.shape.guests)]
        tasks += [asyncio.ensure_future(workload.reader(client)) for client in workload.fronts]
        tasks.append(asyncio.ensure_future(workload.reconciler()))
        try:
            stops = [asyncio.ensure_future(event.wait()) for event in (workload.budget_spent, self.model.violated)]
            await asyncio.wait(stops, return_when=asyncio.FIRST_COMPLETED)
            for stop in stops:
                stop.cancel()
            await self._quiesce(chaos, tasks)
        except SimulationStuck as exc:
            self.model.violate(f"stuck: {exc}")
        return self._result()

    async def _quiesce(self, chaos: asyncio.Future[None], tasks: Sequence[asyncio.Future[None]]) -> None:
        self.trace("quiesce")
        await self.chaos.stop()
        await chaos
        self.store.calm()
        self.network.calm()
        for shard_id, owners in self.cluster.owners.items():  # Ray has ended every older incarnation
            newest = self.cluster.newest(shard_id)
            for owner in owners:
                if owner is not newest:
                    self.cluster.crash(owner)
        deadline_s = self.loop.time() + QUIESCE_S
        pending = {task for task in tasks if not task.done()}
        while pending and not self.model.violations and self.loop.time() < deadline_s:
            _, pending = await asyncio.wait(pending, timeout=1.0)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.model.violate(f"a workload task failed: {task.exception()!r}")
        if pending and not self.model.violations:
            unanswered = [r.hold_id + ":" + (r.in_flight or "") for r in self.model.records.values() if r.in_flight]
            self.model.violate(f"{QUIESCE_S:.0f} s after the faults stopped, still unanswered: {unanswered[:8]}")
            self._check_owners()  # why, most likely
        if pending or self.model.violations:
            return
        await asyncio.sleep(self.shape.hold_ttl_s + 2.0)  # every hold expires, and is swept
        self.model.check_quiesced()
        self._check_owners()

    def _check_owners(self) -> None:
        for shard_id in range(self.ring.shard_count):
            owner = self.cluster.newest(shard_id)
            if owner is None:
                self.model.violate(f"shard {shard_id} has no owner after the faults stopped")
                continue
            status = owner.shard.status()
            lease = self.store.leases[shard_id]
            if not status.serving:
                self.model.violate(
                    f"shard {shard_id}: its newest owner {owner.name}, epoch {owner.epoch}, is not serving"
                )
            if lease.epoch != owner.epoch:
                self.model.violate(
                    f"shard {shard_id}: its newest owner has epoch {owner.epoch}, the store {lease.epoch}"
                )
            memory = {(n.room_id, n.date): n for n in owner.shard._calendar.rows()}
            stored = {key: n for key, n in self.store.rows.items() if self.ring.shard_of(key[0]) == shard_id}
            for key in sorted(memory.keys() | stored.keys()):
                if memory.get(key) != stored.get(key):
                    room_id, date = key
                    mine, theirs = _text(memory.get(key)), _text(stored.get(key))
                    self.model.violate(
                        f"shard {shard_id}: room {room_id} {date} is {mine} in memory, {theirs} in the store"
                    )
                    break

    def _result(self) -> SimResult:
        return SimResult(
            seed=self.seed,
            steps=self.workload.commands,
            events=self.network.frames + self.store.commits + self.loop.advances,
            virtual_s=round(self.loop.time() - START_S, 3),
            commits=self.store.commits,
            lost_acks=self.store.lost_acks,
            faults=self.chaos.faults,
            digest=self._hash.hexdigest(),
            violations=list(self.model.violations),
        )

    def _unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        self.model.violate(f"unhandled in the loop: {context.get('message')} {context.get('exception')!r}")


def _draw(rng: random.Random) -> tuple[Shape, StoreFaults, NetFaults, GroupCommit, int]:
    """A seed's world: how big, how busy, and which faults how often (some seeds are calm)."""

    def some(p_on: float, low: float, high: float) -> float:
        return rng.uniform(low, high) if rng.random() < p_on else 0.0

    shape = Shape(
        rooms=sorted(rng.sample(range(1, 50), rng.randint(1, 5))),
        nights=rng.randint(3, 12),
        guests=rng.randint(2, 10),
        hold_ttl_s=rng.uniform(1.0, 5.0),
        confirm_p=rng.uniform(0.5, 0.95),
        cancel_p=rng.uniform(0.0, 0.5),
        walk_away_p=some(0.5, 0.02, 0.2),
        fault_gap_s=rng.uniform(0.3, 5.0),
    )
    store = StoreFaults(
        fail_p=some(0.5, 0.005, 0.05),
        lost_ack_p=some(0.7, 0.005, 0.08),
        late_commit_p=some(0.4, 0.005, 0.05),
        stall_p=some(0.4, 0.01, 0.1),
    )
    net = NetFaults(
        drop_p=some(0.5, 0.001, 0.02),
        duplicate_p=some(0.4, 0.005, 0.05),
        reorder_p=some(0.4, 0.005, 0.05),
        spike_p=some(0.4, 0.005, 0.05),
    )
    group_commit = GroupCommit(
        enabled=rng.random() < 0.9,
        max_batch=rng.choice((1, 3, 1024)),
        linger_s=rng.choice((0.0, 0.001, 0.005)),
        linger_alone=rng.random() < 0.3,
    )
    return shape, store, net, group_commit, rng.randint(1, 3)


def _text(night: Night | None) -> str:
    if night is None:
        return "no row"
    holder = f" by {night.holder}" if night.holder else ""
    return f"{night.status.value}{holder} v{night.version}"


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """End whatever still runs (servers, shard loops, guests cut short) before the loop closes."""
    for _ in range(3):
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        with contextlib.suppress(SimulationStuck):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
