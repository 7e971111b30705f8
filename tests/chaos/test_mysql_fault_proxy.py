"""The MySQL fault proxy against the real MariaDB, through real asyncmy connections."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncmy
import pytest
from asyncmy.errors import OperationalError

from bench.chaos.proxy import MysqlFaultProxy, ProxyThread, control
from bench.databases import connect
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = pytest.mark.mysql


@pytest.fixture
async def table_dsn(mysql_dsn: str) -> str:
    """`mysql_dsn` with an empty InnoDB table `t (id INT PRIMARY KEY)`."""
    conn = await connect(mysql_target(mysql_dsn))
    async with conn.cursor() as cur:
        await cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
    conn.close()
    return mysql_dsn


@pytest.fixture
async def proxy(table_dsn: str) -> AsyncIterator[MysqlFaultProxy]:
    target = mysql_target(table_dsn)
    async with MysqlFaultProxy(target.host, target.port) as proxy:
        yield proxy


async def ids_in(dsn: str) -> list[int]:
    """The table's ids, read directly (not through the proxy) by a new connection."""
    conn = await connect(mysql_target(dsn))
    async with conn.cursor() as cur:
        await cur.execute("SELECT id FROM t ORDER BY id")
        rows = await cur.fetchall()
    conn.close()
    return [row[0] for row in rows]


async def through(proxy: MysqlFaultProxy, dsn: str) -> asyncmy.Connection:
    return await connect(mysql_target(proxy.through(dsn)))


async def test_forwards_queries_results_and_commits(proxy: MysqlFaultProxy, table_dsn: str):
    conn = await through(proxy, table_dsn)
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES (1), (2)")
        await conn.commit()
        await cur.execute("SELECT id FROM t ORDER BY id")
        assert await cur.fetchall() == ((1,), (2,))
    conn.close()
    assert proxy.counters.commits_forwarded == 1
    assert await ids_in(table_dsn) == [1, 2]


async def test_a_dropped_commit_ack_loses_the_connection_but_the_row_is_committed(
    proxy: MysqlFaultProxy, table_dsn: str
):
    conn = await through(proxy, table_dsn)
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES (7)")
        proxy.drop_commit_ack()
        with pytest.raises(OperationalError, match="Lost connection"):
            await conn.commit()
    assert proxy.counters.acks_dropped == 1
    assert await ids_in(table_dsn) == [7]


async def test_a_commit_at_the_end_of_a_multi_statement_query_has_its_ack_dropped(
    proxy: MysqlFaultProxy, table_dsn: str
):
    conn = await through(proxy, table_dsn)
    proxy.drop_commit_ack()
    with pytest.raises(OperationalError, match="Lost connection"):
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1; INSERT INTO t VALUES (8); COMMIT")
            while await cur.nextset():
                pass
    assert proxy.counters.acks_dropped == 1
    assert await ids_in(table_dsn) == [8]


async def test_only_the_armed_number_of_acks_is_dropped(proxy: MysqlFaultProxy, table_dsn: str):
    proxy.drop_commit_ack(1)
    lost = []
    for row_id in (1, 2, 3):
        conn = await through(proxy, table_dsn)
        async with conn.cursor() as cur:
            await cur.execute(f"INSERT INTO t VALUES ({row_id})")
            try:
                await conn.commit()
            except OperationalError:
                lost.append(row_id)
        conn.close()
    assert lost == [1]
    assert (proxy.counters.acks_dropped, proxy.counters.commits_forwarded) == (1, 2)
    assert await ids_in(table_dsn) == [1, 2, 3]


async def test_only_if_hits_only_a_transaction_that_mentions_it(proxy: MysqlFaultProxy, table_dsn: str):
    proxy.drop_commit_ack(only_if=b"VALUES (2)")
    lost = []
    for row_id in (1, 2, 3):
        conn = await through(proxy, table_dsn)
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM t")
            await cur.execute(f"INSERT INTO t VALUES ({row_id})")
            try:
                await conn.commit()
            except OperationalError:
                lost.append(row_id)
        conn.close()
    assert lost == [2]
    assert await ids_in(table_dsn) == [1, 2, 3]


async def test_a_cut_transaction_leaves_nothing(proxy: MysqlFaultProxy, table_dsn: str):
    conn = await through(proxy, table_dsn)
    proxy.cut_mid_transaction()
    with pytest.raises(OperationalError, match="Lost connection"):
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
            await conn.commit()
    assert proxy.counters.transactions_cut == 1
    assert proxy.counters.commits_forwarded == 0
    assert await ids_in(table_dsn) == []


async def test_reads_are_not_cut(proxy: MysqlFaultProxy, table_dsn: str):
    conn = await through(proxy, table_dsn)
    proxy.cut_mid_transaction()
    async with conn.cursor() as cur:
        await cur.execute("SELECT COUNT(*) FROM t")
        assert await cur.fetchone() == (0,)
    conn.close()
    assert proxy.counters.transactions_cut == 0


async def test_an_outage_refuses_connections_cuts_live_ones_and_ends(proxy: MysqlFaultProxy, table_dsn: str):
    live = await through(proxy, table_dsn)
    await proxy.outage(True)
    with pytest.raises(OperationalError):
        async with live.cursor() as cur:
            await cur.execute("SELECT 1")
    with pytest.raises(OperationalError, match="Can't connect"):
        await through(proxy, table_dsn)
    assert (proxy.counters.outages, proxy.counters.cut_by_outage) == (1, 1)
    await proxy.outage(False)
    conn = await through(proxy, table_dsn)
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        assert await cur.fetchone() == (1,)
    conn.close()


def test_the_thread_runs_the_same_proxy_for_sync_code(table_dsn: str):
    target = mysql_target(table_dsn)
    with ProxyThread(target.host, target.port) as proxy:
        proxy.drop_commit_ack()

        async def commit_one() -> None:
            conn = await connect(mysql_target(proxy.through(table_dsn)))
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO t VALUES (5)")
                with pytest.raises(OperationalError, match="Lost connection"):
                    await conn.commit()

        asyncio.run(commit_one())
        proxy.wait_for("acks_dropped", 1, timeout_s=10)
        proxy.outage(True)
        assert proxy.counters().outages == 1
    assert asyncio.run(ids_in(table_dsn)) == [5]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_command_is_steered_over_its_control_port(table_dsn: str):
    target = mysql_target(table_dsn)
    listen_port, control_port = free_port(), free_port()
    command = [sys.executable, "-m", "bench.chaos.proxy", "--target", f"{target.host}:{target.port}"]
    command += ["--listen-port", str(listen_port), "--control-port", str(control_port)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith(f"proxy 127.0.0.1:{listen_port}")
            assert control(control_port, "outage on")["outages"] == 1
            assert control(control_port, "outage off")["outages"] == 1
            assert control(control_port, "drop-commit-ack 1")["acks_dropped"] == 0
            assert "error" in control(control_port, "explode")
        finally:
            process.terminate()
    assert process.returncode == 0
