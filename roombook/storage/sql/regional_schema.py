"""Schema of a regional store (users, refresh tokens, bookings) and its column encodings.

Decisions the adapters rely on:
- users: id, email, password hash, names, `region` and `role`; `email` is stored normalized and
  compared byte for byte (utf8mb4_bin), as SQLite does, so both engines agree on what a duplicate is;
- bookings: a string id (also the hold id in the room's shard), the stay, price and status, the
  saga's columns (payment intent, and why a request was refused: the refusing error's kind, the
  nights taken, the decline code), and UNIQUE (user_id, idempotency_key) instead of a global
  unique key: one user's key says nothing about another user's;
- `store_region` names the one region a database belongs to; an adapter opened with another
  region refuses to migrate it. Users are numbered from their region's block (first_user_id),
  and tokens and bookings reference users, so a row cannot land in another region's store;
- times are UTC: DATETIME(6) on MySQL (sessions run at time_zone '+00:00'), text
  'YYYY-MM-DD HH:MM:SS.ffffff' on SQLite, which sorts like time; SQLite money is integer cents.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import TypeVar

import msgspec

from roombook.domain.accounts import Account, RefreshToken, Region, Role, User
from roombook.domain.bookings import Booking, BookingStatus, Refusal
from roombook.domain.rates import NightPrice
from roombook.storage.sql.migrations import Migration
from roombook.storage.sql.outbox_schema import outbox_migration

_MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_ASCII = "CHARACTER SET ascii COLLATE ascii_bin"
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"
_STATUSES = ", ".join(f"'{s}'" for s in BookingStatus)
_REGIONS = ", ".join(f"'{r}'" for r in Region)
_ROLES = ", ".join(f"'{r}'" for r in Role)

REGIONAL_MIGRATIONS: list[Migration] = [
    Migration(
        version=1,
        name="store_region, users, refresh_tokens, bookings",
        mysql=[
            "CREATE TABLE IF NOT EXISTS store_region ("
            " id INT NOT NULL PRIMARY KEY CHECK (id = 1),"
            f" region CHAR(2) {_ASCII} NOT NULL CHECK (region IN ({_REGIONS}))"
            f") {_MYSQL_TABLE_OPTIONS}",
            "CREATE TABLE IF NOT EXISTS users ("
            " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " email VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
            " password_hash VARCHAR(255) NOT NULL,"
            " first_name VARCHAR(100),"
            " last_name VARCHAR(100),"
            f" region CHAR(2) {_ASCII} NOT NULL CHECK (region IN ({_REGIONS})),"
            f" role VARCHAR(16) {_ASCII} NOT NULL DEFAULT 'user' CHECK (role IN ({_ROLES})),"
            " created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
            " updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),"
            " UNIQUE KEY uq_users_email (email)"
            f") {_MYSQL_TABLE_OPTIONS}",
            "CREATE TABLE IF NOT EXISTS refresh_tokens ("
            f" token_hash CHAR(64) {_ASCII} NOT NULL PRIMARY KEY,"
            " user_id BIGINT NOT NULL,"
            f" family_id CHAR(32) {_ASCII} NOT NULL,"
            " issued_at DATETIME(6) NOT NULL,"
            " expires_at DATETIME(6) NOT NULL,"
            " rotated_at DATETIME(6) NULL,"
            " revoked_at DATETIME(6) NULL,"
            " INDEX idx_refresh_family (family_id),"
            " INDEX idx_refresh_user (user_id),"
            " CONSTRAINT fk_refresh_user FOREIGN KEY (user_id) REFERENCES users (id)"
            f") {_MYSQL_TABLE_OPTIONS}",
            "CREATE TABLE IF NOT EXISTS bookings ("
            f" id VARCHAR(32) {_ASCII} NOT NULL PRIMARY KEY,"
            " user_id BIGINT NOT NULL,"
            " room_id BIGINT NOT NULL,"
            " check_in DATE NOT NULL,"
            " check_out DATE NOT NULL,"
            " guests INT NOT NULL CHECK (guests >= 1),"
            " nights INT NOT NULL CHECK (nights >= 1),"
            f" status ENUM({_STATUSES}) NOT NULL DEFAULT 'PENDING',"
            " total_price DECIMAL(10,2) NOT NULL,"
            f" currency CHAR(3) {_ASCII} NOT NULL,"
            " idempotency_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
            f" request_hash CHAR(64) {_ASCII} NOT NULL,"
            " payment_intent_id VARCHAR(255) NULL,"
            " failure_reason VARCHAR(255) NULL,"
            " created_at DATETIME(6) NOT NULL,"
            " updated_at DATETIME(6) NOT NULL,"
            " UNIQUE KEY uq_bookings_user_key (user_id, idempotency_key),"
            " INDEX idx_bookings_user_created (user_id, created_at, id),"
            " INDEX idx_bookings_room_dates (room_id, check_in, check_out),"
            " INDEX idx_bookings_status_created (status, created_at),"
            " CONSTRAINT ck_bookings_stay CHECK (check_out > check_in),"
            " CONSTRAINT fk_bookings_user FOREIGN KEY (user_id) REFERENCES users (id)"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS store_region ("
            " id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),"
            f" region TEXT NOT NULL CHECK (region IN ({_REGIONS})))",
            # AUTOINCREMENT: an id is never reused, so a token minted for a deleted user cannot
            # name the next one to register.
            "CREATE TABLE IF NOT EXISTS users ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " email TEXT NOT NULL UNIQUE CHECK (length(email) <= 255),"
            " password_hash TEXT NOT NULL,"
            " first_name TEXT CHECK (length(first_name) <= 100),"
            " last_name TEXT CHECK (length(last_name) <= 100),"
            f" region TEXT NOT NULL CHECK (region IN ({_REGIONS})),"
            f" role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ({_ROLES})),"
            f" created_at TEXT NOT NULL DEFAULT {_SQLITE_NOW},"
            f" updated_at TEXT NOT NULL DEFAULT {_SQLITE_NOW})",
            "CREATE TABLE IF NOT EXISTS refresh_tokens ("
            " token_hash TEXT NOT NULL PRIMARY KEY,"
            " user_id INTEGER NOT NULL REFERENCES users (id),"
            " family_id TEXT NOT NULL,"
            " issued_at TEXT NOT NULL,"
            " expires_at TEXT NOT NULL,"
            " rotated_at TEXT,"
            " revoked_at TEXT) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS idx_refresh_family ON refresh_tokens (family_id)",
            "CREATE INDEX IF NOT EXISTS idx_refresh_user ON refresh_tokens (user_id)",
            "CREATE TABLE IF NOT EXISTS bookings ("
            " id TEXT NOT NULL PRIMARY KEY,"
            " user_id INTEGER NOT NULL REFERENCES users (id),"
            " room_id INTEGER NOT NULL,"
            " check_in TEXT NOT NULL,"
            " check_out TEXT NOT NULL CHECK (check_out > check_in),"
            " guests INTEGER NOT NULL CHECK (guests >= 1),"
            " nights INTEGER NOT NULL CHECK (nights >= 1),"
            f" status TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ({_STATUSES})),"
            " total_price INTEGER NOT NULL,"
            " currency TEXT NOT NULL CHECK (length(currency) = 3),"
            " idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) <= 255),"
            " request_hash TEXT NOT NULL,"
            " payment_intent_id TEXT,"
            " failure_reason TEXT,"
            " created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL,"
            " UNIQUE (user_id, idempotency_key)) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS idx_bookings_user_created ON bookings (user_id, created_at, id)",
            "CREATE INDEX IF NOT EXISTS idx_bookings_room_dates ON bookings (room_id, check_in, check_out)",
            "CREATE INDEX IF NOT EXISTS idx_bookings_status_created ON bookings (status, created_at)",
        ],
    ),
    outbox_migration(2),
    Migration(
        version=3,
        name="pending_releases",
        # A confirmed booking's cancellation records its nights here in the same transaction; the
        # row goes once the shard has freed them. The reconciler frees whatever a failure left.
        mysql=[
            "CREATE TABLE IF NOT EXISTS pending_releases ("
            f" booking_id VARCHAR(32) {_ASCII} NOT NULL PRIMARY KEY,"
            " cancelled_at DATETIME(6) NOT NULL,"
            " INDEX idx_pending_releases_cancelled (cancelled_at)"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS pending_releases ("
            " booking_id TEXT NOT NULL PRIMARY KEY, cancelled_at TEXT NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS idx_pending_releases_cancelled ON pending_releases (cancelled_at)",
        ],
    ),
    Migration(
        version=4,
        name="booking_refusals",
        # Why a request was refused, in columns: the refusing error's kind (RoombookError.kind),
        # the nights someone else had (a JSON array of dates) and the payment's decline code. The
        # rows of before are carried over from their failure_reason text ("nights_unavailable:"
        # and the taken nights as offsets from check_in, "payment_declined:" and the code, or a
        # bare kind).
        mysql=[
            f"ALTER TABLE bookings ADD COLUMN refusal VARCHAR(32) {_ASCII} NULL,"
            " ADD COLUMN refused_nights JSON NULL CHECK (refused_nights IS NULL OR json_valid(refused_nights)),"
            " ADD COLUMN decline_code VARCHAR(64) NULL",
            "UPDATE bookings SET refusal = 'nights_unavailable', refused_nights = ("
            " SELECT JSON_ARRAYAGG(DATE_FORMAT(bookings.check_in + INTERVAL taken.night DAY, '%Y-%m-%d'))"
            " FROM JSON_TABLE(CONCAT('[', SUBSTRING(bookings.failure_reason, 20), ']'),"
            " '$[*]' COLUMNS (night INT PATH '$')) AS taken)"
            " WHERE LEFT(failure_reason, 19) = 'nights_unavailable:'",
            "UPDATE bookings SET refusal = 'payment_declined', decline_code = SUBSTRING(failure_reason, 18)"
            " WHERE LEFT(failure_reason, 17) = 'payment_declined:'",
            "UPDATE bookings SET refusal = failure_reason"
            " WHERE failure_reason IN ('hold_expired', 'shard_unavailable')",
        ],
        sqlite=[
            "ALTER TABLE bookings ADD COLUMN refusal TEXT CHECK (length(refusal) <= 32)",
            "ALTER TABLE bookings ADD COLUMN refused_nights TEXT"
            " CHECK (refused_nights IS NULL OR json_valid(refused_nights))",
            "ALTER TABLE bookings ADD COLUMN decline_code TEXT CHECK (length(decline_code) <= 64)",
            "UPDATE bookings SET refusal = 'nights_unavailable', refused_nights = ("
            " SELECT json_group_array(date(bookings.check_in, '+' || taken.value || ' days'))"
            " FROM json_each('[' || substr(bookings.failure_reason, 20) || ']') AS taken)"
            " WHERE substr(failure_reason, 1, 19) = 'nights_unavailable:'",
            "UPDATE bookings SET refusal = 'payment_declined', decline_code = substr(failure_reason, 18)"
            " WHERE substr(failure_reason, 1, 17) = 'payment_declined:'",
            "UPDATE bookings SET refusal = failure_reason"
            " WHERE failure_reason IN ('hold_expired', 'shard_unavailable')",
        ],
    ),
    Migration(
        version=5,
        name="bookings_without_failure_reason",
        mysql=["ALTER TABLE bookings DROP COLUMN failure_reason"],
        sqlite=["ALTER TABLE bookings DROP COLUMN failure_reason"],
    ),
]

# Each night's price of a booking, as [{"date", "price"}] (NULL for bookings made before it).
REGIONAL_MIGRATIONS.append(
    Migration(
        version=200,
        name="bookings: night_prices",
        mysql=[
            "ALTER TABLE bookings ADD COLUMN night_prices JSON NULL"
            " CHECK (night_prices IS NULL OR json_valid(night_prices))"
        ],
        sqlite=[
            "ALTER TABLE bookings ADD COLUMN night_prices TEXT CHECK (night_prices IS NULL OR json_valid(night_prices))"
        ],
    )
)

# Column lists both adapters select, in the order the *_from_row functions read them.
USER_COLUMNS = "id, email, first_name, last_name, region, role, created_at"
ACCOUNT_COLUMNS = USER_COLUMNS + ", password_hash"
TOKEN_COLUMNS = "token_hash, user_id, family_id, issued_at, expires_at, rotated_at, revoked_at"
BOOKING_COLUMNS = (
    "id, user_id, room_id, check_in, check_out, guests, nights, status, total_price, currency,"
    " idempotency_key, request_hash, payment_intent_id, created_at, updated_at, refusal, refused_nights, decline_code,"
    " night_prices"
)

_CENT = decimal.Decimal("0.01")
_T = TypeVar("_T")


class ColumnEncoding:
    """How an engine stores times, dates and money. This base is MySQL's (native types). A value
    read back is checked for the type the column holds: anything else is a schema the code does
    not know, never data to guess at."""

    def time(self, value: dt.datetime) -> object:
        if value.tzinfo is None:
            raise ValueError("store aware datetimes only (a naive one has no defined instant)")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def optional_time(self, value: dt.datetime | None) -> object:
        return None if value is None else self.time(value)

    def read_time(self, value: object) -> dt.datetime:
        return _expect(value, dt.datetime).replace(tzinfo=dt.UTC)

    def read_optional_time(self, value: object) -> dt.datetime | None:
        return None if value is None else self.read_time(value)

    def date(self, value: dt.date) -> object:
        return value

    def read_date(self, value: object) -> dt.date:
        return _expect(value, dt.date)

    def money(self, value: decimal.Decimal) -> object:
        cents = value.quantize(_CENT)
        if cents != value:
            raise ValueError(f"amount {value} has more than two decimal places")
        return cents

    def read_money(self, value: object) -> decimal.Decimal:
        return _expect(value, decimal.Decimal)


class SqliteColumnEncoding(ColumnEncoding):
    """Times as text that sorts like time, dates as ISO text, money as integer cents."""

    def time(self, value: dt.datetime) -> object:
        naive = _expect(super().time(value), dt.datetime)
        return naive.isoformat(sep=" ", timespec="microseconds")

    def read_time(self, value: object) -> dt.datetime:
        return dt.datetime.fromisoformat(_expect(value, str)).replace(tzinfo=dt.UTC)

    def date(self, value: dt.date) -> object:
        return value.isoformat()

    def read_date(self, value: object) -> dt.date:
        return dt.date.fromisoformat(_expect(value, str))

    def money(self, value: decimal.Decimal) -> object:
        return int(_expect(super().money(value), decimal.Decimal) * 100)

    def read_money(self, value: object) -> decimal.Decimal:
        return (decimal.Decimal(_expect(value, int)) / 100).quantize(_CENT)


def _expect(value: object, kind: type[_T]) -> _T:
    if not isinstance(value, kind):
        raise TypeError(f"a column holds {type(value).__name__}, not the {kind.__name__} its schema says")
    return value


MYSQL_COLUMNS = ColumnEncoding()
SQLITE_COLUMNS = SqliteColumnEncoding()


def user_from_row(row: tuple, enc: ColumnEncoding) -> User:
    return User(
        id=row[0],
        email=row[1],
        first_name=row[2],
        last_name=row[3],
        region=Region(row[4]),
        role=Role(row[5]),
        created_at=enc.read_time(row[6]),
    )


def account_from_row(row: tuple, enc: ColumnEncoding) -> Account:
    return Account(user=user_from_row(row, enc), password_hash=row[7])


def token_params(token: RefreshToken, enc: ColumnEncoding) -> tuple:
    return (
        token.token_hash,
        token.user_id,
        token.family_id,
        enc.time(token.issued_at),
        enc.time(token.expires_at),
        enc.optional_time(token.rotated_at),
        enc.optional_time(token.revoked_at),
    )


def token_from_row(row: tuple, enc: ColumnEncoding) -> RefreshToken:
    return RefreshToken(
        token_hash=row[0],
        user_id=row[1],
        family_id=row[2],
        issued_at=enc.read_time(row[3]),
        expires_at=enc.read_time(row[4]),
        rotated_at=enc.read_optional_time(row[5]),
        revoked_at=enc.read_optional_time(row[6]),
    )


def booking_params(b: Booking, enc: ColumnEncoding) -> tuple:
    return (
        b.id,
        b.user_id,
        b.room_id,
        enc.date(b.check_in),
        enc.date(b.check_out),
        b.guests,
        b.nights,
        b.status.value,
        enc.money(b.total_price),
        b.currency,
        b.idempotency_key,
        b.request_hash,
        b.payment_intent_id,
        enc.time(b.created_at),
        enc.time(b.updated_at),
        *refusal_params(b.refusal),
        _NIGHT_PRICES_JSON.encode(b.night_prices).decode() if b.night_prices else None,
    )


def booking_from_row(row: tuple, enc: ColumnEncoding) -> Booking:
    return Booking(
        id=row[0],
        user_id=row[1],
        room_id=row[2],
        check_in=enc.read_date(row[3]),
        check_out=enc.read_date(row[4]),
        guests=row[5],
        nights=row[6],
        status=BookingStatus(row[7]),
        total_price=enc.read_money(row[8]),
        currency=row[9],
        idempotency_key=row[10],
        request_hash=row[11],
        payment_intent_id=row[12],
        created_at=enc.read_time(row[13]),
        updated_at=enc.read_time(row[14]),
        refusal=refusal_from_columns(row[15], row[16], row[17]),
        night_prices=_NIGHT_PRICES.decode(row[18]) if row[18] else [],
    )


_NIGHTS = msgspec.json.Decoder(list[dt.date])
_NIGHT_PRICES = msgspec.json.Decoder(list[NightPrice])
_NIGHT_PRICES_JSON = msgspec.json.Encoder()


def refusal_params(refusal: Refusal | None) -> tuple[str | None, str | None, str | None]:
    """A refusal as its three columns: kind, the nights as a JSON array of dates, decline code."""
    if refusal is None:
        return (None, None, None)
    nights = msgspec.json.encode(refusal.nights).decode() if refusal.nights else None
    return (refusal.kind, nights, refusal.decline_code)


def refusal_from_columns(kind: str | None, nights: str | bytes | None, decline_code: str | None) -> Refusal | None:
    if kind is None:
        return None
    return Refusal(kind=kind, nights=_NIGHTS.decode(nights) if nights else [], decline_code=decline_code)
