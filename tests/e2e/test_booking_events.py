"""Events end to end: a booking over the real HTTP API reaches the guest's mailbox, and room changes
reach the bus, on the embedded stack (memory bus, .eml files) and on SNS/SQS (moto) with SMTP."""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import msgspec
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, night, room, sign_up, stay
from event_services import event_env

from roombook.domain.events import AvailabilityUpdated, Event
from roombook.events import worker as event_worker
from roombook.events.catalogue_views import CacheInvalidation
from roombook.http.keys import REGIONS


async def until(condition, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll a condition on another component's effects (a mailbox, a queue): nothing to wait on."""
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def guest_email(client, guest) -> str:
    user = await client.app[REGIONS][guest.region].user(guest.id)
    return user.email


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


@pytest.fixture
def cache_invalidation(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Every event the cache-invalidation consumer of an app started after this fixture handles."""
    seen: list[Event] = []

    class Recording(CacheInvalidation):
        async def __call__(self, event: Event) -> None:
            seen.append(event)
            await super().__call__(event)

    monkeypatch.setattr(event_worker, "CacheInvalidation", Recording)
    return seen


# -- the embedded stack ----------------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def test_a_booking_over_http_leaves_a_confirmation_email_file(client, tmp_path):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    response = await book(client, guest, stay(room_id, 0, 3, card_token="tok_visa"))
    assert response.status == 201
    booking = (await response.json())["booking"]
    mail_dir = tmp_path / "mail"
    await until(lambda: len(list(mail_dir.glob("*.eml"))) == 1, what="the confirmation email")
    [path] = mail_dir.glob("*.eml")
    message = read_eml(path)
    assert message["To"] == await guest_email(client, guest)
    assert message["Subject"] == f"Your booking {booking['id']} is confirmed"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert night(0) in text and night(3) in text and "361.50 EUR" in text
    assert "tok_visa" not in path.read_text()

    cancelled = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=guest.headers)
    assert cancelled.status == 200
    await until(lambda: len(list(mail_dir.glob("*.eml"))) == 2, what="the cancellation email")
    subjects = sorted(read_eml(p)["Subject"] for p in mail_dir.glob("*.eml"))
    assert subjects == [f"Your booking {booking['id']} is cancelled", f"Your booking {booking['id']} is confirmed"]


async def test_a_refused_booking_sends_no_email(client, tmp_path):
    (room_id,) = await add_rooms(client)
    first, second = await sign_up(client), await sign_up(client)
    assert (await book(client, first, stay(room_id, 0, 2))).status == 201
    assert (await book(client, second, stay(room_id, 1, 2))).status == 409
    assert (await book(client, second, stay(room_id, 4, 5, card_token="tok_decline"))).status == 402
    await until(lambda: len(list((tmp_path / "mail").glob("*.eml"))) == 1, what="the one confirmation")
    await asyncio.sleep(0.5)  # the relay polls every 0.1 s: the refusals would have arrived by now
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1


async def test_availability_changes_reach_the_bus_with_their_versions(aiohttp_client, tmp_path, cache_invalidation):
    client = await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())
    seen = cache_invalidation
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    response = await book(client, guest, stay(room_id, 0, 2))
    booking = (await response.json())["booking"]
    await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=guest.headers)

    def nights_seen() -> list[tuple[str, str, int]]:
        return [
            (n.date.isoformat(), n.status, n.version)
            for e in seen
            if isinstance(e, AvailabilityUpdated) and e.room_id == room_id
            for n in e.nights
        ]

    await until(lambda: len(nights_seen()) == 6, what="hold, booking and cancellation of two nights")
    assert nights_seen() == [
        (night(0), "held", 1),
        (night(1), "held", 1),
        (night(0), "booked", 2),
        (night(1), "booked", 2),
        (night(0), "available", 3),
        (night(1), "available", 3),
    ]
    assert any(e.type == "room.updated" and e.room_id == room_id for e in seen)


# -- SNS/SQS (moto) and SMTP (aiosmtpd) ---------------------------------------------------------------


async def test_a_booking_is_emailed_over_smtp_through_sns_and_sqs(
    aiohttp_client, tmp_path, moto, smtp, cache_invalidation
):
    settings = msgspec.structs.replace(
        local_settings(tmp_path),
        event_bus="sns-sqs",
        events_in_process=True,
        aws_endpoint_url=moto,
        event_prefix="e2e-",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_tls="none",
        mail_from="roombook <bookings@example.org>",
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client, region="us")
    response = await book(client, guest, stay(room_id, 2, 4))
    assert response.status == 201
    booking = (await response.json())["booking"]
    await until(lambda: len(smtp.messages) == 1, what="the SMTP message")
    [message] = smtp.messages
    assert message["To"] == await guest_email(client, guest)
    assert message["From"] == "roombook <bookings@example.org>"
    assert booking["id"] in message.get_body(preferencelist=("plain",)).get_content()

    # the same commits reached the cache-invalidation consumer, as SNS fanned them out
    def versions_seen() -> list[tuple[str, str, int]]:
        return [
            (n.date.isoformat(), n.status, n.version)
            for e in cache_invalidation
            if isinstance(e, AvailabilityUpdated)
            for n in e.nights
        ]

    await until(lambda: len(versions_seen()) == 4, what="hold and booking of two nights")
    versions = versions_seen()
    assert sorted(versions) == [
        (night(2), "booked", 2),
        (night(2), "held", 1),
        (night(3), "booked", 2),
        (night(3), "held", 1),
    ]


# -- a relay killed between publishing and marking ------------------------------------------------------


def start_worker(data_dir: Path, smtp_port: int, log_path: Path) -> subprocess.Popen:
    env = event_env(ROOMBOOK_SMTP_HOST="127.0.0.1", ROOMBOOK_SMTP_PORT=str(smtp_port), ROOMBOOK_SMTP_TLS="none")
    command = [sys.executable, "-m", "roombook", "-v", "--data-dir", str(data_dir), "worker"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen, signum: int) -> None:
    if proc.poll() is None:
        proc.send_signal(signum)
    proc.wait(20)


async def test_a_relay_killed_after_publishing_loses_nothing_and_mails_each_guest_once(aiohttp_client, tmp_path, smtp):
    """The first worker's relay publishes the EU outbox's events but cannot mark them (a trigger in
    the EU database refuses, a real store failure) and is killed with SIGKILL. A new worker
    publishes them all again and marks them; the notifier recognises each as handled: one email
    per booking, none lost."""
    settings = msgspec.structs.replace(local_settings(tmp_path), events_in_process=False)
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    room_ids = await add_rooms(client, room(), room(), room())
    guests = [await sign_up(client) for _ in range(3)]
    for guest, room_id in zip(guests, room_ids, strict=True):
        assert (await book(client, guest, stay(room_id, 0, 1))).status == 201

    eu_db, global_db = tmp_path / "eu.db", tmp_path / "global.db"
    with sqlite3.connect(eu_db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_mark BEFORE UPDATE OF published_at ON outbox"
            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    first = start_worker(tmp_path, smtp.port, tmp_path / "first.log")
    try:
        await until(lambda: len(smtp.messages) == 3, timeout_s=30, what="the first worker's emails")
        await until(lambda: _done_claims(global_db) == 3, what="the notifier to record its three emails")
        assert "disk says no" in (tmp_path / "first.log").read_text()  # its relay failed to mark
        stop(first, signal.SIGKILL)
    finally:
        stop(first, signal.SIGKILL)
    assert _pending(eu_db) == 6  # created + confirmed per booking: published, never marked
    with sqlite3.connect(eu_db) as conn:
        conn.execute("DROP TRIGGER refuse_mark")

    second_log = tmp_path / "second.log"
    second = start_worker(tmp_path, smtp.port, second_log)
    try:
        await until(lambda: _pending(eu_db) == 0, timeout_s=30, what="the second relay to publish and mark")
        await until(
            lambda: second_log.read_text().count("handled already; acknowledged") == 3,
            what="the second worker's notifier to see the three confirmations again",
        )
    finally:
        stop(second, signal.SIGTERM)
    assert second.returncode == 0, second_log.read_text()[-3000:]
    assert len(smtp.messages) == 3
    assert sorted(m["To"] for m in smtp.messages) == sorted([await guest_email(client, g) for g in guests])


def _pending(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]


def _done_claims(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        sql = "SELECT COUNT(*) FROM processed_events WHERE consumer = 'email-notifications' AND state = 'done'"
        return conn.execute(sql).fetchone()[0]
