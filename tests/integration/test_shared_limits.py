"""The limits every process shares, on the real Redis (ROOMBOOK_TEST_REDIS_URL): failed logins and
payment idempotency keys counted once for several processes (here, several independent clients of
one Redis, as each process has its own), and each process's own count standing in while Redis does
not answer."""

from __future__ import annotations

import asyncio
import decimal
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from roombook.domain.errors import IdempotencyKeyReused, TooManyAttempts
from roombook.services.login_throttle import LoginThrottle, throttle_key
from roombook.services.payments import MemoryPaymentKeys, PaymentSettings, SimulatedPayments
from roombook.storage.cache.redis_limits import RedisLimits

REDIS_URL = os.environ.get("ROOMBOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = throttle_key("ada@example.org", "203.0.113.7")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted after."""
    prefix = f"roombook-test:{secrets.token_hex(4)}:"
    yield prefix
    with redis.Redis.from_url(REDIS_URL) as raw:
        keys = list(raw.scan_iter(match=prefix + "*"))
        if keys:
            raw.delete(*keys)


@pytest.fixture
async def processes(prefix: str) -> AsyncIterator[tuple[RedisLimits, RedisLimits]]:
    """Two processes' connections to one deployment's Redis."""
    async with RedisLimits(REDIS_URL, prefix=prefix) as first, RedisLimits(REDIS_URL, prefix=prefix) as second:
        yield first, second


def throttles(processes: tuple[RedisLimits, RedisLimits], max_failures: int = 5, window_s: float = 300):
    return [
        p.login_throttle(
            max_failures=max_failures,
            window_s=window_s,
            fallback=LoginThrottle(max_failures=max_failures, window_s=window_s),
        )
        for p in processes
    ]


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once closed


async def test_failed_logins_on_any_process_count_against_one_limit(processes) -> None:
    first, second = throttles(processes)
    for i in range(5):
        await (first if i % 2 else second).begin(KEY, 1000 + i)
    for throttle in (first, second):
        with pytest.raises(TooManyAttempts) as refused:
            await throttle.begin(KEY, 1060)
        assert refused.value.retry_after_s == 240  # the first failure leaves the window at 1300


async def test_concurrent_attempts_cannot_slip_past_the_limit(processes) -> None:
    first, second = throttles(processes)
    attempts = [(first, second)[i % 2].begin(KEY, 1000.0) for i in range(40)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(r is None for r in results) == 5
    assert all(isinstance(r, TooManyAttempts) for r in results if r is not None)


async def test_failures_age_out_and_a_success_anywhere_clears_them(processes) -> None:
    first, second = throttles(processes)
    for i in range(5):
        await first.begin(KEY, 1000 + i)
    await second.begin(KEY, 1300.5)  # the first failure left the window
    await second.succeeded(KEY)
    for i in range(5):
        await first.begin(KEY, 1301 + i)  # cleared: five more allowed
    with pytest.raises(TooManyAttempts):
        await second.begin(KEY, 1310)
    await first.begin(throttle_key("bob@example.org", "203.0.113.7"), 1310)  # others count apart


async def test_the_process_counts_alone_while_redis_is_down() -> None:
    async with RedisLimits(f"redis://127.0.0.1:{refused_port()}/0", prefix="x:") as down:
        throttle = down.login_throttle(
            max_failures=2, window_s=300, fallback=LoginThrottle(max_failures=2, window_s=300)
        )
        await throttle.begin(KEY, 1000)
        await throttle.begin(KEY, 1001)
        with pytest.raises(TooManyAttempts):
            await throttle.begin(KEY, 1002)


async def test_a_payment_retried_on_another_process_gets_the_first_outcome(processes) -> None:
    # decline half at random, seeded differently: only a shared record makes both processes agree
    payments = [
        SimulatedPayments(
            PaymentSettings(decline_rate=0.5, seed=seed), keys=p.payment_keys(fallback=MemoryPaymentKeys())
        )
        for seed, p in zip((1, 2), processes, strict=True)
    ]
    amount = decimal.Decimal("241.00")
    for n in range(20):
        key = f"booking-{n}"
        first = await payments[n % 2].authorize(amount, "EUR", "tok_visa", key)
        again = await payments[(n + 1) % 2].authorize(amount, "EUR", "tok_visa", key)
        assert again == first
    with pytest.raises(IdempotencyKeyReused):
        await payments[1].authorize(decimal.Decimal("9.99"), "EUR", "tok_visa", "booking-0")


async def test_concurrent_first_attempts_of_a_key_on_two_processes_agree(processes) -> None:
    payments = [
        SimulatedPayments(
            PaymentSettings(decline_rate=0.5, seed=seed), keys=p.payment_keys(fallback=MemoryPaymentKeys())
        )
        for seed, p in zip((3, 4), processes, strict=True)
    ]
    for n in range(10):
        intents = await asyncio.gather(
            *(p.authorize(decimal.Decimal("10"), "USD", "tok_visa", f"race-{n}") for p in payments * 3)
        )
        assert len({intent.id for intent in intents}) == 1


async def test_payments_keep_their_keys_in_the_process_while_redis_is_down() -> None:
    async with RedisLimits(f"redis://127.0.0.1:{refused_port()}/0", prefix="x:") as down:
        payments = SimulatedPayments(
            PaymentSettings(decline_rate=0.5), keys=down.payment_keys(fallback=MemoryPaymentKeys())
        )
        first = await payments.authorize(decimal.Decimal("5"), "EUR", "tok_visa", "k")
        assert await payments.authorize(decimal.Decimal("5"), "EUR", "tok_visa", "k") == first
