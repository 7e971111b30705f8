"""Every error leaves as application/problem+json (RFC 9457): type, title, status, detail (+ extras).

Handlers raise domain errors or `ProblemError`; the middleware turns them into one shape. A domain
error's status, type and title are its class's own (see roombook.domain.errors.RoombookError). Anything
unexpected becomes a 500 problem whose detail says nothing about the internals (the log has them).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from roombook.domain import errors
from roombook.domain.stay_rules import StayRefused

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://roombook.dev/problems/"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str = ""
    nights: list[str] | None = None  # for 409 conflicts: the nights that are taken
    errors: list[str] | None = None
    retry_after_s: int | None = None
    region: str | None = None  # for 421 wrong-region: the region that serves this user
    rule: str | None = None  # for 422 stay-refused: the room's rule that refuses the stay


class ProblemError(Exception):
    """Raise from a handler to answer with a problem: ProblemError(404, "not-found", "Not found", detail)."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.problem = Problem(type=TYPE_BASE + slug, title=title, status=status, detail=detail, **extra)
        self.headers: dict[str, str] = {}


# How soon a client may retry after a 503: the shards reload and the stores reconnect within seconds.
RETRY_AFTER_S = 1


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(problem),
        status=problem.status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def from_domain(exc: errors.RoombookError) -> ProblemError:
    status, slug, title = exc.status, exc.problem, exc.title  # each error class states them
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.NightsUnavailable):
        extra["nights"] = [n.isoformat() for n in exc.nights]
    if isinstance(exc, errors.WrongRegion):
        extra["region"] = exc.region
    if isinstance(exc, StayRefused):
        extra["rule"] = exc.rule.value
    problem = ProblemError(status, slug, title, str(exc) if status != 401 else "", **extra)
    if isinstance(exc, errors.TooManyAttempts):
        problem.problem.retry_after_s = exc.retry_after_s
        problem.headers["Retry-After"] = str(exc.retry_after_s)
    elif status == 503:
        problem.problem.retry_after_s = RETRY_AFTER_S
        problem.headers["Retry-After"] = str(RETRY_AFTER_S)
    return problem


@web.middleware
async def problem_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(exc.problem, exc.headers)
    except errors.RoombookError as exc:
        problem = from_domain(exc)
        return problem_response(problem.problem, problem.headers)
    except msgspec.ValidationError as exc:
        return problem_response(
            Problem(type=TYPE_BASE + "invalid-request", title="Invalid request", status=422, detail=str(exc))
        )
    except msgspec.DecodeError as exc:
        return problem_response(
            Problem(type=TYPE_BASE + "malformed-json", title="Malformed JSON", status=400, detail=str(exc))
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(exc.status, "http-error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        return problem_response(Problem(type=TYPE_BASE + slug, title=exc.reason, status=exc.status), headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(type=TYPE_BASE + "internal", title="Internal error", status=500))
