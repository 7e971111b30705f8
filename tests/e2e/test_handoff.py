"""The hand-off benchmark on a real 3-node Ray cluster (ray.cluster_utils, on this machine) over a
fresh MariaDB database: `python -m bench.handoff --quick` in a process of its own (a Ray cluster
of its own cannot share a process with the session's Ray), its JSON results asserted here. Timing
figures (pauses, latencies) are printed by the benchmark, never asserted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.mysql, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEST_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"
ORDERLY = ("baseline", "move shard 0", "add node + rebalance")
RESIZES = ("resize 4 -> 6", "resize 6 -> 3")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("handoff") / "results.json"
    store = os.environ.get("ROOMBOOK_TEST_MYSQL_DSN", DEFAULT_TEST_MYSQL_DSN)
    command = [sys.executable, "-m", "bench.handoff", "--quick", "--store", store, "--json", str(out)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        try:
            stdout, stderr = run.communicate(timeout=170)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGINT)  # it ends its cluster's nodes on the way out
            stdout, stderr = run.communicate(timeout=60)
    assert out.exists(), f"no results (exit {run.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}"
    print(stdout)
    return json.loads(out.read_text())


def by_name(results: dict) -> dict[str, dict]:
    return {op["operation"]: op for op in results["operations"]}


def test_a_move_and_a_rebalance_under_a_storm_fail_no_request(results):
    ops = by_name(results)
    assert list(ops)[: len(ORDERLY) + 2] == [*ORDERLY, *RESIZES]
    for name in ORDERLY:
        assert "error" not in ops[name]["figures"], ops[name]["figures"]
        assert ops[name]["failed"] == 0, (name, results["failed_examples"])
        assert ops[name]["windows"]["during"]["booked"] > 0  # the storm went on through it


@pytest.mark.parametrize("name", RESIZES)
def test_a_resize_under_a_storm_fails_no_request(results, name):
    resize = by_name(results)[name]
    assert "error" not in resize["figures"], resize["figures"]
    assert resize["failed"] == 0, results["failed_examples"]


def test_nothing_acknowledged_is_lost_and_no_night_is_booked_twice(results):
    checks = results["checks"]
    assert checks["every acknowledged booking is booked with its hold id"]
    assert checks["no night belongs to two bookings"]
    assert checks["booked rows and bookings agree"]
    assert checks["unacknowledged bookings <= failed attempts"]
    assert results["acknowledged"] > 1000 and results["verdict"]["missing_acknowledged"] == 0


def test_rebalance_onto_an_added_node_leaves_every_node_with_a_shard(results):
    rebalance = by_name(results)["add node + rebalance"]["figures"]
    placement = rebalance["placement_after"]
    assert rebalance["node_added"] in placement and len(placement) == 3
    assert all(shards for shards in placement.values()), placement
    assert sorted(s for shards in placement.values() for s in shards) == [0, 1, 2, 3]
    assert rebalance["moves"]  # something moved onto the new node


def test_resizes_change_the_ring_and_end_on_three_shards(results):
    ops = by_name(results)
    assert ops["resize 4 -> 6"]["figures"]["to_ring"] == [2, 6]
    assert ops["resize 6 -> 3"]["figures"]["to_ring"] == [3, 3]
    assert results["final_ring"] == [3, 3]
    after = ops["resize 6 -> 3"]["figures"]["placement_after"]
    assert sorted(s for shards in after.values() for s in shards) == [0, 1, 2]


def test_the_busiest_node_removed_restarts_its_shards_and_loses_no_acknowledged_booking(results):
    removal = by_name(results)["remove busiest node"]["figures"]
    assert removal.get("shards_on_it"), removal
    assert results["verdict"]["missing_acknowledged"] == 0
    assert results["verdict"]["double_booked_nights"] == 0


def test_after_a_node_removal_every_attempt_is_answered_and_no_hold_is_stranded(results):
    removal = by_name(results)["remove busiest node"]["figures"]
    assert "error" not in removal, removal
    assert results["checks"]["every attempt got an answer"]
    assert results["checks"]["no stranded hold"]
    assert removal["recovered_s"] is not None
