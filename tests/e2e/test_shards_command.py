"""`roombook shards` only reads: run against a serving deployment, it takes no epoch and the
deployment goes on booking. Once over the store (no Ray started), once over a live Ray cluster
brought up with the README's own recipe, token authentication on."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_serve_command import START_TIMEOUT_S, STOP_TIMEOUT_S, free_port, get
from test_serve_workers import call

from roombook.storage.sql.connect import availability_store

README = Path(__file__).parents[2] / "README.md"
VENV_BIN = str(Path(sys.executable).parent)
RUN_TIMEOUT_S = 90.0
CLUSTER_STOP_TIMEOUT_S = 30.0
CHECK_IN = dt.date.today() + dt.timedelta(days=30)


def clean_env(**extra: str) -> dict[str, str]:
    """This session's environment less its ROOMBOOK_* and RAY_* variables, with the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    return env | {"PATH": f"{VENV_BIN}:{env.get('PATH', '')}"} | extra


def leases(data_dir: Path) -> dict[int, tuple[int, str]]:
    """(epoch, owner) of every lease in the deployment's global store, read directly."""

    async def read() -> dict[int, tuple[int, str]]:
        async with availability_store(f"sqlite:///{data_dir / 'global.db'}") as store:
            return {lease.shard_id: (lease.epoch, lease.owner) for lease in await store.leases()}

    return asyncio.run(read())


def table(shards_output: str) -> tuple[str, list[str], dict[int, list[str]]]:
    """`roombook shards` as (its first line, the header's columns, each row's fields by shard id)."""
    first, header, *rows = shards_output.strip().splitlines()
    columns = header.split()
    return first, columns, {int(r.split()[0]): r.split(maxsplit=len(columns) - 1) for r in rows}


class Guest:
    """A registered, logged-in user of the server at `base` who books room 1, a new stay each time."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.stays = 0
        email = f"s{uuid.uuid4().hex[:10]}@example.com"
        user = {"email": email, "password": "correct horse battery", "region": "eu"}
        status, _, raw = call("POST", base + "/api/v1/auth/register", user)
        assert status == 201, raw
        status, login, raw = call("POST", base + "/api/v1/auth/login", {"email": email, "password": user["password"]})
        assert status == 200, raw
        self.auth = {"Authorization": f"Bearer {login['access_token']}"}

    def book(self) -> tuple[int, str]:
        check_in = CHECK_IN + dt.timedelta(days=3 * self.stays)
        self.stays += 1
        body = {"room_id": 1, "check_in": str(check_in), "check_out": str(check_in + dt.timedelta(days=2)), "guests": 1}
        # a dashed uuid: 32 bare hex digits may hold a run of digits that passes for a card number
        headers = self.auth | {"Idempotency-Key": f"stay-{self.stays}-{uuid.uuid4()}"}
        status, _, raw = call("POST", self.base + "/api/v1/bookings", body, headers)
        return status, raw


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what}: exited early:\n{log.read_text()}"
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not ready within {timeout_s} s:\n{log.read_text()}")


def answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


def end(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then, if it is still there after timeout_s, SIGKILL to its own process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session: the group is its own
        proc.wait(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A `roombook serve` on the in-process runtime, in its own data dir: (data dir, base URL, env)."""
    data, port = tmp_path / "data", free_port()
    ray_tmp = tmp_path / "ray"
    ray_tmp.mkdir()
    # a Ray that started would leave its session here; a short lease keeps the refusal test short
    env = clean_env(RAY_TMPDIR=str(ray_tmp), ROOMBOOK_SHARD_LEASE_S="1")
    log = tmp_path / "serve.log"
    command = ["roombook", "serve", "--data-dir", str(data), "--runtime", "local", "--shards", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--seed-rooms", "10"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base + "/healthz"), "serve", proc, log, START_TIMEOUT_S)
        yield data, base, env
    finally:
        end(proc, STOP_TIMEOUT_S)


def test_shards_beside_a_serving_deployment_reads_the_store_and_fences_nothing(served, tmp_path: Path):
    data, base, env = served
    guest = Guest(base)
    status, raw = guest.book()
    assert status == 201, raw
    before = leases(data)
    assert sorted(before) == [0, 1] and all(owner.startswith("local:") for _, owner in before.values())

    # the default runtime (ray) with no cluster named: the store's view, and no Ray is started
    done = subprocess.run(
        ["roombook", "shards", "--data-dir", str(data), "--shards", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    first, columns, rows = table(done.stdout)
    assert first.startswith("the store's view") and "RAY_ADDRESS" in first and "--ray-address" in first
    assert columns == ["shard", "rooms", "epoch", "commits", "renewed", "live", "acquired_at", "owner"]
    assert {shard: (int(row[2]), row[7].split(" (actor ")[0]) for shard, row in rows.items()} == before
    assert all(row[5] == "yes" for row in rows.values())  # the server keeps its leases live
    assert sum(int(row[1]) for row in rows.values()) == 10
    assert int(rows[0][3]) + int(rows[1][3]) >= 1  # the booking's commits
    assert not any((tmp_path / "ray").iterdir())

    assert leases(data) == before
    status, raw = guest.book()
    assert status == 201, raw  # the server still owns its shards and writes under its epochs
    assert leases(data) == before


@pytest.mark.parametrize("runtime", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_a_second_serve_on_the_same_store_refuses_in_one_line_and_the_first_goes_on(served, runtime: str):
    data, base, env = served
    guest = Guest(base)
    before = leases(data)
    command = ["roombook", "serve", "--data-dir", str(data), "--runtime", runtime, "--shards", "2"]
    command += ["--host", "127.0.0.1", "--port", str(free_port())]
    with tempfile.TemporaryDirectory(prefix="rb-") as ray_tmp:  # a short path: Ray's sockets live under it
        env = env | {"RAY_TMPDIR": ray_tmp}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]  # before it, log lines: Ray's, and that it waited for a lapse
    assert re.fullmatch(
        r"roombook: shard \d is owned by another running deployment \(local:[^)]+\), which renewed its lease"
        r" \d\.\d s ago: stop it, or point this one at its Ray cluster \(RAY_ADDRESS\)",
        line,
    ), line
    assert leases(data) == before  # no epoch taken: the first server was never fenced
    status, raw = guest.book()
    assert status == 201, raw


def test_shards_goes_by_the_stores_ring_and_an_offline_resize_marks_leases_outside_it(served, tmp_path: Path):
    data, _, env = served

    def shards(*extra: str) -> subprocess.CompletedProcess[str]:
        command = ["roombook", "shards", *extra, "--data-dir", str(data), "--shards", "1"]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)

    done = shards()
    assert done.returncode == 0, done.stderr
    first, _, rows = table(done.stdout)
    assert (
        "the store's ring of 2 shards (version 1)" in first
    )  # recorded at the first start: --shards 1 changes nothing
    assert sorted(rows) == [0, 1] and int(rows[0][1]) + int(rows[1][1]) == 10

    refused = shards("resize", "1")  # the server is live: an offline resize would pull the rooms from under it
    assert refused.returncode == 1 and "owned by a running deployment" in refused.stderr
    end_served = served  # noqa: F841  (the fixture ends the server at teardown; stop it now instead)
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)  # the store of a stopped deployment: its leases lapse
    time.sleep(1.2)
    done = subprocess.run(
        ["roombook", "shards", "resize", "1", "--data-dir", str(copy)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ring 1 (2 shards) -> ring 2 (1 shards), in the store" in done.stdout
    done = subprocess.run(
        ["roombook", "shards", "--data-dir", str(copy)], capture_output=True, text=True, env=env, timeout=60
    )
    first, _, rows = table(done.stdout)
    assert "the store's ring of 1 shards (version 2)" in first
    assert rows[0][1] == "10" and "not in the ring" not in rows[0][7]
    assert rows[1][1] == "-" and rows[1][7].endswith("[not in the ring of 1 shards]")
    assert "retired by ring 2" in rows[1][7]


def test_shards_on_a_data_dir_with_no_store_says_so_and_creates_nothing(tmp_path: Path):
    data = tmp_path / "nothing-here"
    done = subprocess.run(
        ["roombook", "shards", "--data-dir", str(data)], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"roombook: no store at {data / 'global.db'} (`roombook migrate` creates it)"
    assert not data.exists()


def test_shards_on_a_store_with_no_schema_says_to_migrate_and_creates_none(tmp_path: Path):
    (tmp_path / "global.db").touch()  # a SQLite file nothing migrated
    done = subprocess.run(
        ["roombook", "shards", "--data-dir", str(tmp_path)], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert (done.returncode, done.stderr) == (
        1,
        "roombook: the store has no schema yet (`roombook migrate` creates it)\n",
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "global.db")) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.mysql
def test_shards_on_a_mysql_database_with_no_schema_says_to_migrate(tmp_path: Path, mysql_dsn: str):
    done = subprocess.run(
        ["roombook", "shards", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(ROOMBOOK_GLOBAL_DSN=mysql_dsn),
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (
        1,
        "roombook: the store has no schema yet (`roombook migrate` creates it)\n",
    )


# -- a live Ray cluster, by the README's recipe ----------------------------------------------------


def ray_cluster_recipe() -> list[str]:
    """The command lines of the README's "A Ray cluster" block, comments dropped."""
    section = README.read_text().split("### A Ray cluster", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def words(line: str) -> tuple[dict[str, str], list[str]]:
    """A command line's leading NAME=VALUE assignments, and its words."""
    argv = shlex.split(line)
    env = {}
    while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        env[name] = value
    return env, argv


@pytest.mark.ray
def test_shards_on_a_live_cluster_shows_each_actor_beside_its_lease_and_fences_nothing(tmp_path: Path):
    get_token, export, head, other, serve, shards = ray_cluster_recipe()
    readme_port = re.fullmatch(r"ray start --head --port=(\d+)", head)[1]
    assert get_token.startswith("ray get-auth-token --generate")
    assert export == "export RAY_AUTH_MODE=token"
    assert other == f"ray start --address=HEAD:{readme_port}"
    gcs_port = free_port()
    at_head = {f"HEAD:{readme_port}": f"127.0.0.1:{gcs_port}", f"--port={readme_port}": f"--port={gcs_port}"}

    def here(line: str) -> str:
        for written, actual in at_head.items():
            line = line.replace(written, actual)
        return line

    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rb-shards-")  # short: Ray's socket paths live under it
    env = clean_env(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    subprocess.run(["bash", "-c", get_token], check=True, env=env, timeout=60, capture_output=True)
    assert (home / ".ray" / "auth_token").stat().st_mode & 0o777 == 0o600
    name, _, value = export.removeprefix("export ").partition("=")
    env[name] = value
    # Ray's fixed default ports (client server, dashboard, its agent) to free ones: other clusters
    # may run on this machine. No drain on SIGTERM: the nodes end at once.
    node_env = env | {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    node_options = ["--block", "--node-ip-address=127.0.0.1", f"--dashboard-agent-listen-port={free_port()}"]
    head_options = [*node_options, "--num-cpus=2", f"--temp-dir={ray_tmp}", "--include-dashboard=false"]
    head_options += [f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}"]
    nodes: list[subprocess.Popen] = []
    processes: list[subprocess.Popen] = []
    actor_pids: list[int] = []

    def start(line: str, options: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        assignments, argv = words(here(line))
        with log.open("w") as out:
            return subprocess.Popen(
                argv + options, stdout=out, stderr=subprocess.STDOUT, env=env | assignments, start_new_session=True
            )

    def roombook(line: str, *options: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        assignments, argv = words(here(line))
        return subprocess.run(
            [*argv, *options], capture_output=True, text=True, env=env | assignments, timeout=RUN_TIMEOUT_S
        )

    try:
        nodes.append(start(head, head_options, tmp_path / "head.log", node_env))

        def gcs_listens() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", gcs_port)) == 0

        wait_until(gcs_listens, "ray head", nodes[0], tmp_path / "head.log", START_TIMEOUT_S)
        nodes.append(start(other, [*node_options, "--num-cpus=1"], tmp_path / "node.log", node_env))

        def joined() -> bool:
            return "Ray runtime started" in (tmp_path / "node.log").read_text()

        wait_until(joined, "ray worker node", nodes[1], tmp_path / "node.log", START_TIMEOUT_S)

        http_port = free_port()
        base = f"http://127.0.0.1:{http_port}"
        serve_options = ["--workers", "1", "--data-dir", str(data), "--shards", "2", "--seed-rooms", "10"]
        serve_options += ["--host", "127.0.0.1", "--port", str(http_port)]
        processes.append(start(serve, serve_options, tmp_path / "serve.log", env))
        wait_until(
            lambda: answers(base + "/healthz"), "serve", processes[0], tmp_path / "serve.log", 2 * START_TIMEOUT_S
        )
        guest = Guest(base)
        assert guest.book()[0] == 201
        before = leases(data)
        assert sorted(before) == [0, 1] and all(owner.startswith("ray:") for _, owner in before.values())
        actor_pids += [int(owner.split(":")[2]) for _, owner in before.values()]

        done = roombook(shards, "--data-dir", str(data), "--shards", "3")
        assert done.returncode == 0, done.stderr
        first, columns, rows = table(done.stdout)
        assert first.startswith(f"live shard actors of the Ray cluster at 127.0.0.1:{gcs_port}")
        assert columns == ["shard", "rooms", "epoch", "serving", "pending", "rows", "lease", "owner"]
        for shard, (epoch, owner) in before.items():
            assert rows[shard][2:] == [str(epoch), "True", "0", rows[shard][5], str(epoch), owner]
        assert sum(int(rows[shard][5]) for shard in before) >= 2  # the booked nights, in memory
        assert sorted(rows) == [0, 1] and "the store's ring of 2 shards (version 1)" in first  # not --shards 3
        assert leases(data) == before

        # token authentication is on: a process without RAY_AUTH_MODE=token is refused, token file or not
        without_mode = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"} | {"RAY_NUM_REDIS_GET_RETRIES": "2"}
        refused = roombook(shards, "--data-dir", str(data), env=without_mode)
        assert refused.returncode == 1
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("roombook: Failed to connect to Ray cluster at ") and f":{gcs_port} " in last
        assert "RAY_AUTH_MODE is not 'token'" in last

        status, raw = guest.book()
        assert status == 201, raw
        assert leases(data) == before
        again = roombook(shards, "--data-dir", str(data), "--shards", "2")
        assert again.returncode == 0, again.stderr
        assert {shard: row[2] for shard, row in table(again.stdout)[2].items()} == {
            shard: str(epoch) for shard, (epoch, _) in before.items()
        }

        # an operator moves a shard while the server books, then spreads the shards over the nodes
        moved = roombook(shards, "move", "0", "--data-dir", str(data))
        assert moved.returncode == 0, moved.stderr
        assert re.fullmatch(
            r"shard 0: roombook-shard-0 on \w+ -> roombook-shard-0\.\w+ on \w+, epoch \d+; paused \d+ ms, took \S+ s\n",
            moved.stdout,
        ), moved.stdout
        after = leases(data)
        actor_pids.append(int(after[0][1].split(":")[2]))
        assert after[0][0] > before[0][0] and after[1] == before[1]  # only shard 0 changed hands
        status, raw = guest.book()
        assert status == 201, raw
        balanced = roombook(shards, "rebalance", "--data-dir", str(data))
        assert balanced.returncode == 0, balanced.stderr
        assert "over 2 nodes" in balanced.stdout, balanced.stdout
        actor_pids.extend(int(owner.split(":")[2]) for _, owner in leases(data).values())
        status, raw = guest.book()
        assert status == 201, raw
    finally:
        for proc in processes:
            end(proc, STOP_TIMEOUT_S)
        for proc in reversed(nodes):
            end(proc, CLUSTER_STOP_TIMEOUT_S)
        _end_actors(actor_pids)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _end_actors(pids: list[int]) -> None:
    """The shard actors end with their cluster; any still there after 10 s is killed by its PID."""

    def alive(pid: int) -> bool:
        try:
            return b"RoomShardActor" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
