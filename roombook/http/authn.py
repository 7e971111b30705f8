"""Who is calling: a Bearer access token, or the `access_token` cookie with CSRF protection.

CSRF: a cookie-authenticated unsafe request (POST/PUT/PATCH/DELETE) must echo the `csrf_token`
cookie (readable by the page's own script, not HttpOnly) in an `X-CSRF-Token` header (the
double-submit pattern). A Bearer token is never sent by the browser on its own, so it needs none.

A valid token of a user whose region this process does not serve is answered 421 (wrong-region):
the edge should have sent it to that region.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import msgspec
from aiohttp import web

from roombook.domain.accounts import Role
from roombook.domain.errors import InvalidToken
from roombook.http.keys import ACCOUNTS
from roombook.http.problems import ProblemError
from roombook.http.request_log import USER_ID_KEY
from roombook.services.access_tokens import AccessClaims

ACCESS_COOKIE = "access_token"
REFRESH_COOKIE = "refresh_token"
CSRF_COOKIE = "csrf_token"
REGION_COOKIE = "region"  # the user's region: the edge's routing hint before there is a token
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CsrfToken = Annotated[str, msgspec.Meta(description="the csrf_token cookie's value, echoed (double submit)")]


def current_user(request: web.Request) -> AccessClaims:
    """The verified claims of the caller; else a 401 problem, or WrongRegion (421)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return _verify(request, token.strip())
    cookie = request.cookies.get(ACCESS_COOKIE)
    if not cookie:
        raise ProblemError(401, "unauthorized", "Not authenticated", "send a Bearer token or sign in")
    claims = _verify(request, cookie)
    if request.method not in _SAFE_METHODS:
        check_csrf(request)
    return claims


def require_admin(request: web.Request) -> AccessClaims:
    claims = current_user(request)
    if claims.role is not Role.ADMIN:
        raise ProblemError(403, "forbidden", "Forbidden", "admin role required")
    return claims


def check_csrf(request: web.Request) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie, header):
        raise ProblemError(403, "csrf", "CSRF check failed", f"send the {CSRF_COOKIE} cookie value in {CSRF_HEADER}")


def _verify(request: web.Request, token: str) -> AccessClaims:
    try:
        claims = request.app[ACCOUNTS].verify_access_token(token)
    except InvalidToken:
        raise ProblemError(401, "unauthorized", "Not authenticated", "invalid or expired token") from None
    request[USER_ID_KEY] = claims.sub  # for the request's log line
    return claims
