"""bench.edge runs a tiny round end to end: both targets and every route answer through a real
two-region deployment, and the report has a row per run and a verdict per route. Nothing here
asserts a speed."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from bench.edge import ROUTES, TARGETS, measure, report
from roombook.ops.two_regions import TwoRegionDeployment

pytestmark = pytest.mark.ray


def test_a_tiny_round_measures_every_route_through_the_edge_and_straight(ray_cluster, tmp_path: Path):
    from roombook.actors import ray_runtime

    deployment = TwoRegionDeployment(
        tmp_path,
        ray_address=ray_runtime.cluster_address(),
        seed_rooms=5,
        edge_env={"ROOMBOOK_EDGE_RATE_BURST": "100000"},
    )
    try:
        with deployment:
            results = measure(deployment, seconds=0.3, clients=2, rounds=1, rooms=5)
    finally:
        for shard in range(deployment.shards):  # detached on the shared cluster: they outlive the fronts
            with contextlib.suppress(ValueError):
                actor = ray_cluster.get_actor(f"{deployment.actor_prefix}-{shard}", namespace=deployment.namespace)
                ray_cluster.kill(actor, no_restart=True)
    assert {(r.route, r.target, r.clients) for r in results} == {
        (route, target, clients) for route in ROUTES for target in TARGETS for clients in (2, 1)
    }
    assert all(r.requests_per_s > 0 and r.errors == 0 for r in results), results
    assert all(r.edge_cpu_s > 0 for r in results if r.target == "edge")
    text = report(results)
    assert len([line for line in text.splitlines() if line.startswith("| ") and "|---" not in line]) == len(results) + 1
    for route in ROUTES:
        assert f"{route}: through the edge" in text
