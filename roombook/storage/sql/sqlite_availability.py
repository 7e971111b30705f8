"""The global availability store on one SQLite file: the embedded default.

Every call runs on the database's one thread; a write is one BEGIN IMMEDIATE transaction, which
SQLite serialises against every other writer of the file (other processes included) without any
row lock. Fencing is two conditional statements inside it: the lease row must still carry the
caller's epoch, and every row's stored version must be one below the new one.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import time
from collections.abc import Sequence
from typing import cast

import msgspec

from roombook.domain.analytics import BookingCountKind, DailyBookingCounts
from roombook.domain.cancellation import CancellationPolicy
from roombook.domain.errors import RingChanged, ShardDiverged, ShardFenced
from roombook.domain.events import Event, room_updated
from roombook.domain.nights import Night, NightStatus
from roombook.domain.rooms import Room, RoomPatch
from roombook.domain.waitlist import RoomWatch
from roombook.routing.ring import ShardRing, rooms_to_load
from roombook.storage.ports import ClaimOutcome, ShardLease
from roombook.storage.sql import sqlite_outbox
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
from roombook.storage.sql.migrations import apply_sqlite
from roombook.storage.sql.outbox_schema import outbox_rows
from roombook.storage.sql.sqlite_db import SqliteDatabase

# The store's clock stamps leases (one clock for every writer of the file), to the millisecond.
_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
_AGE_S = "(julianday('now') - julianday(renewed_at)) * 86400.0"
_BUMP_COMMITS = f"UPDATE shard_leases SET commits = commits + 1, renewed_at = {_NOW} WHERE shard_id = ? AND epoch = ?"
_RENEW = f"UPDATE shard_leases SET renewed_at = {_NOW} WHERE shard_id = ? AND epoch = ?"
# A version-1 row must be new: on conflict nothing changes, and the change count tells.
_INSERT_FIRST = (
    f"INSERT INTO availability ({NIGHT_COLUMNS})"
    " VALUES (:room_id, :date, :status, :holder, :hold_expires_at, :version)"
    " ON CONFLICT (room_id, date) DO NOTHING"
)
# A later version must find its predecessor. An upsert would insert it when the row is absent,
# and an insert counts as one change just like an update, hiding the skipped version.
_UPDATE_NEXT = (
    "UPDATE availability SET status = :status, holder = :holder,"
    " hold_expires_at = :hold_expires_at, version = :version"
    " WHERE room_id = :room_id AND date = :date AND version = :version - 1"
)
_ROOM_IDS = (  # every stored room id, one primary-key lookup per room
    "WITH RECURSIVE room(id) AS (SELECT MIN(room_id) FROM availability"
    " UNION ALL SELECT (SELECT MIN(room_id) FROM availability WHERE room_id > room.id) FROM room"
    " WHERE room.id IS NOT NULL) SELECT id FROM room WHERE id IS NOT NULL"
)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _text_time(utc: dt.datetime) -> str:
    return utc.isoformat(sep=" ", timespec="microseconds")


def _night_params(night: Night) -> dict[str, object]:
    expires_s = night.hold_expires_at_s
    return {
        "room_id": night.room_id,
        "date": night.date.isoformat(),
        "status": night.status.value,
        "holder": night.holder,
        "hold_expires_at": None if expires_s is None else _text_time(utc_datetime(expires_s)),
        "version": night.version,
    }


def _night(row: tuple) -> Night:
    room_id, date, status, holder, expires_at, version = row
    return Night(
        room_id=room_id,
        date=dt.date.fromisoformat(date),
        status=NightStatus(status),
        holder=holder,
        hold_expires_at_s=None if expires_at is None else unix_seconds(dt.datetime.fromisoformat(expires_at)),
        version=version,
    )


def _rooms_updated(room_ids: list[int]) -> list[Event]:
    now_s = time.time()
    return [room_updated(room_id, now_s=now_s) for room_id in room_ids]


def _watch(row: tuple) -> RoomWatch:
    return RoomWatch(
        id=row[0],
        room_id=row[1],
        check_in=dt.date.fromisoformat(row[2]),
        check_out=dt.date.fromisoformat(row[3]),
        user_id=row[4],
        region=row[5],
        created_at=_utc(row[6]),
        notified_at=None if row[7] is None else _utc(row[7]),
    )


def _room(row: tuple) -> Room:
    room_id, title, description, location, cents, *rest = row
    return room_from_columns(room_id, title, description, location, decimal.Decimal(cents).scaleb(-2), *rest)


class SqliteAvailabilityStore:
    """AvailabilityStore on a SQLite file; `transactions` and `rows_written` count committed writes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = SqliteDatabase(path)
        self.transactions = 0
        self.rows_written = 0

    async def __aenter__(self) -> SqliteAvailabilityStore:
        await self._db.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._db.close()

    async def migrate(self) -> list[int]:
        return await self._db.run(lambda: apply_sqlite(self._db.conn, AVAILABILITY_MIGRATIONS))

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
        def acquire(conn: sqlite3.Connection) -> int:
            if renew:
                row = conn.execute(
                    f"UPDATE shard_leases SET epoch = epoch + 1, acquired_at = {_NOW}, renewed_at = {_NOW}"
                    " WHERE shard_id = ? AND owner = ? RETURNING epoch",
                    (shard_id, owner),
                ).fetchone()
                if row is None:
                    raise ShardFenced(f"shard {shard_id}: another owner took it over")
                return int(row[0])
            held = conn.execute(
                f"SELECT deployment, {_AGE_S}, lease_s FROM shard_leases WHERE shard_id = ?", (shard_id,)
            ).fetchone()
            if held is not None and held[0] != deployment and held[1] is not None and held[1] < held[2]:
                raise owned_elsewhere(shard_id, held[0], held[1], held[2])
            (epoch,) = conn.execute(
                "INSERT INTO shard_leases (shard_id, epoch, owner, deployment, actor, lease_s, acquired_at, renewed_at)"
                f" VALUES (?, 1, ?, ?, ?, ?, {_NOW}, {_NOW})"
                " ON CONFLICT (shard_id) DO UPDATE SET epoch = epoch + 1, owner = excluded.owner,"
                " deployment = excluded.deployment, actor = excluded.actor, lease_s = excluded.lease_s,"
                " acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at RETURNING epoch",
                (shard_id, owner, deployment, actor, lease_s),
            ).fetchone()
            return int(epoch)

        return await self._db.transaction(acquire)

    async def renew_lease(self, shard_id: int, epoch: int) -> bool:
        def renew(conn: sqlite3.Connection) -> bool:
            return conn.execute(_RENEW, (shard_id, epoch)).rowcount == 1

        return await self._db.transaction(renew)

    async def lease(self, shard_id: int) -> ShardLease | None:
        leases = await self._leases("WHERE shard_id = ?", (shard_id,))
        return leases[0] if leases else None

    async def write_nights(
        self, shard_id: int, epoch: int, nights: Sequence[Night], events: Sequence[Event] = ()
    ) -> None:
        if len({(n.room_id, n.date) for n in nights}) != len(nights):
            raise ValueError("a night appears twice in one write")
        first = [_night_params(n) for n in nights if n.version == 1]
        later = [_night_params(n) for n in nights if n.version != 1]
        event_rows = outbox_rows(events)

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(_BUMP_COMMITS, (shard_id, epoch)).rowcount == 0:
                raise ShardFenced(f"shard {shard_id}: epoch {epoch} is no longer the current one")
            changes_before = conn.total_changes
            conn.executemany(_INSERT_FIRST, first)
            conn.executemany(_UPDATE_NEXT, later)
            if conn.total_changes - changes_before != len(nights):
                raise ShardDiverged(f"shard {shard_id}: stale version in a batch of {len(nights)} rows")
            sqlite_outbox.insert_events(conn, event_rows)

        await self._db.transaction(write)
        self.transactions += 1
        self.rows_written += len(nights)

    async def load_nights(
        self, ring: ShardRing, shard_id: int, *, unless_owned_by: ShardRing | None = None
    ) -> list[Night]:
        """The shard's rows, without reading any other room's: the stored room ids first (a loose
        index scan: a recursive query that jumps from one room to the next on the primary key),
        then the owned rooms' nights by primary key; one read transaction, so one snapshot.
        O(rooms + the shard's rows). A ring of one shard reads the table in one pass."""

        def load(conn: sqlite3.Connection) -> list[Night]:
            if ring.shard_count == 1 and unless_owned_by is None:
                return [_night(row) for row in conn.execute(f"SELECT {NIGHT_COLUMNS} FROM availability")]
            owned = rooms_to_load((room_id for (room_id,) in conn.execute(_ROOM_IDS)), ring, shard_id, unless_owned_by)
            nights: list[Night] = []
            for query, chunk in room_nights_queries(owned, "?"):
                nights.extend(map(_night, conn.execute(query, chunk)))
            return nights

        return await self._db.snapshot(load)

    async def nights(self, room_id: int, start: dt.date, end: dt.date) -> list[Night]:
        def select() -> list[Night]:
            rows = self._db.conn.execute(
                f"SELECT {NIGHT_COLUMNS} FROM availability WHERE room_id = ? AND date >= ? AND date < ? ORDER BY date",
                (room_id, start.isoformat(), end.isoformat()),
            )
            return [_night(row) for row in rows]

        return await self._db.run(select)

    async def ring(self, default_shard_count: int | None = None) -> ShardRing | None:
        def read(conn: sqlite3.Connection) -> ShardRing | None:
            if default_shard_count is not None:
                conn.execute(
                    f"INSERT INTO shard_ring (id, version, shard_count, changed_at) VALUES (1, 1, ?, {_NOW})"
                    " ON CONFLICT (id) DO NOTHING",
                    (default_shard_count,),
                )
            row = conn.execute("SELECT version, shard_count FROM shard_ring WHERE id = 1").fetchone()
            return None if row is None else ShardRing(row[1], version=row[0])

        return await self._db.transaction(read)

    async def change_ring(self, expected_version: int, shard_count: int) -> ShardRing:
        def change(conn: sqlite3.Connection) -> ShardRing:
            if expected_version == 0:
                changed = conn.execute(
                    f"INSERT INTO shard_ring (id, version, shard_count, changed_at) VALUES (1, 1, ?, {_NOW})"
                    " ON CONFLICT (id) DO NOTHING",
                    (shard_count,),
                ).rowcount
            else:
                changed = conn.execute(
                    f"UPDATE shard_ring SET version = version + 1, shard_count = ?, changed_at = {_NOW}"
                    " WHERE id = 1 AND version = ?",
                    (shard_count, expected_version),
                ).rowcount
            if changed != 1:
                raise RingChanged(f"the ring is no longer version {expected_version}: another resize won")
            return ShardRing(shard_count, version=expected_version + 1)

        return await self._db.transaction(change)

    async def leases(self) -> list[ShardLease]:
        return await self._leases("ORDER BY shard_id", ())

    async def _leases(self, where: str, params: tuple[int, ...]) -> list[ShardLease]:
        def select() -> list[ShardLease]:
            rows = self._db.conn.execute(f"SELECT {LEASE_COLUMNS}, {_AGE_S} FROM shard_leases {where}", params)
            return [
                ShardLease(
                    shard_id=shard_id,
                    epoch=epoch,
                    owner=owner,
                    acquired_at=_utc(acquired_at),
                    commits=commits,
                    deployment=deployment,
                    actor=actor,
                    renewed_at=None if renewed_at is None else _utc(renewed_at),
                    lease_s=lease_s,
                    renewed_s_ago=age_s,
                )
                for shard_id, epoch, owner, acquired_at, commits, deployment, actor, renewed_at, lease_s, age_s in rows
            ]

        return await self._db.run(select)

    async def add_rooms(self, rooms: Sequence[Room]) -> list[int]:
        values = []
        for room in rooms:
            title, description, location, price, *rest = room_columns(room)
            values.append((title, description, location, int(price.scaleb(2)), *rest))  # cents

        def insert(conn: sqlite3.Connection) -> list[int]:
            sql = f"INSERT INTO rooms ({ROOM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            # An INSERT that stored its row always sets lastrowid.
            ids = [cast(int, conn.execute(sql, columns).lastrowid) for columns in values]
            sqlite_outbox.insert_events(conn, outbox_rows(_rooms_updated(ids)))
            return ids

        return await self._db.transaction(insert)

    async def room(self, room_id: int) -> Room | None:
        def select() -> Room | None:
            row = self._db.conn.execute(f"SELECT id, {ROOM_COLUMNS} FROM rooms WHERE id = ?", (room_id,)).fetchone()
            return None if row is None else _room(row)

        return await self._db.run(select)

    async def rooms_after(self, room_id: int, *, limit: int) -> list[Room]:
        def select() -> list[Room]:
            sql = f"SELECT id, {ROOM_COLUMNS} FROM rooms WHERE id > ? ORDER BY id LIMIT ?"
            return [_room(row) for row in self._db.conn.execute(sql, (room_id, limit))]

        return await self._db.run(select)

    async def update_room(self, room_id: int, patch: RoomPatch, *, expected: RoomPatch | None = None) -> Room | None:
        columns = room_patch_columns(patch)
        if isinstance(price := columns.get("price"), decimal.Decimal):  # as room_patch_columns stores a price
            columns["price"] = int(price.scaleb(2))  # cents
        assignments = ", ".join(f"{column} = ?" for column in columns)
        condition, condition_params = room_condition(expected, "?")

        def update(conn: sqlite3.Connection) -> Room | None:
            if columns:
                now = _text_time(dt.datetime.now(dt.UTC).replace(tzinfo=None))
                changed = conn.execute(
                    f"UPDATE rooms SET {assignments}, updated_at = ? WHERE id = ?{condition}",
                    [*columns.values(), now, room_id, *condition_params],
                ).rowcount
                sqlite_outbox.insert_events(conn, outbox_rows(_rooms_updated([room_id] if changed else [])))
            row = conn.execute(f"SELECT id, {ROOM_COLUMNS} FROM rooms WHERE id = ?", (room_id,)).fetchone()
            return None if row is None else _room(row)

        return await self._db.transaction(update)

    async def cancellation_policy(self, room_id: int) -> CancellationPolicy | None:
        def select() -> CancellationPolicy | None:
            sql = "SELECT policy FROM cancellation_policies WHERE room_id = ?"
            row = self._db.conn.execute(sql, (room_id,)).fetchone()
            return None if row is None else policy_from_json(row[0])

        return await self._db.run(select)

    async def set_cancellation_policy(self, room_id: int, policy: CancellationPolicy | None) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM rooms WHERE id = ?", (room_id,)).fetchone() is None:
                return False
            if policy is None:
                conn.execute("DELETE FROM cancellation_policies WHERE room_id = ?", (room_id,))
            else:
                now = _text_time(dt.datetime.now(dt.UTC).replace(tzinfo=None))
                conn.execute(
                    "INSERT INTO cancellation_policies (room_id, policy, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (room_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                    (room_id, policy_json(policy), now),
                )
            return True

        return await self._db.transaction(write)

    async def add_watch(self, watch: RoomWatch) -> RoomWatch:
        def insert(conn: sqlite3.Connection) -> RoomWatch:
            row = conn.execute(
                f"SELECT {WATCH_COLUMNS} FROM room_watches WHERE room_id = ? AND check_in = ? AND check_out = ?"
                " AND user_id = ? AND region = ? AND notified_at IS NULL ORDER BY id LIMIT 1",
                (watch.room_id, watch.check_in.isoformat(), watch.check_out.isoformat(), watch.user_id, watch.region),
            ).fetchone()
            if row is not None:
                return _watch(row)
            cur = conn.execute(
                "INSERT INTO room_watches (room_id, check_in, check_out, user_id, region, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    watch.room_id,
                    watch.check_in.isoformat(),
                    watch.check_out.isoformat(),
                    watch.user_id,
                    watch.region,
                    _text_time(watch.created_at.astimezone(dt.UTC).replace(tzinfo=None)),
                ),
            )
            return msgspec.structs.replace(watch, id=cast(int, cur.lastrowid))

        return await self._db.transaction(insert)

    async def watches_of(self, room_id: int, start: dt.date, end: dt.date) -> list[RoomWatch]:
        def select() -> list[RoomWatch]:
            sql = (
                f"SELECT {WATCH_COLUMNS} FROM room_watches WHERE room_id = ? AND notified_at IS NULL"
                " AND check_in < ? AND check_out > ? ORDER BY id"
            )
            return [_watch(row) for row in self._db.conn.execute(sql, (room_id, end.isoformat(), start.isoformat()))]

        return await self._db.run(select)

    async def mark_watch_notified(self, watch_id: int, now: dt.datetime) -> bool:
        at = _text_time(now.astimezone(dt.UTC).replace(tzinfo=None))
        sql = "UPDATE room_watches SET notified_at = ? WHERE id = ? AND notified_at IS NULL"
        return await self._db.transaction(lambda conn: conn.execute(sql, (at, watch_id)).rowcount == 1)

    async def set_room_images(self, room_id: int, expected: Sequence[str], images: Sequence[str]) -> bool | None:
        # update_room's compare-and-set: no row lock, room.updated in the same transaction
        after = await self.update_room(
            room_id, RoomPatch(images=list(images)), expected=RoomPatch(images=list(expected))
        )
        return None if after is None else after.images == list(images)

    async def room_count(self) -> int:
        return await self._db.run(lambda: self._db.conn.execute("SELECT COUNT(*) FROM rooms").fetchone()[0])

    async def room_ids(self) -> list[int]:
        def select() -> list[int]:
            return [room_id for (room_id,) in self._db.conn.execute("SELECT id FROM rooms ORDER BY id")]

        return await self._db.run(select)

    # -- the outbox and the consumers' processed events ----------------------------------------

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        return await self._db.run(sqlite_outbox.pending_events, self._db.conn, limit)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        await self._db.transaction(lambda conn: sqlite_outbox.mark_published(conn, seqs))

    async def claim_event(self, consumer: str, event_id: str, *, lease_s: float) -> ClaimOutcome:
        return await self._db.transaction(lambda conn: sqlite_outbox.claim_event(conn, consumer, event_id, lease_s))

    async def complete_event(self, consumer: str, event_id: str) -> None:
        await self._db.transaction(lambda conn: sqlite_outbox.complete_event(conn, consumer, event_id))

    async def release_event(self, consumer: str, event_id: str) -> None:
        await self._db.transaction(lambda conn: sqlite_outbox.release_event(conn, consumer, event_id))

    # -- booking analytics -------------------------------------------------------------------

    async def count_booking_event(
        self, event_id: str, kind: BookingCountKind, *, day: dt.date, room_id: int, region: str
    ) -> bool:
        def count(conn: sqlite3.Connection) -> bool:
            claimed = conn.execute("INSERT OR IGNORE INTO booking_counts_events (event_id) VALUES (?)", (event_id,))
            if claimed.rowcount == 0:
                return False
            conn.execute(count_statement(kind, "?", mysql=False), (day.isoformat(), room_id, region))
            return True

        return await self._db.transaction(count)

    async def booking_counts(
        self, start: dt.date, end: dt.date, *, room_id: int | None = None, region: str | None = None
    ) -> list[DailyBookingCounts]:
        sql = counts_query("?", room=room_id is not None, region=region is not None)
        params = [start.isoformat(), end.isoformat(), *(v for v in (room_id, region) if v is not None)]

        def select() -> list[DailyBookingCounts]:
            return [
                DailyBookingCounts(
                    date=dt.date.fromisoformat(day), room_id=room, region=reg, created=a, confirmed=b, cancelled=c
                )
                for day, room, reg, a, b, c in self._db.conn.execute(sql, params)
            ]

        return await self._db.run(select)
