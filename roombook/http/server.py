"""`roombook serve`: prepare the stores, then run the app until SIGINT or SIGTERM.

web.run_app handles both signals: it stops accepting, lets requests in flight finish (up to
`shutdown_timeout_s`), then runs the cleanup contexts, which drain the shards and close the stores.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from roombook.config import Settings

log = logging.getLogger(__name__)


async def prepare(settings: Settings, *, seed_rooms: int) -> None:
    """Migrate every store and seed the demo catalogue if it is empty."""
    from roombook.cli import migrate, seed

    await migrate(settings)
    await seed(settings, seed_rooms, only_if_empty=True)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    seed_rooms: int = 200,
    shutdown_timeout_s: float = 10.0,
) -> int:
    if workers != 1:
        # Several processes on one port (SO_REUSEPORT) sharing one set of named Ray shard actors is
        # not wired yet: run one process per port behind a balancer, on one Ray cluster (RAY_ADDRESS).
        print("roombook: --workers > 1 is not supported yet; use --workers 1", file=sys.stderr)
        return 2
    settings.auth_settings()  # creates the JWT secret file now, before anything listens
    asyncio.run(prepare(settings, seed_rooms=seed_rooms))
    if settings.runtime == "ray":
        # Ray installs a failure handler for SIGTERM when it starts, which logs a stack trace as if
        # the process crashed before passing the signal on: start Ray first, so aiohttp's graceful
        # handler is installed last and a normal stop reads as one.
        from roombook.actors.ray_runtime import init_ray

        init_ray(settings.ray_address, namespace=settings.ray_namespace)

    from roombook.http.app import create_app

    app = create_app(settings)
    url = f"http://{host}:{port}"

    def announce(_: str) -> None:  # run_app calls this once the socket listens
        print(f"roombook: serving on {url} (Ctrl-C to stop)", flush=True)

    web.run_app(
        app,
        host=host,
        port=port,
        loop=_new_loop(),
        print=announce,
        shutdown_timeout=shutdown_timeout_s,
        access_log=None,
    )
    print("roombook: stopped", flush=True)
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
