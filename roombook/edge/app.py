"""The edge's aiohttp app: its probes, and every other request routed to a region and forwarded.

Per request: rate limit (429) and body cap (413) first, then the facts `rules.choose_route`
decides on (a verified token's claim, the auth body's region or email, the cookies, the country),
then the region's health: a pinned route to a region that is down is a 503 and never goes
elsewhere; any other route takes the other region. Every answer the edge makes itself is
application/problem+json, in the fronts' shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator

import aiohttp
import msgspec
from aiohttp import web

from roombook.domain.accounts import Region
from roombook.domain.errors import InvalidToken
from roombook.edge import answers, metrics
from roombook.edge.health import RegionHealth, poll_health
from roombook.edge.proxy import BodyTooLarge, client_address, forward, request_id_of, upstream_headers
from roombook.edge.rate_limit import TokenBuckets
from roombook.edge.rules import (
    AUTH_LOGIN,
    AUTH_REGISTER,
    REFRESH_PATHS,
    SAFE_METHODS,
    RequestFacts,
    choose_route,
    other_region,
)
from roombook.edge.settings import EdgeSettings
from roombook.services.access_tokens import AccessTokenCodec
from roombook.services.email_directory import AccountDirectory

log = logging.getLogger(__name__)

ACCESS_COOKIE, REFRESH_COOKIE, REGION_COOKIE = "access_token", "refresh_token", "region"
AUTH_BODY_PATHS = frozenset({AUTH_REGISTER, AUTH_LOGIN}) | REFRESH_PATHS


class _AuthBody(msgspec.Struct, frozen=True):
    """What routing reads of an auth body; the front validates the whole of it."""

    email: str | None = None
    region: str | None = None
    refresh_token: str | None = None


_AUTH_BODY = msgspec.json.Decoder(_AuthBody)


class EdgeState:
    """The edge's parts, built when the app starts."""

    def __init__(self, settings: EdgeSettings, codec: AccessTokenCodec, directory: AccountDirectory | None) -> None:
        self.settings = settings
        self.rules = settings.rules
        self.codec = codec
        self.directory = directory
        self.buckets = TokenBuckets(rate_per_s=settings.rate_per_s, burst=settings.rate_burst)
        self.health = RegionHealth(tuple(Region))
        self.urls = {region: settings.url(region) for region in Region}
        self.sessions: dict[Region, aiohttp.ClientSession] = {}


EDGE = web.AppKey("edge", EdgeState)


def create_edge_app(
    settings: EdgeSettings,
    *,
    jwt_secret: str,
    jwt_issuer: str = "roombook",
    directory: AccountDirectory | None = None,
) -> web.Application:
    """The edge over two fronts. `directory` (its store unopened: the app opens it) answers
    "which region holds this email?" for a login; without it a login is routed by its hints alone."""
    codec = AccessTokenCodec(secret=jwt_secret, issuer=jwt_issuer, ttl_s=0, leeway_s=5, clock=time.time)
    # the cap is enforced per route below; aiohttp's own limit only guards the bodies read whole
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[EDGE] = EdgeState(settings, codec, directory)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_route("*", "/{tail:.*}", _proxy)
    app.cleanup_ctx.append(_upstreams)
    if directory is not None:
        app.cleanup_ctx.append(_directory)
    return app


async def _upstreams(app: web.Application) -> AsyncIterator[None]:
    """One pooled keep-alive session per region, and the health poller."""
    state = app[EDGE]
    timeout = aiohttp.ClientTimeout(total=state.settings.upstream_timeout_s, connect=state.settings.health_timeout_s)
    for region in Region:
        connector = aiohttp.TCPConnector(limit=state.settings.connections_per_region, keepalive_timeout=30)
        state.sessions[region] = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,  # bytes pass as the front encoded them
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep one user's cookie for the next
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
    poller = asyncio.create_task(
        poll_health(
            state.health,
            state.sessions,
            state.urls,
            every_s=state.settings.health_every_s,
            timeout_s=state.settings.health_timeout_s,
        )
    )
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        for session in state.sessions.values():
            await session.close()


async def _directory(app: web.Application) -> AsyncIterator[None]:
    directory = app[EDGE].directory
    assert directory is not None
    async with directory.store:  # read only: the fronts create and write it
        yield


# --- the edge's own endpoints ---------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "checks": {}})


async def _readyz(request: web.Request) -> web.Response:
    """Ready while both regions' fronts answer; else a 503 problem naming the ones that do not."""
    states = request.app[EDGE].health.states
    down = sorted(region.value for region, up in states.items() if not up)
    if down:
        return answers.problem(503, "unavailable", "Not ready", f"not answering: {', '.join(down)}", retry=True)
    return web.json_response({"status": "ready", "checks": {region.value: "ok" for region in states}})


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


# --- forwarding -----------------------------------------------------------------------------------


async def _proxy(request: web.Request) -> web.StreamResponse:
    state = request.app[EDGE]
    settings = state.settings
    request_id = request_id_of(request)
    wait_s = state.buckets.take(client_address(request, settings.trusted_hops), time.monotonic())
    if wait_s > 0:
        retry = max(1, math.ceil(wait_s))
        return answers.edge_answer(
            answers.problem(429, "too-many-requests", "Too many requests", "slow down", retry_after_s=retry), request_id
        )
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return answers.edge_answer(answers.too_large(settings.max_body_bytes), request_id)
    body: bytes | None = None
    if request.method == "POST" and request.path in AUTH_BODY_PATHS:
        try:
            body = await request.read()  # small (capped by client_max_size), and routing needs it
        except web.HTTPRequestEntityTooLarge:
            return answers.edge_answer(answers.too_large(settings.max_body_bytes), request_id)
    facts = await _facts(request, state, body)
    route = choose_route(facts, state.rules)
    region = route.region
    if not state.health.is_up(region):
        if route.pinned or not state.health.is_up(other_region(region)):
            return answers.region_down(region, route, request_id)
        region = other_region(region)
    candidates = [region]
    if not route.pinned and state.health.is_up(other_region(region)):
        candidates.append(other_region(region))  # what holds no one's data may go to the other region
    user_region = facts.token_region or facts.cookie_region
    for attempt, region in enumerate(candidates):
        last = attempt == len(candidates) - 1
        headers = upstream_headers(
            request,
            request_id=request_id,
            trusted_hops=settings.trusted_hops,
            body_buffered=body is not None,
            strip_credentials=not route.pinned and user_region is not None and region != user_region,
        )
        started = time.perf_counter()
        try:
            response = await forward(
                request,
                state.sessions[region],
                state.urls[region],
                headers=headers,
                body=body,
                max_body_bytes=settings.max_body_bytes,
                request_id=request_id,
            )
        except BodyTooLarge:
            return answers.edge_answer(answers.too_large(settings.max_body_bytes), request_id)
        except aiohttp.ClientConnectorError:  # nothing was sent: the region is down
            state.health.mark(region, False)
            metrics.UPSTREAM_ERRORS.labels(region=region.value, kind="connect").inc()
            if last:
                return answers.region_down(region, route, request_id)
            continue
        except (aiohttp.ClientError, TimeoutError) as exc:  # sent, and the answer is lost
            kind = "timeout" if isinstance(exc, TimeoutError) else "broken"
            metrics.UPSTREAM_ERRORS.labels(region=region.value, kind=kind).inc()
            if last or request.method not in SAFE_METHODS:
                return answers.answer_lost(region, request, request_id)
            continue  # a read that changes nothing is asked again elsewhere
        metrics.UPSTREAM_SECONDS.labels(region=region.value).observe(time.perf_counter() - started)
        metrics.REQUESTS.labels(region=region.value, status=str(response.status), reason=route.reason).inc()
        return response
    raise AssertionError("unreachable: the last candidate always answers")


async def _facts(request: web.Request, state: EdgeState, body: bytes | None) -> RequestFacts:
    auth = _AuthBody()
    if body:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            auth = _AUTH_BODY.decode(body)  # a malformed body is the front's to refuse
    account_region = None
    if request.path == AUTH_LOGIN and auth.email and state.directory is not None:
        try:
            account_region = await state.directory.region_of(auth.email)
        except Exception:  # the directory is out: route by the hints, as without one
            log.warning("email directory lookup failed; routing the login by its hints", exc_info=True)
    refresh = auth.refresh_token or request.cookies.get(REFRESH_COOKIE) or ""
    return RequestFacts(
        method=request.method,
        path=request.path,
        token_region=_token_region(request, state.codec),
        body_region=_region(auth.region),
        account_region=account_region,
        refresh_region=_region(refresh.partition(".")[0]) if "." in refresh else None,
        cookie_region=_region(request.cookies.get(REGION_COOKIE)),
        country=request.headers.get(state.settings.country_header),
    )


def _token_region(request: web.Request, codec: AccessTokenCodec) -> Region | None:
    """The region claim of a valid access token (Bearer first, as the fronts read it), else None."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = request.cookies.get(ACCESS_COOKIE, "")
    if not token:
        return None
    try:
        return codec.decode(token.strip()).region
    except InvalidToken:  # forwarded as a request without one: the front answers 401
        return None


def _region(value: str | None) -> Region | None:
    try:
        return Region(value) if value else None
    except ValueError:
        return None
