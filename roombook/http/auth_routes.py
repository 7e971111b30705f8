"""Accounts over HTTP: register, log in, refresh, log out, who am I.

A browser keeps its tokens in cookies: `access_token` (HttpOnly, Path=/), `refresh_token`
(HttpOnly, Path=/api/v1/auth, so it only travels to these endpoints) and `csrf_token` (readable by
the page's script, echoed in X-CSRF-Token on unsafe requests). Other clients use the Bearer token
from the body and send the refresh token in the body of /auth/refresh and /auth/logout.

A `region` cookie (the user's region; kept after logout) is the routing hint for the next login,
before there is a token: the edge routes by it, and a process that does not serve that region
answers 421. API clients send the hint as the login body's `region` instead.
"""

from __future__ import annotations

import secrets
from typing import Annotated, TypedDict

import msgspec
from aiohttp import web

from roombook.domain.accounts import Region, User
from roombook.domain.errors import InvalidToken
from roombook.http.authn import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    CSRF_HEADER,
    REFRESH_COOKIE,
    REGION_COOKIE,
    CsrfToken,
    check_csrf,
    current_user,
)
from roombook.http.endpoints import API_PREFIX, Endpoints, json_response, read_body
from roombook.http.keys import ACCOUNTS, REGIONS, SETTINGS
from roombook.http.problems import ProblemError, from_domain, problem_response
from roombook.services.accounts import Session

api = Endpoints()

REFRESH_COOKIE_PATH = API_PREFIX + "/auth"
PASSWORD_FIELD = frozenset({"password"})  # hashed, never stored: its digits are the user's secret, not card data
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RegisterRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: str
    first_name: Name | None = None
    last_name: Name | None = None
    region: Region

    def __repr__(self) -> str:
        return f"RegisterRequest(region={self.region!r})"


class LoginRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: str
    region: Region | None = None  # the user's region if known (else the region cookie's): a routing hint

    def __repr__(self) -> str:
        return "LoginRequest(...)"


class RefreshRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # else the refresh_token cookie; ours are far shorter, so a longer one is no token at all
    refresh_token: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class UserOut(msgspec.Struct, frozen=True, kw_only=True):
    user: User


class LoginOut(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: User


@api.post(
    "/auth/register",
    summary="Create an account and sign in",
    request=RegisterRequest,
    response=UserOut,
    status=201,
    auth="none",
    errors=(409, 415, 421, 422, 429),
    tags=("auth",),
)
async def register(request: web.Request) -> web.Response:
    body = await read_body(request, RegisterRequest, secret_fields=PASSWORD_FIELD)
    accounts = request.app[ACCOUNTS]
    user = await accounts.register(
        email=body.email,
        password=body.password,
        region=body.region,
        first_name=body.first_name,
        last_name=body.last_name,
    )
    session = await accounts.login(email=body.email, password=body.password, client_key=_client_key(request))
    response = json_response(UserOut(user=user), status=201)
    _set_session_cookies(request, response, session, new_csrf=True)
    return response


@api.post(
    "/auth/login",
    summary="Sign in with email and password",
    request=LoginRequest,
    response=LoginOut,
    auth="none",
    errors=(401, 415, 421, 429),
    tags=("auth",),
)
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, LoginRequest, secret_fields=PASSWORD_FIELD)
    session = await request.app[ACCOUNTS].login(
        email=body.email,
        password=body.password,
        client_key=_client_key(request),
        region_hint=body.region or _region_cookie(request),
    )
    response = json_response(_login_out(session))
    _set_session_cookies(request, response, session, new_csrf=True)
    return response


@api.post(
    "/auth/refresh",
    summary="Swap a refresh token for a new pair (the old one is spent)",
    request=RefreshRequest,
    body_required=False,
    headers={CSRF_HEADER: CsrfToken | None},
    response=LoginOut,
    auth="none",
    errors=(401, 403, 415, 421, 422),
    tags=("auth",),
)
async def refresh(request: web.Request) -> web.Response:
    token = await _refresh_token_of(request)
    if token is None:
        raise InvalidToken("no refresh token")
    try:
        session = await request.app[ACCOUNTS].refresh(token)
    except InvalidToken as exc:  # dead, unknown or reused: make the browser forget it too
        problem = from_domain(exc)
        return _clear_cookies(problem_response(problem.problem, problem.headers), request)
    response = json_response(_login_out(session))
    _set_session_cookies(request, response, session, new_csrf=CSRF_COOKIE not in request.cookies)
    return response


@api.post(
    "/auth/logout",
    summary="Sign out: revoke this login's refresh tokens and clear the cookies",
    request=RefreshRequest,
    body_required=False,
    headers={CSRF_HEADER: CsrfToken | None},
    status=204,
    auth="none",
    errors=(403, 415, 421, 422),
    tags=("auth",),
)
async def logout(request: web.Request) -> web.Response:
    token = await _refresh_token_of(request)
    if token is not None:
        await request.app[ACCOUNTS].logout(token)
    return _clear_cookies(web.Response(status=204), request)


@api.get("/me", summary="The signed-in user", response=UserOut, tags=("auth",))
async def me(request: web.Request) -> web.Response:
    claims = current_user(request)
    user = await request.app[REGIONS][claims.region].user(claims.user_id)
    if user is None:  # deleted since the token was issued
        raise ProblemError(401, "unauthorized", "Not authenticated", "the account no longer exists")
    return json_response(UserOut(user=user))


async def _refresh_token_of(request: web.Request) -> str | None:
    """The body's token, else the cookie's; a cookie (sent by the browser on its own) needs CSRF."""
    raw = await request.read()
    body = await read_body(request, RefreshRequest) if raw.strip() else RefreshRequest()
    if body.refresh_token:
        return body.refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if cookie:
        check_csrf(request)
    return cookie or None


def _login_out(session: Session) -> LoginOut:
    return LoginOut(access_token=session.tokens.access_token, expires_in=session.tokens.expires_in, user=session.user)


def _region_cookie(request: web.Request) -> Region | None:
    try:
        return Region(request.cookies.get(REGION_COOKIE, ""))
    except ValueError:  # absent or not a region: no hint
        return None


def _client_key(request: web.Request) -> str:
    """The client's address: the peer's, or behind `trusted_proxy_hops` proxies (the edge: 1) the
    address the outermost of them saw; what a client writes into X-Forwarded-For itself is never
    believed, as it stands left of what the trusted proxies appended."""
    peer = request.remote or "unknown"
    hops = request.app[SETTINGS].trusted_proxy_hops
    if hops == 0:
        return peer
    chain = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()] + [peer]
    return chain[max(0, len(chain) - 1 - hops)]


class _CookieFlags(TypedDict):
    secure: bool
    samesite: str


def _set_session_cookies(request: web.Request, response: web.Response, session: Session, *, new_csrf: bool) -> None:
    tokens = session.tokens
    common = _CookieFlags(secure=request.app[SETTINGS].cookie_secure, samesite="Lax")
    response.set_cookie(
        ACCESS_COOKIE, tokens.access_token, max_age=tokens.expires_in, path="/", httponly=True, **common
    )
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=tokens.refresh_expires_in,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        **common,
    )
    # not HttpOnly: it is no secret, and the page may read it too
    response.set_cookie(REGION_COOKIE, session.user.region.value, max_age=tokens.refresh_expires_in, path="/", **common)
    if new_csrf:
        response.set_cookie(
            CSRF_COOKIE, secrets.token_urlsafe(32), max_age=tokens.refresh_expires_in, path="/", **common
        )


def _clear_cookies(response: web.Response, request: web.Request) -> web.Response:
    """Forget the session; the region cookie stays, as the routing hint for the next login."""
    secure = request.app[SETTINGS].cookie_secure
    for name, path in ((ACCESS_COOKIE, "/"), (REFRESH_COOKIE, REFRESH_COOKIE_PATH), (CSRF_COOKIE, "/")):
        response.del_cookie(name, path=path, secure=secure, samesite="Lax")
    return response
