"""Schema of the global availability store (rooms, room-nights, shard leases) and its column encodings.

Invariants the adapters rely on:
- every stored `availability` row has version >= 1 (CHECK), so "absent" is the only version 0;
  this is what lets the MySQL adapter verify a whole batch from one affected-row count;
- no foreign key from availability to rooms: the group commit must not take shared locks on
  `rooms` rows, and rooms are never deleted;
- times are UTC: DATETIME(6) on MySQL (sessions run at time_zone '+00:00'), ISO-8601 text
  'YYYY-MM-DD HH:MM:SS.ffffff' on SQLite, which has no datetime type;
- SQLite has no DECIMAL either: `rooms.price` there holds integer cents (exact and orderable).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator, Sequence
from typing import cast

import msgspec

from roombook.domain.cancellation import CancellationPolicy
from roombook.domain.errors import ShardOwnedElsewhere
from roombook.domain.rates import RatePlan
from roombook.domain.rooms import Location, Room, RoomPatch
from roombook.domain.stay_rules import StayRules
from roombook.storage.sql.analytics_schema import booking_counts_migration
from roombook.storage.sql.migrations import Migration
from roombook.storage.sql.outbox_schema import outbox_migration, processed_events_migration

_MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"

AVAILABILITY_MIGRATIONS: list[Migration] = [
    Migration(
        version=1,
        name="rooms, availability, shard_leases",
        mysql=[
            "CREATE TABLE IF NOT EXISTS rooms ("
            " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " title VARCHAR(255) NOT NULL,"
            " description TEXT,"
            " location JSON NOT NULL CHECK (json_valid(location)),"
            " price DECIMAL(10,2) NOT NULL,"
            " currency CHAR(3) NOT NULL,"
            " capacity INT NOT NULL,"
            " amenities JSON CHECK (json_valid(amenities)),"
            " images JSON CHECK (json_valid(images)),"
            " created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
            " updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),"
            " INDEX idx_price (price),"
            " INDEX idx_capacity (capacity)"
            f") {_MYSQL_TABLE_OPTIONS}",
            "CREATE TABLE IF NOT EXISTS availability ("
            " room_id BIGINT NOT NULL,"
            " date DATE NOT NULL,"
            " status ENUM('available','held','booked') NOT NULL,"
            " holder VARCHAR(64) NULL,"
            " hold_expires_at DATETIME(6) NULL,"
            " version INT NOT NULL CHECK (version >= 1),"
            " PRIMARY KEY (room_id, date)"
            f") {_MYSQL_TABLE_OPTIONS}",
            "CREATE TABLE IF NOT EXISTS shard_leases ("
            " shard_id INT NOT NULL PRIMARY KEY,"
            " epoch BIGINT NOT NULL,"
            " owner VARCHAR(255),"
            " acquired_at DATETIME(6),"
            " commits BIGINT NOT NULL DEFAULT 0"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS rooms ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " title TEXT NOT NULL,"
            " description TEXT,"
            " location TEXT NOT NULL CHECK (json_valid(location)),"
            " price INTEGER NOT NULL,"
            " currency TEXT NOT NULL CHECK (length(currency) = 3),"
            " capacity INTEGER NOT NULL,"
            " amenities TEXT CHECK (json_valid(amenities)),"
            " images TEXT CHECK (json_valid(images)),"
            f" created_at TEXT NOT NULL DEFAULT {_SQLITE_NOW},"
            f" updated_at TEXT NOT NULL DEFAULT {_SQLITE_NOW})",
            "CREATE INDEX IF NOT EXISTS idx_price ON rooms (price)",
            "CREATE INDEX IF NOT EXISTS idx_capacity ON rooms (capacity)",
            "CREATE TABLE IF NOT EXISTS availability ("
            " room_id INTEGER NOT NULL,"
            " date TEXT NOT NULL,"
            " status TEXT NOT NULL CHECK (status IN ('available', 'held', 'booked')),"
            " holder TEXT CHECK (length(holder) <= 64),"
            " hold_expires_at TEXT,"
            " version INTEGER NOT NULL CHECK (version >= 1),"
            " PRIMARY KEY (room_id, date)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS shard_leases ("
            " shard_id INTEGER PRIMARY KEY,"
            " epoch INTEGER NOT NULL,"
            " owner TEXT,"
            " acquired_at TEXT,"
            " commits INTEGER NOT NULL DEFAULT 0)",
        ],
    ),
    outbox_migration(2),
    processed_events_migration(3),
    Migration(
        version=4,
        name="shard_leases: deployment, actor, renewed_at, lease_s",
        mysql=[
            "ALTER TABLE shard_leases ADD COLUMN deployment VARCHAR(255) NOT NULL DEFAULT ''",
            "ALTER TABLE shard_leases ADD COLUMN actor VARCHAR(255) NOT NULL DEFAULT ''",
            "ALTER TABLE shard_leases ADD COLUMN renewed_at DATETIME(6) NULL",
            "ALTER TABLE shard_leases ADD COLUMN lease_s DOUBLE NOT NULL DEFAULT 0",
        ],
        sqlite=[
            "ALTER TABLE shard_leases ADD COLUMN deployment TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE shard_leases ADD COLUMN actor TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE shard_leases ADD COLUMN renewed_at TEXT",
            "ALTER TABLE shard_leases ADD COLUMN lease_s REAL NOT NULL DEFAULT 0",
        ],
    ),
]

AVAILABILITY_MIGRATIONS.append(
    Migration(
        version=5,
        name="shard_ring",
        mysql=[
            "CREATE TABLE IF NOT EXISTS shard_ring ("
            " id INT NOT NULL PRIMARY KEY CHECK (id = 1),"
            " version BIGINT NOT NULL,"
            " shard_count INT NOT NULL CHECK (shard_count >= 1),"
            " changed_at DATETIME(6) NOT NULL"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS shard_ring ("
            " id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version INTEGER NOT NULL,"
            " shard_count INTEGER NOT NULL CHECK (shard_count >= 1),"
            " changed_at TEXT NOT NULL)",
        ],
    )
)

AVAILABILITY_MIGRATIONS.append(booking_counts_migration(100))

# A room's rate calendar and stay rules: JSON, NULL for a room that has none (the defaults).
AVAILABILITY_MIGRATIONS.append(
    Migration(
        version=200,
        name="rooms: rates, stay_rules",
        mysql=[
            "ALTER TABLE rooms ADD COLUMN rates JSON NULL CHECK (rates IS NULL OR json_valid(rates))",
            "ALTER TABLE rooms ADD COLUMN stay_rules JSON NULL CHECK (stay_rules IS NULL OR json_valid(stay_rules))",
        ],
        sqlite=[
            "ALTER TABLE rooms ADD COLUMN rates TEXT CHECK (rates IS NULL OR json_valid(rates))",
            "ALTER TABLE rooms ADD COLUMN stay_rules TEXT CHECK (stay_rules IS NULL OR json_valid(stay_rules))",
        ],
    )
)

AVAILABILITY_MIGRATIONS.append(
    Migration(
        version=300,
        name="cancellation_policies",
        # One row per room that has a policy (a room without one cancels for free); the policy
        # as JSON (domain.cancellation.CancellationPolicy). Bookings copy it when they are made.
        mysql=[
            "CREATE TABLE IF NOT EXISTS cancellation_policies ("
            " room_id BIGINT NOT NULL PRIMARY KEY,"
            " policy JSON NOT NULL CHECK (json_valid(policy)),"
            " updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS cancellation_policies ("
            " room_id INTEGER PRIMARY KEY,"
            " policy TEXT NOT NULL CHECK (json_valid(policy)),"
            f" updated_at TEXT NOT NULL DEFAULT {_SQLITE_NOW})",
        ],
    )
)

AVAILABILITY_MIGRATIONS.append(
    Migration(
        version=301,
        name="room_watches",
        # The waitlist: who asked to be told when some nights of a room are free, by user id and
        # region only (the email stays in the region's store), in the order they asked (id).
        # notified_at: when the watch was told; it is done then.
        mysql=[
            "CREATE TABLE IF NOT EXISTS room_watches ("
            " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " room_id BIGINT NOT NULL,"
            " check_in DATE NOT NULL,"
            " check_out DATE NOT NULL,"
            " user_id BIGINT NOT NULL,"
            " region CHAR(2) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
            " created_at DATETIME(6) NOT NULL,"
            " notified_at DATETIME(6) NULL,"
            " INDEX idx_room_watches_room (room_id, notified_at, check_in),"
            " CONSTRAINT ck_room_watches_stay CHECK (check_out > check_in)"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS room_watches ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " room_id INTEGER NOT NULL,"
            " check_in TEXT NOT NULL,"
            " check_out TEXT NOT NULL CHECK (check_out > check_in),"
            " user_id INTEGER NOT NULL,"
            " region TEXT NOT NULL,"
            " created_at TEXT NOT NULL,"
            " notified_at TEXT)",
            "CREATE INDEX IF NOT EXISTS idx_room_watches_room ON room_watches (room_id, notified_at, check_in)",
        ],
    )
)

WATCH_COLUMNS = "id, room_id, check_in, check_out, user_id, region, created_at, notified_at"

_POLICY_DECODER = msgspec.json.Decoder(CancellationPolicy)
_POLICY_ENCODER = msgspec.json.Encoder(decimal_format="string")


def policy_json(policy: CancellationPolicy) -> str:
    return _POLICY_ENCODER.encode(policy).decode()


def policy_from_json(value: str | bytes) -> CancellationPolicy:
    return _POLICY_DECODER.decode(value)


ROOM_COLUMNS = "title, description, location, price, currency, capacity, amenities, images, rates, stay_rules"
LEASE_COLUMNS = "shard_id, epoch, owner, acquired_at, commits, deployment, actor, renewed_at, lease_s"


def owned_elsewhere(shard_id: int, deployment: str, renewed_s_ago: float, lease_s: float) -> ShardOwnedElsewhere:
    """The refusal to take a shard whose lease another live deployment holds."""
    return ShardOwnedElsewhere(
        f"shard {shard_id} is owned by another running deployment ({deployment or 'unnamed'}), which renewed"
        f" its lease {renewed_s_ago:.1f} s ago: stop it, or point this one at its Ray cluster (RAY_ADDRESS)",
        deployment=deployment,
        renewed_s_ago=renewed_s_ago,
        lease_s=lease_s,
    )


NIGHT_COLUMNS = "room_id, date, status, holder, hold_expires_at, version"
_ROOMS_PER_LOAD = 500  # rooms per IN (...) when a shard loads its nights


def room_nights_queries(room_ids: Sequence[int], param: str) -> Iterator[tuple[str, list[int]]]:
    """How a shard loads its own rooms' nights by primary key: (SELECT of NIGHT_COLUMNS, its
    parameters) for each chunk of `room_ids`; `param` is the engine's placeholder ("?" or "%s")."""
    for i in range(0, len(room_ids), _ROOMS_PER_LOAD):
        chunk = list(room_ids[i : i + _ROOMS_PER_LOAD])
        yield f"SELECT {NIGHT_COLUMNS} FROM availability WHERE room_id IN ({', '.join([param] * len(chunk))})", chunk


# Column encodings shared by both adapters: one definition of how a domain value is stored.

_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_CENT = decimal.Decimal("0.01")
_json = msgspec.json.Encoder()
_location = msgspec.json.Decoder(Location)
_strings = msgspec.json.Decoder(list[str])
_rates = msgspec.json.Decoder(RatePlan)
_stay_rules = msgspec.json.Decoder(StayRules)


def utc_datetime(unix_s: float) -> dt.datetime:
    """Unix seconds -> naive UTC datetime, rounded to the microsecond in integer arithmetic.

    A float that holds a whole number of microseconds (as any value read back does) survives
    utc_datetime -> unix_seconds exactly: both steps are correctly rounded.
    """
    return _EPOCH + dt.timedelta(microseconds=round(unix_s * 1_000_000))


def unix_seconds(utc: dt.datetime) -> float:
    """Naive UTC datetime -> unix seconds (the inverse of utc_datetime)."""
    return ((utc - _EPOCH) // _MICROSECOND) / 1_000_000


def exact_price(price: decimal.Decimal) -> decimal.Decimal:
    """The price as DECIMAL(10,2) stores it; refuse to round money silently."""
    cents = price.quantize(_CENT)
    if cents != price:
        raise ValueError(f"price {price} has more than two decimal places")
    return cents


def room_columns(room: Room) -> tuple[str, str, str, decimal.Decimal, str, int, str, str, str, str]:
    """The values of ROOM_COLUMNS, in its order."""
    return (
        room.title,
        room.description,
        _json.encode(room.location).decode(),
        exact_price(room.price_per_night),
        room.currency,
        room.capacity,
        _json.encode(room.amenities).decode(),
        _json.encode(room.images).decode(),
        _json.encode(room.rates).decode(),
        _json.encode(room.stay_rules).decode(),
    )


def room_from_columns(
    room_id: int,
    title: str,
    description: str | None,
    location: str,
    price: decimal.Decimal,
    currency: str,
    capacity: int,
    amenities: str | None,
    images: str | None,
    rates: str | None = None,
    stay_rules: str | None = None,
) -> Room:
    """The inverse of room_columns (JSON columns arrive as str from both engines)."""
    return Room(
        id=room_id,
        title=title,
        description=description or "",
        location=_location.decode(location),
        price_per_night=price,
        currency=currency,
        capacity=capacity,
        amenities=_strings.decode(amenities) if amenities else [],
        images=_strings.decode(images) if images else [],
        rates=_rates.decode(rates) if rates else RatePlan(),
        stay_rules=_stay_rules.decode(stay_rules) if stay_rules else StayRules(),
    )


def room_condition(expected: RoomPatch | None, param: str) -> tuple[str, list[object]]:
    """(" AND ..." SQL, its parameters): the stored columns equal what `expected` sets (an absent
    JSON document counts as its defaults' "{}"), for a compare-and-set update."""
    if expected is None:
        return "", []
    columns = room_patch_columns(expected)
    sql = "".join(
        f" AND COALESCE({column}, '{{}}') = {param}" if column in _JSON_DOCUMENTS else f" AND {column} = {param}"
        for column in columns
    )
    return sql, list(columns.values())


_JSON_DOCUMENTS = frozenset({"rates", "stay_rules"})


def room_patch_columns(patch: RoomPatch) -> dict[str, object]:
    """column -> stored value for each field the patch sets (price as room_columns stores it)."""
    columns: dict[str, object] = {}
    for field, value in patch.set_fields().items():
        if field == "price_per_night":
            columns["price"] = exact_price(cast(decimal.Decimal, value))  # what a set price is
        elif field in ("location", "amenities", "images", "rates", "stay_rules"):
            columns[field] = _json.encode(value).decode()
        else:
            columns[field] = value
    return columns
