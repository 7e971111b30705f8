"""A multi-node Ray cluster on this machine for bench.handoff: a head that runs no shard (no CPU)
and worker nodes that do, each a raylet of its own (ray.cluster_utils.Cluster), so that a node can
be added and removed while the shards serve. Auth is off and the temp dir is private and short
(a Unix socket path must stay under 108 bytes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

OBJECT_STORE_BYTES = 80 * 2**20  # Ray's floor is 75 MiB; the shards pass nothing through it
# How soon the head declares a node that stopped answering dead (and restarts its actors elsewhere):
# Ray's default is about 15 s (5 missed checks 3 s apart); an operator of a small cluster on a
# reliable network can set this via `ray start --system-config`. A loaded machine may miss a
# check: 3 misses 1 s apart.
HEALTH_CHECKS = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


class LocalCluster:
    def __init__(self, cluster: Any, node_cpus: float) -> None:
        self._cluster = cluster
        self._node_cpus = node_cpus

    @property
    def address(self) -> str:
        return str(self._cluster.address)

    def add_node(self) -> str:
        """Start one more worker node and wait until it is alive; return its node id."""
        node = self._cluster.add_node(num_cpus=self._node_cpus, object_store_memory=OBJECT_STORE_BYTES)
        self._cluster.wait_for_nodes()
        return str(node.node_id)

    def worker_ids(self) -> list[str]:
        return sorted(str(node.node_id) for node in self._cluster.worker_nodes)

    def remove_node(self, node_id: str) -> None:
        """Kill worker node `node_id` at once (its raylet and workers, no graceful drain), as a lost
        machine would go."""
        [node] = [node for node in self._cluster.worker_nodes if node.node_id == node_id]
        self._cluster.remove_node(node, allow_graceful=False)


@contextlib.contextmanager
def local_cluster(workers: int, *, node_cpus: float = 1.0) -> Iterator[LocalCluster]:
    import ray
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    tmp = tempfile.mkdtemp(prefix="rbho-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = tmp
    head = {
        "num_cpus": 0,
        "object_store_memory": OBJECT_STORE_BYTES,
        "include_dashboard": False,
        "_system_config": HEALTH_CHECKS,
    }
    # shutdown_at_exit=False: Ray's hooks for it install a signal handler, which only the main thread
    # may do, and a node added while the storm runs is added from a thread. This process ends the
    # nodes itself instead, on SIGTERM too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cluster = Cluster(initialize_head=True, head_node_args=head, shutdown_at_exit=False)
    try:
        local = LocalCluster(cluster, node_cpus)
        for _ in range(workers):
            local.add_node()
        yield local
    finally:
        ray.shutdown()  # the driver first: Ray refuses to remove the head a driver is connected to
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)
