"""The `roombook` command."""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
from collections.abc import Sequence

from roombook.config import Settings, load_settings
from roombook.routing.ring import ShardRing
from roombook.storage.connect import availability_store


async def migrate(settings: Settings) -> None:
    async with availability_store(settings.dsn("global")) as store:
        applied = await store.migrate()
    print(f"global: applied {applied or 'nothing (up to date)'}")


async def seed(settings: Settings, rooms: int, *, only_if_empty: bool) -> int:
    from roombook.demo_catalogue import demo_rooms

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    settings = load_settings(
        data_dir=args.data_dir, runtime=args.runtime, ray_address=args.ray_address, shards=args.shards
    )
    match args.command:
        case "migrate":
            asyncio.run(migrate(settings))
        case "seed":
            asyncio.run(seed(settings, args.rooms, only_if_empty=args.if_empty))
        case "shards":
            asyncio.run(show_shards(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
