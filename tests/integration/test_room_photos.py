"""RoomImages over the real global store (SQLite and MariaDB) and the file object store: the
room's list changes by compare-and-set, so concurrent uploads all land; a failure between storing
the variants and listing the photo leaves the room as it was, and the retry lists it once."""

from __future__ import annotations

import asyncio
import decimal
import io

import pytest
from PIL import Image

from roombook.domain.errors import StoreUnavailable
from roombook.domain.events import RoomUpdated
from roombook.domain.rooms import Location, Room
from roombook.services.room_images import RoomImages
from roombook.storage.objects.file_objects import FileObjectStore


def picture(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (shade, 100, 200)).save(out, "PNG")
    return out.getvalue()


async def a_room(store) -> int:
    (room_id,) = await store.add_rooms(
        [
            Room(
                title="Loft",
                location=Location(city="Lyon", country="FR"),
                price_per_night=decimal.Decimal(90),
                capacity=2,
            )
        ]
    )
    return room_id


async def test_set_room_images_is_a_compare_and_set_that_commits_room_updated(availability_store):
    room_id = await a_room(availability_store)
    before = len(await availability_store.pending_events(1000))
    assert await availability_store.set_room_images(room_id, [], ["img:" + "a" * 32]) is True
    assert await availability_store.set_room_images(room_id, [], ["img:" + "b" * 32]) is False  # changed meanwhile
    assert (await availability_store.room(room_id)).images == ["img:" + "a" * 32]
    assert await availability_store.set_room_images(room_id + 99, [], []) is None
    events = [e for _, e in await availability_store.pending_events(1000)][before:]
    assert [(type(e), e.room_id) for e in events] == [(RoomUpdated, room_id)]


async def test_concurrent_uploads_to_one_room_are_all_listed(availability_store, tmp_path):
    room_id = await a_room(availability_store)
    async with FileObjectStore(tmp_path / "objects") as objects:
        photos = RoomImages(catalogue=availability_store, objects=objects)
        added = await asyncio.gather(*(photos.add(room_id, picture(shade)) for shade in range(0, 250, 50)))
    listed = (await availability_store.room(room_id)).images
    assert sorted(listed) == sorted(f"img:{p.id}" for p in added) and len(listed) == 5


class LosesTheListing:
    """The real store, whose next set_room_images fails as a dropped connection would."""

    def __init__(self, store) -> None:
        self._store = store
        self.fail = True

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def set_room_images(self, room_id, expected, images):
        if self.fail:
            self.fail = False
            raise StoreUnavailable("the connection dropped")
        return await self._store.set_room_images(room_id, expected, images)


async def test_a_failure_before_the_photo_is_listed_leaves_the_room_unchanged_and_the_retry_lists_it_once(
    availability_store, tmp_path
):
    room_id = await a_room(availability_store)
    flaky = LosesTheListing(availability_store)
    async with FileObjectStore(tmp_path / "objects") as objects:
        photos = RoomImages(catalogue=flaky, objects=objects)  # type: ignore[arg-type]  # the store, proxied
        with pytest.raises(StoreUnavailable):
            await photos.add(room_id, picture(10))
        assert (await availability_store.room(room_id)).images == []  # the variants are there, unlisted
        assert len(list((tmp_path / "objects").rglob("*.jpg"))) == 3
        photo = await photos.add(room_id, picture(10))
        assert await photos.add(room_id, picture(10)) == photo
    assert (await availability_store.room(room_id)).images == [f"img:{photo.id}"]
    assert len(list((tmp_path / "objects").rglob("*.jpg"))) == 3  # the same names, written again
