"""Headers every response carries, whoever answered: a handler, a problem, aiohttp's own 404/405.

The API's answers are personal (tokens, bookings, a user's profile) or change by the second (a
room's nights), so nothing may keep a copy: `Cache-Control: no-store` (RFC 6749 section 5.1 asks it
of token responses), unless a handler chose its own Cache-Control. The rest is the OWASP REST
security headers: no content sniffing, never framed, and a Server header without versions.
HSTS is left to the TLS terminator in front (this server speaks plain HTTP on its port).
"""

from __future__ import annotations

from aiohttp import web

SERVER = "roombook"

_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Server": SERVER,
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An on_response_prepare hook: runs for every response just before its headers leave."""
    response.headers.update(_ALWAYS)
    response.headers.setdefault("Cache-Control", "no-store")


def add_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(security_headers)
