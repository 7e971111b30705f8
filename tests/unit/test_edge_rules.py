"""Which region the edge sends a request to, rule by rule."""

from __future__ import annotations

import pytest

from roombook.domain.accounts import Region
from roombook.edge.rules import EdgeRules, RequestFacts, choose_route, is_global_read, parse_country_regions

EU, US = Region.EU, Region.US
RULES = EdgeRules(default_region=EU, country_regions={"US": US, "CA": US})


def route(method: str = "GET", path: str = "/api/v1/bookings", **facts: object):
    return choose_route(RequestFacts(method=method, path=path, **facts), RULES)  # type: ignore[arg-type]


def test_a_verified_token_goes_to_its_region_claim_and_is_pinned():
    r = route(token_region=US, cookie_region=EU, country="FR")
    assert (r.region, r.pinned, r.reason) == (US, True, "token")


def test_a_registration_goes_to_the_requested_region():
    r = route("POST", "/api/v1/auth/register", body_region=US, country="FR")
    assert (r.region, r.pinned) == (US, True)


def test_a_login_goes_where_the_directory_says_the_account_is_before_any_hint():
    r = route("POST", "/api/v1/auth/login", account_region=US, body_region=EU, cookie_region=EU)
    assert (r.region, r.pinned, r.reason) == (US, True, "directory")


def test_a_login_the_directory_does_not_know_follows_its_hint_then_its_cookie():
    assert route("POST", "/api/v1/auth/login", body_region=US, cookie_region=EU).region is US
    by_cookie = route("POST", "/api/v1/auth/login", cookie_region=US)
    assert (by_cookie.region, by_cookie.pinned) == (US, True)


def test_a_login_with_nothing_known_goes_to_the_country_region_else_the_default():
    assert route("POST", "/api/v1/auth/login", country="us").region is US
    plain = route("POST", "/api/v1/auth/login")
    assert (plain.region, plain.pinned) == (EU, False)


@pytest.mark.parametrize("path", ["/api/v1/auth/refresh", "/api/v1/auth/logout"])
def test_a_refresh_or_logout_goes_to_its_refresh_token_region(path: str):
    r = route("POST", path, refresh_region=US, cookie_region=EU)
    assert (r.region, r.pinned, r.reason) == (US, True, "refresh-token")


def test_a_request_without_a_token_goes_by_cookie_then_country_then_default():
    assert route(cookie_region=US, country="FR").region is US
    assert route(country="CA").region is US
    assert route(country="FR").region is EU  # unmapped: the default
    assert route().region is EU
    assert not route().pinned


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("GET", "/api/v1/rooms", True),
        ("GET", "/api/v1/rooms/7/availability", True),
        ("HEAD", "/api/v1/rooms/7", True),
        ("GET", "/api/v1/openapi.json", True),
        ("POST", "/api/v1/rooms", False),  # an admin's write
        ("PATCH", "/api/v1/rooms/7", False),
        ("GET", "/api/v1/roomsx", False),
        ("GET", "/api/v1/bookings", False),
        ("GET", "/media/rooms/7/" + "a" * 32 + "-card.jpg", True),  # a room photo
        ("POST", "/api/v1/rooms/7/images", False),
        ("GET", "/mediax", False),
    ],
)
def test_global_reads_are_the_safe_methods_on_rooms(method: str, path: str, expected: bool):
    assert is_global_read(method, path) is expected


def test_a_global_read_prefers_the_users_region_else_the_nearest_and_may_fail_over():
    with_token = route(path="/api/v1/rooms", token_region=US)
    assert (with_token.region, with_token.pinned, with_token.reason) == (US, False, "global-read")
    assert route(path="/api/v1/rooms", country="US").region is US
    assert route(path="/api/v1/rooms").region is EU


def test_the_country_mapping_parses_and_refuses_nonsense():
    assert parse_country_regions(" us=US, fr=eu ,") == {"US": US, "FR": EU}
    for bad in ("USA=us", "US", "US=asia", "1X=eu"):
        with pytest.raises(ValueError):
            parse_country_regions(bad)
