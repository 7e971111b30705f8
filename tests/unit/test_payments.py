"""The simulated payment service and the raw-card-number detector."""

import asyncio
import decimal
import time

import pytest

from roombook.domain.errors import IdempotencyKeyReused, InvalidCardToken
from roombook.services.payments import (
    PaymentSettings,
    PaymentStatus,
    SimulatedPayments,
    looks_like_card_number,
    luhn_valid,
)

AMOUNT = decimal.Decimal("120.00")


async def test_a_good_token_is_authorized_with_a_payment_intent_id():
    intent = await SimulatedPayments().authorize(AMOUNT, "EUR", "tok_visa", "bk_1")

    assert intent.status is PaymentStatus.AUTHORIZED and intent.authorized
    assert intent.id.startswith("pi_") and intent.amount == AMOUNT and intent.currency == "EUR"


async def test_the_declining_token_is_declined():
    intent = await SimulatedPayments().authorize(AMOUNT, "EUR", "tok_decline", "bk_1")

    assert intent.status is PaymentStatus.DECLINED and intent.decline_code == "card_declined"
    assert intent.id.startswith("pi_")


async def test_a_retry_under_the_same_key_gets_the_first_outcome():
    payments = SimulatedPayments(PaymentSettings(decline_rate=0.5, seed=1))

    first = await payments.authorize(AMOUNT, "EUR", "tok_visa", "bk_1")
    again = await asyncio.gather(*(payments.authorize(AMOUNT, "EUR", "tok_visa", "bk_1") for _ in range(20)))

    assert all(intent == first for intent in again)


async def test_a_key_reused_for_other_terms_is_refused():
    payments = SimulatedPayments()
    await payments.authorize(AMOUNT, "EUR", "tok_visa", "bk_1")

    with pytest.raises(IdempotencyKeyReused):
        await payments.authorize(AMOUNT + 1, "EUR", "tok_visa", "bk_1")


@pytest.mark.parametrize("token", ["4111111111111111", "4111 1111 1111 1111", "tok_4111111111111111", "", "tok_"])
async def test_anything_but_a_card_token_is_refused(token):
    with pytest.raises(InvalidCardToken):
        await SimulatedPayments().authorize(AMOUNT, "EUR", token, "bk_1")


@pytest.mark.parametrize(("amount", "currency"), [(decimal.Decimal(0), "EUR"), (AMOUNT, "eur"), (AMOUNT, "EURO")])
async def test_a_non_positive_amount_or_odd_currency_is_refused(amount, currency):
    with pytest.raises(ValueError):
        await SimulatedPayments().authorize(amount, currency, "tok_visa", "bk_1")


async def test_the_decline_rate_is_reproducible_with_a_seed():
    async def outcomes(seed: int) -> list[PaymentStatus]:
        payments = SimulatedPayments(PaymentSettings(decline_rate=0.3, seed=seed))
        return [(await payments.authorize(AMOUNT, "EUR", "tok_visa", f"k{i}")).status for i in range(400)]

    first, second = await outcomes(7), await outcomes(7)

    assert first == second
    assert 80 <= first.count(PaymentStatus.DECLINED) <= 160


async def test_latency_is_simulated_without_blocking_other_payments():
    payments = SimulatedPayments(PaymentSettings(latency_s=0.05))
    started = time.perf_counter()

    await asyncio.gather(*(payments.authorize(AMOUNT, "EUR", "tok_visa", f"k{i}") for i in range(20)))

    assert 0.05 <= time.perf_counter() - started < 0.5


def test_a_decline_rate_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        SimulatedPayments(PaymentSettings(decline_rate=1.5))


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "4222222222222",
        "6759649826438453",
    ],
)
def test_known_test_card_numbers_pass_luhn(number):
    assert luhn_valid(number)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "card: 5555 5555 5555 4444, exp 12/30",
        "378282246310005",
        "tok_4111111111111111",
        "tok_4111_1111_1111_1111",
        "order-4111111111111111",
        "4111.1111.1111.1111",
        "3782 822463 10005",  # Amex 4-6-5
        "3056-930902-5904",  # Diners 4-6-4
        "6011_0009_9013_9424_157",  # 19 digits 4-4-4-4-3 (Luhn-valid)
        "card4111111111111111",
        "".join(chr(0xFF10 + int(d)) for d in "4111111111111111"),  # full-width digits
    ],
)
def test_a_raw_card_number_is_spotted(text):
    assert looks_like_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "tok_visa",
        "41111111111",  # 11 digits: too short
        "41111111111111111111",  # 20 digits: too long
        "4111  1111 1111 1111",  # a double space splits the run
        "2030-06-01",
        "",
        "550e8400-e29b-41d4-a71f-411111111117",  # a uuid whose last group is a Luhn-valid 12-digit run
        "afba2e78-2244-4287-8444-7059c1cb5edc",  # a uuid4 with four 4-digit groups in a row
        "4111-1111 1111-1111",  # two kinds of separator
        "4111-1111-1111-1111x",  # groups glued to a letter are not a card's groups
    ],
)
def test_other_text_is_not_taken_for_a_card_number(text):
    assert not looks_like_card_number(text)
