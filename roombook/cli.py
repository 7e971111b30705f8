"""The `roombook` command: `roombook <command> [options]`.

`roombook --help` lists the commands, `roombook <command> --help` a command's options, each with
its default and the environment variable that sets it. The options every command shares are also
taken before the command (`roombook --data-dir D serve`). An operator's mistake (a bad option, a
store that does not open, a port in use) is one line on stderr and a non-zero exit; -v adds the
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import decimal
import importlib.metadata
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

import msgspec

from roombook.config import Settings, env_name, load_settings
from roombook.domain.accounts import Region
from roombook.logs import configure_logging
from roombook.ops import shards as shard_ops
from roombook.ops.admin import create_admin
from roombook.ops.failures import failure_line, store_dsn_problem
from roombook.ops.room_rates import rate_change, set_stay_rules, show_or_change_rates
from roombook.ops.search import reindex_search
from roombook.ops.stores import migrate, seed

_SETTINGS_DEFAULTS = {field.name: field.default for field in msgspec.structs.fields(Settings)}


class _Parser(argparse.ArgumentParser):
    """Reports a usage mistake in one line, naming the help that shows the right usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _at_least(least: int) -> Callable[[str], int]:
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value

    return count


def _port(text: str) -> int:
    value = _at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), not {value}")
    return value


def _setting(text: str, field: str, *, shown_default: str | None = None) -> str:
    """Help for an option that overrides a Settings field: its real default and its variable."""
    default = _SETTINGS_DEFAULTS[field] if shown_default is None else shown_default
    return f"{text} (default: {default}; env {env_name(field)})".replace("%", "%%")


def _shared_options(*, given_before_command: bool) -> _Parser:
    """The options of every command. A command's copies default to nothing at all (SUPPRESS), so
    a value given before the command is not overwritten by the command's default."""
    parser = _Parser(add_help=False, argument_default=None if given_before_command else argparse.SUPPRESS)
    parser.add_argument("--data-dir", metavar="DIR", help=_setting("where the embedded SQLite files live", "data_dir"))
    parser.add_argument("--runtime", choices=["ray", "local"], help=_setting("where the room shards run", "runtime"))
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help=_setting("the Ray cluster to join", "ray_address", shown_default="start a local Ray"),
    )
    parser.add_argument("--shards", type=_at_least(1), metavar="N", help=_setting("number of room shards", "shards"))
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress; a failure also shows its traceback")
    return parser


def _parser() -> argparse.ArgumentParser:
    try:
        version = importlib.metadata.version("roombook")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        version = "(not installed)"
    parser = _Parser(
        prog="roombook",
        description="A room booking platform: its HTTP API, its event worker and its operator commands.",
        epilog="Options go after the command; `roombook <command> --help` lists them.",
        parents=[_shared_options(given_before_command=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    shared = _shared_options(given_before_command=False)

    def command(group: argparse._SubParsersAction[_Parser], name: str, summary: str) -> _Parser:
        return group.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".", parents=[shared]
        )

    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    command(commands, "migrate", "apply schema migrations to every store")
    seed_cmd = command(commands, "seed", "add a demo catalogue of rooms")
    seed_cmd.add_argument(
        "--rooms", type=_at_least(0), default=200, metavar="N", help="rooms to add (default: %(default)s)"
    )
    seed_cmd.add_argument("--if-empty", action="store_true", help="only when the catalogue is empty")
    shards_cmd = command(
        commands,
        "shards",
        "show the shards (the default), or move, rebalance or stop the shard actors of a running deployment",
    )
    shard_commands = shards_cmd.add_subparsers(dest="shards_command", metavar="<command>")
    command(
        shard_commands,
        "status",
        "each shard's rooms and lease in the store, and its live actor's status given a Ray cluster (read-only)",
    )
    move_cmd = command(shard_commands, "move", "hand one shard over to a new actor while it serves")
    move_cmd.add_argument("shard", type=_at_least(0), metavar="SHARD", help="the shard id")
    move_cmd.add_argument(
        "--to-node", metavar="NODE", help="a live Ray node: its id (or 6+ leading hex digits) or its address"
    )
    resize_cmd = command(shard_commands, "resize", "change the number of shards, while they serve")
    resize_cmd.add_argument("shard_count", type=_at_least(1), metavar="N", help="the new number of shards")
    command(shard_commands, "rebalance", "move as few shards as it takes to spread them evenly over the live nodes")
    command(shard_commands, "stop", "drain every shard (answer and commit what is queued), then end its actors")
    serve_cmd = command(commands, "serve", "run the HTTP API (migrates, seeds an empty catalogue)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve_cmd.add_argument("--port", type=_port, default=8080, help="port to listen on (default: %(default)s)")
    serve_cmd.add_argument(
        "--workers",
        type=_at_least(1),
        default=1,
        metavar="N",
        help="processes sharing the port; more than one needs the Ray runtime (default: %(default)s)",
    )
    serve_cmd.add_argument(
        "--seed-rooms",
        type=_at_least(0),
        default=200,
        metavar="N",
        help="demo rooms added when the catalogue is empty (default: %(default)s)",
    )
    serve_cmd.add_argument(
        "--region",
        choices=["all", *(r.value for r in Region)],
        help=_setting("serve the users of one region only", "region"),
    )
    worker_cmd = command(commands, "worker", "run the outbox relay and the event consumers (emails)")
    worker_cmd.add_argument(
        "--no-relay", action="store_true", help="consumers only (run one relay per deployment, more consumers)"
    )
    worker_cmd.add_argument(
        "--region",
        choices=["all", *(r.value for r in Region)],
        help=_setting("open the stores of one region only", "region"),
    )
    edge_cmd = command(commands, "edge", "run the edge router in front of the EU and US fronts")
    edge_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    edge_cmd.add_argument("--port", type=_port, default=8000, help="port to listen on (default: %(default)s)")
    edge_cmd.add_argument("--eu", metavar="URL", help="the EU front (env ROOMBOOK_EDGE_EU_URL)")
    edge_cmd.add_argument("--us", metavar="URL", help="the US front (env ROOMBOOK_EDGE_US_URL)")
    dev_cmd = command(commands, "dev", "local deployments for development")
    dev_commands = dev_cmd.add_subparsers(dest="dev_command", required=True, metavar="<command>")
    up_cmd = command(dev_commands, "up", "two regions on this machine: Ray, an EU and a US front, and the edge")
    up_cmd.add_argument("--port", type=_port, default=8000, help="the edge's port (default: %(default)s)")
    up_cmd.add_argument(
        "--seed-rooms", type=_at_least(0), default=200, metavar="N", help="demo rooms (default: %(default)s)"
    )
    directory_cmd = command(commands, "directory", "manage the email directory (which region holds each account)")
    directory_commands = directory_cmd.add_subparsers(dest="directory_command", required=True, metavar="<command>")
    command(directory_commands, "backfill", "give the accounts of the served regions the entries they lack")
    search_cmd = command(commands, "search", "manage the search index")
    search_commands = search_cmd.add_subparsers(dest="search_command", required=True, metavar="<command>")
    command(search_commands, "reindex", "rebuild OpenSearch from the catalogue, then swap the alias")
    admin_cmd = command(commands, "admin", "manage administrators")
    admin_commands = admin_cmd.add_subparsers(dest="admin_command", required=True, metavar="<command>")
    create_cmd = command(admin_commands, "create", "create an admin, or promote an existing user")
    create_cmd.add_argument("--email", required=True, help="the admin's email (required)")
    create_cmd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create_cmd.add_argument(
        "--region",
        choices=[r.value for r in Region],
        default=Region.EU.value,
        help="the region of a new admin's account (default: %(default)s)",
    )
    rates_cmd = command(admin_commands, "rates", "show a room's rates, or price a range of its nights")
    rates_cmd.add_argument("room_id", type=_at_least(1), metavar="ROOM", help="the room's id")
    rates_cmd.add_argument("--from", dest="start", type=_date, metavar="DATE", help="first night of the range")
    rates_cmd.add_argument("--to", dest="end", type=_date, metavar="DATE", help="the day after the range's last night")
    rates_cmd.add_argument("--price", type=_price, metavar="PRICE", help="the range's nightly price")
    rates_cmd.add_argument(
        "--weekday",
        action="append",
        default=[],
        metavar="DAY=PRICE",
        help="a weekday's price (mon..sun), in the range or, with no range, every week; repeatable",
    )
    rules_cmd = command(admin_commands, "stay-rules", "show a room's stay rules, or replace them")
    rules_cmd.add_argument("room_id", type=_at_least(1), metavar="ROOM", help="the room's id")
    rules_cmd.add_argument(
        "--set", dest="rules", metavar="JSON", help='e.g. \'{"min_nights": 2, "horizon_days": 365}\''
    )
    return parser


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, not {text!r}") from None


def _price(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a price such as 120.00, not {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(
        data_dir=args.data_dir,
        runtime=args.runtime,
        ray_address=args.ray_address,
        shards=args.shards,
        region=getattr(args, "region", None),
    )
    configure_logging(settings.log_format, verbose=args.verbose)
    problem = store_dsn_problem(settings)
    if problem:
        print(f"roombook: {problem}", file=sys.stderr)
        return 1
    try:
        return _run(args, settings)
    except Exception as exc:
        line = failure_line(exc, settings)
        if line is None:
            raise
        if args.verbose:
            traceback.print_exception(exc)
        print(f"roombook: {line}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "migrate":
            asyncio.run(migrate(settings))
        case "seed":
            asyncio.run(seed(settings, args.rooms, only_if_empty=args.if_empty))
        case "shards":
            match args.shards_command:
                case "move":
                    asyncio.run(shard_ops.move_shard(settings, args.shard, args.to_node))
                case "resize":
                    asyncio.run(shard_ops.resize_shards(settings, args.shard_count))
                case "rebalance":
                    asyncio.run(shard_ops.rebalance_shards(settings))
                case "stop":
                    asyncio.run(shard_ops.stop_shards(settings))
                case _:
                    asyncio.run(shard_ops.show_shards(settings))
        case "serve":
            from roombook.serve import serve

            return serve(settings, host=args.host, port=args.port, workers=args.workers, seed_rooms=args.seed_rooms)
        case "worker":
            from roombook.serve import run_event_worker

            asyncio.run(run_event_worker(settings, relay=not args.no_relay))
        case "edge":
            from roombook.edge.process import run_edge
            from roombook.edge.settings import load_edge_settings

            edge = load_edge_settings(eu_url=args.eu, us_url=args.us)
            return run_edge(settings, edge, host=args.host, port=args.port)
        case "dev":
            from roombook.ops.two_regions import dev_up

            return dev_up(settings, edge_port=args.port, seed_rooms=args.seed_rooms)
        case "directory":
            from roombook.ops.directory import backfill_directory

            asyncio.run(backfill_directory(settings))
        case "search":
            if settings.search != "opensearch":
                print(
                    "roombook: the embedded index is built at every start; set ROOMBOOK_SEARCH=opensearch",
                    file=sys.stderr,
                )
                return 2
            asyncio.run(reindex_search(settings))
        case "admin" if args.admin_command == "rates":
            try:
                change = rate_change(start=args.start, end=args.end, price=args.price, weekdays=args.weekday)
            except ValueError as exc:
                print(f"roombook: {exc}", file=sys.stderr)
                return 2
            has_change = args.start is not None or args.weekday or args.price is not None
            asyncio.run(show_or_change_rates(settings, args.room_id, change if has_change else None))
        case "admin" if args.admin_command == "stay-rules":
            try:
                asyncio.run(set_stay_rules(settings, args.room_id, args.rules))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                print(f"roombook: bad stay rules: {exc}", file=sys.stderr)
                return 2
        case "admin":
            password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else ""
            if not password:
                print("roombook: give the password on stdin with --password-stdin", file=sys.stderr)
                return 2
            asyncio.run(create_admin(settings, email=args.email, password=password, region=Region(args.region)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
