"""A booking storm with cancellations over a few hot rooms, recording every client operation.

Each client books short random stays with a fresh Idempotency-Key and retries an unsettled answer
(a transport error, any 503: an unknown outcome says so, a plain one is safe to retry under the
same key, or a 409 saying the key's first request is still running) with the same key. Now and
then (`cancel_ratio` of its steps, and of the pauses between a booking's retries) it cancels one
of its earlier confirmed bookings, so cancels go on while bookings fail; a cancel is retried the
same way (it is idempotent). Retries go on past the storm's end, for at most `settle_s`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

API = "/api/v1"
UNKNOWN_OUTCOME = "outcome-unknown"
IN_PROGRESS = "booking-in-progress"  # a 409: the same key's first request has not finished
REQUEST_TIMEOUT_S = 10.0
RETRY_PAUSE_S = 0.25
PASSWORD = "chaos-" + "pw" * 6


class Account(msgspec.Struct, kw_only=True):
    user_id: int
    email: str
    region: str
    token: str = ""


class Operation(msgspec.Struct, kw_only=True):
    """One request a client sent and what it was told (status 0: no answer, `error` says why)."""

    client: int
    user_id: int
    kind: str  # "book" or "cancel"
    key: str  # the Idempotency-Key of a booking attempt; the booking id of a cancel
    attempt: int
    room_id: int
    check_in: str
    check_out: str
    invoked_at: float  # seconds since the storm started
    answered_at: float
    status: int
    problem_type: str = ""
    booking_id: str = ""
    booking_status: str = ""
    error: str = ""

    @property
    def unsettled(self) -> bool:
        """Worth sending again with the same key: no answer, a 503, or the key's first request still running."""
        return self.status in (0, 503) or self.in_progress

    @property
    def in_progress(self) -> bool:
        return self.status == 409 and self.problem_type.endswith(IN_PROGRESS)

    @property
    def unknown_outcome(self) -> bool:
        told_unknown = self.status == 503 and self.problem_type.endswith(UNKNOWN_OUTCOME)
        return self.status == 0 or self.in_progress or told_unknown


async def sign_up(host: str, count: int) -> list[Account]:
    """`count` accounts, half in each region (argon2 makes each cost the server about 0.4 s)."""
    accounts = []
    async with aiohttp.ClientSession(host, cookie_jar=aiohttp.DummyCookieJar()) as http:
        for i in range(count):
            account = Account(
                user_id=0, email=f"chaos-{secrets.token_hex(4)}-{i}@example.com", region=("eu", "us")[i % 2]
            )
            body = {"email": account.email, "password": PASSWORD, "region": account.region}
            async with http.post(f"{API}/auth/register", json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"register answered {resp.status}: {await resp.text()}")
                account.user_id = (await resp.json())["user"]["id"]
            await log_in(http, account)
            accounts.append(account)
    return accounts


async def log_in(http: aiohttp.ClientSession, account: Account) -> None:
    body = {"email": account.email, "password": PASSWORD, "region": account.region}
    async with http.post(f"{API}/auth/login", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"login answered {resp.status}: {await resp.text()}")
        account.token = (await resp.json())["access_token"]


class Storm:
    """`clients` concurrent clients over `rooms` for `seconds` (then at most `settle_s` of retries)."""

    def __init__(
        self,
        host: str,
        accounts: list[Account],
        rooms: list[int],
        *,
        clients: int,
        seconds: float,
        settle_s: float,
        cancel_ratio: float = 0.3,
        horizon_days: int = 45,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.accounts = accounts
        self.rooms = rooms
        self.clients = clients
        self.seconds = seconds
        self.settle_s = settle_s
        self.cancel_ratio = cancel_ratio
        self.first_night = dt.date.today() + dt.timedelta(days=30)
        self.horizon_days = horizon_days
        self.operations: list[Operation] = []
        self._random = random.Random(seed)
        self._started = 0.0

    def now(self) -> float:
        return time.monotonic() - self._started

    async def run(self) -> list[Operation]:
        self._started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=self.clients * 2)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(
            self.host, connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
        ) as http:
            await asyncio.gather(*(self._client(http, i) for i in range(self.clients)))
        return self.operations

    async def _client(self, http: aiohttp.ClientSession, client: int) -> None:
        account = self.accounts[client % len(self.accounts)]
        confirmed: list[tuple[str, dict]] = []  # this client's bookings it may cancel later

        async def maybe_cancel() -> bool:
            if not confirmed or self._random.random() >= self.cancel_ratio or self.now() >= self.seconds:
                return False
            booking_id, body = confirmed.pop(self._random.randrange(len(confirmed)))
            cancelled = await self._until_settled(http, client, account, "cancel", booking_id, body)
            if cancelled.unsettled:
                await asyncio.sleep(RETRY_PAUSE_S)
            return True

        while self.now() < self.seconds:
            if await maybe_cancel():
                continue
            room_id = self._random.choice(self.rooms)
            check_in = self.first_night + dt.timedelta(days=self._random.randrange(self.horizon_days - 3))
            check_out = check_in + dt.timedelta(days=self._random.randint(1, 3))
            body = {"room_id": room_id, "check_in": str(check_in), "check_out": str(check_out), "guests": 1}
            body["card_token"] = "tok_visa"
            booked = await self._until_settled(
                http, client, account, "book", str(uuid.uuid4()), body, between_retries=maybe_cancel
            )
            if booked.status == 201:
                confirmed.append((booked.booking_id, body))
            elif booked.unsettled:
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _until_settled(
        self,
        http: aiohttp.ClientSession,
        client: int,
        account: Account,
        kind: str,
        key: str,
        body: dict,
        *,
        between_retries: Callable[[], Awaitable[bool]] | None = None,
    ) -> Operation:
        attempt = 0
        while True:
            attempt += 1
            operation = await self._send(http, client, account, kind, key, body, attempt)
            self.operations.append(operation)
            if operation.status == 401:
                await log_in(http, account)
                continue
            if not operation.unsettled or self.now() > self.seconds + self.settle_s:
                return operation
            await asyncio.sleep(RETRY_PAUSE_S)
            if between_retries is not None:
                await between_retries()

    async def _send(
        self, http: aiohttp.ClientSession, client: int, account: Account, kind: str, key: str, body: dict, attempt: int
    ) -> Operation:
        headers = {"Authorization": f"Bearer {account.token}"}
        if kind == "book":
            url, payload = f"{API}/bookings", body
            headers["Idempotency-Key"] = key
        else:
            url, payload = f"{API}/bookings/{key}/cancel", None
        operation = Operation(
            client=client,
            user_id=account.user_id,
            kind=kind,
            key=key,
            attempt=attempt,
            room_id=body["room_id"],
            check_in=body["check_in"],
            check_out=body["check_out"],
            invoked_at=self.now(),
            answered_at=0.0,
            status=0,
        )
        try:
            async with http.post(url, json=payload, headers=headers) as resp:
                operation.status = resp.status
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            operation.error = f"{type(exc).__name__}: {exc}"[:200]
            raw = b""
        operation.answered_at = self.now()
        _read_answer(operation, raw)
        return operation


def _read_answer(operation: Operation, raw: bytes) -> None:
    if not raw:
        return
    try:
        answer = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        operation.error = raw[:200].decode(errors="replace")
        return
    if not isinstance(answer, dict):
        return
    if isinstance(answer.get("booking"), dict):
        operation.booking_id = answer["booking"].get("id", "")
        operation.booking_status = answer["booking"].get("status", "")
    operation.problem_type = str(answer.get("type", ""))
    if operation.status >= 400:
        operation.error = str(answer.get("detail") or answer.get("title") or "")[:200]


def unavailable_s(operations: list[Operation], seconds: float) -> float:
    """The longest stretch of the storm [0, seconds] in which no request got an answer below 500."""
    answered = sorted(op.answered_at for op in operations if 0 < op.status < 500 and op.answered_at <= seconds)
    marks = [0.0, *answered, seconds]
    return max(b - a for a, b in itertools.pairwise(marks))
