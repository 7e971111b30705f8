"""The Locust suite end to end: a real `roombook serve`, Locust headless, then bench.check.

Locust patches the standard library with gevent when imported, so it only ever runs here as a
subprocess (as does the checker), never in pytest's process. The runs are bounded by -t and
--max-requests and target 127.0.0.1 only. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_serve_command import STOP_TIMEOUT_S, free_port, wait_until_listening

REPO = Path(__file__).resolve().parents[2]
LOCUST_TIMEOUT_S = 120


class Server:
    def __init__(self, host: str, data_dir: Path) -> None:
        self.host, self.data_dir = host, data_dir


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`roombook serve` on the in-process runtime, 30 demo rooms, a free loopback port."""
    data_dir, port = tmp_path / "data", free_port()
    command = [sys.executable, "-m", "roombook", "--data-dir", str(data_dir), "--runtime", "local", "--shards", "2"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--seed-rooms", "30"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rb-locust-")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        host = f"http://127.0.0.1:{port}"
        wait_until_listening(proc, host + "/healthz")
        yield Server(host, data_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def run_locust(server: Server, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "locustfile.py"), "--headless"]
    command += ["--host", server.host, "--max-requests", "20000", "--only-summary", "--stop-timeout", "5"]
    command += ["--booking-log", str(out / "bookings-{pid}.jsonl"), "--json-file", str(out / "locust"), *options]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=LOCUST_TIMEOUT_S, check=False)


def run_check(server: Server, *logs: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.check", "--host", server.host, "--data-dir", str(server.data_dir)]
    for log in logs:
        command += ["--booking-log", str(log)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)


def log_records(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("bookings-*.jsonl")) for line in path.read_text().splitlines()]


def test_hot_rooms_and_cancels_pass_the_checker_and_a_fabricated_201_fails_it(server: Server, tmp_path: Path):
    out = tmp_path / "hot"
    done = run_locust(
        server, out, "-u", "20", "-r", "20", "-t", "10s", "--tags", "hot", "cancel", "--accounts", "4",
        "--hot-rooms", "3", "--replay-ratio", "0.3",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr  # Locust exits 1 on any failed request
    records = log_records(out)
    bookings = [r for r in records if r["kind"] == "booking"]
    assert bookings, "no booking was answered 201"
    assert any(r["kind"] == "cancelled" for r in records), "the Canceller cancelled nothing"
    outcomes = [r["counts"] for r in records if r["kind"] == "outcomes"]
    assert sum(c.get("409", 0) for c in outcomes) > 0, "three hot rooms and twenty users never conflicted"
    assert sum(c.get("replay_same", 0) for c in outcomes) > 0 and not any("replay_mismatch" in c for c in outcomes)
    stats = {entry["name"] for entry in json.loads((out / "locust.json").read_text())}
    assert {"/api/v1/bookings", "/api/v1/bookings/{id}/cancel"} <= stats  # grouped by route, not by URL

    checked = run_check(server, out / "bookings-*.jsonl")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK: no night booked twice" in checked.stdout

    forged = tmp_path / "forged.jsonl"
    fabricated = {**bookings[0], "booking_id": "bk_fabricated0000000000000000"}
    forged.write_text(json.dumps(fabricated) + "\n")
    checked = run_check(server, out / "bookings-*.jsonl", forged)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "bk_fabricated0000000000000000 (201 to user" in checked.stdout
    assert "acknowledged booking missing: 2" in checked.stdout  # seen neither through the API nor in the store


def test_mixed_profile_on_the_step_shape_stops_by_itself_and_passes_the_checker(server: Server, tmp_path: Path):
    out = tmp_path / "mixed"
    done = run_locust(
        server, out, "-u", "12", "-r", "12", "-t", "8s", "--shape", "step", "--step-users", "4",
        "--step-seconds", "2", "--tags", "mixed", "--accounts", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Shape test completed" in done.stderr
    stats = {entry["name"] for entry in json.loads((out / "locust.json").read_text())}
    assert {"/api/v1/rooms", "/api/v1/rooms/{id}", "/api/v1/rooms/{id}/availability"} <= stats

    checked = run_check(server, out / "bookings-*.jsonl")
    assert checked.returncode == 0, checked.stdout + checked.stderr
