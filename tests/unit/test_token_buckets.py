"""The edge's per-client token bucket, on a clock passed in."""

from __future__ import annotations

import pytest

from roombook.edge.rate_limit import TokenBuckets


def test_a_client_gets_its_burst_then_waits_for_the_next_token():
    buckets = TokenBuckets(rate_per_s=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("a", 0.25) == pytest.approx(0.25)  # half a token came back
    assert buckets.take("a", 0.5) == 0.0


def test_clients_have_buckets_of_their_own():
    buckets = TokenBuckets(rate_per_s=1.0, burst=1)
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) > 0
    assert buckets.take("b", 0.0) == 0.0


def test_a_bucket_never_holds_more_than_its_burst():
    buckets = TokenBuckets(rate_per_s=10.0, burst=2)
    buckets.take("a", 0.0)
    assert [buckets.take("a", 1000.0) for _ in range(3)][2] > 0


def test_memory_is_bounded_by_forgetting_refilled_buckets_first():
    buckets = TokenBuckets(rate_per_s=1.0, burst=1, max_clients=2)
    buckets.take("idle", 0.0)
    buckets.take("busy", 10.0)
    buckets.take("new", 10.0)  # "idle" has refilled by now: it goes, "busy" stays limited
    assert len(buckets) == 2
    assert buckets.take("busy", 10.0) > 0


def test_nonsense_limits_are_refused():
    with pytest.raises(ValueError):
        TokenBuckets(rate_per_s=0, burst=1)
