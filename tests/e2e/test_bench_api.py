"""bench.api end to end, and its row-lock baseline's HTTP contract.

A tiny run starts `roombook serve` on MariaDB and Ray and the baseline (subprocesses on 127.0.0.1),
drives both with the same booking load for a second, verifies and reports them, runs bench.core's
A and the mixed profile, and leaves no process behind. Nothing here asserts a speed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from bench.api.baseline import create_baseline_app
from bench.api.rounds import Acknowledged, HistoryRow, _baseline_schema, _Inventory, _with_history, token_codec
from bench.api.servers import baseline_server
from bench.core.verification import Verdict
from bench.databases import connect
from bench.process_cpu import still_running
from roombook.domain.accounts import Region, Role, User
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = [pytest.mark.mysql]
REPO = Path(__file__).resolve().parents[2]
SECRET = "s" * 48


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}


@pytest.mark.ray
def test_a_tiny_run_verifies_and_reports_both_systems_and_stops_its_servers(tmp_path: Path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "bench.api", "--users", "4", "--hot", "1", "--seconds", "1"]
    command += ["--seed-rooms", "20", "--mixed-users", "4", "--b-variant", "p2:processes=2"]
    command += ["--variant", "evw:events=worker", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    rounds = {(r["system"], r["hot"]): r for r in results["rounds"]}
    # B:p2 the baseline in two processes, A:evw with the events in a `roombook worker` of their own
    assert set(rounds) == {("A", 1), ("B", 1), ("B:p2", 1), ("A:evw", 1)}
    for r in rounds.values():
        assert r["verdict"]["ok"] and r["bookings"] > 0 and r["errors"] == 0, r
        assert r["cpu_s"]["client"] > 0 and r["cpu_s"]["server"] > 0  # the driver and the server measured
    assert rounds[("A", 1)]["cpu_s"]["actors"] > 0  # and A's shard actors
    assert [row["a_over_b_bookings"] > 0 for row in results["comparison"]] == [True]
    assert all(row["http_share_of_core"] > 0 for row in results["comparison"])  # bench.core's A ran alongside
    assert results["mixed"]["mixed_rps"] > 0 and results["mixed"]["healthz_rps"] > 0
    assert "GET /rooms" in results["mixed"]["routes"] and "POST /bookings" in results["mixed"]["routes"]
    assert "| users | H | A bookings/s |" in done.stdout
    assert "| B:p2 | 4 | 1 |" in done.stdout  # against B in the levers' table
    assert "roombook: worker running" in (out / "worker-A.log").read_text()
    started = results["meta"]["server_processes"]  # every server it started, Ray's processes with them
    assert len(started) > 4 and not [p for p in started if still_running(p["pid"], p["started"])]


def test_a_201_missing_from_its_owners_history_fails_the_round():
    ok = Verdict(
        ok=True,
        double_booked_nights=0,
        missing_acknowledged=0,
        booked_rows_without_booking=0,
        booking_nights_not_booked=0,
        stranded_holds=0,
        unacknowledged_bookings=0,
        problems=[],
    )
    ack = {"k1": Acknowledged("k1", 7, "eu", "b1")}
    stay = (3, dt.date(2030, 1, 1), dt.date(2030, 1, 2))
    assert _with_history(ok, ack, {"k1": HistoryRow("b1", 7, "k1", "CONFIRMED", *stay)}).ok
    for row in (
        HistoryRow("b1", 8, "k1", "CONFIRMED", *stay),  # someone else's
        HistoryRow("b1", 7, "k1", "PENDING", *stay),  # not confirmed
        HistoryRow("b2", 7, "k1", "CONFIRMED", *stay),  # another booking than the answer named
    ):
        verdict = _with_history(ok, ack, {"k1": row})
        assert not verdict.ok and "owner's history" in verdict.problems[-1]
    assert not _with_history(ok, ack, {}).ok


async def _baseline(aiohttp_client, dsn: str):
    admin = await connect(mysql_target(dsn))
    try:
        await _baseline_schema(admin, [1, 2], [], _Inventory(admin))
    finally:
        admin.close()
    return await aiohttp_client(create_baseline_app(dsn, jwt_secret=SECRET, pool_size=2))


def _auth(user_id: int) -> dict[str, str]:
    user = User(id=user_id, email="b@example.com", region=Region.EU, role=Role.USER, created_at=dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token_codec(SECRET).encode(user)}"}


async def test_the_baseline_answers_the_products_booking_contract(aiohttp_client, mysql_dsn):
    client = await _baseline(aiohttp_client, mysql_dsn)
    body = {"room_id": 1, "check_in": "2030-01-02", "check_out": "2030-01-05", "guests": 2}
    key = str(uuid.uuid4())
    first = await client.post("/api/v1/bookings", json=body, headers=_auth(5) | {"Idempotency-Key": key})
    assert first.status == 201, await first.text()
    booking = (await first.json())["booking"]
    assert booking["status"] == "CONFIRMED" and booking["nights"] == 3 and booking["total_price"] == 300
    again = await client.post("/api/v1/bookings", json=body, headers=_auth(5) | {"Idempotency-Key": key})
    assert again.status == 201 and (await again.json())["booking"]["id"] == booking["id"]  # a replay: the same one
    overlap = {**body, "check_in": "2030-01-04", "check_out": "2030-01-06"}
    taken = await client.post(
        "/api/v1/bookings", json=overlap, headers=_auth(6) | {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert taken.status == 409 and taken.content_type == "application/problem+json"
    other_room = await client.post(
        "/api/v1/bookings", json={**overlap, "room_id": 2}, headers=_auth(6) | {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert other_room.status == 201


async def test_the_baseline_process_takes_any_secret_from_its_environment(mysql_dsn, tmp_path: Path):
    admin = await connect(mysql_target(mysql_dsn))
    try:
        await _baseline_schema(admin, [1], [], _Inventory(admin))
    finally:
        admin.close()
    secret = "-" + "x" * 47  # read from a command line, a leading "-" made it an option
    body = {"room_id": 1, "check_in": "2030-01-02", "check_out": "2030-01-03", "guests": 1}
    with baseline_server(mysql_dsn, jwt_secret=secret, pool_size=2, out=tmp_path) as server:
        assert secret not in " ".join(server.proc.args)
        user = User(id=3, email="b@example.com", region=Region.EU, role=Role.USER, created_at=dt.datetime.now(dt.UTC))
        headers = {"Authorization": f"Bearer {token_codec(secret).encode(user)}", "Idempotency-Key": str(uuid.uuid4())}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{server.url}/api/v1/bookings", json=body, headers=headers) as answer,
        ):
            assert answer.status == 201, await answer.text()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, None, 401),  # no token
        ({"Authorization": "Bearer not-a-token"}, None, 401),
        ({"Idempotency-Key": "4111 1111 1111 1111"}, None, 422),  # a card number as the key
        ({}, {"room_id": 1, "check_in": "2030-01-05", "check_out": "2030-01-02", "guests": 1}, 422),  # no stay
        ({}, {"room_id": 99, "check_in": "2030-01-02", "check_out": "2030-01-03", "guests": 1}, 404),
        ({}, {"room_id": 1, "check_in": "2030-01-02", "check_out": "2030-01-03", "guests": 9}, 422),  # too many
    ],
    ids=["no-token", "bad-token", "card-number-key", "bad-stay", "unknown-room", "over-capacity"],
)
async def test_the_baseline_refuses_bad_requests_as_problems_and_writes_nothing(
    aiohttp_client, mysql_dsn, headers, body, status
):
    client = await _baseline(aiohttp_client, mysql_dsn)
    auth = {} if status == 401 else _auth(5)
    sent = {"Idempotency-Key": str(uuid.uuid4())} | auth | headers
    body = body or {"room_id": 1, "check_in": "2030-01-02", "check_out": "2030-01-03", "guests": 1}
    answer = await client.post("/api/v1/bookings", json=body, headers=sent)
    assert answer.status == status and answer.content_type == "application/problem+json"
    conn = await connect(mysql_target(mysql_dsn))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM bookings")
            assert (await cur.fetchone())[0] == 0
            await cur.execute("SELECT COUNT(*) FROM availability WHERE status <> 'available'")
            assert (await cur.fetchone())[0] == 0
    finally:
        conn.close()
