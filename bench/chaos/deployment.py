"""One roombook deployment for the fault suite: a private MariaDB holding the global and both
regional stores (the global DSN through one fault proxy, the EU DSN through another), a private
Redis as the cache, a standalone Ray owning the shard actors, and `roombook serve --workers 2`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.chaos.proxy import ProxyThread
from bench.chaos.services import PrivateMariadb, PrivateRedis, StandaloneRay, end, free_port
from bench.check.sources import StoreDsns
from bench.process_cpu import descendants, start_time, still_running
from roombook.domain.accounts import Region

READY_TIMEOUT_S = 120.0
RESTART_READY_S = 30.0  # a start with every store up and the shards alive
NAMESPACE = "roombook-chaos"
ACTOR_PREFIX = "roombook-shard"
DATABASES = {"global": "rbc_global", "eu": "rbc_eu", "us": "rbc_us"}


class Deployment:
    """Everything the suite starts, and the server's processes by PID."""

    def __init__(self, workdir: Path, *, shards: int, hold_ttl_s: float, rooms: int) -> None:
        self.workdir = workdir
        self.shards = shards
        self.hold_ttl_s = hold_ttl_s
        self.rooms = rooms
        self.mariadb = PrivateMariadb(workdir)
        self.redis = PrivateRedis()
        self.ray = StandaloneRay(workdir)
        self.global_proxy: ProxyThread
        self.eu_proxy: ProxyThread
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen | None = None
        self.server_starts = 0
        self._server_log = (workdir / "server.log").open("a")

    def start(self) -> None:
        self.mariadb.install()
        self.mariadb.start()
        self.mariadb.create_databases(list(DATABASES.values()))
        self.redis.start()
        self.ray.start()
        self.global_proxy = ProxyThread("127.0.0.1", self.mariadb.port).__enter__()
        self.eu_proxy = ProxyThread("127.0.0.1", self.mariadb.port).__enter__()
        subprocess.run([sys.executable, "-m", "roombook", "migrate"], env=self._env(), check=True, capture_output=True)
        self.start_server()

    def stop(self) -> None:
        self.stop_server()
        for proxy in (getattr(self, "global_proxy", None), getattr(self, "eu_proxy", None)):
            if proxy is not None:
                proxy.__exit__(None, None, None)
        self.ray.stop()
        self.redis.stop()
        self.mariadb.stop()
        self._server_log.close()

    def direct_dsn(self, store: str) -> str:
        return f"{self.mariadb.root_dsn}/{DATABASES[store]}"

    def store_dsns(self) -> StoreDsns:
        """The stores as the checker reads them: directly, not through the proxies."""
        regional = {Region.EU: self.direct_dsn("eu"), Region.US: self.direct_dsn("us")}
        return StoreDsns(global_dsn=self.direct_dsn("global"), regional=regional)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
        return (
            env
            | self.ray.env()
            | {
                "RAY_ADDRESS": self.ray.address,
                "ROOMBOOK_DATA_DIR": str(self.workdir / "data"),
                "ROOMBOOK_GLOBAL_DSN": self.global_proxy.through(self.direct_dsn("global")),
                "ROOMBOOK_EU_DSN": self.eu_proxy.through(self.direct_dsn("eu")),
                "ROOMBOOK_US_DSN": self.direct_dsn("us"),
                "ROOMBOOK_RAY_NAMESPACE": NAMESPACE,
                "ROOMBOOK_SHARDS": str(self.shards),
                "ROOMBOOK_HOLD_TTL_S": str(self.hold_ttl_s),
                "ROOMBOOK_CACHE": "redis",
                "ROOMBOOK_REDIS_URL": self.redis.url,
                "ROOMBOOK_JWT_SECRET": "chaos-suite-secret-" + "x" * 32,  # tokens outlive a server restart
            }
        )

    # -- the server --------------------------------------------------------------------------

    def start_server(self) -> None:
        command = [sys.executable, "-m", "roombook", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", "2", "--seed-rooms", str(self.rooms)]
        self.server = subprocess.Popen(
            command, stdout=self._server_log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True
        )
        self.server_starts += 1

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Whether, within timeout_s, every worker of the last start is serving and /readyz answers 200.

        One worker answers /readyz before the other listens, and the supervisor gives up on a
        worker that dies while starting: a fault must not land in that window."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f"roombook serve exited with {self.server.returncode}: see {self._server_log.name}")
            if self._starts_serving() >= self.server_starts:
                try:
                    with urllib.request.urlopen(self.host + "/readyz", timeout=5) as resp:
                        if resp.status == 200:
                            return True
                except OSError:
                    pass
            time.sleep(0.25)
        return False

    def _starts_serving(self) -> int:
        """How many starts have had all their workers listening (the supervisor's line once they do)."""
        self._server_log.flush()
        return Path(self._server_log.name).read_text(errors="replace").count("roombook: serving on ")

    def server_tree(self) -> dict[int, str | None]:
        """pid -> start time of the server and everything below it."""
        if self.server is None:
            return {}
        return {pid: start_time(pid) for pid in [self.server.pid, *descendants(self.server.pid)]}

    def worker_pids(self) -> list[int]:
        """The front workers (spawned processes serving the port), not multiprocessing's helpers."""
        if self.server is None:
            return []
        found = []
        for pid in descendants(self.server.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in argv and b"resource_tracker" not in argv:
                found.append(pid)
        return found

    def stop_server(self) -> None:
        tree = self.server_tree()
        end(self.server, timeout_s=45)
        self._kill_left(tree)
        self.server = None

    def kill_server(self) -> dict[int, str | None]:
        """kill -9 of the server and its workers (an orphaned worker would keep serving the port)."""
        tree = self.server_tree()
        for pid, started in tree.items():
            if still_running(pid, started):
                os.kill(pid, signal.SIGKILL)
        if self.server is not None:
            self.server.wait()
        self.server = None
        return tree

    def restart_server(self) -> bool:
        """A clean stop and a new start: the start runs a reconciler round (see the README)."""
        self.stop_server()
        self.start_server()
        return self.wait_ready(RESTART_READY_S)

    @staticmethod
    def _kill_left(tree: dict[int, str | None]) -> None:
        for pid, started in tree.items():
            if still_running(pid, started):
                os.kill(pid, signal.SIGKILL)

    def shard_pids(self) -> dict[int, int]:
        """shard id -> PID of its actor now."""
        named = self.ray.shard_pids(ACTOR_PREFIX + "-")
        return {int(name.rsplit("-", 1)[1]): pid for name, pid in named.items()}
