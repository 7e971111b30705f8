"""Crockford base32 for ULIDs: fixed width, most significant digit first, order-preserving."""

import random

import pytest

from roombook.domain.ids import CROCKFORD, crockford_base32


def reference(value: int, length: int) -> str:
    digits = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        digits.append(CROCKFORD[digit])
    return "".join(reversed(digits))


@pytest.mark.parametrize("length", [1, 2, 7, 26])
def test_matches_digit_by_digit_encoding(length):
    rng = random.Random(length)
    edges = [v for v in (0, 1, 31, 32, 1023, 1024) if v < 32**length]
    for value in [*edges, 32**length - 1, *(rng.randrange(32**length) for _ in range(200))]:
        assert crockford_base32(value, length) == reference(value, length)


def test_encoding_keeps_numeric_order():
    rng = random.Random(7)
    values = sorted(rng.randrange(2**128) for _ in range(1000))
    encoded = [crockford_base32(v, 26) for v in values]
    assert encoded == sorted(encoded)


@pytest.mark.parametrize("value", [-1, 32**26])
def test_a_value_that_does_not_fit_is_refused(value):
    with pytest.raises(ValueError):
        crockford_base32(value, 26)
