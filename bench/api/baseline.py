"""The design's row-lock booking service behind roombook's own HTTP front: the baseline of bench.api.

    ROOMBOOK_JWT_SECRET=S python -m bench.api.baseline --dsn mysql://root@127.0.0.1:3306/DB --port 8081

POST /api/v1/bookings with the product's contract: a Bearer access token signed with the same
secret and verified by the same codec, an Idempotency-Key header, the same BookingRequest body
(read_body: strict, card numbers refused), 201 with {"booking": ...}, 409/402/404/422 as
application/problem+json through the product's problem middleware. Behind it the design's flow,
the one bench.core's B-pool runs:

1. one transaction: read the room (price, capacity), `SELECT ... FOR UPDATE` its nights' rows,
   if every night is `available` mark them `held`, commit (otherwise roll back: 409);
2. the simulated payment (the product's SimulatedPayments);
3. one transaction: the nights `booked`, INSERT the CONFIRMED booking row, commit.

Server defaults (InnoDB, REPEATABLE READ, durable commits), one pool of --pool-size connections
shared by every request, handed out first come first served (with --processes N, N serving
processes on one port, each with its share of the connections). A deadlock or lock wait timeout is
retried as bench.core's B does; after that the request answers 503. A replayed Idempotency-Key
answers the stored booking. The schema, the pre-created availability rows and the rooms are the
bench's to create (bench/api/rounds.py), with bench/core/rowlock_system.py's SCHEMA.
Only in bench/: the product never takes row locks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import decimal
import multiprocessing
import multiprocessing.synchronize
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncmy
import asyncmy.errors
import msgspec
from aiohttp import web

from bench.core.rowlock_system import HOLD_TTL_S, LOCK_RETRIES, RELEASE_RETRIES
from bench.databases import connection_options
from roombook.domain.bookings import MAX_BOOKING_NIGHTS, BookingRequest, BookingState
from roombook.domain.errors import (
    InvalidBooking,
    InvalidCardToken,
    InvalidToken,
    NightsUnavailable,
    PaymentDeclined,
    StoreUnavailable,
    UnknownRoom,
)
from roombook.domain.rates import NightPrice
from roombook.http.bookings_routes import BookingEnvelope, BookingOut
from roombook.http.endpoints import Endpoints, json_response, read_body
from roombook.http.headers import add_security_headers
from roombook.http.problems import ProblemError, problem_middleware
from roombook.services.access_tokens import AccessClaims, AccessTokenCodec
from roombook.services.payments import SimulatedPayments, check_card_token, looks_like_card_number
from roombook.storage.sql.mysql_db import FairPool, mysql_target

ROOMS_SCHEMA = (
    "CREATE TABLE rooms (id BIGINT PRIMARY KEY, price_per_night DECIMAL(10,2) NOT NULL,"
    " currency CHAR(3) NOT NULL, capacity INT NOT NULL) ENGINE=InnoDB"
)
DEFAULT_CARD_TOKEN = "tok_visa"
TOKEN_LEEWAY_S = 30
DAY = dt.timedelta(days=1)
_DUPLICATE_KEY = 1062
_LOCK_ERRORS = {1213: "deadlock", 1205: "lock wait timeout"}
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$")
# the room and whether the key was used before, in the hold's first round trip
_ROOM = (
    "SELECT price_per_night, currency, capacity, (SELECT id FROM bookings WHERE idempotency_key = %s)"
    " FROM rooms WHERE id = %s"
)
_SELECT = "SELECT status FROM availability WHERE room_id = %s AND date BETWEEN %s AND %s FOR UPDATE"
_HOLD = (
    "UPDATE availability SET status = 'held', hold_expires_at = UTC_TIMESTAMP() + INTERVAL %s SECOND,"
    " version = version + 1 WHERE room_id = %s AND date BETWEEN %s AND %s"
)
_BOOK = (
    "UPDATE availability SET status = 'booked', hold_expires_at = NULL, version = version + 1"
    " WHERE room_id = %s AND date BETWEEN %s AND %s AND status = 'held'"
)
_RELEASE = (
    "UPDATE availability SET status = 'available', hold_expires_at = NULL, version = version + 1"
    " WHERE room_id = %s AND date BETWEEN %s AND %s AND status = 'held'"
)
_INSERT = (
    "INSERT INTO bookings (user_id, room_id, check_in, check_out, guests, status, total_price,"
    " idempotency_key, payment_intent_id) VALUES (%s, %s, %s, %s, %s, 'CONFIRMED', %s, %s, %s)"
)
_BY_KEY = (
    "SELECT id, user_id, room_id, check_in, check_out, guests, status, total_price FROM bookings"
    " WHERE idempotency_key = %s"
)


POOL = web.AppKey("pool", FairPool)
TOKENS = web.AppKey("tokens", AccessTokenCodec)
PAYMENTS = web.AppKey("payments", SimulatedPayments)

api = Endpoints()
T = TypeVar("T")


class _LockGaveUp(Exception):
    """Deadlocks or lock wait timeouts on every try of a step."""


class _Held(msgspec.Struct, frozen=True):
    price_per_night: decimal.Decimal
    currency: str


class _KeyUsed(Exception):
    """The Idempotency-Key has a booking already: the answer is that booking."""


@api.post("/bookings", summary="Book a room on row locks", request=BookingRequest, response=BookingEnvelope, status=201)
async def create_booking(request: web.Request) -> web.Response:
    claims = _caller(request)
    key = request.headers.get("Idempotency-Key")
    if key is None or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidBooking("send an Idempotency-Key header of 1 to 255 printable ASCII characters")
    if looks_like_card_number(key):
        raise InvalidCardToken("send a card token (tok_...), never a card number")
    body = await read_body(request, BookingRequest)
    check_card_token(body.card_token or DEFAULT_CARD_TOKEN)
    pool = request.app[POOL]
    first, last = body.check_in, body.check_out - DAY
    try:
        held = await _retried(pool, LOCK_RETRIES, _hold, body, first, last, key)
    except _KeyUsed:
        return json_response(BookingEnvelope(booking=await _booking_by_key(pool, key, claims.user_id)), status=201)
    price = held.price_per_night * body.stay.night_count
    intent = await request.app[PAYMENTS].authorize(price, held.currency, body.card_token or DEFAULT_CARD_TOKEN, key)
    if not intent.authorized:
        await _retried(pool, RELEASE_RETRIES, _release, body.room_id, first, last)
        raise PaymentDeclined(intent.decline_code or "declined")
    try:
        booking_id = await _retried(pool, LOCK_RETRIES, _book, body, first, last, claims.user_id, price, key, intent.id)
    except BaseException:
        await _retried(pool, RELEASE_RETRIES, _release, body.room_id, first, last)
        raise
    if booking_id is None:  # the key was used before (UNIQUE): answer its booking, free this hold
        await _retried(pool, RELEASE_RETRIES, _release, body.room_id, first, last)
        return json_response(BookingEnvelope(booking=await _booking_by_key(pool, key, claims.user_id)), status=201)
    now = dt.datetime.now(dt.UTC)
    booking = BookingOut(
        id=str(booking_id),
        room_id=body.room_id,
        check_in=body.check_in,
        check_out=body.check_out,
        guests=body.guests,
        nights=body.stay.night_count,
        status=BookingState.CONFIRMED,
        total_price=price,
        night_prices=_night_prices(body.check_in, body.check_out, price),
        currency=held.currency,
        created_at=now,
        updated_at=now,
    )
    return json_response(BookingEnvelope(booking=booking), status=201)


def _caller(request: web.Request) -> AccessClaims:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(401, "unauthorized", "Not authenticated", "send a Bearer token")
    try:
        return request.app[TOKENS].decode(token.strip())
    except InvalidToken:
        raise ProblemError(401, "unauthorized", "Not authenticated", "invalid or expired token") from None


async def _retried(pool: FairPool, tries: int, step: Callable[..., Awaitable[T]], *args: object) -> T:
    """One transaction step on a pooled connection; a lock error rolls it back and the step runs
    again, up to `tries` times (then 503). Any other error drops the connection."""
    for _ in range(tries):
        async with pool.acquire() as conn:
            try:
                return await step(conn, *args)
            except asyncmy.errors.MySQLError as exc:
                if not exc.args or exc.args[0] not in _LOCK_ERRORS:
                    conn.close()
                    raise StoreUnavailable(f"the store failed: {exc}") from exc
                await conn.rollback()
            except BaseException:
                conn.close()
                raise
    raise StoreUnavailable("lock waits on every try: retry the same request")


def _check_bookable(request: BookingRequest, *, today: dt.date, capacity: int) -> None:
    """The design's checks of a stay (its table keeps no stay rules): not past, not too long, guests fit."""
    if request.check_in < today:
        raise InvalidBooking(f"check_in {request.check_in} is in the past")
    if request.stay.night_count > MAX_BOOKING_NIGHTS:
        raise InvalidBooking(f"a booking has at most {MAX_BOOKING_NIGHTS} nights")
    if request.guests > capacity:
        raise InvalidBooking(f"the room sleeps at most {capacity} guests")


def _night_prices(check_in: dt.date, check_out: dt.date, total: decimal.Decimal) -> list[NightPrice]:
    """A flat nightly price (the design's one price per room), night by night as the contract shows it."""
    nights = (check_out - check_in).days
    each = total / nights if nights else total
    return [NightPrice(date=check_in + dt.timedelta(days=n), price=each) for n in range(nights)]


async def _hold(conn: asyncmy.Connection, body: BookingRequest, first: dt.date, last: dt.date, key: str) -> _Held:
    async with conn.cursor() as cur:
        await cur.execute(_ROOM, (key, body.room_id))
        room = await cur.fetchone()
        if room is None:
            await conn.rollback()
            raise UnknownRoom(f"no room {body.room_id}")
        price, currency, capacity, used = room
        if used is not None:
            await conn.rollback()
            raise _KeyUsed()
        try:
            _check_bookable(body, today=dt.datetime.now(dt.UTC).date(), capacity=capacity)
        except InvalidBooking:
            await conn.rollback()
            raise
        await cur.execute(_SELECT, (body.room_id, first, last))
        rows = await cur.fetchall()
        if len(rows) != body.stay.night_count or any(status != "available" for (status,) in rows):
            await conn.rollback()
            if len(rows) != body.stay.night_count:
                raise StoreUnavailable("the nights' rows are not created yet")
            raise NightsUnavailable(body.room_id, [])  # which ones would take another read
        await cur.execute(_HOLD, (int(HOLD_TTL_S), body.room_id, first, last))
    await conn.commit()
    return _Held(price_per_night=price, currency=currency)


async def _book(
    conn: asyncmy.Connection,
    body: BookingRequest,
    first: dt.date,
    last: dt.date,
    user_id: int,
    price: decimal.Decimal,
    key: str,
    intent_id: str,
) -> int | None:
    """The new booking's id; None if the Idempotency-Key is taken (nothing changed)."""
    async with conn.cursor() as cur:
        await cur.execute(_BOOK, (body.room_id, first, last))
        if cur.rowcount != body.stay.night_count:  # only a bug could take the hold away
            await conn.rollback()
            raise StoreUnavailable("the hold was lost")
        try:
            await cur.execute(_INSERT, (user_id, body.room_id, first, last + DAY, body.guests, price, key, intent_id))
        except asyncmy.errors.IntegrityError as exc:
            if exc.args and exc.args[0] == _DUPLICATE_KEY:
                await conn.rollback()
                return None
            raise
        booking_id = cur.lastrowid
    await conn.commit()
    return int(booking_id)


async def _release(conn: asyncmy.Connection, room_id: int, first: dt.date, last: dt.date) -> None:
    async with conn.cursor() as cur:
        await cur.execute(_RELEASE, (room_id, first, last))
    await conn.commit()


async def _booking_by_key(pool: FairPool, key: str, user_id: int) -> BookingOut:
    async with pool.acquire() as conn:
        async with conn.cursor() as cur:
            await cur.execute(_BY_KEY, (key,))
            row = await cur.fetchone()
        await conn.rollback()  # end the read's snapshot: the connection's next transaction must see fresh rows
    if row is None:
        raise StoreUnavailable("the booking of this key is missing")
    booking_id, owner, room_id, check_in, check_out, guests, status, total = row
    if owner != user_id:
        raise ProblemError(409, "idempotency-key-reused", "Idempotency-Key already used", "send a fresh key")
    created = dt.datetime.now(dt.UTC)  # the design's table keeps no times
    return BookingOut(
        id=str(booking_id),
        room_id=room_id,
        check_in=check_in,
        check_out=check_out,
        guests=guests,
        nights=(check_out - check_in).days,
        status=BookingState(status),
        total_price=total,
        night_prices=_night_prices(check_in, check_out, total),
        currency="EUR",
        created_at=created,
        updated_at=created,
    )


def create_baseline_app(
    dsn: str, *, jwt_secret: str, jwt_issuer: str = "roombook", pool_size: int = 64
) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=64 * 1024)
    add_security_headers(app)
    api.add_to(app)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        options = connection_options(mysql_target(dsn))
        pool = await asyncmy.create_pool(minsize=pool_size, maxsize=pool_size, **options)
        app[POOL] = FairPool(pool, pool_size)
        app[TOKENS] = AccessTokenCodec(
            secret=jwt_secret, issuer=jwt_issuer, ttl_s=0, leeway_s=TOKEN_LEEWAY_S, clock=time.time
        )
        app[PAYMENTS] = SimulatedPayments()
        try:
            yield
        finally:
            pool.close()
            with contextlib.suppress(Exception):
                await pool.wait_closed()

    app.cleanup_ctx.append(resources)
    return app


def _serve(
    dsn: str,
    host: str,
    port: int,
    *,
    jwt_secret: str,
    pool_size: int,
    reuse_port: bool = False,
    listening: multiprocessing.synchronize.Event | None = None,
) -> None:
    app = create_baseline_app(dsn, jwt_secret=jwt_secret, pool_size=pool_size)
    from roombook.heap import freeze_startup_heap
    from roombook.serve import _new_loop

    async def freeze(_: web.Application) -> None:  # as roombook serve does
        freeze_startup_heap()

    app.on_startup.append(freeze)
    loop = _new_loop()
    asyncio.set_event_loop(loop)

    def on_listening(_: str) -> None:
        if listening is not None:
            listening.set()
        else:
            print("ready", flush=True)

    web.run_app(app, host=host, port=port, loop=loop, access_log=None, reuse_port=reuse_port, print=on_listening)


def _supervise(args: argparse.Namespace) -> int:
    """--processes N: N serving processes on one port (SO_REUSEPORT spreads the connections), each
    with its share of the pool, as `roombook serve --workers N` runs; ready once all listen."""
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    share = max(1, args.pool_size // args.processes)
    pool = []
    for _ in range(args.processes):
        listening = spawn.Event()
        kwargs = {"jwt_secret": args.jwt_secret, "pool_size": share, "reuse_port": True, "listening": listening}
        process = spawn.Process(target=_serve, args=(args.dsn, args.host, args.port), kwargs=kwargs)
        process.start()
        pool.append((process, listening))
    while not stop.is_set() and not all(listening.is_set() for _, listening in pool):
        if any(not process.is_alive() for process, _ in pool):
            stop.set()
        stop.wait(0.1)
    failed = not all(listening.is_set() for _, listening in pool)
    if not failed:
        print("ready", flush=True)
    while not stop.wait(0.5) and all(process.is_alive() for process, _ in pool):
        pass
    for process, _ in pool:
        if process.is_alive():
            process.terminate()
    for process, _ in pool:
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api.baseline", description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("ROOMBOOK_JWT_SECRET"),
        help="the tokens' HS256 secret (default: ROOMBOOK_JWT_SECRET, as the product takes it)",
    )
    parser.add_argument("--pool-size", type=int, default=64, help="connections in all, shared out among the processes")
    parser.add_argument("--processes", type=int, default=1, help="serving processes on the one port")
    args = parser.parse_args(argv)
    if not args.jwt_secret:
        parser.error("no secret: set ROOMBOOK_JWT_SECRET or give --jwt-secret")
    if args.processes > 1:
        return _supervise(args)
    _serve(args.dsn, args.host, args.port, jwt_secret=args.jwt_secret, pool_size=args.pool_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
