"""The two servers bench.api drives, each a subprocess on a free loopback port, ended by its PID:
(A) `roombook serve` on MariaDB stores with its shards on a private local Ray, (B) the row-lock
baseline (bench/api/baseline.py). Each names the processes whose CPU a round reports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.databases import connect
from bench.load import free_port
from bench.process_cpu import descendants, start_time, still_running
from roombook.storage.sql.mysql_db import mysql_target

READY_TIMEOUT_S = 180.0
SHARD_ACTOR = "RoomShardActor"  # in a shard actor's command line (ray::RoomShardActor...)
STARTED: list[dict[str, object]] = []  # every process of every server started here: {"pid", "started"}


class ServerProcess:
    """A server started here, its process tree as it was once ready, and how to end all of it."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [arg.replace("{port}", str(self.port)) for arg in command],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.log_path = log
        self.tree: dict[int, str | None] = {}  # pid -> its start time: a recycled pid is never signalled
        self.companions: list[ServerProcess] = []  # started with it, counted as serving, stopped after it

    def wait_ready(self, path: str, *, line: str | None = None) -> None:
        """Until path answers 200 (and, with line, the server has printed that line: the first of
        several processes may answer before the others listen)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: see {self.log_path}")
            if line is not None and line not in self.log_path.read_text(errors="replace").splitlines():
                time.sleep(0.2)
                continue
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        self.tree = {pid: start_time(pid) for pid in [self.proc.pid, *descendants(self.proc.pid)]}
                        STARTED.extend({"pid": pid, "started": started} for pid, started in self.tree.items())
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready within {READY_TIMEOUT_S} s: see {self.log_path}")

    def wait_line(self, line: str) -> None:
        """Until the process has printed a line that starts with `line`."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}: see {self.log_path}")
            if any(seen.startswith(line) for seen in self.log_path.read_text(errors="replace").splitlines()):
                self.tree = {pid: start_time(pid) for pid in [self.proc.pid, *descendants(self.proc.pid)]}
                STARTED.extend({"pid": pid, "started": started} for pid, started in self.tree.items())
                return
            time.sleep(0.2)
        raise RuntimeError(f"{line!r} not printed within {READY_TIMEOUT_S} s: see {self.log_path}")

    def cpu_groups(self) -> dict[str, list[int]]:
        """server: the serving processes (roombook serve and its workers, or the baseline);
        actors: the shard actors; ray_other: the rest of the tree (Ray's own processes)."""
        groups: dict[str, list[int]] = {"server": [], "actors": [], "ray_other": []}
        for pid in self.tree:
            words = _cmdline(pid)
            if any(SHARD_ACTOR in word for word in words):
                groups["actors"].append(pid)
            elif pid == self.proc.pid or any("multiprocessing" in word for word in words):
                groups["server"].append(pid)
            else:
                groups["ray_other"].append(pid)
        for companion in self.companions:
            groups["server"].extend(companion.tree)
        return groups

    def stop(self) -> None:
        for companion in self.companions:
            companion.stop()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, started in self.tree.items():  # what a hard stop could leave behind (Ray's processes)
            if pid != self.proc.pid and still_running(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


def _cmdline(pid: int) -> list[str]:
    try:
        return [w.decode(errors="replace") for w in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if w]
    except OSError:
        return []


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}


@contextlib.contextmanager
def roombook_server(
    dsns: dict[str, str],
    *,
    jwt_secret: str,
    rooms: int,
    shards: int,
    workers: int,
    out: Path,
    extra_env: dict[str, str],
    event_worker: bool = False,
) -> Iterator[ServerProcess]:
    """(A) `roombook serve` on the MariaDB databases dsns["global"|"eu"|"us"], `rooms` demo rooms;
    with event_worker, the outbox relay and the event consumers run in a `roombook worker` of their
    own (on its own memory bus) instead of inside `serve`."""
    data_dir = tempfile.mkdtemp(prefix="rb-api-data-")
    ray_tmp = tempfile.mkdtemp(prefix="rb-api-ray-")  # short: Ray's socket paths are limited
    env = (
        _clean_env()
        | {
            "RAY_TMPDIR": ray_tmp,
            "RAY_AUTH_MODE": "disabled",
            "ROOMBOOK_GLOBAL_DSN": dsns["global"],
            "ROOMBOOK_EU_DSN": dsns["eu"],
            "ROOMBOOK_US_DSN": dsns["us"],
            "ROOMBOOK_JWT_SECRET": jwt_secret,
            "ROOMBOOK_LOG_FORMAT": "json",
            "ROOMBOOK_RAY_NAMESPACE": "roombook-bench-api",
        }
        | extra_env
    )
    if event_worker:
        env["ROOMBOOK_EVENTS_IN_PROCESS"] = "false"
    roombook = [sys.executable, "-m", "roombook", "--data-dir", data_dir, "--runtime", "ray", "--shards", str(shards)]
    command = [*roombook, "serve", "--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers)]
    command += ["--seed-rooms", str(rooms)]
    server = ServerProcess(command, env, out / "server-A.log")
    try:
        server.wait_ready("/readyz")
        if event_worker:  # after serve: its start made the schemas and the demo rooms
            worker = ServerProcess([*roombook, "worker"], env, out / "worker-A.log")
            server.companions.append(worker)
            worker.wait_line("roombook: worker running")
        yield server
    finally:
        server.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def baseline_server(
    dsn: str, *, jwt_secret: str, pool_size: int, out: Path, processes: int = 1
) -> Iterator[ServerProcess]:
    """(B) the row-lock baseline on the database at dsn (its schema and rows already made)."""
    command = [sys.executable, "-m", "bench.api.baseline", "--dsn", dsn, "--port", "{port}"]
    command += ["--pool-size", str(pool_size), "--processes", str(processes)]
    # the secret in the environment, as A's: not on a command line anyone can read (nor parsed as
    # an option when it starts with "-")
    env = _clean_env() | {"ROOMBOOK_JWT_SECRET": jwt_secret}
    server = ServerProcess(command, env, out / "server-B.log")
    try:
        server.wait_ready("/healthz", line="ready")
        yield server
    finally:
        server.stop()


# Every room.updated of the seeded catalogue handled by both of its consumers: until then the
# server indexes its rooms one at a time and every search generation bump empties the search cache.
_UNSETTLED = (
    "SELECT COUNT(*) FROM outbox o WHERE o.type = 'room.updated' AND NOT EXISTS ("
    " SELECT 1 FROM processed_events p WHERE p.consumer = %s AND p.event_id = o.event_id AND p.state = 'done')"
)
CATALOGUE_CONSUMERS = ("search-indexing", "cache-invalidation")


async def catalogue_settled(global_dsn: str, *, timeout_s: float = 300.0) -> float:
    """Wait until A's consumers have handled the events of its seeded catalogue, so that a round
    measures the server as it serves, not while it builds its index; returns the seconds waited."""
    started = time.monotonic()
    conn = await connect(mysql_target(global_dsn), autocommit=True)
    try:
        while True:
            left = 0
            async with conn.cursor() as cur:
                for consumer in CATALOGUE_CONSUMERS:
                    await cur.execute(_UNSETTLED, (consumer,))
                    (count,) = await cur.fetchone()
                    left += count
            waited = time.monotonic() - started
            if left == 0:
                return waited
            if waited > timeout_s:
                raise TimeoutError(f"{left} catalogue events still unhandled after {timeout_s:.0f} s")
            await asyncio.sleep(0.25)
    finally:
        conn.close()
