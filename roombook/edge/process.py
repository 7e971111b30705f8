"""`roombook edge`: run the edge router until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio

from aiohttp import web

from roombook import bootstrap
from roombook.config import Settings
from roombook.edge.app import create_edge_app
from roombook.edge.settings import EdgeSettings
from roombook.http.server_limits import MAX_LINE_SIZE


def run_edge(settings: Settings, edge: EdgeSettings, *, host: str, port: int) -> int:
    app = create_edge_app(
        edge,
        jwt_secret=bootstrap.ensure_jwt_secret(settings),
        jwt_issuer=settings.jwt_issuer,
        directory=bootstrap.email_directory(settings),  # read straight from the global store
    )
    announce = f"roombook: edge on http://{host}:{port} -> eu {edge.eu_url}, us {edge.us_url} (Ctrl-C to stop)"
    web.run_app(
        app,
        host=host,
        port=port,
        loop=_new_loop(),
        print=lambda _: print(announce, flush=True),
        access_log=None,
        shutdown_timeout=5.0,
        max_line_size=MAX_LINE_SIZE,
    )
    print("roombook: edge stopped", flush=True)
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
