"""Session-wide fixtures: one local Ray cluster for the whole run, started only if a test needs it."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """A private local Ray (its own temp dir, no dashboard), shut down at the end of the session."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tmp = tempfile.mkdtemp(prefix="rb-ray-")
    os.environ["RAY_TMPDIR"] = tmp
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=128 * 2**20,
        namespace="roombook-tests",
        logging_level="warning",
        log_to_driver=False,
        _temp_dir=tmp,
    )
    yield ray
    ray.shutdown()
