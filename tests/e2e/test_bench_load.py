"""bench.load, the load testers' runner, end to end: it starts `roombook serve`, runs Locust, checks
the run, reports both sides' CPU, and leaves no process behind, also when it is interrupted.

Everything runs as subprocesses on 127.0.0.1, on the in-process runtime, bounded by -t and the
request cap. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.process_cpu import descendants, start_time, still_running

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--users", "4", "--runtime", "local", "--shards", "2", "--seed-rooms", "30", "--accounts", "2"]
RUN_TIMEOUT_S = 180


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _still_running(processes: dict[int, str | None]) -> list[str]:
    return [f"{pid} {_cmdline(pid)}" for pid, started in processes.items() if still_running(pid, started)]


def test_a_run_is_checked_reports_both_sides_cpu_and_stops_the_server(tmp_path: Path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "bench.load", "--scenario", "cancel", "--seconds", "10", *SMALL]
    done = subprocess.run(
        [*command, "--out", str(out)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK: no night booked twice; every 201 is its owner's booking" in done.stdout
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["bookings_201"] > 0 and summary["failures"] == 0 and summary["api_requests"] > 0
    assert summary["locust_cores"] > 0 and summary["server_cores"] > 0  # both sides measured
    server = [p["pid"] for p in summary["server_processes"] if p["label"].startswith("roombook serve")]
    assert server and not [pid for pid in server if "roombook" in _cmdline(pid)]  # stopped at the end


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_ends_locust_and_the_server_it_started(tmp_path: Path, sig: signal.Signals):
    command = [sys.executable, "-m", "bench.load", "--scenario", "browse", "--seconds", "60", *SMALL]
    runner = subprocess.Popen(
        [*command, "--out", str(tmp_path / "run")],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tree: dict[int, str | None] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and runner.poll() is None:
            tree = {pid: start_time(pid) for pid in descendants(runner.pid)}
            if any("locust" in _cmdline(pid) for pid in tree):
                break
            time.sleep(0.2)
        assert any("locust" in _cmdline(pid) for pid in tree), "Locust never started"
        assert any("roombook" in _cmdline(pid) and " serve " in _cmdline(pid) for pid in tree)
        time.sleep(2)  # Locust's users are running
        tree |= {pid: start_time(pid) for pid in descendants(runner.pid)}
        runner.send_signal(sig)
        output, _ = runner.communicate(timeout=60)  # far before Locust's own 60 s would end it
        assert runner.returncode == 130, output[-3000:]
        assert "interrupted" in output
        deadline = time.monotonic() + 10
        while _still_running(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _still_running(tree) == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        for pid, started in tree.items():  # what a failed run left: this test's processes, by PID
            if still_running(pid, started):
                os.kill(pid, signal.SIGKILL)
