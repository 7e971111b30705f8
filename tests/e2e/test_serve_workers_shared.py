"""What `roombook serve --workers 2` shares between its workers, over real HTTP against the real
Redis: one login limit (the same as with one worker) and one /metrics for the whole server, which
has every metric the shipped dashboard and alert rules use."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from test_serve_command import START_TIMEOUT_S, STOP_TIMEOUT_S, free_port
from test_serve_workers import CHECK_IN, call

REDIS_URL = os.environ.get("ROOMBOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
MAX_FAILURES = 5


class Server:
    def __init__(self, base: str, prefix: str) -> None:
        self.base, self.prefix = base, prefix


def start_server(data_dir: Path, *, workers: int, runtime: str) -> Iterator[Server]:
    """`roombook serve` on a free port with the Redis cache (under a prefix of its own), until SIGTERM."""
    port = free_port()
    prefix = f"roombook-test:{secrets.token_hex(4)}:"
    command = [sys.executable, "-m", "roombook", "--data-dir", str(data_dir), "--shards", "2", "--runtime", runtime]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--seed-rooms", "3"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_", "PROMETHEUS_"))}
    env |= {"RAY_TMPDIR": tempfile.mkdtemp(prefix="rb-shared-"), "ROOMBOOK_COOKIE_SECURE": "false"}
    env |= {"ROOMBOOK_CACHE": "redis", "ROOMBOOK_REDIS_URL": REDIS_URL, "ROOMBOOK_CACHE_KEY_PREFIX": prefix}
    env |= {"ROOMBOOK_LOGIN_MAX_FAILURES": str(MAX_FAILURES)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    listening = threading.Event()
    out: list[str] = []

    def read_stdout() -> None:
        for line in proc.stdout:
            out.append(line)
            if "serving on" in line:
                listening.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        assert listening.wait(START_TIMEOUT_S), "".join(out)
        yield Server(f"http://127.0.0.1:{port}", prefix)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT_S + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        with redis.Redis.from_url(REDIS_URL) as raw:
            keys = list(raw.scan_iter(match=prefix + "*"))
            if keys:
                raw.delete(*keys)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("two-workers"), workers=2, runtime="ray")


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[Server]:
    yield from start_server(tmp_path, workers=1, runtime="local")


def failed_logins(server: Server, attempts: int) -> list[int]:
    """Register a user, then log in with a wrong password `attempts` times, each on a connection of
    its own (the kernel hands each to either worker): the statuses."""
    email = f"t{uuid.uuid4().hex[:8]}@example.com"
    user = {"email": email, "password": "correct horse battery", "region": "eu"}
    assert call("POST", server.base + "/api/v1/auth/register", user)[0] == 201
    wrong = {"email": email, "password": "wrong horse battery"}
    return [call("POST", server.base + "/api/v1/auth/login", wrong)[0] for _ in range(attempts)]


def samples(server: Server) -> str:
    status, _, text = call("GET", server.base + "/metrics")
    assert status == 200
    return text


@pytest.mark.ray
def test_the_login_limit_of_two_workers_is_the_limit_of_one(two_workers: Server, one_worker: Server) -> None:
    expected = [401] * MAX_FAILURES + [429] * 7
    assert failed_logins(one_worker, 12) == expected
    assert failed_logins(two_workers, 12) == expected  # per-process counting would allow up to 10 failures


@pytest.mark.ray
def test_metrics_add_up_every_worker(two_workers: Server) -> None:
    for _ in range(20):
        assert call("GET", two_workers.base + "/api/v1/rooms/1")[0] == 200
    text = samples(two_workers)
    line = 'roombook_http_requests_total{method="GET",route="/api/v1/rooms/{room_id}",status="200"}'
    (count,) = [float(s.split()[-1]) for s in text.splitlines() if s.startswith(line)]
    assert count == 20  # whichever worker answered the scrape
    assert len(set(re.findall(r'^roombook_gc_frozen_objects\{pid="(\d+)"\}', text, re.M))) == 2
    for gauge in ("roombook_shard_serving", "roombook_shard_rows", "roombook_shard_epoch", "roombook_shard_pending"):
        assert {f'{gauge}{{shard="0"}}', f'{gauge}{{shard="1"}}'} <= {s.split()[0] for s in text.splitlines()}
    serving = [s for s in text.splitlines() if s.startswith("roombook_shard_serving{")]
    assert [float(s.split()[-1]) for s in serving] == [1.0, 1.0]


def used_metric_names() -> set[str]:
    """Every roombook_* series name the Grafana dashboard and the Prometheus rules query."""
    texts = [
        target["expr"]
        for panel in json.loads((ROOT / "deploy" / "grafana" / "roombook.json").read_text())["panels"]
        for target in panel.get("targets", [])
    ]
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text()
    return set(re.findall(r"\broombook_[a-z_]+", "\n".join(texts) + rules))


@pytest.mark.ray
def test_every_metric_the_dashboard_and_the_alerts_use_is_served(two_workers: Server) -> None:
    email = f"m{uuid.uuid4().hex[:8]}@example.com"
    user = {"email": email, "password": "correct horse battery", "region": "eu"}
    assert call("POST", two_workers.base + "/api/v1/auth/register", user)[0] == 201
    _, login, _ = call("POST", two_workers.base + "/api/v1/auth/login", {"email": email, "password": user["password"]})
    headers = {"Authorization": f"Bearer {login['access_token']}", "Idempotency-Key": "dashboard-trip"}
    stay = {"room_id": 2, "check_in": str(CHECK_IN), "check_out": str(CHECK_IN + dt.timedelta(days=2)), "guests": 1}
    assert call("POST", two_workers.base + "/api/v1/bookings", stay, headers)[0] == 201
    assert call("GET", two_workers.base + "/readyz")[0] == 200
    text = samples(two_workers)
    served = {s.split("{")[0].split()[0] for s in text.splitlines() if s and not s.startswith("#")}
    used = used_metric_names()
    assert len(used) >= 8  # the files were read
    assert used <= served, sorted(used - served)


@pytest.mark.ray
def test_a_worker_killed_and_replaced_leaves_the_counts_and_drops_its_process_series(two_workers: Server) -> None:
    # last in this module: it kills one of the shared server's workers (the supervisor starts another)
    def pids_and_count() -> tuple[set[str], float]:
        text = samples(two_workers)
        pids = set(re.findall(r'^roombook_gc_frozen_objects\{pid="(\d+)"\}', text, re.M))
        line = 'roombook_http_requests_total{method="GET",route="/healthz",status="200"}'
        counts = [float(s.split()[-1]) for s in text.splitlines() if s.startswith(line)]
        return pids, counts[0] if counts else 0.0

    for _ in range(10):
        call("GET", two_workers.base + "/healthz")
    before, counted = pids_and_count()
    assert len(before) == 2 and counted >= 10
    victim = sorted(before)[0]
    os.kill(int(victim), signal.SIGKILL)
    pids, count = before, counted
    for _ in range(300):  # the supervisor notices within half a second; a new worker takes seconds
        try:
            pids, count = pids_and_count()
        except (ConnectionError, urllib.error.URLError):  # what was queued for the dead worker is reset
            pids = before
        if len(pids) == 2 and victim not in pids:
            break
        time.sleep(0.1)
    assert len(pids) == 2 and victim not in pids, pids
    assert count >= counted  # what the dead worker counted is still in the sums
