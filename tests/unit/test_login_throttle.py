"""Login throttling per (email, client): 5 failures in 5 minutes, then 429 with Retry-After."""

import pytest

from roombook.domain.errors import TooManyAttempts
from roombook.services.login_throttle import LoginThrottle, throttle_key

KEY = throttle_key("ada@example.org", "203.0.113.7")


async def fail(throttle: LoginThrottle, times: int, now_s: float, key: str = KEY) -> None:
    for _ in range(times):
        await throttle.begin(key, now_s)


async def test_the_sixth_attempt_within_the_window_is_refused_with_the_wait():
    throttle = LoginThrottle(max_failures=5, window_s=300)
    await fail(throttle, 5, now_s=1000)

    with pytest.raises(TooManyAttempts) as refused:
        await throttle.begin(KEY, 1060)

    assert refused.value.retry_after_s == 240


async def test_failures_age_out_of_the_window():
    throttle = LoginThrottle(max_failures=5, window_s=300)
    await fail(throttle, 5, now_s=1000)

    await throttle.begin(KEY, 1300)


async def test_a_success_clears_the_failures():
    throttle = LoginThrottle(max_failures=5, window_s=300)
    await fail(throttle, 4, now_s=1000)
    await throttle.begin(KEY, 1001)
    await throttle.succeeded(KEY)

    await fail(throttle, 5, now_s=1002)


async def test_other_clients_and_other_emails_are_counted_apart():
    throttle = LoginThrottle(max_failures=5, window_s=300)
    await fail(throttle, 5, now_s=1000)

    await throttle.begin(throttle_key("ada@example.org", "198.51.100.1"), 1001)
    await throttle.begin(throttle_key("bob@example.org", "203.0.113.7"), 1001)


def test_the_email_part_of_the_key_ignores_case_and_spaces():
    assert throttle_key(" Ada@Example.org", "c") == throttle_key("ada@example.org", "c")


async def test_memory_is_bounded_by_forgetting_the_least_recent_key():
    throttle = LoginThrottle(max_failures=1, window_s=300, max_keys=2)
    await throttle.begin("a", 0)
    await throttle.begin("b", 0)
    await throttle.begin("c", 0)

    await throttle.begin("a", 1)  # "a" was forgotten when "c" arrived
    with pytest.raises(TooManyAttempts):
        await throttle.begin("c", 1)
