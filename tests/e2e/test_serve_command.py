"""`roombook serve` as a real process: it migrates, seeds, listens, answers, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    [value] = [line.split()[1] for line in lines if line.startswith(name + " ")]
    return float(value)


def wait_until_listening(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited early: {proc.communicate()}"
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} within {START_TIMEOUT_S} s")


@pytest.mark.parametrize("runtime", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_serve_starts_answers_and_stops_gracefully_on_sigterm(tmp_path: Path, runtime: str):
    port = free_port()
    command = [sys.executable, "-m", "roombook", "serve", "--data-dir", str(tmp_path), "--runtime", runtime]
    command += ["--shards", "2", "--host", "127.0.0.1", "--port", str(port), "--seed-rooms", "20"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rb-serve-")  # its own local Ray, not the test session's
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_listening(proc, base + "/healthz")
        assert get(base + "/healthz") == (200, {"status": "ok", "checks": {}})
        status, ready = get(base + "/readyz")
        assert status == 200 and ready["status"] == "ready"
        assert metric(base + "/metrics", "roombook_gc_frozen_objects") > 10_000  # the start-up heap, frozen
        # a request line past aiohttp's default limit (8,190 bytes) reaches the app, which answers it
        status, problem = get(base + "/api/v1/rooms?city=" + "a" * 9_000)
        assert status == 422 and problem["status"] == 422, problem
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "roombook: stopped" in out  # aiohttp's graceful shutdown ran (it drains the shards)
    assert "SIGTERM received" not in out + err  # no crash-style stack trace for a normal stop
    assert "Failed to create request handler" not in err  # every connection's handler took its settings
    assert f"serving on http://127.0.0.1:{port}" in out
    assert "added 20 demo rooms" in out
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600


def test_serve_leaves_its_heap_to_the_collector_when_told_not_to_freeze_it(tmp_path: Path):
    port = free_port()
    command = [sys.executable, "-m", "roombook", "--data-dir", str(tmp_path), "--runtime", "local"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--seed-rooms", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env["ROOMBOOK_GC_FREEZE"] = "false"
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_listening(proc, base + "/healthz")
        assert metric(base + "/metrics", "roombook_gc_frozen_objects") == 0
    finally:
        proc.terminate()
        proc.communicate(timeout=STOP_TIMEOUT_S)


def test_serve_refuses_several_workers_on_the_in_process_runtime(tmp_path: Path):
    command = [sys.executable, "-m", "roombook", "--data-dir", str(tmp_path), "--runtime", "local"]
    command += ["serve", "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--workers > 1 needs the Ray runtime" in done.stderr


def test_serve_on_a_port_in_use_fails_at_once_before_ray_or_a_store_starts(tmp_path: Path):
    ray_tmp = tmp_path / "ray"
    ray_tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env["RAY_TMPDIR"] = str(ray_tmp)  # a Ray that started would leave its session here
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "roombook", "serve", "--data-dir", str(tmp_path / "data")]
        command += ["--runtime", "ray", "--port", str(port)]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        elapsed_s = time.monotonic() - started
    assert done.returncode == 1
    assert done.stderr.strip() == f"roombook: cannot listen on 127.0.0.1:{port}: address already in use"
    assert "ray" not in (done.stdout + done.stderr).lower()
    assert elapsed_s < 10  # starting Ray alone takes longer
    assert not any(ray_tmp.iterdir())
    assert not (tmp_path / "data").exists()  # nothing migrated either
