"""Systems A, A-local and C: roombook's own path, AvailabilityClient -> room shards -> group commit.

An attempt is place_hold -> simulated payment (SimulatedPayments, no latency) -> confirm. A stay
that overlaps a taken night is a conflict; a payment that is declined or a confirmation that fails
releases the hold, so no hold outlives its attempt.
"""

from __future__ import annotations

import contextlib
import decimal
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from bench.core.verification import StoredState, bookings_from_rows
from bench.core.workload import BOOKED, CONFLICT, Attempt, BookedStay, failed
from bench.databases import connect
from roombook.actors.client import AvailabilityClient, ShardTransport
from roombook.actors.local_runtime import LocalShards
from roombook.actors.shard import GroupCommit
from roombook.domain.errors import NightsUnavailable, RoombookError
from roombook.domain.nights import Night, NightStatus
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.services.payments import SimulatedPayments
from roombook.storage.ports import AvailabilityStore
from roombook.storage.sql.connect import availability_store
from roombook.storage.sql.mysql_db import mysql_target

if TYPE_CHECKING:
    from roombook.actors.ray_runtime import RayShards

HOLD_TTL_S = 600.0  # far longer than a round: no hold expires while it is measured
PRICE_PER_NIGHT = decimal.Decimal("100.00")
CARD_TOKEN = "tok_bench"


class ShardBookings:
    """One booking attempt through the shards. `cpu_groups` names the processes doing the work."""

    def __init__(self, client: AvailabilityClient, dsn: str, cpu_groups: dict[str, list[int]]) -> None:
        self._client = client
        self._dsn = dsn
        self._payments = SimulatedPayments()
        self.cpu_groups = cpu_groups
        self.actors: RayShards | None = None  # on the Ray runtime

    def window_refilled(self, room_id: int, window: int) -> None:
        """Nothing to prepare: a night with no row is available."""

    async def book(self, client: int, key: str, room_id: int, stay: Stay) -> Attempt:
        try:
            await self._client.place_hold(room_id=room_id, hold_id=key, stay=stay, ttl_s=HOLD_TTL_S)
        except NightsUnavailable:
            return CONFLICT
        except RoombookError as exc:
            return failed(f"hold: {type(exc).__name__}")
        intent = await self._payments.authorize(PRICE_PER_NIGHT * stay.night_count, "EUR", CARD_TOKEN, key)
        if not intent.authorized:
            await self._release(room_id, key)
            return failed("payment declined")
        try:
            await self._client.confirm(room_id=room_id, hold_id=key)
        except RoombookError as exc:
            await self._release(room_id, key)
            return failed(f"confirm: {type(exc).__name__}")
        return BOOKED

    async def _release(self, room_id: int, key: str) -> None:
        # release is idempotent and leaves a booking booked: safe after a confirmation of unknown fate
        with contextlib.suppress(RoombookError):
            await self._client.release(room_id=room_id, hold_id=key)

    async def stored_state(self) -> StoredState:
        """The availability rows as committed; the bookings are the booked rows grouped by holder."""
        conn = await connect(mysql_target(self._dsn))
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT room_id, date, status, holder FROM availability")
                rows = await cur.fetchall()
        finally:
            conn.close()
        return StoredState(
            bookings=bookings_from_rows(rows), rows=[(room_id, date, status) for room_id, date, status, _ in rows]
        )


@contextlib.asynccontextmanager
async def shard_bookings(
    dsn: str,
    *,
    runtime: str,
    shards: int,
    group_commit: GroupCommit,
    calls_in_flight: int | None = None,
    freeze_heap: bool = True,
    early_refusals: bool = True,
    aged: Sequence[BookedStay] = (),
) -> AsyncIterator[ShardBookings]:
    """Migrate the (empty) database at dsn, store the `aged` bookings (workload.aged_start), start
    `shards` shards on `runtime` ("ray": one actor each, on the Ray this process is connected to;
    "local": in this process), which load them as any restarted shard would, stop them after.
    calls_in_flight: the client's limit of calls per shard at once (None: the client's default).
    freeze_heap: whether the actors freeze their start-up heap; early_refusals: whether the client
    hands refusals over before their batch commits (both on by default, as in the product)."""
    ring = ShardRing(shards)

    def client(transport: ShardTransport) -> AvailabilityClient:  # calls_in_flight None: the transport's own
        return AvailabilityClient(transport, ring, max_calls_in_flight=calls_in_flight, early_refusals=early_refusals)

    async with availability_store(dsn) as store:
        await store.migrate()
        await _store_bookings(store, ring, aged)
        if runtime == "local":
            local = LocalShards(store, ring, group_commit=group_commit)
            await local.start()
            try:
                yield ShardBookings(client(local), dsn, {})
            finally:
                await local.stop()
            return
        from roombook.actors.ray_runtime import RayShards  # Ray only when it is used

        actors = RayShards(
            store_dsn=dsn,
            ring=ring,
            name_prefix=f"bench-core-{uuid.uuid4().hex[:8]}",
            group_commit=group_commit,
            freeze_heap=freeze_heap,
        )
        try:
            await actors.start()
            pids = [await actors.actor_pid(shard_id) for shard_id in range(shards)]
            bookings = ShardBookings(client(actors), dsn, {"actors": pids})
            bookings.actors = actors
            yield bookings
        finally:
            await actors.close()
            actors.stop()


async def _store_bookings(store: AvailabilityStore, ring: ShardRing, bookings: Sequence[BookedStay]) -> None:
    """Booked rows for `bookings`, written as each room's shard would write them, under a lease of
    their own that the shards then take over (a new epoch each)."""
    by_shard: dict[int, list[Night]] = {}
    for booking in bookings:
        by_shard.setdefault(ring.shard_of(booking.room_id), []).extend(
            Night(room_id=booking.room_id, date=date, status=NightStatus.BOOKED, holder=booking.key, version=1)
            for date in booking.nights()
        )
    for shard_id, nights in by_shard.items():
        epoch = await store.acquire_shard(shard_id, "bench-aged-start")
        await store.write_nights(shard_id, epoch, nights)
