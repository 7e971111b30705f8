"""Request ids and the one log line per request.

Each request gets an id: the caller's `X-Request-ID` if it is sane (services/request_context says
which), else a new one. It is set for the request's task (log records, the events it records) and
returned in the response's `X-Request-ID`, errors and aiohttp's own 404s included.

When the answer is settled, one INFO record on the `roombook.access` logger tells: method, the
route's canonical path (never the raw URL, whose query may hold anything), status, duration, the
request id and the authenticated user's id. Headers, queries and bodies are never logged.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from roombook.logs import ACCESS_LOGGER
from roombook.services.request_context import REQUEST_ID, accepted_request_id

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
USER_ID_KEY = web.RequestKey("user_id", str)  # set once the caller is authenticated (http/authn.py)

access_log = logging.getLogger(ACCESS_LOGGER)
shard_log = logging.getLogger("roombook.shard_calls")


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource  # None when no route matched
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_log_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost: the id covers everything below it, and the line sees the final status."""
    request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # a redirect; the problem middleware answered every error
        status = exc.status
        raise
    finally:
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        user_id = request.get(USER_ID_KEY)
        route = route_of(request)
        access_log.info(
            "%s %s %d %.1fms request_id=%s user_id=%s",
            request.method,
            route,
            status,
            duration_ms,
            request_id,
            user_id or "-",
            extra={
                "method": request.method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "user_id": user_id,
            },
        )
        REQUEST_ID.reset(token)


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """An on_response_prepare hook: every answer names its request."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def add_request_log(app: web.Application) -> None:
    app.on_response_prepare.append(request_id_header)


def log_shard_call(shard_id: int, commands: int, seconds: float, failed: bool) -> None:
    """An AvailabilityClient observer: a failed call is a WARNING, every call an INFO (shown with -v).
    Commands for one shard coalesce into one call, which is logged under the request that opened it."""
    level = logging.WARNING if failed else logging.INFO
    if shard_log.isEnabledFor(level):
        shard_log.log(
            level,
            "shard %d call of %d commands %s in %.1fms",
            shard_id,
            commands,
            "failed" if failed else "answered",
            seconds * 1000,
            extra={"shard": shard_id, "commands": commands, "duration_ms": round(seconds * 1000, 3), "failed": failed},
        )
