"""One HTTP round: a system (A: roombook serve, B: the row-lock baseline) on fresh MariaDB
databases, bench.core's workload sent as POST /api/v1/bookings by an asyncio driver, the CPU of
every process involved over the same interval, then the verification.

The driver is bench.core's run_clients (N clients, each looping attempts on H hot rooms, windows
refilled at --refill-at, rooms aged as a long run finds them) with an attempt made over HTTP: one
aiohttp session, one kept-alive connection per client, a prepared body. Its CPU is this process's.

Verified after every round, beyond bench.core's checks (no night twice, every acknowledged booking
stored as acknowledged, rows and bookings agree, no hold stranded): every 201 is a CONFIRMED
booking in its owner's history (the bookings the store keeps for that user), with the id,
room and nights the answer gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import asyncmy
import msgspec

from bench.api.baseline import ROOMS_SCHEMA
from bench.api.profile import sampled, summarize
from bench.api.servers import ServerProcess, baseline_server, catalogue_settled, roombook_server
from bench.core.rounds import RoundResult, _cpu_groups
from bench.core.rowlock_system import SCHEMA, _Inventory, read_stored_state, store_bookings
from bench.core.shard_system import _store_bookings
from bench.core.verification import StoredState, Verdict, bookings_from_rows, verify_round
from bench.core.workload import BOOKED, CONFLICT, Attempt, BookedStay, HotRooms, aged_start, failed, run_clients
from bench.databases import connect, scratch_mysql
from bench.latency import percentile
from bench.process_cpu import CpuMeter
from roombook.domain.accounts import Region, Role, User
from roombook.domain.stays import Stay
from roombook.heap import frozen_heap
from roombook.routing.ring import ShardRing
from roombook.services.access_tokens import AccessTokenCodec
from roombook.storage.sql.connect import availability_store
from roombook.storage.sql.mysql_db import mysql_target

SYSTEMS = {"A": "roombook serve: MariaDB stores, shards on Ray", "B": "the row-lock baseline behind the same front"}
API = "/api/v1"
ACCOUNTS = 8  # the clients share them (client i acts as account i mod 8): sign-ups hash passwords
TOKEN_TTL_S = 3600
REQUEST_TIMEOUT_S = 30.0
CARD_TOKEN = "tok_visa"
_ENCODE = msgspec.json.Encoder().encode


class Acknowledged(msgspec.Struct, frozen=True, array_like=True):
    """A 201: whose it is and the booking id the answer gave."""

    key: str
    user_id: int
    region: str
    booking_id: str


class HttpBookings:
    """One booking attempt as one POST /api/v1/bookings; 201 booked, 409 a conflict, anything else
    (or no answer) an error of that kind."""

    def __init__(self, session: aiohttp.ClientSession, url: str, tokens: Sequence[tuple[User, str]]) -> None:
        self._session = session
        self._url = url + API + "/bookings"
        self._tokens = tokens
        self._headers = [
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"} for _, token in tokens
        ]
        self.acknowledged: dict[str, Acknowledged] = {}

    async def book(self, client: int, key: str, room_id: int, stay: Stay) -> Attempt:
        account = client % len(self._tokens)
        user = self._tokens[account][0]
        body = _ENCODE(
            {
                "room_id": room_id,
                "check_in": stay.check_in,
                "check_out": stay.check_out,
                "guests": 1,
                "card_token": CARD_TOKEN,
            }
        )
        headers = self._headers[account] | {"Idempotency-Key": key}
        try:
            async with self._session.post(self._url, data=body, headers=headers) as resp:
                answer = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return failed(f"no answer: {type(exc).__name__}")
        if status == 201:
            booking_id = msgspec.json.decode(answer)["booking"]["id"]
            self.acknowledged[key] = Acknowledged(key, user.id, user.region.value, booking_id)
            return BOOKED
        if status == 409:
            return CONFLICT
        return failed(f"http {status}")


async def _no_booking_horizon(dsn: str) -> None:
    """The workload books window after window, decades ahead; the design's table has no booking
    horizon, so A's rooms are given none either (before any request reads them)."""
    conn = await connect(mysql_target(dsn))
    try:
        async with conn.cursor() as cur:
            no_horizon = "JSON_SET(COALESCE(stay_rules, '{}'), '$.horizon_days', NULL)"
            await cur.execute(f"UPDATE rooms SET stay_rules = {no_horizon}")
        await conn.commit()
    finally:
        conn.close()


async def sign_up(
    session: aiohttp.ClientSession, url: str, count: int, codec: AccessTokenCodec
) -> list[tuple[User, str]]:
    """count accounts registered through the API (half EU, half US), each with an access token
    signed with the server's secret (a login would hash the password once more)."""
    run = secrets.token_hex(4)
    users = []
    for i in range(count):
        region = ("eu", "us")[i % 2]
        body = {"email": f"api-{run}-{i}@example.com", "password": f"bench-{secrets.token_hex(8)}", "region": region}
        async with session.post(url + API + "/auth/register", json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"sign-up answered {resp.status}: {await resp.text()}")
            user = msgspec.convert((await resp.json())["user"], User, strict=False)
        users.append((user, codec.encode(user)))
    return users


def tokens_for_baseline(count: int, codec: AccessTokenCodec) -> list[tuple[User, str]]:
    """The design keeps no users table: tokens for user ids 1..count, signed like the product's."""
    now = dt.datetime.now(dt.UTC)
    users = [
        User(id=i + 1, email=f"b{i}@example.com", region=(Region.EU, Region.US)[i % 2], role=Role.USER, created_at=now)
        for i in range(count)
    ]
    return [(user, codec.encode(user)) for user in users]


def token_codec(secret: str) -> AccessTokenCodec:
    import time

    return AccessTokenCodec(secret=secret, issuer="roombook", ttl_s=TOKEN_TTL_S, leeway_s=30, clock=time.time)


@contextlib.asynccontextmanager
async def _session(clients: int) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=clients + 8, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as s:
        yield s


async def run_round(
    system: str,
    base_dsn: str,
    *,
    clients: int,
    hot: int,
    seconds: float,
    out: Path,
    round_no: int = 0,
    refill_at: float = 0.9,
    seed: int = 1,
    start: str = "aged",
    shards: int = 4,
    workers: int = 1,
    pool_size: int = 64,
    seed_rooms: int = 1000,
    server_env: dict[str, str] | None = None,
    profile: bool = False,
    event_worker: bool = False,
) -> RoundResult:
    """seed_rooms: the catalogue A serves (at least `hot`; the hot set is rooms 1..hot)."""
    room_ids = list(range(1, hot + 1))
    aged = list(aged_start(room_ids, refill_at=refill_at, seed=seed + round_no)) if start == "aged" else []
    secret = secrets.token_urlsafe(48)
    codec = token_codec(secret)
    async with contextlib.AsyncExitStack() as stack:
        if system.startswith("A"):
            dsns = {
                name: await stack.enter_async_context(scratch_mysql(base_dsn, prefix=f"rb_api_{name}"))
                for name in ("global", "eu", "us")
            }
            async with availability_store(dsns["global"]) as store:
                await store.migrate()
                await _store_bookings(store, ShardRing(shards), aged)
            server = stack.enter_context(
                roombook_server(
                    dsns,
                    jwt_secret=secret,
                    rooms=max(seed_rooms, hot),
                    shards=shards,
                    workers=workers,
                    out=out,
                    extra_env=server_env or {},
                    event_worker=event_worker,
                )
            )
            await _no_booking_horizon(dsns["global"])
            await catalogue_settled(dsns["global"])
            session = await stack.enter_async_context(_session(clients))
            tokens = await sign_up(session, server.url, ACCOUNTS, codec)
            on_refill = None
        else:
            dsn = await stack.enter_async_context(scratch_mysql(base_dsn, prefix="rb_api_b"))
            admin = await connect(mysql_target(dsn))
            stack.callback(admin.close)
            inventory = _Inventory(admin)
            await _baseline_schema(admin, room_ids, aged, inventory)
            server = stack.enter_context(
                baseline_server(dsn, jwt_secret=secret, pool_size=pool_size, out=out, processes=workers)
            )
            session = await stack.enter_async_context(_session(clients))
            tokens = tokens_for_baseline(ACCOUNTS, codec)
            on_refill = lambda room_id, window: inventory.request(room_id, window + 1)  # noqa: E731
        sut = HttpBookings(session, server.url, tokens)
        await _warm_up(session, server.url, clients)
        rooms = HotRooms(room_ids, refill_at=refill_at, on_refill=on_refill, already_booked=aged)
        meter = CpuMeter(_cpu_groups(_server_groups(server)))
        stacks = out / f"profile-{system}-{clients}-{hot}.txt"
        sampling = sampled(server.proc.pid, seconds, stacks) if profile else contextlib.nullcontext()
        with frozen_heap(), sampling:
            meter.start()
            log = await run_clients(sut, rooms, clients=clients, seconds=seconds, seed=seed + round_no)
            cpu = meter.stop()
        if profile and stacks.exists():
            summary = summarize(stacks)
            stacks.with_suffix(".summary.txt").write_text(summary + "\n")
            print(summary, flush=True)
        if system.startswith("A"):
            stored, history = await _roombook_state(dsns)
        else:
            await inventory.stop()
            stored, history = await _baseline_state(dsn)
    failed_attempts = sum(log.errors.values())
    verdict = verify_round(acknowledged=[*aged, *log.acknowledged], stored=stored, failed_attempts=failed_attempts)
    verdict = _with_history(verdict, sut.acknowledged, history)
    attempts = sorted(log.attempt_latencies_s)
    booked = sorted(log.booking_latencies_s)
    return RoundResult(
        system=system,
        clients=clients,
        hot=hot,
        round=round_no,
        elapsed_s=log.elapsed_s,
        attempts=log.attempts,
        bookings=len(log.acknowledged),
        conflicts=log.conflicts,
        errors=failed_attempts,
        error_kinds=dict(log.errors),
        lock_errors={},
        refills=rooms.refills,
        aged_bookings=len(aged),
        attempt_ms={f"p{q}": 1000 * percentile(attempts, q / 100) for q in (50, 95, 99)},
        booking_ms={f"p{q}": 1000 * percentile(booked, q / 100) for q in (50, 99)},
        cpu_s=_cores_named(cpu),
        verdict=verdict,
    )


async def _warm_up(session: aiohttp.ClientSession, url: str, clients: int) -> None:
    """One kept-alive connection per client before the round: `clients` connects at once would
    overflow a server's listen backlog (aiohttp's is 128) and be counted as the round's errors."""
    for _ in range(5):
        answers = await asyncio.gather(*(_healthz(session, url) for _ in range(clients)), return_exceptions=True)
        if not any(isinstance(a, BaseException) for a in answers):
            return
    raise RuntimeError(f"could not open {clients} connections to {url}")


async def _healthz(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url + "/healthz") as resp:
        await resp.read()


def _server_groups(server: ServerProcess) -> dict[str, list[int]]:
    groups = server.cpu_groups()
    return {"server": groups["server"], "actors": groups["actors"], "server_ray": groups["ray_other"]}


def _cores_named(cpu: dict[str, float | None]) -> dict[str, float | None]:
    """CPU seconds per group, and `other`: the machine's busy time less every group's."""
    out = {key: value for key, value in cpu.items() if key != "wall"}
    known = sum(value or 0.0 for key, value in out.items() if key != "machine")
    out["other"] = (out["machine"] or 0.0) - known
    out["wall"] = cpu["wall"]
    return out


async def _baseline_schema(
    admin: asyncmy.Connection, room_ids: Sequence[int], aged: Sequence[BookedStay], inventory: _Inventory
) -> None:
    async with admin.cursor() as cur:
        for statement in [*SCHEMA, ROOMS_SCHEMA]:
            await cur.execute(statement)
        for i in range(0, len(room_ids), 500):
            chunk = room_ids[i : i + 500]
            await cur.execute(
                "INSERT INTO rooms (id, price_per_night, currency, capacity) VALUES "
                + ", ".join(["(%s, 100.00, 'EUR', 4)"] * len(chunk)),
                list(chunk),
            )
    await admin.commit()
    await inventory.create_now([(room_id, window) for room_id in room_ids for window in (0, 1)])
    await store_bookings(admin, aged)


class HistoryRow(msgspec.Struct, frozen=True, array_like=True):
    """A stored booking as its owner's history lists it."""

    booking_id: str
    user_id: int
    key: str
    status: str
    room_id: int
    check_in: dt.date
    check_out: dt.date


async def _roombook_state(dsns: dict[str, str]) -> tuple[StoredState, dict[str, HistoryRow]]:
    """A's availability rows (the bookings: booked rows grouped by holder, the booking id; an aged
    booking's holder is its key) and every booking of both regional stores, by key."""
    history: dict[str, HistoryRow] = {}
    for region in ("eu", "us"):
        conn = await connect(mysql_target(dsns[region]))
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT id, user_id, idempotency_key, status, room_id, check_in, check_out FROM bookings"
                )
                for row in await cur.fetchall():
                    history[row[2]] = HistoryRow(str(row[0]), int(row[1]), *row[2:])
        finally:
            conn.close()
    conn = await connect(mysql_target(dsns["global"]))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT room_id, date, status, holder FROM availability")
            rows = await cur.fetchall()
    finally:
        conn.close()
    key_of = {row.booking_id: row.key for row in history.values()}
    bookings = [msgspec.structs.replace(b, key=key_of.get(b.key, b.key)) for b in bookings_from_rows(rows)]
    return StoredState(bookings=bookings, rows=[(r, d, s) for r, d, s, _ in rows]), history


async def _baseline_state(dsn: str) -> tuple[StoredState, dict[str, HistoryRow]]:
    target = mysql_target(dsn)
    stored = await read_stored_state(target)
    conn = await connect(target)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT id, user_id, idempotency_key, status, room_id, check_in, check_out FROM bookings")
            history = {row[2]: HistoryRow(str(row[0]), int(row[1]), *row[2:]) for row in await cur.fetchall()}
    finally:
        conn.close()
    return stored, history


def _with_history(verdict: Verdict, acknowledged: dict[str, Acknowledged], history: dict[str, HistoryRow]) -> Verdict:
    """The verdict, failed if some 201 is not a CONFIRMED booking of its owner with its id."""
    problems: list[str] = []
    for ack in acknowledged.values():
        row = history.get(ack.key)
        if row is None or row.status != "CONFIRMED" or row.user_id != ack.user_id or row.booking_id != ack.booking_id:
            if len(problems) < 5:
                problems.append(f"201 {ack} is not a CONFIRMED booking in its owner's history ({row})")
            else:
                problems.append("")
    if not problems:
        return verdict
    shown = [p for p in problems if p]
    return msgspec.structs.replace(
        verdict, ok=False, problems=[*verdict.problems, *shown, f"{len(problems)} answers not in their owner's history"]
    )
