"""The `roombook` command."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import logging
import signal
import sys
from collections.abc import Sequence

from roombook.config import Settings, load_settings
from roombook.domain.accounts import Region, Role, normalize_email
from roombook.domain.errors import RoombookError
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store, regional_store


async def migrate(settings: Settings) -> None:
    """Migrate the global store and the regional stores of the regions `settings` serves."""
    async with availability_store(settings.dsn("global")) as store:
        applied = await store.migrate()
    print(f"global: applied {applied or 'nothing (up to date)'}")
    for region in settings.regions:
        async with regional_store(settings.dsn(region.value), region) as regional:
            applied = await regional.migrate()
        print(f"{region}: applied {applied or 'nothing (up to date)'}")


async def create_admin(settings: Settings, *, email: str, password: str, region: Region) -> None:
    """Make a new admin in `region`, or promote the existing user with that email (in any region
    `settings` serves)."""
    from roombook.services.accounts import AccountService

    email = normalize_email(email)
    async with contextlib.AsyncExitStack() as stack:
        stores = {}
        for r in settings.regions:
            stores[r] = await stack.enter_async_context(regional_store(settings.dsn(r.value), r))
            await stores[r].migrate()
        for store in stores.values():
            account = await store.account_by_email(email)
            if account is not None:
                await store.set_role(account.user.id, Role.ADMIN, dt.datetime.now(dt.UTC))
                print(f"promoted {email} (user {account.user.id}, {store.region}) to admin")
                return
        user = await AccountService(stores, settings.auth_settings()).register(
            email=email, password=password, region=region
        )
        await stores[region].set_role(user.id, Role.ADMIN, dt.datetime.now(dt.UTC))
        print(f"created admin {email} (user {user.id}, {region})")


async def seed(settings: Settings, rooms: int, *, only_if_empty: bool) -> int:
    from roombook.ops.demo_catalogue import demo_rooms

    async with availability_store(settings.dsn("global")) as store:
        await store.migrate()
        existing = await store.room_count()
        if only_if_empty and existing:
            print(f"catalogue has {existing} rooms already: not seeding")
            return 0
        ids = await store.add_rooms(demo_rooms(rooms))
    print(f"added {len(ids)} demo rooms (ids {ids[0]}..{ids[-1]})" if ids else "added no rooms")
    return len(ids)


async def show_shards(settings: Settings) -> None:
    from roombook.actors.deployment import availability_service

    ring = ShardRing(settings.shards)
    async with availability_store(settings.dsn("global")) as store:
        await store.migrate()
        per_shard = collections.Counter(ring.shard_of(room_id) for room_id in await store.room_ids())
        async with availability_service(settings) as client:
            statuses = await client.statuses()
    print(f"{'shard':>5} {'rooms':>7} {'epoch':>6} {'serving':>7} {'pending':>7} {'rows':>8}  owner")
    for s in statuses:
        print(
            f"{s.shard_id:>5} {per_shard[s.shard_id]:>7} {s.epoch:>6} {s.serving!s:>7} "
            f"{s.pending:>7} {s.rows:>8}  {s.owner}"
        )


async def reindex_search(settings: Settings) -> int:
    """Rebuild the OpenSearch index from the catalogue into a new index, then swap the alias."""
    from roombook.services.room_search import catalogue_rooms, open_search_index

    async with availability_store(settings.dsn("global")) as store:
        await store.migrate()
        rooms = await catalogue_rooms(store)
    async with open_search_index(settings) as index:
        await index.reindex(rooms)
        count = await index.count()
    print(f"search: reindexed {len(rooms)} rooms; the index holds {count}")
    return len(rooms)


async def run_worker(settings: Settings, *, relay: bool) -> None:
    """The outbox relay and the event consumers, until SIGINT or SIGTERM."""
    from roombook.events.worker import EventWorker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        catalogue = await stack.enter_async_context(availability_store(settings.dsn("global")))
        await catalogue.migrate()
        regions = {}
        for region in Region:
            regions[region] = await stack.enter_async_context(regional_store(settings.dsn(region.value), region))
            await regions[region].migrate()
        async with EventWorker(settings, catalogue=catalogue, regions=regions, relay=relay):
            print(f"roombook: worker running on the {settings.event_bus} bus (relay: {relay})", flush=True)
            await stop.wait()
    print("roombook: worker stopped", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roombook", description=__doc__)
    parser.add_argument("--data-dir", help="where the embedded SQLite files live (default ./data)")
    parser.add_argument("--runtime", choices=["ray", "local"], help="shard runtime (default ray)")
    parser.add_argument("--ray-address", help="Ray cluster to join (default: start a local Ray)")
    parser.add_argument("--shards", type=int, help="number of room shards (default 4)")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply schema migrations to every store")
    seed_cmd = commands.add_parser("seed", help="add a demo catalogue of rooms")
    seed_cmd.add_argument("--rooms", type=int, default=200)
    seed_cmd.add_argument("--if-empty", action="store_true", help="only when the catalogue is empty")
    commands.add_parser("shards", help="each shard: rooms owned, epoch, pending writes")
    serve_cmd = commands.add_parser("serve", help="run the HTTP API (migrates, seeds an empty catalogue)")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8080)
    serve_cmd.add_argument("--workers", type=int, default=1, help="processes sharing the port (Ray runtime; default 1)")
    serve_cmd.add_argument("--seed-rooms", type=int, default=200, help="demo rooms added when the catalogue is empty")
    serve_cmd.add_argument(
        "--region",
        choices=["all", *(r.value for r in Region)],
        help="serve the users of one region only (default all; ROOMBOOK_REGION)",
    )
    worker_cmd = commands.add_parser("worker", help="run the outbox relay and the event consumers (emails)")
    worker_cmd.add_argument(
        "--no-relay", action="store_true", help="consumers only (run one relay per deployment, more consumers)"
    )
    search_cmd = commands.add_parser("search", help="manage the search index")
    search_commands = search_cmd.add_subparsers(dest="search_command", required=True)
    search_commands.add_parser("reindex", help="rebuild OpenSearch from the catalogue, then swap the alias")
    admin_cmd = commands.add_parser("admin", help="manage administrators")
    admin_commands = admin_cmd.add_subparsers(dest="admin_command", required=True)
    create_cmd = admin_commands.add_parser("create", help="create an admin, or promote an existing user")
    create_cmd.add_argument("--email", required=True)
    create_cmd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create_cmd.add_argument("--region", choices=[r.value for r in Region], default=Region.EU.value)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    settings = load_settings(
        data_dir=args.data_dir,
        runtime=args.runtime,
        ray_address=args.ray_address,
        shards=args.shards,
        region=getattr(args, "region", None),
    )
    match args.command:
        case "migrate":
            asyncio.run(migrate(settings))
        case "seed":
            asyncio.run(seed(settings, args.rooms, only_if_empty=args.if_empty))
        case "shards":
            asyncio.run(show_shards(settings))
        case "serve":
            from roombook.serve import serve

            return serve(settings, host=args.host, port=args.port, workers=args.workers, seed_rooms=args.seed_rooms)
        case "worker":
            asyncio.run(run_worker(settings, relay=not args.no_relay))
        case "search":
            if settings.search != "opensearch":
                print(
                    "roombook: the embedded index is built at every start; set ROOMBOOK_SEARCH=opensearch",
                    file=sys.stderr,
                )
                return 2
            asyncio.run(reindex_search(settings))
        case "admin":
            password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else ""
            if not password:
                print("roombook: give the password on stdin with --password-stdin", file=sys.stderr)
                return 2
            try:
                asyncio.run(create_admin(settings, email=args.email, password=password, region=Region(args.region)))
            except RoombookError as exc:
                print(f"roombook: {exc}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
