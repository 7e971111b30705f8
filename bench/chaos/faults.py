"""The faults, one per scenario. Each is injected once into a running storm and returns what shows
that it really happened (a kill that hit a live PID, an acknowledgement the proxy dropped, ...)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from bench.chaos.deployment import Deployment
from bench.process_cpu import start_time, still_running

PROXY_WAIT_S = 20.0
SHARD_WRITE = b"shard_leases"  # a shard's batch write bumps its lease's commits: not the outbox relay's writes


class Evidence(msgspec.Struct, kw_only=True):
    happened: bool
    detail: str
    window: tuple[float, float] = (0.0, 0.0)  # storm seconds the fault lasted


class Target(msgspec.Struct, kw_only=True):
    """What a fault aims at: the deployment, the shard owning the scenario's rooms (and its actor's
    PID when the storm started), how long a lasting fault lasts, and the storm's clock."""

    deployment: Deployment
    shard: int
    shard_pid: int
    lasting_s: float
    now: Callable[[], float]


Fault = Callable[[Target], Awaitable[Evidence]]


def _kill(pid: int, sig: int) -> bool:
    """Signal pid if it is a live process (not a zombie); whether it was."""
    if not still_running(pid, start_time(pid)):
        return False
    os.kill(pid, sig)
    return True


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


async def kill_shard(target: Target) -> Evidence:
    hit = _kill(target.shard_pid, signal.SIGKILL)
    return Evidence(happened=hit, detail=f"kill -9 of shard {target.shard}'s actor (pid {target.shard_pid}): {hit}")


async def kill_worker(target: Target) -> Evidence:
    workers = await asyncio.to_thread(target.deployment.worker_pids)
    hit = bool(workers) and _kill(workers[0], signal.SIGKILL)
    return Evidence(happened=hit, detail=f"kill -9 of front worker {workers[:1]} of {len(workers)}: {hit}")


async def kill_server(target: Target) -> Evidence:
    started = target.now()
    tree = await asyncio.to_thread(target.deployment.kill_server)
    await asyncio.sleep(1.0)
    target.deployment.start_server()
    ready = await asyncio.to_thread(target.deployment.wait_ready)
    detail = f"kill -9 of the server and its workers ({len(tree)} processes), started again (ready: {ready})"
    return Evidence(happened=len(tree) >= 3, detail=detail, window=(started, target.now()))


async def stop_shard(target: Target) -> Evidence:
    started = target.now()
    stopped = _kill(target.shard_pid, signal.SIGSTOP)
    await asyncio.sleep(0.2)
    state = _state(target.shard_pid)
    await asyncio.sleep(target.lasting_s)
    _kill(target.shard_pid, signal.SIGCONT)
    detail = f"SIGSTOP of shard {target.shard}'s actor (pid {target.shard_pid}, state {state}) for {target.lasting_s} s"
    return Evidence(happened=stopped and state == "T", detail=detail, window=(started, target.now()))


async def drop_commit_ack(target: Target) -> Evidence:
    proxy = target.deployment.global_proxy
    before = proxy.counters()
    proxy.drop_commit_ack(1, only_if=SHARD_WRITE)
    try:
        await asyncio.to_thread(proxy.wait_for, "acks_dropped", before.acks_dropped + 1, timeout_s=PROXY_WAIT_S)
    except TimeoutError:
        commits = proxy.counters().commits_forwarded - before.commits_forwarded
        detail = f"no shard write's COMMIT went through the global proxy in {PROXY_WAIT_S} s ({commits} COMMITs)"
        return Evidence(happened=False, detail=detail)
    return Evidence(happened=True, detail="the global proxy dropped the OK of a shard write's COMMIT (it committed)")


async def cut_mid_transaction(target: Target) -> Evidence:
    proxy = target.deployment.global_proxy
    before = proxy.counters().transactions_cut
    proxy.cut_mid_transaction(1, only_if=SHARD_WRITE)
    try:
        await asyncio.to_thread(proxy.wait_for, "transactions_cut", before + 1, timeout_s=PROXY_WAIT_S)
    except TimeoutError:
        return Evidence(happened=False, detail=f"no write went through the global proxy in {PROXY_WAIT_S} s")
    return Evidence(happened=True, detail="the global proxy cut a shard write's connection before its COMMIT")


async def restart_mariadb(target: Target) -> Evidence:
    mariadb = target.deployment.mariadb
    started = target.now()
    old = mariadb.process.pid if mariadb.process else None
    await asyncio.to_thread(mariadb.stop)
    await asyncio.to_thread(mariadb.start)
    new = mariadb.process.pid if mariadb.process else None
    detail = f"the private mariadbd (every store) restarted: pid {old} -> {new}"
    return Evidence(happened=old is not None and new != old, detail=detail, window=(started, target.now()))


async def regional_outage(target: Target) -> Evidence:
    proxy = target.deployment.eu_proxy
    before = proxy.counters()
    started = target.now()
    await asyncio.to_thread(proxy.outage, True)
    await asyncio.sleep(target.lasting_s)
    await asyncio.to_thread(proxy.outage, False)
    after = proxy.counters()
    detail = (
        f"the EU store refused connections for {target.lasting_s} s ({after.cut_by_outage - before.cut_by_outage} cut)"
    )
    return Evidence(happened=after.outages == before.outages + 1, detail=detail, window=(started, target.now()))


async def redis_outage(target: Target) -> Evidence:
    redis = target.deployment.redis
    started = target.now()
    old = redis.process.pid if redis.process else None
    await asyncio.to_thread(redis.stop)
    await asyncio.sleep(target.lasting_s)
    await asyncio.to_thread(redis.start)
    detail = f"the cache's redis-server (pid {old}) killed for {target.lasting_s} s, then started again"
    return Evidence(happened=old is not None, detail=detail, window=(started, target.now()))


FAULTS: dict[str, Fault] = {
    "shard-kill": kill_shard,
    "worker-kill": kill_worker,
    "server-kill": kill_server,
    "shard-stop": stop_shard,
    "lost-commit-ack": drop_commit_ack,
    "cut-transaction": cut_mid_transaction,
    "mariadb-restart": restart_mariadb,
    "regional-outage": regional_outage,
    "redis-outage": redis_outage,
}
