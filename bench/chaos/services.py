"""The private services a fault suite may break: a MariaDB, a Redis and a Ray of its own, each on a
free loopback port in a temporary directory, started and ended by PID (never the machine's shared
MariaDB or Redis, never `ray stop`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncmy

from bench.process_cpu import descendants, start_time, still_running

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s:.0f} s")


def end(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Signal one process this suite started and reap it (SIGKILL if it outlives timeout_s)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PrivateMariadb:
    """A mariadbd of our own (no grant tables: root with no password), restartable on its port."""

    def __init__(self, workdir: Path) -> None:
        self.datadir = workdir / "mariadb"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._log = workdir / "mariadb.log"

    @property
    def root_dsn(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}"

    def install(self) -> None:
        command = ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db"]
        command += ["--auth-root-authentication-method=normal", *self._as_user()]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _as_user(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> None:
        command = ["mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}"]
        command += ["--bind-address=127.0.0.1", f"--socket={self.datadir}/mysqld.sock", "--skip-grant-tables"]
        command += [f"--pid-file={self.datadir}/mysqld.pid", "--skip-name-resolve", "--max-connections=500"]
        command += ["--innodb-buffer-pool-size=64M", "--skip-log-bin", f"--log-error={self._log}", *self._as_user()]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, "mariadbd")
        asyncio.run(self._until_it_answers())

    async def _until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                conn = await asyncmy.connect(host="127.0.0.1", port=self.port, user="root")
                conn.close()
                return
            except asyncmy.errors.OperationalError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def create_databases(self, names: list[str]) -> None:
        async def create() -> None:
            conn = await asyncmy.connect(host="127.0.0.1", port=self.port, user="root")
            async with conn.cursor() as cur:
                for name in names:
                    await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            conn.close()

        asyncio.run(create())

    def stop(self) -> None:
        end(self.process)
        self.process = None


class PrivateRedis:
    """A redis-server of our own, with nothing persisted; stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, "redis-server")

    def stop(self) -> None:
        end(self.process, signal.SIGKILL)
        self.process = None


class StandaloneRay:
    """`ray start --head --block` in its own session and temp dir; the shard actors live in it, so
    they outlive a roombook server, and a kill of one is restarted by Ray."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.tmp = Path(f"/tmp/rbc-{os.getpid()}")  # short: Ray's socket paths are limited
        self.process: subprocess.Popen | None = None
        self._tree: dict[int, str | None] = {}
        self._log = workdir / "ray.log"
        self._connected = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(self.tmp)}

    def start(self) -> None:
        self.tmp.mkdir(exist_ok=True)
        command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={self.port}"]
        command += ["--num-cpus=2", "--include-dashboard=false", "--node-ip-address=127.0.0.1"]
        command += [f"--object-store-memory={128 * 2**20}", f"--temp-dir={self.tmp}", "--disable-usage-stats"]
        with self._log.open("w") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ | self.env(), start_new_session=True
            )
        wait_for_port(self.port, self.process, "ray start")

    def shard_pids(self, name_prefix: str) -> dict[str, int]:
        """name -> PID of every live actor whose name starts with `name_prefix` (from the GCS)."""
        import ray

        if not self._connected:
            os.environ.update(self.env())
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING, namespace="bench-chaos")
            self._connected = True
        actors = ray._private.state.actors()
        return {
            actor["Name"]: actor["Pid"]
            for actor in actors.values()
            if actor["State"] == "ALIVE" and actor["Name"].startswith(name_prefix) and actor["Pid"]
        }

    def stop(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
        if self.process is not None:
            self._tree = {pid: start_time(pid) for pid in descendants(self.process.pid)}
            end(self.process, timeout_s=30)
        for pid, started in self._tree.items():  # what `ray start` leaves behind when it is hurried
            if still_running(pid, started):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)
