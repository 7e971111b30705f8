"""Read the bookings back: through the API (each logged user's GET /bookings) and through the
stores (every availability row of the global store, the logged users' bookings of each region)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import msgspec

from bench.check.booking_log import LoggedUser
from bench.check.rules import SeenBooking
from roombook.domain.accounts import Region, region_of_user_id
from roombook.domain.nights import Night
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store, regional_store

API = "/api/v1"
PER_PAGE = 100
API_CONCURRENCY = 16


class _ApiBooking(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    room_id: int
    check_in: dt.date
    check_out: dt.date
    nights: int
    status: str


class _ApiPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[_ApiBooking]
    total: int


class _Login(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str


class SourceError(Exception):
    """The API or a store could not be read."""


async def api_bookings(host: str, users: Iterable[LoggedUser]) -> dict[str, SeenBooking]:
    """Every booking of every user, as GET /bookings shows it to them (logging in again if the
    logged token has expired)."""
    seen: dict[str, SeenBooking] = {}
    limit = asyncio.Semaphore(API_CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(host, cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout) as http:

        async def one_user(user: LoggedUser) -> None:
            async with limit:
                for booking in await _user_bookings(http, user):
                    seen[booking.id] = booking

        await asyncio.gather(*(one_user(user) for user in users))
    return seen


async def _user_bookings(http: aiohttp.ClientSession, user: LoggedUser) -> list[SeenBooking]:
    token, found, page = user.token, [], 1
    while True:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{API}/bookings?page={page}&per_page={PER_PAGE}", headers=headers) as resp:
            body = await resp.read()
            status = resp.status
        if status == 401 and token == user.token:
            token = await _log_in(http, user)
            continue
        if status != 200:
            raise SourceError(f"GET /bookings for user {user.user_id} answered {status}: {body[:200]!r}")
        answer = msgspec.json.decode(body, type=_ApiPage)
        found += [SeenBooking(user_id=user.user_id, **msgspec.structs.asdict(b)) for b in answer.items]
        if not answer.items or page * PER_PAGE >= answer.total:
            return found
        page += 1


async def _log_in(http: aiohttp.ClientSession, user: LoggedUser) -> str:
    body = {"email": user.email, "password": user.password, "region": user.region}
    async with http.post(f"{API}/auth/login", json=body) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise SourceError(f"login of user {user.user_id} answered {resp.status}: {raw[:200]!r}")
    return msgspec.json.decode(raw, type=_Login).access_token


class StoreDsns(msgspec.Struct, frozen=True, kw_only=True):
    global_dsn: str
    regional: dict[Region, str]


def missing_sqlite_files(dsns: StoreDsns) -> list[str]:
    """SQLite files that do not exist (opening one would create an empty store)."""
    paths = [dsns.global_dsn, *dsns.regional.values()]
    return [p for p in paths if p.startswith("sqlite:///") and not Path(p.removeprefix("sqlite:///")).exists()]


async def store_rows(dsns: StoreDsns) -> list[Night]:
    """Every availability row: one ring of one shard owns every room."""
    async with availability_store(dsns.global_dsn) as store:
        return await store.load_nights(ShardRing(1), 0)


async def store_bookings(dsns: StoreDsns, user_ids: Iterable[int]) -> dict[str, SeenBooking]:
    """Every booking of the given users, from their regions' stores."""
    by_region: dict[Region, list[int]] = {}
    for user_id in user_ids:
        by_region.setdefault(region_of_user_id(user_id), []).append(user_id)
    seen: dict[str, SeenBooking] = {}
    for region, ids in by_region.items():
        if region not in dsns.regional:
            raise SourceError(f"users of region {region} are logged but no {region} store was given")
        async with regional_store(dsns.regional[region], region) as store:
            for user_id in ids:
                page = 1
                while True:
                    answer = await store.bookings_of(user_id, page=page, per_page=PER_PAGE)
                    for b in answer.items:
                        seen[b.id] = SeenBooking(
                            id=b.id,
                            user_id=b.user_id,
                            room_id=b.room_id,
                            check_in=b.check_in,
                            check_out=b.check_out,
                            nights=b.nights,
                            status=b.status.value,
                        )
                    if not answer.items or page * PER_PAGE >= answer.total:
                        break
                    page += 1
    return seen
