"""The fault suite's quick version, every scenario: zero violations, and every fault really happened.

It runs `python -m bench.chaos --quick` as a subprocess (its own private MariaDB, Redis, Ray and
roombook server, all ended by PID), so nothing of it shares this test process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from bench.chaos.faults import FAULTS

REPO = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT_S = 540


class _Evidence(msgspec.Struct):
    happened: bool
    detail: str


class _Violation(msgspec.Struct):
    rule: str
    detail: str


class _Result(msgspec.Struct):
    scenario: str
    evidence: _Evidence
    violations: list[_Violation]


@pytest.mark.mysql
@pytest.mark.ray
@pytest.mark.timeout(SUITE_TIMEOUT_S + 60)
def test_no_fault_loses_an_acknowledged_booking_or_double_books(tmp_path: Path):
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "bench.chaos", "--quick", "--json", str(out), "--keep", str(tmp_path / "work")]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as suite:
        try:
            stdout, stderr = suite.communicate(timeout=SUITE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            suite.send_signal(signal.SIGINT)  # the suite then ends its servers, Ray, MariaDB and Redis
            stdout, stderr = suite.communicate(timeout=120)
    assert out.exists(), f"no scenario finished (exit {suite.returncode}):\n{stdout}\n{stderr[-3000:]}"
    results = msgspec.json.decode(out.read_bytes(), type=list[_Result])
    assert [r.scenario for r in results] == list(FAULTS), stdout
    assert {r.scenario: r.evidence.detail for r in results if not r.evidence.happened} == {}
    violations = {r.scenario: [f"{v.rule}: {v.detail}" for v in r.violations[:5]] for r in results if r.violations}
    assert violations == {}, stdout
