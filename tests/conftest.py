"""Fixtures shared by every test directory: one local Ray cluster for the whole run (started only
if a test needs it) and a fresh MariaDB database per test.

A missing MariaDB fails the test with the way to start it; it never skips (CI must not pass green
on a machine without the server).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import signal
import tempfile
import urllib.parse
from collections.abc import Coroutine, Iterator

import asyncmy.errors
import msgspec
import pytest

from roombook.storage.sql.mysql_db import MysqlTarget, create_database, drop_database, mysql_target

pytest_plugins = ("event_services",)  # moto (SNS/SQS) and SMTP servers for the event tests

# A shell starts a background job with SIGINT ignored, and an ignored signal is inherited across
# exec: the runners that tests interrupt as Ctrl-C (bench.load, the fault suite) would not hear it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


DEFAULT_TEST_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"


def run_on_a_fresh_loop(coro: Coroutine[object, object, object]) -> None:
    """Run coro on its own loop in a helper thread.

    Sync fixtures may be set up from inside a running loop (an async fixture calling
    request.getfixturevalue("mysql_dsn")), where asyncio.run would refuse to start.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, coro).result()


def dsn_of(target: MysqlTarget) -> str:
    credentials = urllib.parse.quote(target.user, safe="")
    if target.password:
        credentials += ":" + urllib.parse.quote(target.password, safe="")
    return f"mysql://{credentials}@{target.host}:{target.port}/{target.database}"


@pytest.fixture
def mysql_dsn() -> Iterator[str]:
    """The DSN of a new, empty utf8mb4 database on the test server, dropped after the test.

    Only the server part of ROOMBOOK_TEST_MYSQL_DSN is used; the database name is random.
    """
    server = mysql_target(os.environ.get("ROOMBOOK_TEST_MYSQL_DSN", DEFAULT_TEST_MYSQL_DSN))
    target = msgspec.structs.replace(server, database=f"rb_t_{secrets.token_hex(6)}")
    try:
        run_on_a_fresh_loop(create_database(target))
    except (OSError, asyncmy.errors.OperationalError) as exc:
        pytest.fail(
            f"the MySQL test server {server!r} is unreachable ({exc}). Start MariaDB with "
            "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` or point "
            "ROOMBOOK_TEST_MYSQL_DSN at a server. Tests that need it fail rather than skip"
            + (" (CI is set)." if os.environ.get("CI") else "."),
            pytrace=False,
        )
    yield dsn_of(target)
    run_on_a_fresh_loop(drop_database(target))


@pytest.fixture
def mysql_dsns(mysql_dsn: str) -> Iterator[dict[str, str]]:
    """DSNs of three fresh databases, for the global, EU and US stores of one deployment."""
    base = mysql_target(mysql_dsn)
    siblings = {name: msgspec.structs.replace(base, database=f"{base.database}_{name}") for name in ("eu", "us")}
    for target in siblings.values():
        run_on_a_fresh_loop(create_database(target))
    yield {"global": mysql_dsn} | {name: dsn_of(target) for name, target in siblings.items()}
    for target in siblings.values():
        run_on_a_fresh_loop(drop_database(target))
