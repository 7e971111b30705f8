"""Every error leaves as application/problem+json (RFC 9457): type, title, status, detail (+ extras).

Handlers raise domain errors or `ProblemError`; the middleware turns them into one shape. Anything
unexpected becomes a 500 problem whose detail says nothing about the internals (the log has them).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from roombook.domain import errors

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


class ProblemError(Exception):
    """Raise from a handler to answer with a problem: ProblemError(404, "not-found", "Not found", detail)."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.problem = Problem(type=TYPE_BASE + slug, title=title, status=status, detail=detail, **extra)
        self.headers: dict[str, str] = {}


# domain error -> (status, slug, title); the detail is the error's message
_DOMAIN: dict[type[errors.RoombookError], tuple[int, str, str]] = {
    errors.NightsUnavailable: (409, "nights-unavailable", "Some nights are not available"),
    errors.HoldExpired: (409, "hold-expired", "The hold expired"),
    errors.UnknownHold: (404, "not-found", "Not found"),
    errors.HoldMismatch: (422, "idempotency-mismatch", "Id reused for other nights"),
    errors.InvalidStay: (422, "invalid-request", "Invalid stay"),
    errors.InvalidEmail: (422, "invalid-request", "Invalid email"),
    errors.WeakPassword: (422, "invalid-request", "Password does not meet the policy"),
    errors.DuplicateEmail: (409, "duplicate-email", "Email already registered"),
    errors.AuthenticationFailed: (401, "unauthorized", "Wrong email or password"),
    errors.TooManyAttempts: (429, "too-many-attempts", "Too many failed attempts"),
    errors.InvalidToken: (401, "unauthorized", "Not authenticated"),
    errors.WrongRegion: (421, "wrong-region", "Misdirected Request"),
    errors.IdempotencyKeyReused: (422, "idempotency-key-reused", "Idempotency-Key reused with another body"),
    errors.InvalidCardToken: (422, "invalid-request", "Send a card token, never a card number"),
    errors.ShardUnavailable: (503, "unavailable", "Availability service unavailable"),
    errors.InvalidBooking: (422, "invalid-request", "Invalid booking"),
    errors.UnknownRoom: (404, "not-found", "Not found"),
    errors.UnknownBooking: (404, "not-found", "Not found"),
    errors.PaymentDeclined: (402, "payment-declined", "Payment declined"),
    errors.BookingInProgress: (409, "booking-in-progress", "A request with this Idempotency-Key is in progress"),
    errors.StoreUnavailable: (503, "unavailable", "A store is not answering"),
    errors.OutcomeUnknown: (503, "outcome-unknown", "The outcome is not known yet: retry the same request"),
}
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
    for cls in type(exc).__mro__:
        if cls in _DOMAIN:
            status, slug, title = _DOMAIN[cls]  # type: ignore[index]
            break
    else:
        status, slug, title = 400, "bad-request", "Bad request"
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.NightsUnavailable):
        extra["nights"] = [n.isoformat() for n in exc.nights]
    if isinstance(exc, errors.WrongRegion):
        extra["region"] = exc.region
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
