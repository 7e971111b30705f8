"""The long-running processes: `roombook serve` (the API) and `roombook worker` (the event side).

`roombook serve` prepares the stores, then runs the app until SIGINT or SIGTERM.

One worker: this process runs the app. web.run_app handles both signals: it stops accepting, lets
requests in flight finish (up to `shutdown_timeout_s`), then runs the cleanup contexts, which drain
the shards and close the stores.

N workers (Ray runtime only): this process starts (or joins) Ray, creates the named shard actors and
owns them; N spawned processes serve the same port (SO_REUSEPORT: the kernel spreads connections) and
reach the same actors by name, so every room still has exactly one writer. This process restarts a
worker that dies, and on SIGTERM/SIGINT stops the workers first, then drains the shards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import msgspec
from aiohttp import web
from prometheus_client import multiprocess as prometheus_multiprocess

from roombook import bootstrap
from roombook.config import Settings
from roombook.domain.accounts import Region
from roombook.heap import freeze_startup_heap
from roombook.logs import configure_logging
from roombook.ops.stores import migrate, seed
from roombook.storage.ports import RegionalStore

log = logging.getLogger(__name__)


async def prepare(settings: Settings, *, seed_rooms: int) -> None:
    """Migrate every store and seed the demo catalogue if it is empty."""
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
    if workers < 1:
        print("roombook: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1 and settings.runtime != "ray":
        print(
            "roombook: --workers > 1 needs the Ray runtime: in-process shards cannot be shared "
            "between processes (each would take the others' shards over)",
            file=sys.stderr,
        )
        return 2
    taken = cannot_listen(host, port)
    if taken:  # found before a store is migrated or Ray starts, which take seconds
        print(f"roombook: cannot listen on {host}:{port}: {taken}", file=sys.stderr)
        return 1
    bootstrap.ensure_jwt_secret(settings)  # the secret file exists before any worker reads it
    asyncio.run(prepare(settings, seed_rooms=seed_rooms))
    if settings.runtime == "ray":
        # Ray installs a failure handler for SIGTERM when it starts, which logs a stack trace as if
        # the process crashed before passing the signal on: start Ray first, so aiohttp's graceful
        # handler is installed last and a normal stop reads as one.
        from roombook.actors.ray_runtime import init_ray

        init_ray(settings.ray_address, namespace=settings.ray_namespace, runtime_env=settings.runtime_env)
    if workers == 1:
        _run_app(settings, host, port, announce=f"roombook: serving on http://{host}:{port} (Ctrl-C to stop)")
        print("roombook: stopped", flush=True)
        return 0
    return _supervise(settings, host, port, workers, shutdown_timeout_s)


def cannot_listen(host: str, port: int) -> str | None:
    """Why the app could not listen on host:port (in use, no such address), or None. Every address
    the host names is bound as asyncio binds it (SO_REUSEADDR, IPv6 only on IPv6), then released."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return str(exc.strerror).lower()
    for family, kind, proto, _, address in dict.fromkeys(addresses):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return (exc.strerror or str(exc)).lower()
    return None


def _run_app(
    settings: Settings,
    host: str,
    port: int,
    *,
    announce: str,
    reuse_port: bool = False,
    listening: multiprocessing.synchronize.Event | None = None,
    shutdown_timeout_s: float = 10.0,
) -> None:
    from roombook.http import metrics
    from roombook.http.app import create_app
    from roombook.http.server_limits import MAX_LINE_SIZE

    def on_listening(_: str) -> None:  # run_app calls this once the socket listens
        if listening is not None:
            listening.set()
        if announce:
            print(announce, flush=True)

    app = create_app(settings)
    if settings.gc_freeze:

        async def freeze_heap(_: web.Application) -> None:  # appended: after every other start-up step
            freeze_startup_heap()

        app.on_startup.append(freeze_heap)

    async def record_process_gauges(_: web.Application) -> None:  # a worker shows in /metrics from its start
        metrics.record_process_gauges()

    app.on_startup.append(record_process_gauges)
    web.run_app(
        app,
        host=host,
        port=port,
        loop=_new_loop(),
        print=on_listening,
        shutdown_timeout=shutdown_timeout_s,
        access_log=None,
        reuse_port=reuse_port,
        max_line_size=MAX_LINE_SIZE,
    )


def _worker(
    raw_settings: bytes, host: str, port: int, listening: multiprocessing.synchronize.Event, verbose: bool
) -> None:
    settings = msgspec.msgpack.decode(raw_settings, type=Settings)
    configure_logging(settings.log_format, verbose=verbose)  # a spawned process starts unconfigured
    from roombook.actors.ray_runtime import init_ray

    init_ray(
        settings.ray_address, namespace=settings.ray_namespace, runtime_env=settings.runtime_env
    )  # before run_app: see serve()
    _run_app(settings, host, port, announce="", reuse_port=True, listening=listening)


def _supervise(settings: Settings, host: str, port: int, workers: int, shutdown_timeout_s: float) -> int:
    from roombook.actors import ray_runtime

    shards = asyncio.run(bootstrap.started_ray_shards(settings))  # created and owned here; workers find them by name
    # workers join this cluster; with ray_address set they also leave the actors alone on exit
    worker_settings = msgspec.structs.replace(settings, ray_address=ray_runtime.cluster_address())
    raw = msgspec.msgpack.encode(worker_settings)
    metrics_dir = _metrics_dir(settings, port)  # /metrics of any worker then shows all of them
    # one outbox relay per deployment: only the first worker runs the event side in-process
    quiet = msgspec.msgpack.encode(msgspec.structs.replace(worker_settings, events_in_process=False))
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def start_worker(index: int) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.synchronize.Event]:
        listening = spawn.Event()
        verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
        args = (raw if index == 0 else quiet, host, port, listening, verbose)
        process = spawn.Process(target=_worker, args=args, name="roombook-worker")
        process.start()
        return process, listening

    pool = [start_worker(i) for i in range(workers)]
    failed_to_start = False
    while not stop.is_set() and not all(listening.is_set() for _, listening in pool):
        if any(not p.is_alive() for p, _ in pool):
            print("roombook: a worker failed to start", file=sys.stderr)
            failed_to_start = True
            stop.set()
        stop.wait(0.1)
    if all(listening.is_set() for _, listening in pool):
        print(f"roombook: serving on http://{host}:{port} with {workers} workers (Ctrl-C to stop)", flush=True)
    while not stop.wait(0.5):
        for i, (process, _) in enumerate(pool):
            if not process.is_alive():
                log.warning("worker %d (pid %s) exited with %s; starting another", i, process.pid, process.exitcode)
                prometheus_multiprocess.mark_process_dead(process.pid, str(metrics_dir))  # its live gauges go
                pool[i] = start_worker(i)
    for process, _ in pool:
        if process.is_alive():
            process.terminate()  # SIGTERM: each worker drains its requests
    for process, _ in pool:
        process.join(shutdown_timeout_s + 5)
        if process.is_alive():
            process.kill()
            process.join()
    if settings.ray_address is None:  # our own Ray: the shards go with it, after answering what is queued
        asyncio.run(shards.drain())
        shards.stop()
        ray_runtime.shutdown_ray()
    print("roombook: stopped", flush=True)
    return 1 if failed_to_start else 0


def _metrics_dir(settings: Settings, port: int) -> Path:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the workers about to start, set in this process's
    environment (after Ray started, so Ray's own processes never write there), which they inherit."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(settings.data_dir) / "metrics" / str(port))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # the samples of an earlier run's workers
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path.resolve())
    return path


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def run_event_worker(settings: Settings, *, relay: bool) -> None:
    """`roombook worker`: the outbox relay and the event consumers, until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        catalogue = await stack.enter_async_context(bootstrap.global_store(settings))
        await catalogue.migrate()
        regions: dict[Region, RegionalStore] = {}
        for region in settings.regions:  # only the regions it serves: a US worker never opens the EU store
            regions[region] = await stack.enter_async_context(bootstrap.regional_store(settings, region))
            await regions[region].migrate()
        async with bootstrap.event_worker(settings, catalogue=catalogue, regions=regions, relay=relay):
            served = ", ".join(regions)
            print(
                f"roombook: worker running on the {settings.event_bus} bus (relay: {relay}; regions: {served})",
                flush=True,
            )
            await stop.wait()
    print("roombook: worker stopped", flush=True)
