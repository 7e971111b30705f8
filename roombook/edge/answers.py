"""The answers the edge makes itself, in the fronts' problem+json shape, each counted in its metrics."""

from __future__ import annotations

from aiohttp import web

from roombook.domain.accounts import Region
from roombook.edge import metrics
from roombook.edge.rules import SAFE_METHODS, Route
from roombook.http.problems import RETRY_AFTER_S, Problem, problem_response

TYPE_BASE = "https://roombook.dev/problems/"


def problem(status: int, slug: str, title: str, detail: str, *, retry: bool = False, **extra: object) -> web.Response:
    shape = Problem(type=TYPE_BASE + slug, title=title, status=status, detail=detail, **extra)  # type: ignore[arg-type]
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    retry_after = shape.retry_after_s or (RETRY_AFTER_S if retry else None)
    if retry_after:
        shape.retry_after_s = retry_after
        headers["Retry-After"] = str(retry_after)
    return problem_response(shape, headers)


def edge_answer(response: web.Response, request_id: str, *, region: str = "edge", reason: str = "edge") -> web.Response:
    response.headers["X-Request-ID"] = request_id
    metrics.REQUESTS.labels(region=region, status=str(response.status), reason=reason).inc()
    return response


def too_large(limit: int) -> web.Response:
    return problem(413, "too-large", "Request Entity Too Large", f"a body may hold at most {limit} bytes")


def region_down(region: Region, route: Route, request_id: str) -> web.Response:
    metrics.UPSTREAM_ERRORS.labels(region=region.value, kind="region-down").inc()
    detail = f"region '{region}' is not answering; nothing was sent to it"
    answer = problem(503, "unavailable", "Service Unavailable", detail, retry=True, region=region.value)
    return edge_answer(answer, request_id, region=region.value, reason=route.reason)


def answer_lost(region: Region, request: web.Request, request_id: str) -> web.Response:
    if request.method in SAFE_METHODS:
        detail = f"region '{region}' stopped answering"
        answer = problem(503, "unavailable", "Service Unavailable", detail, retry=True)
    else:  # the front may have done it: the same request again (same Idempotency-Key) settles it
        detail = f"region '{region}' stopped answering after the request was sent: send it again"
        answer = problem(503, "outcome-unknown", "Outcome unknown", detail, retry=True)
    return edge_answer(answer, request_id, region=region.value, reason="lost")
