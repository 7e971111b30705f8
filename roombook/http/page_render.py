"""How a page leaves: rendered by Jinja2, with the pages' Content-Security-Policy and Cache-Control.

Every page's policy has no 'unsafe-inline': scripts and styles only from this origin's files. The
JSON-LD block is data (`type="application/ld+json"`), which a browser never executes, so
script-src does not apply to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from roombook.domain.errors import RoombookError
from roombook.http.problems import RETRY_AFTER_S

PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: data:",  # room photos live on an image host
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
PUBLIC_CACHE = "public, max-age=30"  # the same for everyone, and at most as stale as the API's caches
PRIVATE = "no-store"  # a signed-in user's page


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200, cache: str = PRIVATE
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, dict(context), status=status)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = cache
    return response


def page_response(body: bytes, *, status: int = 200, cache: str = PRIVATE) -> web.Response:
    """A page already rendered (pages.RenderedRooms keeps some), with the same headers as render's."""
    headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": cache}
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8", headers=headers)


def not_found(request: web.Request, what: str, *, cache: str = PUBLIC_CACHE) -> web.Response:
    return render(request, "not_found.html", {"what": what}, status=404, cache=cache)


def error_page(request: web.Request, exc: RoombookError) -> web.Response:
    """A refusal or an outage as a page: its status and reason; a 503 says when to try again."""
    context = {"title": exc.title, "detail": str(exc), "status": exc.status}
    response = render(request, "error.html", context, status=exc.status)
    if exc.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
