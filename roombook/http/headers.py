"""Headers every response carries, whoever answered: a handler, a problem, aiohttp's own 404/405.

The API's answers are personal (tokens, bookings, a user's profile) or change by the second (a
room's nights), so nothing may keep a copy: `Cache-Control: no-store` (RFC 6749 section 5.1 asks it
of token responses), unless a handler chose its own Cache-Control. The rest is the OWASP REST
security headers: no content sniffing, never framed, and a Server header without versions. A web
page brings its own Content-Security-Policy (and Cache-Control), which is kept.
HSTS is left to the TLS terminator in front (this server speaks plain HTTP on its port).
"""

from __future__ import annotations

from aiohttp import web

SERVER = "roombook"

_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": SERVER,
}
# JSON needs no policy beyond "never framed"; a web page sets its own, stricter one (pages.py)
API_CSP = "frame-ancestors 'none'"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An on_response_prepare hook: runs for every response just before its headers leave."""
    response.headers.update(_ALWAYS)
    response.headers.setdefault("Content-Security-Policy", API_CSP)
    response.headers.setdefault("Cache-Control", "no-store")


def add_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(security_headers)
