"""Operations: liveness, readiness, Prometheus metrics, and the OpenAPI document."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

import msgspec
from aiohttp import web

from roombook.domain.accounts import USER_ID_BLOCK
from roombook.http import metrics
from roombook.http.endpoints import Endpoints, json_response
from roombook.http.keys import AVAILABILITY, CATALOGUE, REGIONS, SETTINGS
from roombook.http.problems import ProblemError

api = Endpoints()  # under /api/v1
routes = web.RouteTableDef()  # at the root, where probes and scrapers look

OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)  # encoded once when the app starts
READY_TIMEOUT_S = 2.0


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    checks: dict[str, str] = {}


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its loop answers; says nothing of the stores."""
    return json_response(Health(status="ok"))


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Every store and every shard answers within READY_TIMEOUT_S: else a 503 problem naming them."""
    app = request.app
    probes: dict[str, Awaitable[object]] = {"global": app[CATALOGUE].room_count(), "shards": _shards_serving(request)}
    for region, store in app[REGIONS].items():
        probes[str(region)] = store.user(USER_ID_BLOCK * 1000)  # an id no user has: one index probe
    results = await asyncio.gather(
        *(asyncio.wait_for(probe, READY_TIMEOUT_S) for probe in probes.values()), return_exceptions=True
    )
    outcomes = zip(probes, results, strict=True)
    checks = {name: "failing" if isinstance(r, BaseException) else "ok" for name, r in outcomes}
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        raise ProblemError(503, "unavailable", "Not ready", f"not answering: {', '.join(failing)}")
    return json_response(Health(status="ready", checks=checks))


async def _shards_serving(request: web.Request) -> None:
    statuses = await request.app[AVAILABILITY].statuses()
    metrics.record_shard_statuses(statuses)
    idle = [s.shard_id for s in statuses if not s.serving]
    if idle:
        raise RuntimeError(f"shards not serving: {idle}")


STALE_PENDING_LIMIT = 1000  # counted up to this many per region: enough to page on


@routes.get("/metrics")
async def prometheus_metrics(request: web.Request) -> web.Response:
    try:  # cheap: one status call per shard; a slow shard must not stall the scrape
        metrics.record_shard_statuses(await asyncio.wait_for(request.app[AVAILABILITY].statuses(), READY_TIMEOUT_S))
    except Exception:
        metrics.SHARD_STATUS_FAILURES.inc()
    await _count_stale_pending(request.app)
    metrics.record_process_gauges()
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _count_stale_pending(app: web.Application) -> None:
    """PENDING bookings older than the hold TTL, per region: the reconciler should have settled
    them within one period; if they pile up, it cannot (a shard or a store is failing)."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=app[SETTINGS].hold_ttl_s)
    for region, store in app[REGIONS].items():
        try:
            stale = await asyncio.wait_for(
                store.pending_bookings_before(cutoff, limit=STALE_PENDING_LIMIT), READY_TIMEOUT_S
            )
        except Exception:  # the store is failing: /readyz says so; keep the last value
            continue
        metrics.STALE_PENDING_BOOKINGS.labels(region=str(region)).set(len(stale))


@api.get("/openapi.json", summary="This API's OpenAPI 3.1 description", auth="none", tags=("ops",))
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")
