"""The `roombook` command as a real process: migrate, seed and shards on the embedded stack, its
options in either place, its help and version, and an operator's mistakes as one line."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from roombook.config import Settings, env_name
from roombook.routing.ring import ShardRing

ROOMBOOK = str(Path(sys.executable).with_name("roombook"))  # the installed entry point


def run(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`roombook *args` with no ROOMBOOK_* or RAY_* variable of this session, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    return subprocess.run([ROOMBOOK, *args], capture_output=True, text=True, env=clean | (env or {}), timeout=timeout_s)


def roombook(data_dir: Path, *args: str) -> str:
    """The global form: the shared options before the command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    command = [sys.executable, "-m", "roombook", "--data-dir", str(data_dir), "--runtime", "local", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def shard_rooms(shards_output: str) -> list[int]:
    """The rooms column of `roombook shards` (the store's view), by shard id."""
    view, header, *rows = shards_output.strip().splitlines()
    assert view.startswith("the store's view")
    assert header.split()[:2] == ["shard", "rooms"]
    table = {int(r.split()[0]): int(r.split()[1]) for r in rows}
    return [table[shard] for shard in sorted(table)]


def rooms_per_shard(rooms: int, shards: int) -> list[int]:
    ring = ShardRing(shards)
    return [sum(ring.shard_of(room_id) == shard for room_id in range(1, rooms + 1)) for shard in range(shards)]


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    """The process failed with `status` and said why in one line on stderr, without a traceback."""
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("roombook")
    for fragment in fragments:
        assert fragment in line
    return line


def test_seed_gives_the_first_demo_rooms_generated_photos_in_every_size(tmp_path: Path):
    assert "added 15 demo rooms (ids 1..15), 24 photos" in roombook(tmp_path, "seed", "--rooms", "15")
    stored = sorted(p.relative_to(tmp_path / "objects") for p in (tmp_path / "objects").rglob("*.jpg"))
    assert len(stored) == 12 * 2 * 3  # 12 rooms, two photos each, three variants each
    assert {p.parts[1] for p in stored} == {str(i) for i in range(1, 13)}
    with sqlite3.connect(tmp_path / "global.db") as db:
        images = dict(db.execute("SELECT id, images FROM rooms"))
    assert all(json.loads(images[i])[0].startswith("img:") and len(json.loads(images[i])) == 2 for i in range(1, 13))
    assert json.loads(images[13])[0].startswith("https://")  # the others keep the demo's image URLs


def test_shards_lists_each_shard_with_the_rooms_the_ring_gives_it(tmp_path: Path):
    assert "global: applied [" in roombook(tmp_path, "migrate")
    assert "added 60 demo rooms (ids 1..60)" in roombook(tmp_path, "seed", "--rooms", "60")
    assert "not seeding" in roombook(tmp_path, "seed", "--rooms", "5", "--if-empty")

    out = roombook(tmp_path, "--shards", "3", "shards")
    assert shard_rooms(out) == rooms_per_shard(60, 3)
    view, header, *rows = out.strip().splitlines()
    assert "--ray-address or RAY_ADDRESS" in view
    assert header.split() == ["shard", "rooms", "epoch", "commits", "renewed", "live", "acquired_at", "owner"]
    # nothing has served these shards, and asking took no lease
    assert [row.split(maxsplit=7)[2:] for row in rows] == [["-", "-", "-", "-", "-", "(no lease)"]] * 3
    assert roombook(tmp_path, "--shards", "3", "shards") == out


def test_options_go_after_the_command(tmp_path: Path):
    data = str(tmp_path)
    assert run("migrate", "--data-dir", data).returncode == 0
    assert (tmp_path / "global.db").exists()
    done = run("seed", "--data-dir", data, "--rooms", "40")
    assert "added 40 demo rooms (ids 1..40)" in done.stdout, done.stderr
    done = run("shards", "--data-dir", data, "--runtime", "local", "--shards", "3")
    assert shard_rooms(done.stdout) == rooms_per_shard(40, 3), done.stderr


def test_options_before_the_command_are_not_reset_by_the_commands_defaults(tmp_path: Path):
    assert run("--data-dir", str(tmp_path), "seed", "--rooms", "10").returncode == 0
    assert (tmp_path / "global.db").exists()
    before = run("--data-dir", str(tmp_path), "--shards", "2", "shards", "--runtime", "local")
    assert shard_rooms(before.stdout) == rooms_per_shard(10, 2), before.stderr
    after_wins = run("--shards", "2", "shards", "--data-dir", str(tmp_path), "--runtime", "local", "--shards", "5")
    assert shard_rooms(after_wins.stdout) == rooms_per_shard(10, 5), after_wins.stderr


@pytest.mark.parametrize("command", [[], ["serve"], ["seed"], ["admin", "create"]])
def test_help_shows_the_real_defaults_and_their_environment_variables(command: list[str]):
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # argparse wraps lines
    defaults = {field.name: field.default for field in msgspec.structs.fields(Settings)}
    for field in ("data_dir", "runtime", "shards"):
        assert f"(default: {defaults[field]}; env {env_name(field)})" in text
    assert "(default: start a local Ray; env RAY_ADDRESS)" in text
    if command == ["serve"]:
        assert "--port PORT port to listen on (default: 8080)" in text
        assert f"(default: {defaults['region']}; env ROOMBOOK_REGION)" in text
    if not command:
        assert "roombook <command> --help" in text


def test_version_is_the_installed_one():
    done = run("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"roombook {importlib.metadata.version('roombook')}")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["shards", "--shards", "0"], "--shards"),
        (["--shards", "0", "shards"], "--shards"),
        (["serve", "--workers", "0"], "--workers"),
        (["seed", "--rooms", "-1"], "--rooms"),
        (["serve", "--seed-rooms", "-1"], "--seed-rooms"),
    ],
)
def test_a_count_below_its_least_is_refused_as_usage(tmp_path: Path, args: list[str], option: str):
    done = run(*args, "--data-dir", str(tmp_path))
    assert_one_line_refusal(done, 2, f"argument {option}: must be at least", "--help")
    assert not (tmp_path / "global.db").exists()


def test_an_unreachable_database_is_one_line(tmp_path: Path):
    done = run("migrate", "--data-dir", str(tmp_path), env={"ROOMBOOK_GLOBAL_DSN": "mysql://root@127.0.0.1:1/x"})
    assert_one_line_refusal(done, 1, "MySQL", "Can't connect", "127.0.0.1")


def test_a_mysql_database_that_does_not_exist_is_one_line(tmp_path: Path, mysql_dsn: str):
    missing = mysql_dsn + "_absent"  # the server answers; this database was never created
    done = run("migrate", "--data-dir", str(tmp_path), env={"ROOMBOOK_GLOBAL_DSN": missing})
    assert_one_line_refusal(done, 1, f"Unknown database '{missing.rpartition('/')[2]}'")


def test_a_dsn_of_an_unknown_scheme_is_one_line_that_keeps_its_password(tmp_path: Path):
    done = run("migrate", "--data-dir", str(tmp_path), env={"ROOMBOOK_EU_DSN": "postgres://app:s3cret@db/eu"})
    line = assert_one_line_refusal(done, 1, "ROOMBOOK_EU_DSN", "'postgres'")
    assert "s3cret" not in line
    assert not (tmp_path / "global.db").exists()  # refused before any store opened


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_a_data_dir_that_cannot_be_created_is_one_line(tmp_path: Path, command: str):
    (tmp_path / "a-file").touch()
    data_dir = tmp_path / "a-file" / "data"
    with socket.socket() as free:  # serve checks its port first: give it one that is free
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    options = ["--runtime", "local", "--port", port] if command == "serve" else []
    done = run(command, *options, "--data-dir", str(data_dir), timeout_s=60)
    assert_one_line_refusal(done, 1, f"the data dir {data_dir} cannot be created or written", "Not a directory")


def test_verbose_adds_the_traceback_to_the_line(tmp_path: Path):
    (tmp_path / "a-file").touch()
    done = run("migrate", "-v", "--data-dir", str(tmp_path / "a-file" / "data"))
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("roombook: the data dir ")


def test_admin_rates_prices_a_range_and_sets_weekday_prices_and_stay_rules_replace_a_rooms(tmp_path: Path):
    roombook(tmp_path, "seed", "--rooms", "1")
    roombook(tmp_path, "admin", "rates", "1", "--from", "2031-07-01", "--to", "2031-08-01", "--price", "150")
    roombook(tmp_path, "admin", "rates", "1", "--weekday", "sat=180.00")
    again = roombook(tmp_path, "admin", "rates", "1", "--from", "2031-07-01", "--to", "2031-08-01", "--price", "150")
    assert "every sat: 180.00" in again and "2031-07-01 .. 2031-08-01 (exclusive): 150" in again
    assert again.count("2031-07-01") == 1  # the same change twice is one range
    rules = roombook(tmp_path, "admin", "stay-rules", "1", "--set", '{"min_nights": 2, "same_day_cutoff": "18:00:00"}')
    assert msgspec.json.decode(rules) == {"min_nights": 2, "same_day_cutoff": "18:00:00"}
    refused = run("admin", "rates", "1", "--price", "3", "--data-dir", str(tmp_path))
    assert_one_line_refusal(refused, 2, "--price needs --from and --to")
    unknown = run("admin", "rates", "99", "--data-dir", str(tmp_path))
    assert_one_line_refusal(unknown, 1, "no room 99")
