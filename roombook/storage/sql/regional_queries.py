"""Every statement of a regional store, written once and built for each engine's dialect.

The engines differ in the placeholder (%s or ?), in how an insert skips a row that exists
(INSERT IGNORE or INSERT OR IGNORE), in how a booking under a taken idempotency key is reported
(MySQL raises a duplicate key; SQLite's ON CONFLICT clause inserts nothing) and in how users are
numbered from their region's block (AUTO_INCREMENT or sqlite_sequence). Values are encoded by the
engine's ColumnEncoding (regional_schema).
"""

from __future__ import annotations

from roombook.storage.sql.regional_schema import (
    ACCOUNT_COLUMNS,
    BOOKING_COLUMNS,
    MODIFICATION_COLUMNS,
    TOKEN_COLUMNS,
    USER_COLUMNS,
)

# The next id AUTO_INCREMENT hands out (DDL: it takes no placeholder).
MYSQL_FIRST_USER_ID = "ALTER TABLE users AUTO_INCREMENT = {:d}"
# The next AUTOINCREMENT id is seq + 1; sqlite_sequence has a row once users had one.
SQLITE_SET_USER_SEQ = "UPDATE sqlite_sequence SET seq = ? WHERE name = 'users'"
SQLITE_INSERT_USER_SEQ = "INSERT INTO sqlite_sequence (name, seq) VALUES ('users', ?)"


class RegionalQueries:
    """The statements of one dialect; their parameters go in the order the placeholders stand."""

    def __init__(self, *, p: str, insert_ignore: str, on_booking_key_taken: str) -> None:
        def values(n: int) -> str:
            return ", ".join([p] * n)

        # -- the store's region
        self.claim_region = f"{insert_ignore} INTO store_region (id, region) VALUES (1, {p})"
        self.region_owner = "SELECT region FROM store_region WHERE id = 1"

        # -- users
        self.insert_user = (
            "INSERT INTO users (email, password_hash, first_name, last_name, region, role,"
            f" created_at, updated_at) VALUES ({values(8)})"
        )
        self.user = f"SELECT {USER_COLUMNS} FROM users WHERE id = {p}"
        self.account_by_email = f"SELECT {ACCOUNT_COLUMNS} FROM users WHERE email = {p}"
        self.set_role = f"UPDATE users SET role = {p}, updated_at = {p} WHERE id = {p}"
        self.set_password_hash = f"UPDATE users SET password_hash = {p}, updated_at = {p} WHERE id = {p}"
        self.delete_user = f"DELETE FROM users WHERE id = {p}"
        self.emails_registered_since = f"SELECT email FROM users WHERE created_at >= {p}"

        # -- refresh tokens
        self.insert_token = f"INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES ({values(7)})"
        self.token = f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = {p}"
        self.rotate_token = (
            f"UPDATE refresh_tokens SET rotated_at = {p}"
            f" WHERE token_hash = {p} AND rotated_at IS NULL AND revoked_at IS NULL"
        )
        self.revoke_token = f"UPDATE refresh_tokens SET revoked_at = {p} WHERE token_hash = {p} AND revoked_at IS NULL"
        self.revoke_family = f"UPDATE refresh_tokens SET revoked_at = {p} WHERE family_id = {p} AND revoked_at IS NULL"
        self.revoke_user_tokens = (
            f"UPDATE refresh_tokens SET revoked_at = {p} WHERE user_id = {p} AND revoked_at IS NULL"
        )

        # -- bookings
        self.insert_booking = f"INSERT INTO bookings ({BOOKING_COLUMNS}) VALUES ({values(25)}){on_booking_key_taken}"
        self.booking_by_key_head = f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE "
        self.booking_by_key = f"{self.booking_by_key_head}user_id = {p} AND idempotency_key = {p}"
        self.booking = f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = {p} AND user_id = {p}"
        self.count_bookings_of = f"SELECT COUNT(*) FROM bookings WHERE user_id = {p}"
        self.bookings_of = (
            f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE user_id = {p}"
            f" ORDER BY created_at DESC, id DESC LIMIT {p} OFFSET {p}"
        )
        # the refusal and payment_intent_id are kept unless the transition gives one
        self.transition_booking = (
            f"UPDATE bookings SET status = {p}, updated_at = {p},"
            f" payment_intent_id = COALESCE({p}, payment_intent_id),"
            f" refusal = COALESCE({p}, refusal), refused_nights = COALESCE({p}, refused_nights),"
            f" decline_code = COALESCE({p}, decline_code)"
            f" WHERE id = {p} AND status = {p}"
        )
        # a guest's cancellation: CONFIRMED -> CANCELLED with its fee and the refund it is due
        self.cancel_booking = (
            f"UPDATE bookings SET status = 'CANCELLED', updated_at = {p}, cancellation_fee = {p},"
            f" refund_amount = {p} WHERE id = {p} AND status = 'CONFIRMED' AND modifying IS NULL"
        )
        self.record_refund = (
            f"UPDATE bookings SET refund_id = {p}, updated_at = {p}"
            f" WHERE id = {p} AND status = 'CANCELLED' AND refund_id IS NULL AND refund_amount > 0"
        )
        self.refunds_due = (
            f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE refund_id IS NULL AND status = 'CANCELLED'"
            f" AND refund_amount > 0 ORDER BY updated_at, id LIMIT {p}"
        )
        # -- modifications: one under way per booking, taken by compare-and-set
        self.take_booking_for_change = (
            f"UPDATE bookings SET modifying = {p}"
            f" WHERE id = {p} AND user_id = {p} AND status = 'CONFIRMED' AND modifying IS NULL"
        )
        self.insert_modification = f"INSERT INTO booking_modifications ({MODIFICATION_COLUMNS}) VALUES ({values(26)})"
        self.modification_by_key = (
            f"SELECT {MODIFICATION_COLUMNS} FROM booking_modifications WHERE booking_id = {p} AND idempotency_key = {p}"
        )
        self.modification = f"SELECT {MODIFICATION_COLUMNS} FROM booking_modifications WHERE id = {p}"
        self.finish_modification = (
            f"UPDATE booking_modifications SET status = {p}, charge_id = {p}, refund_amount = {p},"
            f" refusal = {p}, refused_nights = {p}, decline_code = {p}, updated_at = {p}"
            f" WHERE id = {p} AND status = 'PENDING'"
        )
        self.apply_modification = (
            f"UPDATE bookings SET room_id = {p}, check_in = {p}, check_out = {p}, guests = {p}, nights = {p},"
            f" total_price = {p}, night_prices = {p}, modifying = NULL, modified_at = {p}, updated_at = {p}"
            f" WHERE id = {p} AND modifying = {p}"
        )
        self.end_modifying = f"UPDATE bookings SET modifying = NULL WHERE id = {p} AND modifying = {p}"
        self.record_modification_refund = (
            f"UPDATE booking_modifications SET refund_id = {p}, updated_at = {p}"
            f" WHERE id = {p} AND status <> 'PENDING' AND refund_id IS NULL AND refund_amount > 0"
        )
        self.modification_refunds_due = (
            f"SELECT {MODIFICATION_COLUMNS} FROM booking_modifications"
            f" WHERE status <> 'PENDING' AND refund_id IS NULL AND refund_amount > 0 ORDER BY updated_at, id LIMIT {p}"
        )
        self.pending_modifications_before = (
            f"SELECT {MODIFICATION_COLUMNS} FROM booking_modifications WHERE status = 'PENDING' AND created_at < {p}"
            f" ORDER BY created_at, id LIMIT {p}"
        )
        self.pending_bookings_before = (
            f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE status = 'PENDING' AND created_at < {p}"
            f" ORDER BY created_at, id LIMIT {p}"
        )

        # -- pending releases
        self.record_release = f"INSERT INTO pending_releases (booking_id, cancelled_at) VALUES ({p}, {p})"
        self.record_release_again = (
            f"{insert_ignore} INTO pending_releases (booking_id, cancelled_at) VALUES ({p}, {p})"
        )
        self.release_done = f"DELETE FROM pending_releases WHERE booking_id = {p}"
        self.pending_releases = (
            f"SELECT {BOOKING_COLUMNS} FROM pending_releases JOIN bookings ON bookings.id = pending_releases.booking_id"
            f" ORDER BY pending_releases.cancelled_at, pending_releases.booking_id LIMIT {p}"
        )


# A taken (user_id, idempotency_key) is a duplicate-key error on MySQL, which the adapter resolves.
MYSQL_QUERIES = RegionalQueries(p="%s", insert_ignore="INSERT IGNORE", on_booking_key_taken="")
SQLITE_QUERIES = RegionalQueries(
    p="?", insert_ignore="INSERT OR IGNORE", on_booking_key_taken=" ON CONFLICT (user_id, idempotency_key) DO NOTHING"
)
