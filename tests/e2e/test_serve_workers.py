"""`roombook serve --workers 2`: two processes on one port, one set of shard actors, one writer per room."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from test_serve_command import START_TIMEOUT_S, STOP_TIMEOUT_S, free_port

pytestmark = pytest.mark.ray

METRICS_REQUESTS = 'roombook_http_requests_total{method="GET",route="/metrics",status="200"}'
CHECK_IN = dt.date.today() + dt.timedelta(days=40)


def call(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    """One request on its own connection, so the kernel may hand it to either worker."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Connection": "close", **(headers or {})})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read().decode()
            return resp.status, (json.loads(raw) if raw.startswith("{") else {}), raw
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode()
        return exc.code, json.loads(raw), raw


def test_two_workers_share_the_port_and_the_shards_and_stop_gracefully(tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "roombook", "--data-dir", str(tmp_path), "--shards", "2"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--seed-rooms", "5"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env |= {"RAY_TMPDIR": tempfile.mkdtemp(prefix="rb-workers-"), "ROOMBOOK_COOKIE_SECURE": "false"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out_lines: list[str] = []
    all_listening = threading.Event()

    def read_stdout() -> None:  # the parent announces only once every worker listens
        for line in proc.stdout:
            out_lines.append(line)
            if "with 2 workers" in line:
                all_listening.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        assert all_listening.wait(START_TIMEOUT_S), "".join(out_lines)

        # both workers answer (each shows its own pid), and /metrics adds them up: whichever worker
        # answers, it reports every /metrics request answered before, by either worker
        seen, pids = [], set()
        for _ in range(40):
            _, _, metrics = call("GET", base + "/metrics")
            seen += [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(METRICS_REQUESTS)]
            pids |= set(re.findall(r'^roombook_gc_frozen_objects\{pid="(\d+)"\}', metrics, re.M))
        assert seen == [float(n) for n in range(1, 40)]
        assert len(pids) == 2, pids

        email = f"w{uuid.uuid4().hex[:8]}@example.com"
        user = {"email": email, "password": "correct horse battery", "region": "eu"}
        assert call("POST", base + "/api/v1/auth/register", user)[0] == 201
        _, login, _ = call("POST", base + "/api/v1/auth/login", {"email": email, "password": user["password"]})
        auth = {"Authorization": f"Bearer {login['access_token']}"}

        def book(i: int) -> int:  # 40 overlapping 2-night stays on one room, spread over both workers
            check_in = CHECK_IN + dt.timedelta(days=i % 10)
            body = {
                "room_id": 1,
                "check_in": str(check_in),
                "check_out": str(check_in + dt.timedelta(days=2)),
                "guests": 1,
            }
            return call("POST", base + "/api/v1/bookings", body, auth | {"Idempotency-Key": f"key-{i}"})[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(book, range(40)))
        assert set(statuses) <= {201, 409} and 201 in statuses

        _, mine, _ = call("GET", base + "/api/v1/bookings?per_page=100", headers=auth)
        booked_nights = [
            dt.date.fromisoformat(b["check_in"]) + dt.timedelta(days=n)
            for b in mine["items"]
            if b["status"] == "CONFIRMED"
            for n in range(b["nights"])
        ]
        assert len(booked_nights) == len(set(booked_nights)) == 2 * statuses.count(201)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT_S + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    out = "".join(out_lines)
    assert proc.returncode == 0, err
    assert f"serving on {base} with 2 workers" in out
    assert "roombook: stopped" in out


def test_a_worker_that_cannot_start_makes_the_server_exit_non_zero(tmp_path: Path):
    port = free_port()
    command = [sys.executable, "-m", "roombook", "--data-dir", str(tmp_path), "--shards", "1"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--seed-rooms", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env |= {"RAY_TMPDIR": tempfile.mkdtemp(prefix="rb-workers-")}
    # Only a worker opens the search index (the supervisor migrates and seeds the stores): one that
    # nothing answers makes each worker fail while it starts.
    env |= {"ROOMBOOK_SEARCH": "opensearch", "ROOMBOOK_OPENSEARCH_URL": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=START_TIMEOUT_S + 60)
    assert proc.returncode != 0, proc.stdout
    assert "a worker failed to start" in proc.stderr
