"""The global availability store on MySQL / MariaDB / Aurora, through an asyncmy pool.

A write is one transaction and no explicit lock: it first bumps its lease row's `commits` where
the epoch is still the caller's (that row lock, held to commit, also makes a takeover wait for an
in-flight write), then upserts every row in multi-row statements whose ODKU clause changes a row
only if its stored version is one below the new one, then inserts the events into the outbox.
Those statements travel together, as one multi-statement query (asyncmy always connects with
CLIENT_MULTI_STATEMENTS), and the server runs them in order; then the checks below decide between
COMMIT and ROLLBACK. So a write is two round trips, not one per statement plus the commit.

The verification reads the affected-row count, which MySQL reports without CLIENT_FOUND_ROWS as
1 per inserted row, 2 per changed row and 0 per row the IF kept. asyncmy does not send that flag;
a pool that did would break the check. Since no stored row has version 0 (schema CHECK), a row
can only count less than expected (1 for version 1, 2 later), so the sum over the batch equals
the expected sum only if every row was written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import cast

import msgspec
from asyncmy.cursors import Cursor, SSCursor

from roombook.domain.analytics import BookingCountKind, DailyBookingCounts
from roombook.domain.cancellation import CancellationPolicy
from roombook.domain.errors import RingChanged, ShardDiverged, ShardFenced
from roombook.domain.events import Event, room_updated
from roombook.domain.nights import Night, NightStatus
from roombook.domain.rooms import Room, RoomPatch
from roombook.domain.waitlist import RoomWatch
from roombook.routing.ring import ShardRing, rooms_to_load
from roombook.storage.ports import ClaimOutcome, ShardLease
from roombook.storage.sql import mysql_outbox
from roombook.storage.sql.analytics_schema import count_statement, counts_query
from roombook.storage.sql.availability_schema import (
    AVAILABILITY_MIGRATIONS,
    LEASE_COLUMNS,
    NIGHT_COLUMNS,
    ROOM_COLUMNS,
    WATCH_COLUMNS,
    owned_elsewhere,
    policy_from_json,
    policy_json,
    room_columns,
    room_condition,
    room_from_columns,
    room_nights_queries,
    room_patch_columns,
    unix_seconds,
    utc_datetime,
)
from roombook.storage.sql.migrations import apply_mysql
from roombook.storage.sql.mysql_db import FairPool, MysqlTarget, create_pool, deadlocks_retried, store_failures
from roombook.storage.sql.mysql_event_batches import EventWrites
from roombook.storage.sql.outbox_schema import outbox_rows
from roombook.storage.sql.write_batches import BatchUndecided

_BUMP_COMMITS = (
    "UPDATE shard_leases SET commits = commits + 1, renewed_at = UTC_TIMESTAMP(6)"
    " WHERE shard_id = {:d} AND epoch = {:d}"
)
# How long ago the lease was renewed, by the server's clock (one clock for every writer).
_AGE_S = "TIMESTAMPDIFF(MICROSECOND, renewed_at, UTC_TIMESTAMP(6)) / 1e6"
_IF_NEXT = "IF(version = VALUES(version) - 1, VALUES({0}), {0})"
# `version` is assigned last: ODKU assignments run left to right and later ones see earlier ones.
_UPSERT_INTO = f"INSERT INTO availability ({NIGHT_COLUMNS}) VALUES "
_UPSERT_ON_DUPLICATE = " ON DUPLICATE KEY UPDATE " + ", ".join(
    f"{c} = {_IF_NEXT.format(c)}" for c in ("status", "holder", "hold_expires_at", "version")
)
_NIGHTS_PER_STATEMENT = 2_000  # about 100 bytes each: far below max_allowed_packet
# Statements joined into one query up to this many characters: a quarter of the smallest default
# max_allowed_packet around (4 MiB: MySQL 5.7, Aurora MySQL 2). Only holders and event ids can be
# other than ASCII, so bytes are about characters. A statement longer than that goes alone.
MAX_QUERY_CHARS = 1 << 20
_ROOMS_PER_STATEMENT = 100


def _night_literal(night: Night, escape_string: Callable[[str], str]) -> str:
    """One row of the upsert's VALUES, written directly: the shard writes thousands of rows a
    second, and the driver's generic per-parameter escaping was most of a write's CPU. Integers
    go through ":d" (which refuses anything else), dates and timestamps are formatted here, the
    status is one of the enum's values, and the one free-form string (the holder) is escaped by
    the connection."""
    expires_s = night.hold_expires_at_s
    holder = "NULL" if night.holder is None else "'" + escape_string(night.holder) + "'"
    expires = "NULL" if expires_s is None else "'" + utc_datetime(expires_s).isoformat(" ", "microseconds") + "'"
    return f"({night.room_id:d},'{night.date.isoformat()}','{night.status.value}',{holder},{expires},{night.version:d})"


async def execute_together(cur: Cursor, statements: Sequence[str], max_query_chars: int) -> list[int]:
    """Run `statements` in order, in the cursor's transaction, and return each one's affected
    rows. They go joined by ';' into as few queries as `max_query_chars` allows, so N statements
    cost one round trip instead of N. The server stops a query at its first failing statement;
    its error is raised here and the caller drops the connection (as after any other error)."""
    affected: list[int] = []
    start = 0
    while start < len(statements):
        end, size = start + 1, len(statements[start])
        while end < len(statements) and size + 1 + len(statements[end]) <= max_query_chars:
            size += 1 + len(statements[end])
            end += 1
        await cur.execute(";".join(statements[start:end]))
        affected.append(_rowcount(cur))
        while await cur.nextset():
            affected.append(_rowcount(cur))
        start = end
    if len(affected) != len(statements):
        raise RuntimeError(f"{len(statements)} statements sent, {len(affected)} results received")
    return affected


def _rowcount(cur: Cursor) -> int:
    """The rows the cursor's last statement affected: an int, which asyncmy's stub types as object."""
    return cast(int, cur.rowcount)


def _night(row: tuple) -> Night:
    room_id, date, status, holder, expires_at, version = row
    return Night(
        room_id=room_id,
        date=date,
        status=NightStatus(status),
        holder=holder,
        hold_expires_at_s=None if expires_at is None else unix_seconds(expires_at),
        version=version,
    )


def _watch(row: tuple) -> RoomWatch:
    return RoomWatch(
        id=row[0],
        room_id=row[1],
        check_in=row[2],
        check_out=row[3],
        user_id=row[4],
        region=row[5],
        created_at=row[6].replace(tzinfo=dt.UTC),
        notified_at=None if row[7] is None else row[7].replace(tzinfo=dt.UTC),
    )


def _rooms_updated(room_ids: list[int]) -> list[Event]:
    now_s = time.time()
    return [room_updated(room_id, now_s=now_s) for room_id in room_ids]


class MysqlAvailabilityStore:
    """AvailabilityStore on a MySQL database; `transactions` and `rows_written` count committed writes."""

    def __init__(
        self,
        target: MysqlTarget,
        *,
        pool_size: int = 4,
        max_query_chars: int | None = None,
        batch_event_writes: bool = True,
    ) -> None:
        """max_query_chars: how long a query of joined statements may grow (default
        MAX_QUERY_CHARS, or 0 for one statement per round trip when the target says
        pack_writes=false); batch_event_writes: concurrent consumers' claims, completions and
        counts share transactions (mysql_event_batches); off, each is its own."""
        self.target = target
        self._event_writes = (
            EventWrites(
                self._transaction,
                claim_alone=self._claim_alone,
                complete_alone=self._complete_alone,
                count_alone=self._count_alone,
            )
            if batch_event_writes
            else None
        )
        self._pool_size = pool_size
        if max_query_chars is None:
            max_query_chars = MAX_QUERY_CHARS if target.pack_writes else 0
        self._max_query_chars = max_query_chars
        self._pool: FairPool | None = None
        self.transactions = 0
        self.rows_written = 0

    async def __aenter__(self) -> MysqlAvailabilityStore:
        self._pool = await create_pool(self.target, minsize=1, maxsize=self._pool_size)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _transaction(self, cursor_class: type[Cursor] = Cursor) -> AsyncIterator[Cursor]:
        """A cursor inside one transaction, committed at the end of the block.

        ShardFenced, ShardDiverged and BatchUndecided leave the connection in step with the
        server, so it is rolled back and reused. After any other error (cancellation included) the
        protocol state is unknown: the connection is closed, the pool drops it, and the server
        rolls the transaction back unless its COMMIT had already arrived. A failure of the server or the connection is
        raised as StoreUnavailable; for a write, whether it committed is then unknown.
        """
        if self._pool is None:
            raise RuntimeError("store is not open")
        with store_failures("the global store"):
            async with self._pool.acquire() as conn:
                try:
                    async with conn.cursor(cursor_class) as cur:
                        yield cur
                    await conn.commit()
                except (ShardFenced, ShardDiverged, BatchUndecided):
                    # rolled back now, not when the server notices a closed connection: a batch's
                    # writes run again alone at once, and must not wait on its dying locks
                    await conn.rollback()
                    raise
                except BaseException:
                    conn.close()
                    raise

    async def migrate(self) -> list[int]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return await apply_mysql(self._pool, AVAILABILITY_MIGRATIONS)

    async def acquire_shard(
        self,
        shard_id: int,
        owner: str,
        *,
        renew: bool = False,
        deployment: str = "",
        actor: str = "",
        lease_s: float = 0.0,
    ) -> int:
        async with self._transaction() as cur:
            if renew:
                renewed = await cur.execute(
                    "UPDATE shard_leases SET epoch = epoch + 1, acquired_at = UTC_TIMESTAMP(6),"
                    " renewed_at = UTC_TIMESTAMP(6) WHERE shard_id = %s AND owner = %s",
                    (shard_id, owner),
                )
                if renewed == 0:
                    raise ShardFenced(f"shard {shard_id}: another owner took it over")
            else:
                # First make sure the row exists and hold its lock (a no-op upsert), so that concurrent
                # acquirers queue on it and each reads back its own epoch; then take it unless another
                # deployment keeps it live. (One upsert that inserts or conditionally updates
                # would take a gap lock on a missing row, on which two acquirers deadlock.)
                await cur.execute(
                    "INSERT INTO shard_leases (shard_id, epoch, owner, acquired_at)"
                    " VALUES (%s, 0, '', UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE shard_id = shard_id",
                    (shard_id,),
                )
                taken = await cur.execute(
                    "UPDATE shard_leases SET epoch = epoch + 1, owner = %s, deployment = %s, actor = %s, lease_s = %s,"
                    " acquired_at = UTC_TIMESTAMP(6), renewed_at = UTC_TIMESTAMP(6) WHERE shard_id = %s AND NOT ("
                    f" deployment <> %s AND lease_s > 0 AND renewed_at IS NOT NULL AND {_AGE_S} < lease_s)",
                    (owner, deployment, actor, lease_s, shard_id, deployment),
                )
                if taken == 0:
                    await cur.execute(
                        f"SELECT deployment, {_AGE_S}, lease_s FROM shard_leases WHERE shard_id = %s", (shard_id,)
                    )
                    held, age_s, held_lease_s = await cur.fetchone()
                    raise owned_elsewhere(shard_id, held, float(age_s), float(held_lease_s))
            await cur.execute("SELECT epoch FROM shard_leases WHERE shard_id = %s", (shard_id,))
            (epoch,) = await cur.fetchone()
        return int(epoch)

    async def renew_lease(self, shard_id: int, epoch: int) -> bool:
        async with self._transaction() as cur:
            renewed = await cur.execute(
                "UPDATE shard_leases SET renewed_at = UTC_TIMESTAMP(6) WHERE shard_id = %s AND epoch = %s",
                (shard_id, epoch),
            )
        return bool(renewed == 1)

    async def lease(self, shard_id: int) -> ShardLease | None:
        leases = await self._leases("WHERE shard_id = %s", (shard_id,))
        return leases[0] if leases else None

    async def write_nights(
        self, shard_id: int, epoch: int, nights: Sequence[Night], events: Sequence[Event] = ()
    ) -> None:
        if len({(n.room_id, n.date) for n in nights}) != len(nights):
            raise ValueError("a night appears twice in one write")
        event_rows = outbox_rows(events)
        # Key order: two transactions that touch the same rows lock them in the same order.
        ordered = sorted(nights, key=lambda n: (n.room_id, n.date))
        expected = sum(1 if n.version == 1 else 2 for n in nights)
        async with self._transaction() as cur:
            escape_string = cur.connection.escape_string
            upserts = [
                _UPSERT_INTO
                + ",".join([_night_literal(night, escape_string) for night in ordered[i : i + _NIGHTS_PER_STATEMENT]])
                + _UPSERT_ON_DUPLICATE
                for i in range(0, len(ordered), _NIGHTS_PER_STATEMENT)
            ]
            bump = _BUMP_COMMITS.format(shard_id, epoch)
            inserts = mysql_outbox.insert_statements(event_rows, escape_string)
            affected = await execute_together(cur, [bump, *upserts, *inserts], self._max_query_chars)
            # Every statement has run, so the connection is in step with the server whatever the
            # checks decide: either refusal rolls the transaction back and keeps the connection.
            if affected[0] == 0:
                raise ShardFenced(f"shard {shard_id}: epoch {epoch} is no longer the current one")
            if sum(affected[1 : 1 + len(upserts)]) != expected:
                raise ShardDiverged(f"shard {shard_id}: stale version in a batch of {len(nights)} rows")
        self.transactions += 1
        self.rows_written += len(nights)

    async def load_nights(
        self, ring: ShardRing, shard_id: int, *, unless_owned_by: ShardRing | None = None
    ) -> list[Night]:
        """The shard's rows, without reading any other room's: the stored room ids first (a loose
        index scan of the primary key, "Using index for group-by": a step per room, not per row),
        then the owned rooms' nights by primary key; one transaction, so one snapshot.
        O(rooms + the shard's rows). A ring of one shard reads the table in one pass."""
        nights: list[Night] = []
        async with self._transaction(SSCursor) as cur:
            if ring.shard_count == 1 and unless_owned_by is None:
                await cur.execute(f"SELECT {NIGHT_COLUMNS} FROM availability")
                while rows := await cur.fetchmany(10_000):
                    nights.extend(map(_night, rows))
                return nights
            await cur.execute("SELECT room_id FROM availability GROUP BY room_id")
            stored = (room_id for (room_id,) in await cur.fetchall())
            owned = rooms_to_load(stored, ring, shard_id, unless_owned_by)
            for query, chunk in room_nights_queries(owned, "%s"):
                await cur.execute(query, chunk)
                while rows := await cur.fetchmany(10_000):
                    nights.extend(map(_night, rows))
        return nights

    async def nights(self, room_id: int, start: dt.date, end: dt.date) -> list[Night]:
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT {NIGHT_COLUMNS} FROM availability"
                " WHERE room_id = %s AND date >= %s AND date < %s ORDER BY date",
                (room_id, start, end),
            )
            return [_night(row) for row in await cur.fetchall()]

    async def ring(self, default_shard_count: int | None = None) -> ShardRing | None:
        async with self._transaction() as cur:
            if default_shard_count is not None:
                await cur.execute(
                    "INSERT INTO shard_ring (id, version, shard_count, changed_at) VALUES (1, 1, %s, UTC_TIMESTAMP(6))"
                    " ON DUPLICATE KEY UPDATE id = id",
                    (default_shard_count,),
                )
            await cur.execute("SELECT version, shard_count FROM shard_ring WHERE id = 1")
            row = await cur.fetchone()
        return None if row is None else ShardRing(int(row[1]), version=int(row[0]))

    async def change_ring(self, expected_version: int, shard_count: int) -> ShardRing:
        async with self._transaction() as cur:
            if expected_version == 0:
                changed = await cur.execute(
                    "INSERT INTO shard_ring (id, version, shard_count, changed_at) VALUES (1, 1, %s, UTC_TIMESTAMP(6))"
                    " ON DUPLICATE KEY UPDATE id = id",
                    (shard_count,),
                )
            else:
                changed = await cur.execute(
                    "UPDATE shard_ring SET version = version + 1, shard_count = %s, changed_at = UTC_TIMESTAMP(6)"
                    " WHERE id = 1 AND version = %s",
                    (shard_count, expected_version),
                )
            if changed != 1:
                raise RingChanged(f"the ring is no longer version {expected_version}: another resize won")
        return ShardRing(shard_count, version=expected_version + 1)

    async def leases(self) -> list[ShardLease]:
        return await self._leases("ORDER BY shard_id", ())

    async def _leases(self, where: str, params: tuple[int, ...]) -> list[ShardLease]:
        async with self._transaction() as cur:
            await cur.execute(f"SELECT {LEASE_COLUMNS}, {_AGE_S} FROM shard_leases {where}", params)
            rows = await cur.fetchall()
        return [
            ShardLease(
                shard_id=shard_id,
                epoch=epoch,
                owner=owner,
                acquired_at=acquired_at.replace(tzinfo=dt.UTC),
                commits=commits,
                deployment=deployment,
                actor=actor,
                renewed_at=None if renewed_at is None else renewed_at.replace(tzinfo=dt.UTC),
                lease_s=float(lease_s),
                renewed_s_ago=None if age_s is None else float(age_s),
            )
            for shard_id, epoch, owner, acquired_at, commits, deployment, actor, renewed_at, lease_s, age_s in rows
            if epoch > 0  # a row whose first acquire was refused or rolled back holds no lease
        ]

    async def add_rooms(self, rooms: Sequence[Room]) -> list[int]:
        """Multi-row inserts, each reporting its first id; the rest follow by the server's step.

        That holds for InnoDB's "simple inserts" under innodb_autoinc_lock_mode 0 or 1 (MariaDB's
        default). Under mode 2 (MySQL 8's default) ids may interleave, so each row is its own insert.
        """
        values = [room_columns(room) for room in rooms]
        ids: list[int] = []
        async with self._transaction() as cur:
            await cur.execute("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment")
            lock_mode, step = await cur.fetchone()
            per_statement = _ROOMS_PER_STATEMENT if lock_mode in (0, 1) else 1
            for i in range(0, len(values), per_statement):
                chunk = values[i : i + per_statement]
                placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
                await cur.execute(
                    f"INSERT INTO rooms ({ROOM_COLUMNS}) VALUES {placeholders}",
                    [column for columns in chunk for column in columns],
                )
                ids.extend(range(cur.lastrowid, cur.lastrowid + step * len(chunk), step))
            await mysql_outbox.insert_events(cur, outbox_rows(_rooms_updated(ids)))
        return ids

    async def room(self, room_id: int) -> Room | None:
        async with self._transaction() as cur:
            await cur.execute(f"SELECT id, {ROOM_COLUMNS} FROM rooms WHERE id = %s", (room_id,))
            row = await cur.fetchone()
        return None if row is None else room_from_columns(*row)

    async def cancellation_policy(self, room_id: int) -> CancellationPolicy | None:
        async with self._transaction() as cur:
            await cur.execute("SELECT policy FROM cancellation_policies WHERE room_id = %s", (room_id,))
            row = await cur.fetchone()
        return None if row is None else policy_from_json(row[0])

    async def set_cancellation_policy(self, room_id: int, policy: CancellationPolicy | None) -> bool:
        async with self._transaction() as cur:
            await cur.execute("SELECT 1 FROM rooms WHERE id = %s", (room_id,))
            if await cur.fetchone() is None:
                return False
            if policy is None:
                await cur.execute("DELETE FROM cancellation_policies WHERE room_id = %s", (room_id,))
            else:
                await cur.execute(
                    "INSERT INTO cancellation_policies (room_id, policy) VALUES (%s, %s)"
                    " ON DUPLICATE KEY UPDATE policy = VALUES(policy)",
                    (room_id, policy_json(policy)),
                )
        return True

    async def add_watch(self, watch: RoomWatch) -> RoomWatch:
        stay = (watch.room_id, watch.check_in, watch.check_out, watch.user_id, watch.region)
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT {WATCH_COLUMNS} FROM room_watches WHERE room_id = %s AND check_in = %s AND check_out = %s"
                " AND user_id = %s AND region = %s AND notified_at IS NULL ORDER BY id LIMIT 1",
                stay,
            )
            row = await cur.fetchone()
            if row is not None:
                return _watch(row)
            await cur.execute(
                "INSERT INTO room_watches (room_id, check_in, check_out, user_id, region, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (*stay, watch.created_at.astimezone(dt.UTC).replace(tzinfo=None)),
            )
            return msgspec.structs.replace(watch, id=cur.lastrowid)

    async def watches_of(self, room_id: int, start: dt.date, end: dt.date) -> list[RoomWatch]:
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT {WATCH_COLUMNS} FROM room_watches WHERE room_id = %s AND notified_at IS NULL"
                " AND check_in < %s AND check_out > %s ORDER BY id",
                (room_id, end, start),
            )
            return [_watch(row) for row in await cur.fetchall()]

    async def mark_watch_notified(self, watch_id: int, now: dt.datetime) -> bool:
        async with self._transaction() as cur:
            changed = await cur.execute(
                "UPDATE room_watches SET notified_at = %s WHERE id = %s AND notified_at IS NULL",
                (now.astimezone(dt.UTC).replace(tzinfo=None), watch_id),
            )
        return changed == 1

    async def room_count(self) -> int:
        async with self._transaction() as cur:
            await cur.execute("SELECT COUNT(*) FROM rooms")
            (count,) = await cur.fetchone()
        return count

    async def room_ids(self) -> list[int]:
        async with self._transaction() as cur:
            await cur.execute("SELECT id FROM rooms ORDER BY id")
            return [room_id for (room_id,) in await cur.fetchall()]

    async def rooms_after(self, room_id: int, *, limit: int) -> list[Room]:
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT id, {ROOM_COLUMNS} FROM rooms WHERE id > %s ORDER BY id LIMIT %s", (room_id, limit)
            )
            return [room_from_columns(*row) for row in await cur.fetchall()]

    async def update_room(self, room_id: int, patch: RoomPatch, *, expected: RoomPatch | None = None) -> Room | None:
        columns = room_patch_columns(patch)
        condition, condition_params = room_condition(expected, "%s")
        async with self._transaction() as cur:
            if columns:
                assignments = ", ".join(f"{column} = %s" for column in columns)
                # affected rows are changed rows (no CLIENT_FOUND_ROWS): a no-op patch publishes nothing
                changed = await cur.execute(
                    f"UPDATE rooms SET {assignments} WHERE id = %s{condition}",
                    [*columns.values(), room_id, *condition_params],
                )
                await mysql_outbox.insert_events(cur, outbox_rows(_rooms_updated([room_id] if changed else [])))
            await cur.execute(f"SELECT id, {ROOM_COLUMNS} FROM rooms WHERE id = %s", (room_id,))
            row = await cur.fetchone()
        return None if row is None else room_from_columns(*row)

    async def set_room_images(self, room_id: int, expected: Sequence[str], images: Sequence[str]) -> bool | None:
        # update_room's compare-and-set: no row lock, room.updated in the same transaction
        after = await self.update_room(
            room_id, RoomPatch(images=list(images)), expected=RoomPatch(images=list(expected))
        )
        return None if after is None else after.images == list(images)

    # -- the outbox and the consumers' processed events ----------------------------------------

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        async with self._transaction() as cur:
            return await mysql_outbox.pending_events(cur, limit)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        async with self._transaction() as cur:
            await mysql_outbox.mark_published(cur, seqs)

    async def claim_event(self, consumer: str, event_id: str, *, lease_s: float) -> ClaimOutcome:
        if self._event_writes is not None:
            return await self._event_writes.claim(consumer, event_id, lease_s=lease_s)
        return await self._claim_alone(consumer, event_id, lease_s)

    # A consumer's claims, completions and counts meet those of other deliveries of the same
    # events, so they may deadlock; each is one small transaction, run again when one does.

    @deadlocks_retried
    async def _claim_alone(self, consumer: str, event_id: str, lease_s: float) -> ClaimOutcome:
        async with self._transaction() as cur:
            return await mysql_outbox.claim_event(cur, consumer, event_id, lease_s)

    async def complete_event(self, consumer: str, event_id: str) -> None:
        if self._event_writes is None:
            await self._complete_alone(consumer, event_id)
        else:
            await self._event_writes.complete(consumer, event_id)

    @deadlocks_retried
    async def _complete_alone(self, consumer: str, event_id: str) -> None:
        async with self._transaction() as cur:
            await mysql_outbox.complete_event(cur, consumer, event_id)

    async def release_event(self, consumer: str, event_id: str) -> None:
        async with self._transaction() as cur:
            await mysql_outbox.release_event(cur, consumer, event_id)

    # -- booking analytics -------------------------------------------------------------------

    async def count_booking_event(
        self, event_id: str, kind: BookingCountKind, *, day: dt.date, room_id: int, region: str
    ) -> bool:
        if self._event_writes is not None:
            return await self._event_writes.count(event_id, kind, day=day, room_id=room_id, region=region)
        return await self._count_alone(event_id, kind, day, room_id, region)

    @deadlocks_retried
    async def _count_alone(
        self, event_id: str, kind: BookingCountKind, day: dt.date, room_id: int, region: str
    ) -> bool:
        async with self._transaction() as cur:
            if not await cur.execute("INSERT IGNORE INTO booking_counts_events (event_id) VALUES (%s)", (event_id,)):
                return False
            await cur.execute(count_statement(kind, "%s", mysql=True), (day, room_id, region))
            return True

    async def booking_counts(
        self, start: dt.date, end: dt.date, *, room_id: int | None = None, region: str | None = None
    ) -> list[DailyBookingCounts]:
        sql = counts_query("%s", room=room_id is not None, region=region is not None)
        params = [start, end, *(v for v in (room_id, region) if v is not None)]
        async with self._transaction() as cur:
            await cur.execute(sql, params)
            rows = await cur.fetchall()
        return [
            DailyBookingCounts(date=day, room_id=room, region=reg, created=a, confirmed=b, cancelled=c)
            for day, room, reg, a, b, c in rows
        ]
