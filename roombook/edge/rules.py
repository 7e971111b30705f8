"""Which region a request goes to: pure rules over what the edge read from the request.

The facts (a verified token's claim, the body's region, the directory's answer, the cookies, the
CDN's country header) are gathered by the proxy; this module only decides, so every rule is
tested without a network. A `pinned` route holds a user's data and never fails over: its region
down is a 503. Any other route may go to the other region when its first choice is down.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from roombook.domain.accounts import Region

API_PREFIX = "/api/v1"
AUTH_REGISTER = API_PREFIX + "/auth/register"
AUTH_LOGIN = API_PREFIX + "/auth/login"
REFRESH_PATHS = frozenset({API_PREFIX + "/auth/refresh", API_PREFIX + "/auth/logout"})
# Global reads: one source of truth for every region, so any healthy region answers them.
_GLOBAL_READ_PREFIXES = (API_PREFIX + "/rooms", "/media")  # /media: room photos of the embedded store
_GLOBAL_READ_PATHS = frozenset({API_PREFIX + "/openapi.json"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class EdgeRules(msgspec.Struct, frozen=True, kw_only=True):
    """How facts that name no user become a region: the CDN's country mapping and the default."""

    default_region: Region = Region.EU
    country_regions: Mapping[str, Region] = {}  # ISO 3166-1 alpha-2, upper case -> region


class RequestFacts(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    token_region: Region | None = None  # the verified access token's `region` claim
    body_region: Region | None = None  # a registration's region, or a login's hint
    account_region: Region | None = None  # where the email directory says the login's account is
    refresh_region: Region | None = None  # a refresh or logout token's region prefix
    cookie_region: Region | None = None  # the `region` cookie
    country: str | None = None  # the CDN's country header


class Route(msgspec.Struct, frozen=True, kw_only=True):
    region: Region
    pinned: bool  # the user's data lives there: never sent elsewhere
    reason: str  # which rule chose it (a metric label; bounded)


def is_global_read(method: str, path: str) -> bool:
    if method not in SAFE_METHODS:
        return False
    return path in _GLOBAL_READ_PATHS or any(path == p or path.startswith(p + "/") for p in _GLOBAL_READ_PREFIXES)


def choose_route(facts: RequestFacts, rules: EdgeRules) -> Route:
    """The region for a request, by the first rule that applies:

    1. a global read: the user's region if known, else the nearest (country, default); not pinned;
    2. a verified access token: its region claim, pinned;
    3. a registration: its requested region, pinned;
    4. a login: the region the directory says holds the account, else its region hint, pinned;
    5. a refresh or logout: its refresh token's region prefix, pinned;
    6. otherwise (no token, an invalid one, nothing known): the region cookie, else the country's
       region, else the default, not pinned (such a request holds no one's data: a 401 or a 404
       answers the same everywhere).
    """
    if is_global_read(facts.method, facts.path):
        return Route(region=_hinted(facts, rules), pinned=False, reason="global-read")
    if facts.token_region is not None:
        return Route(region=facts.token_region, pinned=True, reason="token")
    if facts.path == AUTH_REGISTER and facts.body_region is not None:
        return Route(region=facts.body_region, pinned=True, reason="register")
    if facts.path == AUTH_LOGIN:
        if facts.account_region is not None:
            return Route(region=facts.account_region, pinned=True, reason="directory")
        if facts.body_region is not None:
            return Route(region=facts.body_region, pinned=True, reason="login-hint")
    if facts.path in REFRESH_PATHS and facts.refresh_region is not None:
        return Route(region=facts.refresh_region, pinned=True, reason="refresh-token")
    if facts.cookie_region is not None:
        return Route(region=facts.cookie_region, pinned=facts.path == AUTH_LOGIN, reason="cookie")
    return Route(region=_nearest(facts, rules), pinned=False, reason="nearest")


def _hinted(facts: RequestFacts, rules: EdgeRules) -> Region:
    """The user's own region when any fact names it (their data and tokens stay there), else the nearest."""
    return facts.token_region or facts.cookie_region or _nearest(facts, rules)


def _nearest(facts: RequestFacts, rules: EdgeRules) -> Region:
    if facts.country:
        region = rules.country_regions.get(facts.country.strip().upper())
        if region is not None:
            return region
    return rules.default_region


def parse_country_regions(text: str) -> dict[str, Region]:
    """`US=us,CA=us,FR=eu` -> {"US": Region.US, ...}; raises ValueError naming a bad entry."""
    mapping: dict[str, Region] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        country, sep, region = item.partition("=")
        country = country.strip().upper()
        if not sep or len(country) != 2 or not country.isalpha():
            raise ValueError(f"country mapping {item!r} is not CC=region")
        try:
            mapping[country] = Region(region.strip().lower())
        except ValueError:
            raise ValueError(f"country mapping {item!r} names no region ({', '.join(Region)})") from None
    return mapping


def other_region(region: Region) -> Region:
    return next(r for r in Region if r != region)
