"""Comparing prices in different currencies: only through an explicit conversion table.

A table names a reference currency and, for each other currency it knows, what one unit of it is
worth in the reference one. A price in a currency the table does not know cannot be converted:
it is never compared with another currency's as a raw number (filters leave it out, a price order
puts it after every convertible one).
"""

from __future__ import annotations

import decimal

import msgspec


class ConversionTable(msgspec.Struct, frozen=True, kw_only=True):
    reference: str  # e.g. "EUR"
    rates: dict[str, decimal.Decimal]  # currency -> units of `reference` per unit; reference -> 1

    def knows(self, currency: str) -> bool:
        return currency in self.rates

    def convert(self, amount: decimal.Decimal, source: str, target: str) -> decimal.Decimal | None:
        """amount in `source` expressed in `target`, or None if the table cannot say."""
        if source == target:
            return amount
        if source not in self.rates or target not in self.rates:
            return None
        return amount * self.rates[source] / self.rates[target]


def conversion_table(reference: str, spec: str) -> ConversionTable:
    """The table of `spec`, "USD=0.92,CAD=0.68" (units of `reference` per unit); raises ValueError."""
    rates = {reference: decimal.Decimal(1)}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        code, sep, value = item.partition("=")
        code = code.strip().upper()
        try:
            rate = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            rate = decimal.Decimal(0)
        if not sep or len(code) != 3 or not code.isalpha() or not rate.is_finite() or rate <= 0:
            raise ValueError(f"conversion rates are CODE=positive number, comma-separated: not {item!r}")
        rates[code] = rate
    return ConversionTable(reference=reference, rates=rates)
