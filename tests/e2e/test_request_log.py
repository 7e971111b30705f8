"""Request ids and JSON logs over the real app: every answer names its request in X-Request-ID (the
caller's, if sane, else a new one), every request is one JSON log line of a fixed shape, the id
reaches the events the request recorded and the shard-call lines, and no log line ever holds a
password, a token or a card number, whatever the requests carried."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator

import aiohttp
import pytest
from booking_harness import API, PASSWORD, Guest, add_rooms, app_for, local_settings, sign_up, stay

from roombook.logs import MAX_QUEUED, configure_logging, dropped_records, flush_logs, stop_logging

CARD_NUMBER = "4111 1111 1111 1111"
ACCESS_LINE_KEYS = {"time", "level", "logger", "message", "method", "route", "status", "duration_ms", "request_id"}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything this process logs while the test runs, as configured for a container (JSON)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging("auto", verbose=True, stream=stream)  # auto: a StringIO is not a terminal
    try:
        yield stream
    finally:
        stop_logging()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    flush_logs()  # the writer thread has written everything logged so far
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [r for r in records(stream) if r["logger"] == "roombook.access"]


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def test_a_sane_request_id_is_echoed_and_any_other_replaced(client, log_lines) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "edge-7f3a:42"})
    assert resp.headers["X-Request-ID"] == "edge-7f3a:42"
    for bad in ("x" * 129, "has space", 'quote"d', "", "\u00e9t\u00e9"):
        resp = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert resp.status == 200
        assert resp.headers["X-Request-ID"].startswith("req_") and resp.headers["X-Request-ID"] != bad
    resp = await client.get("/no/such/page")  # aiohttp's own 404, as a problem
    assert resp.status == 404 and resp.headers["X-Request-ID"].startswith("req_")
    first, second = (await client.get("/healthz"), await client.get("/healthz"))
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    ids = [line["request_id"] for line in access_lines(log_lines)]
    assert ids[0] == "edge-7f3a:42" and ids[-2:] == [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]


async def test_each_request_is_one_json_line_with_its_route_status_and_user(client, log_lines) -> None:
    guest = await sign_up(client)
    resp = await client.get(f"{API}/bookings", headers=guest.headers | {"X-Request-ID": "mine-1"})
    assert resp.status == 200
    resp = await client.get(f"{API}/rooms/987654", headers={"X-Request-ID": "mine-2"})
    assert resp.status == 404
    lines = access_lines(log_lines)
    assert [(line["method"], line["route"]) for line in lines] == [
        ("POST", f"{API}/auth/register"),
        ("POST", f"{API}/auth/login"),
        ("GET", f"{API}/bookings"),
        ("GET", f"{API}/rooms/{{room_id}}"),  # the canonical route, never the raw path
    ]
    for line in lines:
        assert line.keys() >= ACCESS_LINE_KEYS
        assert line["level"] == "INFO" and isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    bookings, missing = lines[2], lines[3]
    assert (bookings["status"], bookings["request_id"], bookings["user_id"]) == (200, "mine-1", str(guest.id))
    assert (missing["status"], missing["request_id"], missing["user_id"]) == (404, "mine-2", None)


async def test_the_request_id_reaches_the_bookings_events_and_the_shard_call_lines(client, log_lines, tmp_path):
    guest = await sign_up(client)
    (room_id,) = await add_rooms(client)
    headers = guest.booking_headers() | {"X-Request-ID": "trip-to-lisbon"}
    resp = await client.post(f"{API}/bookings", json=stay(room_id, 1, 3), headers=headers)
    assert resp.status == 201, await resp.text()
    with sqlite3.connect(tmp_path / "eu.db") as db:
        events = [json.loads(payload) for (payload,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]
    booking_events = [e for e in events if e["type"].startswith("booking.")]
    assert [e["type"] for e in booking_events] == ["booking.created", "booking.confirmed"]
    assert {e["request_id"] for e in booking_events} == {"trip-to-lisbon"}
    shard_calls = [r for r in records(log_lines) if r["logger"] == "roombook.shard_calls"]
    assert shard_calls and {r["request_id"] for r in shard_calls} == {"trip-to-lisbon"}
    assert all(r["failed"] is False and r["commands"] >= 1 for r in shard_calls)


async def test_no_log_line_holds_a_password_a_token_or_a_card_number(client, log_lines) -> None:
    email = "careful@example.com"
    resp = await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD, "region": "eu"})
    assert resp.status == 201
    resp = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD + "!"})
    assert resp.status == 401
    login = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    guest = Guest((await login.json())["user"]["id"], "eu", (await login.json())["access_token"])
    tokens = await login.json() | {"refresh_token": login.cookies["refresh_token"].value}  # only ever a cookie
    refresh = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status == 200
    (room_id,) = await add_rooms(client)
    carded = await client.post(
        f"{API}/bookings", json=stay(room_id, 1, 2, card_token=CARD_NUMBER), headers=guest.booking_headers()
    )
    assert carded.status == 422
    resp = await client.get(f"{API}/rooms?q={CARD_NUMBER}&token={tokens['access_token']}")
    assert resp.status in (200, 422)
    # and a careless record that holds them all, as a message and as extra fields
    logging.getLogger("roombook.test").warning(
        "login by password=%s with Bearer %s, refresh %s, card %s",
        PASSWORD,
        tokens["access_token"],
        tokens["refresh_token"],
        CARD_NUMBER,
        extra={"password": PASSWORD, "refresh_token": tokens["refresh_token"]},
    )
    assert len(access_lines(log_lines)) == 6
    written = log_lines.getvalue()
    assert len(access_lines(log_lines)) == 6 and "roombook.test" in written
    secrets = [PASSWORD, tokens["access_token"], tokens["refresh_token"], (await refresh.json())["access_token"]]
    secrets += [CARD_NUMBER, CARD_NUMBER.replace(" ", ""), guest.headers["Authorization"].split()[1]]
    for secret in secrets:
        assert secret not in written
    for part in PASSWORD.split():  # not even a word of the password from the careless record
        assert f"password={part}" not in written


def test_plain_text_is_the_default_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging("auto", stream=stream)
        logging.getLogger("roombook.access").info("GET /healthz 200")
        flush_logs()
        configure_logging("json", stream=stream)
        logging.getLogger("roombook.access").info("GET /readyz 200")
        flush_logs()
    finally:
        stop_logging()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text, forced = stream.getvalue().splitlines()
    assert text.endswith("INFO roombook.access: GET /healthz 200")
    assert json.loads(forced)["message"] == "GET /readyz 200"


def test_a_stuck_log_output_never_blocks_the_caller() -> None:
    """Nobody reads the pipe: its buffer fills, the writer thread blocks, and logging goes on
    (records beyond the queue are dropped and counted)."""
    read_end, write_end = os.pipe()
    stuck = os.fdopen(write_end, "w")
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    done = threading.Event()

    def log_a_lot() -> None:
        for n in range(MAX_QUEUED + 50_000):  # far more than the pipe and the queue hold
            logging.getLogger("roombook.access").info("GET /healthz 200 line %d", n)
        done.set()

    try:
        configure_logging("json", stream=stuck)
        logger = threading.Thread(target=log_a_lot, daemon=True)
        logger.start()
        logger.join(60)
        assert done.is_set(), "logging blocked on a stuck output"
        assert dropped_records() > 0
    finally:
        os.close(read_end)  # the writer's next write fails instead of blocking: it can stop
        stop_logging(timeout_s=5)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        with contextlib.suppress(OSError):
            stuck.close()
