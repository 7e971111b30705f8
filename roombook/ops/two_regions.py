"""A two-region deployment on one machine, as real processes on loopback: `roombook dev up`, and
the fixture the residency tests run against.

    Ray (one cluster: the shard actors, the one source of truth for availability)
    an EU front  `roombook serve --region eu`  on the global store + the EU store
    a US front   `roombook serve --region us`  on the global store + the US store
    the edge     `roombook edge --eu … --us …` in front of both

Every port is a free one. The stores are the DSNs given (separate MariaDB databases), else SQLite
files under the data directory. The fronts join the Ray cluster at `ray_address`, else one started
here (`ray start --head`, ended with the deployment). Each process logs to <data_dir>/logs/.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from roombook.config import Settings
from roombook.domain.accounts import Region

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
RAY_STOP_TIMEOUT_S = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


class TwoRegionDeployment:
    """Starts, stops and restarts the processes of a local two-region deployment."""

    def __init__(
        self,
        data_dir: Path,
        *,
        dsns: Mapping[str, str] | None = None,
        ray_address: str | None = None,
        host: str = "127.0.0.1",
        edge_port: int | None = None,
        shards: int = 2,
        seed_rooms: int = 20,
        extra_env: Mapping[str, str] | None = None,
        edge_env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self._ray_address = ray_address
        self._own_ray: subprocess.Popen[bytes] | None = None
        self._seed_rooms = seed_rooms
        self._edge_env = dict(edge_env or {})
        self.dsns = (
            dict(dsns) if dsns else {n: f"sqlite:///{self.data_dir / f'{n}.db'}" for n in ("global", "eu", "us")}
        )
        self.ports = {"eu": free_port(host), "us": free_port(host), "edge": edge_port or free_port(host)}
        self.shards = shards
        self.actor_prefix = f"rb-dev-{secrets.token_hex(4)}"  # the shard actors' names: <prefix>-<shard>
        self.namespace = "roombook"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_ADDRESS"))}
        self._env = (
            base
            | {
                "ROOMBOOK_GLOBAL_DSN": self.dsns["global"],
                "ROOMBOOK_SHARDS": str(shards),
                "ROOMBOOK_RUNTIME": "ray",
                "ROOMBOOK_RAY_NAMESPACE": self.namespace,
                "ROOMBOOK_RAY_ACTOR_PREFIX": self.actor_prefix,
                "ROOMBOOK_JWT_SECRET": os.environ.get("ROOMBOOK_JWT_SECRET") or secrets.token_urlsafe(48),
                "ROOMBOOK_COOKIE_SECURE": "false",  # plain http on loopback
                "ROOMBOOK_TRUSTED_PROXY_HOPS": "1",  # the fronts' clients are behind the edge
            }
            | dict(extra_env or {})
        )
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)

    # -- where things are ------------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.ports[name]}"

    @property
    def ray_address(self) -> str:
        if self._ray_address is None:
            raise RuntimeError("Ray is not started yet")
        return self._ray_address

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return dict(self._procs)

    def log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Ray (unless given), then the EU front (it migrates and seeds the global store), the US
        front, and the edge; each answers before the next starts."""
        try:
            if self._ray_address is None:
                self._start_ray()
            for region in Region:
                self.start_front(region)
            self.start_edge()
        except BaseException:
            self.stop()
            raise

    def start_front(self, region: Region) -> None:
        name = region.value
        env = self._env | {
            "RAY_ADDRESS": self.ray_address,
            "ROOMBOOK_REGION": name,
            f"ROOMBOOK_{name.upper()}_DSN": self.dsns[name],
            "ROOMBOOK_DATA_DIR": str(self.data_dir / name),  # its jwt-secret and mail, nothing shared
        }
        command = ["serve", "--host", self.host, "--port", str(self.ports[name]), "--seed-rooms", str(self._seed_rooms)]
        self._spawn(name, command, env)
        self._wait_ready(name, "/readyz")

    def start_edge(self) -> None:
        env = self._env | {"ROOMBOOK_DATA_DIR": str(self.data_dir / "edge")} | self._edge_env
        command = ["edge", "--host", self.host, "--port", str(self.ports["edge"])]
        command += ["--eu", self.url("eu"), "--us", self.url("us")]
        self._spawn("edge", command, env)
        self._wait_ready("edge", "/readyz")

    def stop_front(self, region: Region) -> None:
        self._stop(region.value)

    def stop(self) -> None:
        """Everything, the edge first; Ray last, if it is this deployment's own."""
        for name in ("edge", "us", "eu"):
            self._stop(name)
        if self._own_ray is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._own_ray.pid, signal.SIGTERM)  # `ray start --block` and what it started
            try:
                self._own_ray.wait(RAY_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # `ray start --block` can hang on SIGTERM with its GCS
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._own_ray.pid, signal.SIGKILL)
            self._own_ray = None
            self._ray_address = None

    def __enter__(self) -> TwoRegionDeployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- processes -------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        with open(self.log(name), "ab") as log:
            self._procs[name] = subprocess.Popen(
                [sys.executable, "-m", "roombook", *command], stdout=log, stderr=subprocess.STDOUT, env=dict(env)
            )

    def _wait_ready(self, name: str, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            proc = self._procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self._tail(name)}")
            if http_status(self.url(name) + path) == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name} was not ready within {START_TIMEOUT_S:.0f} s: {self._tail(name)}")

    def _stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return self.log(name).read_text(errors="replace")[-3000:]
        return ""

    def _start_ray(self) -> None:
        port = free_port(self.host)
        ray = Path(sys.executable).with_name("ray")
        temp_dir = self.data_dir / "ray"
        temp_dir.mkdir(parents=True, exist_ok=True)
        command = [str(ray) if ray.exists() else "ray", "start", "--head", "--block", f"--port={port}"]
        command += [f"--node-ip-address={self.host}", "--num-cpus=2", "--include-dashboard=false"]
        command += ["--disable-usage-stats", f"--temp-dir={temp_dir}"]
        self._env["RAY_AUTH_MODE"] = self._env.get("RAY_AUTH_MODE", "disabled")  # loopback only
        with open(self.log("ray"), "ab") as log:
            self._own_ray = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env, start_new_session=True
            )
        self._ray_address = f"{self.host}:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:  # the head's GCS accepts connections once it is up
            if self._own_ray.poll() is not None:
                raise RuntimeError(f"ray start exited with {self._own_ray.returncode}: {self._tail('ray')}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, port), timeout=1):
                time.sleep(1.0)  # the GCS listens slightly before the head's raylet has registered
                return
            time.sleep(0.2)
        raise RuntimeError(f"Ray did not start within {START_TIMEOUT_S:.0f} s: {self._tail('ray')}")


def dev_up(settings: Settings, *, edge_port: int, seed_rooms: int) -> int:
    """`roombook dev up`: start the deployment, print where it answers, run until Ctrl-C or SIGTERM."""
    dsns = {name: settings.dsn(name) for name in ("global", "eu", "us")}
    deployment = TwoRegionDeployment(
        Path(settings.data_dir),
        dsns=dsns,
        ray_address=settings.ray_address,
        edge_port=edge_port,
        shards=settings.shards,
        seed_rooms=seed_rooms,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with deployment:
        print(describe(deployment), flush=True)
        print(f"roombook: two regions up; the API is {deployment.url('edge')}/api/v1 (Ctrl-C to stop)", flush=True)
        while not stop.wait(1.0):
            for name, proc in deployment.processes.items():
                if proc.poll() is not None:
                    print(f"roombook: {name} exited ({proc.returncode}); see {deployment.log(name)}", file=sys.stderr)
                    stop.set()
    print("roombook: two regions stopped", flush=True)
    return 0


def describe(deployment: TwoRegionDeployment) -> str:
    """Where each part answers, as JSON (the stores without their credentials)."""
    parts = {name: deployment.url(name) for name in ("edge", "eu", "us")}
    stores = {name: dsn.split("@")[-1] for name, dsn in deployment.dsns.items()}
    logs = str(deployment.data_dir / "logs")
    ray = {"ray": deployment.ray_address, "namespace": deployment.namespace, "actor_prefix": deployment.actor_prefix}
    return json.dumps({"urls": parts, "stores": stores, "logs": logs} | ray)
