"""The conversion table: the only way prices of two currencies are ever compared."""

from __future__ import annotations

import decimal

import pytest

from roombook.config import load_settings
from roombook.domain.currency import conversion_table

D = decimal.Decimal


def test_a_price_converts_through_the_reference_currency_both_ways():
    table = conversion_table("EUR", "USD=0.5, cad=0.25")

    assert table.convert(D(100), "USD", "EUR") == D(50)
    assert table.convert(D(100), "EUR", "USD") == D(200)
    assert table.convert(D(100), "CAD", "USD") == D(50)
    assert table.convert(D(7), "CAD", "CAD") == D(7)


def test_a_currency_the_table_does_not_know_is_never_converted():
    table = conversion_table("EUR", "")

    assert table.convert(D(100), "USD", "EUR") is None
    assert table.convert(D(100), "EUR", "USD") is None
    assert table.convert(D(100), "USD", "USD") == D(100)  # the same currency needs no table
    assert (table.knows("EUR"), table.knows("USD")) == (True, False)


@pytest.mark.parametrize("spec", ["USD", "USD=", "USD=-1", "USD=0", "US=1", "USD=x", "USD=inf", "U5D=1"])
def test_a_malformed_table_is_refused(spec):
    with pytest.raises(ValueError, match="CODE=positive number"):
        conversion_table("EUR", spec)


@pytest.mark.parametrize(
    "environ", [{"ROOMBOOK_CURRENCY_RATES": "USD=abc"}, {"ROOMBOOK_CURRENCY": "eur"}, {"ROOMBOOK_CURRENCY": "E1R"}]
)
def test_a_bad_currency_setting_stops_the_start_with_one_line(environ):
    with pytest.raises(SystemExit, match="bad configuration"):
        load_settings(environ)


def test_the_settings_table_has_the_sites_currency_at_one():
    settings = load_settings({"ROOMBOOK_CURRENCY": "USD", "ROOMBOOK_CURRENCY_RATES": "EUR=1.10"})

    assert settings.conversion.rates == {"USD": D(1), "EUR": D("1.10")}
