"""The waitlist's emails over the real parts: SQLite stores, .eml files, events as a shard writes them."""

from __future__ import annotations

import datetime as dt
import decimal
import email
import email.policy
from pathlib import Path

import msgspec
import pytest

from roombook.domain.accounts import NewUser, Region
from roombook.domain.events import NightState, availability_updated, room_updated
from roombook.domain.nights import Night, NightStatus
from roombook.domain.rooms import Location, Room
from roombook.domain.waitlist import RoomWatch
from roombook.events.waitlist_notifications import WaitlistNotifier
from roombook.storage.mail.file_mail import FileMailSender
from roombook.storage.sql.connect import availability_store
from roombook.storage.sql.sqlite_regional import SqliteRegionalStore

START = dt.date(2031, 7, 1)
NOW = dt.datetime(2031, 6, 1, tzinfo=dt.UTC)


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


class SendOrder(FileMailSender):
    """The file mail adapter, noting the order of its sends."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.sent: list[str] = []

    async def send(self, message, *, key: str) -> None:
        await super().send(message, key=key)
        self.sent.append(key)


class Parts:
    def __init__(self, store, regional, mail_dir: Path, room_id: int) -> None:
        self.store, self.regional, self.mail_dir, self.room_id = store, regional, mail_dir, room_id
        self.mail = SendOrder(mail_dir)
        self.notifier = WaitlistNotifier(
            catalogue=store, regions={Region.EU: regional}, mail=self.mail, sender="rb@example.org"
        )

    async def watcher(self, name: str, first: int, last: int) -> tuple[str, RoomWatch]:
        user = await self.regional.create_user(
            NewUser(email=f"{name}@example.org", password_hash="x", first_name=name, region=Region.EU, created_at=NOW)
        )
        watch = await self.store.add_watch(
            RoomWatch(
                room_id=self.room_id,
                check_in=day(first),
                check_out=day(last),
                user_id=user.id,
                region="eu",
                created_at=NOW,
            )
        )
        return user.email, watch

    async def book(self, first: int, last: int, holder: str = "bk_1", version: int = 1) -> None:
        nights = [
            Night(room_id=self.room_id, date=day(n), status=NightStatus.BOOKED, holder=holder, version=version)
            for n in range(first, last)
        ]
        await self.store.write_nights(0, await self.store.acquire_shard(0, "test"), nights)

    async def free(self, first: int, last: int, version: int = 2):
        nights = [
            Night(room_id=self.room_id, date=day(n), status=NightStatus.AVAILABLE, version=version)
            for n in range(first, last)
        ]
        await self.store.write_nights(0, await self.store.acquire_shard(0, "test"), nights)
        states = [NightState(date=n.date, status="available", version=version) for n in nights]
        return availability_updated(self.room_id, states, now_s=NOW.timestamp())

    def mails(self) -> list[email.message.EmailMessage]:
        found = [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in self.mail_dir.glob("*.eml")
        ]
        return sorted(found, key=lambda m: int(m["Message-ID"].split("-")[1].split("@")[0]))


@pytest.fixture
async def parts(tmp_path):
    async with (
        availability_store(f"sqlite:///{tmp_path / 'global.db'}") as store,
        SqliteRegionalStore(str(tmp_path / "eu.db"), Region.EU) as regional,
    ):
        await store.migrate()
        await regional.migrate()
        room = Room(
            title="Attic", location=Location(city="Gent", country="BE"), price_per_night=decimal.Decimal(90), capacity=2
        )
        (room_id,) = await store.add_rooms([room])
        yield Parts(store, regional, tmp_path / "mail", room_id)


async def test_a_cancellation_tells_the_watchers_of_those_nights_in_the_order_they_asked_once(parts):
    await parts.book(0, 3)
    ada, _ = await parts.watcher("ada", 1, 3)
    bob, _ = await parts.watcher("bob", 0, 2)
    await parts.watcher("cy", 5, 6)  # other nights: not told
    freed = await parts.free(0, 3)

    await parts.notifier(freed)
    await parts.notifier(freed)  # delivered again: nobody is told twice

    mails = parts.mails()
    assert [m["To"] for m in mails] == [ada, bob]
    assert "are free" in mails[0]["Subject"] and day(1).isoformat() in mails[0].get_content()
    assert await parts.store.watches_of(parts.room_id, day(0), day(3)) == []  # both done
    assert [w.check_in for w in await parts.store.watches_of(parts.room_id, day(0), day(9))] == [day(5)]


async def test_a_watch_is_told_only_once_all_of_its_nights_are_free(parts):
    await parts.book(0, 2, holder="bk_1")
    await parts.book(2, 4, holder="bk_2")
    await parts.watcher("ada", 1, 3)

    await parts.notifier(await parts.free(0, 2))  # night 2 is still bk_2's
    assert parts.mails() == []
    await parts.notifier(await parts.free(2, 4))
    assert len(parts.mails()) == 1


async def test_events_that_free_nothing_tell_nobody(parts):
    await parts.watcher("ada", 1, 3)
    held = availability_updated(
        parts.room_id, [NightState(date=day(1), status="held", version=1)], now_s=NOW.timestamp()
    )

    await parts.notifier(held)
    await parts.notifier(room_updated(parts.room_id, now_s=NOW.timestamp()))

    assert parts.mails() == []


async def test_asking_again_for_the_same_nights_answers_the_same_watch(parts):
    _, first = await parts.watcher("ada", 1, 3)
    again = await parts.store.add_watch(msgspec.structs.replace(first, id=0))
    assert again == first
