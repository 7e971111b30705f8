"""The RegionalStore contract (users, refresh tokens, bookings), run on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import sqlite3

import asyncmy.errors
import msgspec
import pytest
from regional_stores import ENGINES, open_regional_stores

from roombook.domain.accounts import USER_ID_BLOCK, NewUser, RefreshToken, Region, Role
from roombook.domain.bookings import (
    Booking,
    BookingIds,
    BookingRequest,
    BookingStatus,
    Refusal,
    ensure_same_request,
    pending_booking,
    request_hash,
    stay_quote,
)
from roombook.domain.errors import DuplicateEmail, IdempotencyKeyReused, InvalidBookingTransition
from roombook.storage.sql.mysql_regional import MysqlRegionalStore
from roombook.storage.sql.sqlite_regional import SqliteRegionalStore

NOW = dt.datetime(2030, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=1)
REQUEST = BookingRequest(room_id=7, check_in=dt.date(2030, 6, 1), check_out=dt.date(2030, 6, 4), guests=2)
TAKEN = Refusal(kind="nights_unavailable", nights=[dt.date(2030, 6, 1), dt.date(2030, 6, 3)])
INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncmy.errors.IntegrityError)


@pytest.fixture(params=[e if e == "sqlite" else pytest.param(e, marks=pytest.mark.mysql) for e in ENGINES])
async def stores(request, tmp_path):
    mysql_dsn = request.getfixturevalue("mysql_dsn") if request.param == "mysql" else None
    async with open_regional_stores(request.param, tmp_path, mysql_dsn) as opened:
        yield opened


@pytest.fixture
def eu(stores):
    return stores[Region.EU]


def new_user(email: str = "ada@example.org", region: Region = Region.EU) -> NewUser:
    return NewUser(email=email, password_hash="$argon2id$fake", first_name="Ada", region=region, created_at=NOW)


def booking_for(
    user_id: int,
    key: str = "key-1",
    *,
    request: BookingRequest = REQUEST,
    at: dt.datetime = NOW,
    ids: BookingIds | None = None,
) -> Booking:
    booking_id = (ids or BookingIds()).next(int(at.timestamp() * 1000))
    return pending_booking(
        booking_id=booking_id,
        user_id=user_id,
        request=request,
        quote=stay_quote(request, price_per_night=decimal.Decimal("99.50"), currency="EUR"),
        idempotency_key=key,
        now=at,
    )


def token(user_id: int, token_hash: str, family: str = "f" * 32) -> RefreshToken:
    return RefreshToken(
        token_hash=token_hash, user_id=user_id, family_id=family, issued_at=NOW, expires_at=NOW + dt.timedelta(days=30)
    )


# -- the store itself -------------------------------------------------------------------------------


async def test_migrating_again_applies_nothing(eu):
    assert await eu.migrate() == []


async def test_a_store_refuses_a_database_of_another_region(stores, tmp_path, request):
    eu = stores[Region.EU]
    if isinstance(eu, SqliteRegionalStore):
        wrong = SqliteRegionalStore(str(tmp_path / f"regional-{Region.EU}.db"), Region.US)
    else:
        wrong = MysqlRegionalStore(request.getfixturevalue("mysql_dsn"), Region.US, pool_size=1)
    async with wrong:
        with pytest.raises(ValueError, match="belongs to region 'eu'"):
            await wrong.migrate()


async def test_each_region_numbers_users_from_its_own_block(stores):
    ada = await stores[Region.EU].create_user(new_user())
    bob = await stores[Region.US].create_user(new_user("bob@example.org", Region.US))

    assert ada.id == 1
    assert bob.id == USER_ID_BLOCK + 1


async def test_an_id_is_never_handed_out_twice_even_across_migrations(stores):
    us = stores[Region.US]
    bob = await us.create_user(new_user("bob@example.org", Region.US))
    await us.delete_user(bob.id)
    await us.migrate()

    assert (await us.create_user(new_user("eve@example.org", Region.US))).id == bob.id + 1


# -- users ----------------------------------------------------------------------------------------


async def test_a_user_is_stored_and_found_by_id_and_by_email(eu):
    ada = await eu.create_user(new_user())

    assert await eu.user(ada.id) == ada
    account = await eu.account_by_email("ada@example.org")
    assert account.user == ada and account.password_hash == "$argon2id$fake"
    assert ada.role is Role.USER and ada.created_at == NOW
    assert await eu.user(ada.id + 1) is None
    assert await eu.account_by_email("nobody@example.org") is None


async def test_a_duplicate_email_in_one_store_is_refused(eu):
    await eu.create_user(new_user())

    with pytest.raises(DuplicateEmail):
        await eu.create_user(new_user())


async def test_a_store_refuses_a_user_of_another_region(stores):
    with pytest.raises(ValueError):
        await stores[Region.US].create_user(new_user(region=Region.EU))


async def test_role_and_password_hash_can_be_changed(eu):
    ada = await eu.create_user(new_user())

    assert await eu.set_role(ada.id, Role.ADMIN, LATER)
    assert await eu.set_password_hash(ada.id, "$argon2id$new", LATER)

    account = await eu.account_by_email(ada.email)
    assert account.user.role is Role.ADMIN and account.password_hash == "$argon2id$new"
    assert not await eu.set_role(ada.id + 99, Role.ADMIN, LATER)


async def test_a_user_can_be_deleted_once(eu):
    ada = await eu.create_user(new_user())

    assert await eu.delete_user(ada.id)
    assert not await eu.delete_user(ada.id)
    assert await eu.user(ada.id) is None


# -- refresh tokens --------------------------------------------------------------------------------


async def test_a_refresh_token_is_found_by_its_hash(eu):
    ada = await eu.create_user(new_user())
    await eu.insert_refresh_token(token(ada.id, "a" * 64))

    assert await eu.refresh_token("a" * 64) == token(ada.id, "a" * 64)
    assert await eu.refresh_token("b" * 64) is None


async def test_a_refresh_token_rotates_exactly_once(eu):
    ada = await eu.create_user(new_user())
    await eu.insert_refresh_token(token(ada.id, "a" * 64))

    results = await asyncio.gather(
        *(eu.rotate_refresh_token("a" * 64, token(ada.id, f"{i:064d}"), LATER) for i in range(5))
    )

    assert sorted(results) == [False] * 4 + [True]
    assert (await eu.refresh_token("a" * 64)).rotated_at == LATER
    winner = results.index(True)
    assert await eu.refresh_token(f"{winner:064d}") is not None
    assert [await eu.refresh_token(f"{i:064d}") is None for i in range(5)].count(True) == 4


async def test_a_revoked_token_cannot_rotate(eu):
    ada = await eu.create_user(new_user())
    await eu.insert_refresh_token(token(ada.id, "a" * 64))

    assert await eu.revoke_refresh_token("a" * 64, LATER)
    assert not await eu.revoke_refresh_token("a" * 64, LATER)
    assert not await eu.rotate_refresh_token("a" * 64, token(ada.id, "b" * 64), LATER)
    assert (await eu.refresh_token("a" * 64)).revoked_at == LATER


async def test_revoking_a_family_or_a_user_revokes_every_live_token_of_it(eu):
    ada = await eu.create_user(new_user())
    for i, family in enumerate(["1" * 32, "1" * 32, "2" * 32]):
        await eu.insert_refresh_token(token(ada.id, f"{i:064d}", family))

    assert await eu.revoke_token_family("1" * 32, LATER) == 2
    assert await eu.revoke_token_family("1" * 32, LATER) == 0
    assert (await eu.refresh_token(f"{2:064d}")).revoked_at is None
    assert await eu.revoke_user_tokens(ada.id, LATER) == 1


# -- bookings -------------------------------------------------------------------------------------


async def test_a_booking_round_trips_every_field(eu):
    ada = await eu.create_user(new_user())
    booking = booking_for(ada.id)

    assert await eu.insert_booking(booking) == booking
    stored = await eu.booking(booking.id, ada.id)
    assert stored == booking
    assert stored.total_price == decimal.Decimal("298.50") and stored.created_at == NOW
    assert [n.price for n in stored.night_prices] == [decimal.Decimal("99.50")] * 3


async def test_the_same_idempotency_key_returns_the_first_booking(eu):
    ada = await eu.create_user(new_user())
    first = await eu.insert_booking(booking_for(ada.id))

    again = await eu.insert_booking(booking_for(ada.id, at=LATER))

    assert again == first
    assert (await eu.bookings_of(ada.id, page=1, per_page=10)).total == 1


async def test_concurrent_inserts_under_one_key_store_one_booking(eu):
    ada = await eu.create_user(new_user())
    ids = BookingIds()

    results = await asyncio.gather(*(eu.insert_booking(booking_for(ada.id, ids=ids)) for _ in range(8)))

    assert len({r.id for r in results}) == 1
    assert (await eu.bookings_of(ada.id, page=1, per_page=10)).total == 1


async def test_a_different_body_under_the_same_key_is_detected(eu):
    ada = await eu.create_user(new_user())
    first = await eu.insert_booking(booking_for(ada.id))
    other_request = msgspec.structs.replace(REQUEST, guests=3)

    stored = await eu.insert_booking(booking_for(ada.id, request=other_request))

    assert stored == first
    with pytest.raises(IdempotencyKeyReused):
        ensure_same_request(stored, request_hash(other_request))


async def test_keys_are_per_user_and_case_sensitive(eu):
    ada = await eu.create_user(new_user())
    bob = await eu.create_user(new_user("bob@example.org"))
    ids = BookingIds()

    made = [
        await eu.insert_booking(booking_for(u, k, ids=ids)) for u, k in [(ada.id, "k"), (bob.id, "k"), (ada.id, "K")]
    ]

    assert len({b.id for b in made}) == 3


async def test_a_booking_is_only_visible_to_its_user(eu):
    ada = await eu.create_user(new_user())
    bob = await eu.create_user(new_user("bob@example.org"))
    booking = await eu.insert_booking(booking_for(ada.id))

    assert await eu.booking(booking.id, bob.id) is None
    assert await eu.booking("bk_missing", ada.id) is None


async def test_only_pending_bookings_are_inserted(eu):
    ada = await eu.create_user(new_user())
    with pytest.raises(ValueError):
        await eu.insert_booking(msgspec.structs.replace(booking_for(ada.id), status=BookingStatus.CONFIRMED))


async def test_a_status_change_is_a_compare_and_set(eu):
    ada = await eu.create_user(new_user())
    booking = await eu.insert_booking(booking_for(ada.id))

    confirm = dict(expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=LATER, payment_intent_id="pi_1")
    results = await asyncio.gather(*(eu.transition_booking(booking.id, **confirm) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    assert not await eu.transition_booking(
        booking.id, expected=BookingStatus.PENDING, to=BookingStatus.CANCELLED, now=LATER, refusal=TAKEN
    )

    stored = await eu.booking(booking.id, ada.id)
    assert stored.status is BookingStatus.CONFIRMED and stored.payment_intent_id == "pi_1"
    assert stored.updated_at == LATER and stored.refusal is None


async def test_a_declined_booking_records_why(eu):
    ada = await eu.create_user(new_user())
    booking = await eu.insert_booking(booking_for(ada.id))

    assert await eu.transition_booking(
        booking.id,
        expected=BookingStatus.PENDING,
        to=BookingStatus.CANCELLED,
        now=LATER,
        payment_intent_id="pi_2",
        refusal=Refusal(kind="payment_declined", decline_code="card_declined"),
    )

    stored = await eu.booking(booking.id, ada.id)
    assert (stored.status, stored.payment_intent_id, stored.refusal) == (
        BookingStatus.CANCELLED,
        "pi_2",
        Refusal(kind="payment_declined", decline_code="card_declined"),
    )


async def test_a_refused_booking_keeps_the_nights_that_were_taken(eu):
    ada = await eu.create_user(new_user())
    booking = await eu.insert_booking(booking_for(ada.id))

    assert await eu.transition_booking(
        booking.id, expected=BookingStatus.PENDING, to=BookingStatus.CANCELLED, now=LATER, refusal=TAKEN
    )
    assert (await eu.booking(booking.id, ada.id)).refusal == TAKEN
    [listed] = (await eu.bookings_of(ada.id, page=1, per_page=10)).items
    assert listed.refusal == TAKEN


async def test_a_transition_the_lifecycle_forbids_is_refused_before_touching_the_row(eu):
    with pytest.raises(InvalidBookingTransition):
        await eu.transition_booking("bk_x", expected=BookingStatus.CANCELLED, to=BookingStatus.CONFIRMED, now=LATER)


async def test_bookings_are_listed_newest_first_page_by_page(eu):
    ada = await eu.create_user(new_user())
    bob = await eu.create_user(new_user("bob@example.org"))
    ids = BookingIds()
    made = [
        await eu.insert_booking(booking_for(ada.id, f"k{i}", at=NOW + dt.timedelta(seconds=i), ids=ids))
        for i in range(7)
    ]
    await eu.insert_booking(booking_for(bob.id, "k0", ids=ids))
    newest_first = [b.id for b in reversed(made)]

    pages = [await eu.bookings_of(ada.id, page=p, per_page=3) for p in (1, 2, 3, 4)]

    assert [[b.id for b in page.items] for page in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:],
        [],
    ]
    assert {page.total for page in pages} == {7}
    assert (pages[1].page, pages[1].per_page) == (2, 3)


async def test_pending_bookings_older_than_a_cutoff_are_listed_oldest_first(eu):
    ada = await eu.create_user(new_user())
    ids = BookingIds()
    made = [
        await eu.insert_booking(booking_for(ada.id, f"k{i}", at=NOW + dt.timedelta(minutes=i), ids=ids))
        for i in range(4)
    ]
    await eu.transition_booking(made[0].id, expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=LATER)

    stale = await eu.pending_bookings_before(NOW + dt.timedelta(minutes=2, seconds=30))

    assert [b.id for b in stale] == [made[1].id, made[2].id]
    assert len(await eu.pending_bookings_before(NOW + dt.timedelta(hours=1), limit=1)) == 1


async def test_a_store_takes_no_booking_or_token_of_a_user_it_does_not_hold(stores):
    ada = await stores[Region.EU].create_user(new_user())
    us = stores[Region.US]

    with pytest.raises(INTEGRITY_ERRORS):
        await us.insert_booking(booking_for(ada.id))
    with pytest.raises(INTEGRITY_ERRORS):
        await us.insert_refresh_token(token(ada.id, "a" * 64))


async def test_a_release_is_recorded_by_a_cancellation_or_on_request_once_and_gone_when_done(eu):
    ada = await eu.create_user(new_user())
    cancelled = await eu.insert_booking(booking_for(ada.id, key="cancelled"))
    expired = await eu.insert_booking(booking_for(ada.id, key="expired"))
    await eu.transition_booking(cancelled.id, expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=NOW)
    assert await eu.transition_booking(
        cancelled.id, expected=BookingStatus.CONFIRMED, to=BookingStatus.CANCELLED, now=LATER
    )
    await eu.transition_booking(expired.id, expected=BookingStatus.PENDING, to=BookingStatus.EXPIRED, now=NOW)
    assert [b.id for b in await eu.pending_releases()] == [cancelled.id]

    await eu.record_release(expired.id, LATER + dt.timedelta(seconds=1))
    await eu.record_release(expired.id, LATER + dt.timedelta(seconds=2))  # again: still one
    assert [b.id for b in await eu.pending_releases()] == [cancelled.id, expired.id]

    await eu.release_done(cancelled.id)
    await eu.release_done(cancelled.id)
    assert [b.id for b in await eu.pending_releases()] == [expired.id]


async def test_a_booking_is_found_by_its_users_idempotency_key_only(eu):
    ada = await eu.create_user(new_user())
    bob = await eu.create_user(new_user("bob@example.com"))
    booking = await eu.insert_booking(booking_for(ada.id, "key-9"))

    assert await eu.booking_by_key(ada.id, "key-9") == booking
    assert await eu.booking_by_key(bob.id, "key-9") is None
    assert await eu.booking_by_key(ada.id, "key-8") is None
