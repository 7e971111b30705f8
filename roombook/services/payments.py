"""The simulated payment service: immediate authorization of tokenized cards (no second step),
and refunds of what was authorized.

Only card tokens (`tok_...`) ever reach it; a raw card number is refused before any work, and
`looks_like_card_number`, the one card-number detector, lets the API refuse one anywhere in a
request (every string of a body, a query, the Idempotency-Key) with a 422.
"""

from __future__ import annotations

import asyncio
import decimal
import enum
import random
import re
import secrets
import unicodedata
from collections import OrderedDict
from typing import Protocol

import msgspec

from roombook.domain.errors import IdempotencyKeyReused, InvalidCardToken

DECLINING_TOKEN = "tok_decline"
_CARD_TOKEN = re.compile(r"^tok_[A-Za-z0-9_]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# How card numbers are written: contiguous, or in the groupings printed on cards (16 digits 4-4-4-4,
# Amex 4-6-5, Diners 4-6-4, 19 digits 4-4-4-4-3) with one kind of separator between the groups.
CARD_DIGITS = range(13, 20)  # ISO/IEC 7812 allows 12, but a uuid4's last group is 12 hex digits
CARD_GROUPINGS = ((4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3))
CARD_SEPARATORS = " -_."
_NOT_DIGITS = re.compile(r"[^0-9]+")
_CONTIGUOUS = re.compile(rf"(?<![0-9])[0-9]{{{CARD_DIGITS.start},{CARD_DIGITS.stop - 1}}}(?![0-9])")
# Per separator: a chain of two or more digit groups joined by it, touching no letter or digit, so
# that the hex groups of a uuid (`...-8444-7059c1cb5edc`) never pass for a card's digit groups.
_CHAINS = tuple(
    (sep, re.compile(rf"(?<![0-9A-Za-z])[0-9]+(?:{re.escape(sep)}[0-9]+)+(?![0-9A-Za-z])")) for sep in CARD_SEPARATORS
)


class PaymentStatus(enum.StrEnum):
    AUTHORIZED = "authorized"
    DECLINED = "declined"


class PaymentIntent(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one authorization. A declined intent still has an id, for the record."""

    id: str
    amount: decimal.Decimal
    currency: str
    status: PaymentStatus
    decline_code: str | None = None

    @property
    def authorized(self) -> bool:
        return self.status is PaymentStatus.AUTHORIZED


class PaymentSettings(msgspec.Struct, frozen=True, kw_only=True):
    decline_rate: float = 0.0  # share of otherwise good tokens declined at random, 0..1
    latency_s: float = 0.0  # simulated processor round trip, for benchmarks
    seed: int | None = None  # fixes the random declines, for reproducible runs
    remembered_keys: int = 100_000  # idempotency keys kept (least recently used forgotten)


class PaymentKeys(Protocol):
    """Where the first outcome of each idempotency key is kept: this process (MemoryPaymentKeys),
    or Redis for every process of a deployment (storage/cache/redis_limits.RedisPaymentKeys)."""

    async def remember(self, key: str, record: bytes) -> bytes:
        """Keep `record` for `key` unless one is kept already; return the one kept."""
        ...


class MemoryPaymentKeys:
    """PaymentKeys in this process, the least recently used forgotten beyond `max_keys`."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._records: OrderedDict[str, bytes] = OrderedDict()

    async def remember(self, key: str, record: bytes) -> bytes:
        kept = self._records.setdefault(key, record)  # no await before: concurrent first attempts agree
        self._records.move_to_end(key)
        if len(self._records) > self._max_keys:
            self._records.popitem(last=False)
        return kept


class _KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a key is remembered with: the terms it was first used for, and their outcome."""

    amount: decimal.Decimal
    currency: str
    card_token: str
    intent: PaymentIntent


class PaymentRefund(msgspec.Struct, frozen=True, kw_only=True):
    """Money given back from an authorized payment."""

    id: str
    payment_intent_id: str
    amount: decimal.Decimal
    currency: str


_record_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_record_decoder = msgspec.msgpack.Decoder(_KeyRecord)
_refund_decoder = msgspec.msgpack.Decoder(PaymentRefund)


class SimulatedPayments:
    """Authorizes card tokens. Idempotent per key: a retry gets the first outcome back, from any
    process that shares `keys`."""

    def __init__(self, settings: PaymentSettings | None = None, *, keys: PaymentKeys | None = None) -> None:
        self._settings = settings or PaymentSettings()
        if not 0.0 <= self._settings.decline_rate <= 1.0:
            raise ValueError("decline_rate must be within 0..1")
        self._rng = random.Random(self._settings.seed)
        self._keys = keys or MemoryPaymentKeys(self._settings.remembered_keys)

    async def authorize(
        self, amount: decimal.Decimal, currency: str, card_token: str, idempotency_key: str
    ) -> PaymentIntent:
        """Authorize `amount` on the card the token stands for. Raises InvalidCardToken for
        anything that is not a token, IdempotencyKeyReused for a key reused with other terms."""
        check_card_token(card_token)
        if amount <= 0 or not _CURRENCY.match(currency):
            raise ValueError("amount must be positive and currency a three-letter code")
        decided = _KeyRecord(
            amount=amount, currency=currency, card_token=card_token, intent=self._decide(amount, currency, card_token)
        )
        # the first record of the key wins, a concurrent or later retry (on any process) gets it back
        kept = _record_decoder.decode(await self._keys.remember(idempotency_key, _record_encoder.encode(decided)))
        if (kept.amount, kept.currency, kept.card_token) != (amount, currency, card_token):
            raise IdempotencyKeyReused("this idempotency key was used for another payment")
        intent = kept.intent
        if self._settings.latency_s > 0:
            await asyncio.sleep(self._settings.latency_s)
        return intent

    async def refund(
        self, payment_intent_id: str, amount: decimal.Decimal, currency: str, idempotency_key: str
    ) -> PaymentRefund:
        """Give `amount` of an authorized payment back. Idempotent per key: a retry (from any
        process that shares `keys`) gets the first refund back, never a second one."""
        if not payment_intent_id.startswith("pi_"):
            raise ValueError("a refund names the payment intent it gives back from")
        if amount <= 0 or not _CURRENCY.match(currency):
            raise ValueError("amount must be positive and currency a three-letter code")
        decided = PaymentRefund(
            id="re_" + secrets.token_hex(12), payment_intent_id=payment_intent_id, amount=amount, currency=currency
        )
        kept = _refund_decoder.decode(await self._keys.remember(idempotency_key, _record_encoder.encode(decided)))
        if (kept.payment_intent_id, kept.amount, kept.currency) != (payment_intent_id, amount, currency):
            raise IdempotencyKeyReused("this idempotency key was used for another refund")
        if self._settings.latency_s > 0:
            await asyncio.sleep(self._settings.latency_s)
        return kept

    def _decide(self, amount: decimal.Decimal, currency: str, card_token: str) -> PaymentIntent:
        declined = card_token == DECLINING_TOKEN or self._rng.random() < self._settings.decline_rate
        return PaymentIntent(
            id="pi_" + secrets.token_hex(12),
            amount=amount,
            currency=currency,
            status=PaymentStatus.DECLINED if declined else PaymentStatus.AUTHORIZED,
            decline_code="card_declined" if declined else None,
        )


def check_card_token(card_token: str) -> None:
    """Raise InvalidCardToken unless card_token is a token (tok_...) and carries no card number."""
    if not _CARD_TOKEN.match(card_token) or looks_like_card_number(card_token):
        raise InvalidCardToken("card_token must be a card token (tok_...), never card data")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that every payment card number passes."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """Whether text contains a card number that passes the Luhn check: 13 to 19 digits in a row,
    not touching other digits (`order-4111111111111111`), or digit groups in a card's grouping
    (CARD_GROUPINGS) joined by one kind of separator, space, dash, underscore or dot, touching no
    letter or digit (`tok_4111_1111_1111_1111`). Card data must never be accepted or stored; a
    uuid4 (8-4-4-4-12 hex digits) never matches."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)  # full-width digits are digits too
    if len(_NOT_DIGITS.sub("", text)) < CARD_DIGITS.start:
        return False  # most texts (dates, tokens, names): too few digits to hold one
    if any(luhn_valid(match.group()) for match in _CONTIGUOUS.finditer(text)):
        return True
    for sep, chain in _CHAINS:
        if sep not in text:  # a chain joins its groups by sep: none without one
            continue
        for match in chain.finditer(text):
            if _grouped_card_number(match.group().split(sep)):
                return True
    return False


def _grouped_card_number(groups: list[str]) -> bool:
    """Whether some consecutive groups of a chain are laid out as a card's are and pass Luhn."""
    lengths = [len(g) for g in groups]
    for grouping in CARD_GROUPINGS:
        width = len(grouping)
        for start in range(len(groups) - width + 1):
            if tuple(lengths[start : start + width]) == grouping and luhn_valid("".join(groups[start : start + width])):
                return True
    return False
