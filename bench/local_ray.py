"""One Ray for a whole benchmark run: a private local cluster, or an existing one at an address.

Never `ray stop`: it would end every Ray process on the machine. A private local cluster lives in
its own temp dir and ends with `ray.shutdown()`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

OBJECT_STORE_BYTES = 128 * 2**20


@contextlib.contextmanager
def ray_for_benchmark(address: str | None, *, namespace: str, num_cpus: int = 2) -> Iterator[None]:
    """address None: start a local Ray (no dashboard, auth off, private RAY_TMPDIR, small object
    store); otherwise connect to the cluster there. Shut down (or disconnect) on exit."""
    import ray

    from roombook.actors.ray_runtime import init_ray

    tmp = None
    if address:
        init_ray(address, namespace=namespace)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        tmp = tempfile.mkdtemp(prefix="rb-bench-ray-")
        os.environ["RAY_TMPDIR"] = tmp
        init_ray(None, namespace=namespace, num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, _temp_dir=tmp)
    try:
        yield
    finally:
        ray.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
