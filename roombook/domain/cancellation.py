"""Cancellation policies: what cancelling a booking costs its guest, and what is refunded.

A room may have a policy; a booking keeps a copy of the one it was made under, so that a policy
changed later never changes what an earlier guest agreed to. With no policy, cancelling is free
until the stay is over. Days before arrival are counted from the property's own today
(`stay_rules.local_today`, in its time zone), the one place "today" is decided for a room.
"""

from __future__ import annotations

import decimal
import enum
from typing import Annotated

import msgspec

_CENT = decimal.Decimal("0.01")
_ZERO = decimal.Decimal("0.00")
MAX_FREE_DAYS = 365


class CancellationFee(enum.StrEnum):
    PERCENT = "percent"  # fee_percent of the stay's total
    FIRST_NIGHT = "first_night"  # the price of the stay's first night


Percent = Annotated[
    decimal.Decimal,
    msgspec.Meta(extra_json_schema={"minimum": 0, "maximum": 100}, description="0 to 100, at most two decimals"),
]


class CancellationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Free until `free_until_days` days before arrival (0: until the arrival day itself), then
    the fee; a non-refundable rate refunds nothing, whenever it is cancelled."""

    free_until_days: Annotated[int, msgspec.Meta(ge=0, le=MAX_FREE_DAYS)] = 0
    fee: CancellationFee = CancellationFee.PERCENT
    fee_percent: Percent = decimal.Decimal(100)
    non_refundable: bool = False

    def __post_init__(self) -> None:
        # msgspec cannot bound a Decimal in Meta (a ValueError here is a 422 for a request body)
        if not self.fee_percent.is_finite() or not 0 <= self.fee_percent <= 100:
            raise ValueError("fee_percent must be within 0..100")
        if self.fee_percent != self.fee_percent.quantize(_CENT):
            raise ValueError("fee_percent has at most two decimal places")


class CancellationTerms(msgspec.Struct, frozen=True, kw_only=True):
    """What one cancellation costs: fee + refund is what the guest paid."""

    fee: decimal.Decimal
    refund: decimal.Decimal


def cancellation_terms(
    policy: CancellationPolicy | None,
    *,
    total: decimal.Decimal,
    first_night: decimal.Decimal,
    days_before: int,
) -> CancellationTerms:
    """The fee and refund of cancelling `days_before` days before arrival a stay that cost
    `total`, its first night `first_night`. The fee never exceeds what was paid."""
    if policy is None:
        return CancellationTerms(fee=_ZERO, refund=total)
    if policy.non_refundable:
        fee = total
    elif days_before >= policy.free_until_days:
        fee = _ZERO
    elif policy.fee is CancellationFee.FIRST_NIGHT:
        fee = first_night
    else:
        fee = (total * policy.fee_percent / 100).quantize(_CENT, rounding=decimal.ROUND_HALF_UP)
    fee = min(fee, total).quantize(_CENT)
    return CancellationTerms(fee=fee, refund=total - fee)
