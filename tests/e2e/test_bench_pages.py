"""bench.pages, a tiny round: it starts `roombook serve`, measures every target (the room page and
the search page beside their JSON endpoints), writes the figures and stops the server. Nothing here
asserts a speed: that is the benchmark's to print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_tiny_round_measures_every_target_with_no_errors(tmp_path: Path):
    out = tmp_path / "pages.json"
    command = [sys.executable, "-m", "bench.pages", "--seconds", "0.3", "--rounds", "1", "--connections", "4"]
    command += ["--rooms", "60", "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert set(figures["results"]) == {"json room", "room page", "json search", "search page"}
    for name, row in figures["results"].items():
        assert row["requests"] > 0 and row["errors"] == 0, name
        assert row["p99_ms"] >= row["p50_ms"] > 0, name
        assert row["server_us_per_request"] > 0, name  # the server's CPU was read
    assert "room page / json room (req/s)" in figures["ratios"]
    assert "target (room page >= 50% of the JSON room endpoint's req/s)" in done.stdout
