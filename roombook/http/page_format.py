"""Prices and dates as the pages show them: English, in the conventions of the room's country.

A room in Germany shows `150,00 €` and `3 Jun 2027`, one in the US `$150.00` and `Jun 3, 2027`:
CLDR's English for that country (`en_DE`), else plain English. Babel does the work.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

FALLBACK = Locale.parse("en")


@functools.cache
def locale_of(country: str) -> Locale:
    """English as written in `country` (ISO 3166-1 alpha-2) if CLDR has it, else plain English."""
    if not (len(country) == 2 and country.isascii() and country.isalpha()):
        return FALLBACK
    try:
        return Locale.parse(f"en_{country.upper()}")
    except (UnknownLocaleError, ValueError):
        return FALLBACK


@functools.lru_cache(maxsize=8192)  # babel takes about 10 us a price; a catalogue has few distinct ones
def money(amount: decimal.Decimal, currency: str, country: str) -> str:
    return format_currency(amount, currency, locale=locale_of(country))


@functools.lru_cache(maxsize=8192)
def day(date: dt.date, country: str, width: str = "medium") -> str:
    return format_date(date, width, locale=locale_of(country))


def bcp47(country: str) -> str:
    """The locale as the browser's Intl wants it (`en-DE`), for the scripts that format prices."""
    locale = locale_of(country)
    return f"{locale.language}-{locale.territory}" if locale.territory else locale.language
