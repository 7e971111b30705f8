"""The `roombook` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from roombook.config import load_settings
from roombook.domain.accounts import Region
from roombook.domain.errors import RoombookError
from roombook.ops.admin import create_admin
from roombook.ops.search import reindex_search
from roombook.ops.shards import show_shards
from roombook.ops.stores import migrate, seed


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
            from roombook.serve import run_event_worker

            asyncio.run(run_event_worker(settings, relay=not args.no_relay))
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
