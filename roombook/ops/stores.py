"""Schema migrations and the demo catalogue."""

from __future__ import annotations

from roombook import bootstrap
from roombook.config import Settings
from roombook.ops.demo_catalogue import demo_rooms
from roombook.ops.demo_photos import add_demo_photos
from roombook.services.room_images import RoomImages


async def migrate(settings: Settings) -> None:
    """Migrate the global store and the regional stores of the regions `settings` serves."""
    async with bootstrap.global_store(settings) as store:
        applied = await store.migrate()
    async with bootstrap.email_directory(settings).store as directory:
        await directory.migrate()
    print(f"global: applied {applied or 'nothing (up to date)'}")
    for region in settings.regions:
        async with bootstrap.regional_store(settings, region) as regional:
            applied = await regional.migrate()
        print(f"{region}: applied {applied or 'nothing (up to date)'}")


async def seed(settings: Settings, rooms: int, *, only_if_empty: bool) -> int:
    """Add `rooms` demo rooms (none if `only_if_empty` and the catalogue has rooms); returns how many."""
    async with bootstrap.global_store(settings) as store:
        await store.migrate()
        existing = await store.room_count()
        if only_if_empty and existing:
            print(f"catalogue has {existing} rooms already: not seeding")
            return 0
        ids = await store.add_rooms(demo_rooms(rooms))
        async with bootstrap.object_store(settings) as objects:
            photos = RoomImages(catalogue=store, objects=objects, limits=bootstrap.image_limits(settings))
            added = await add_demo_photos(photos, ids)
    print(f"added {len(ids)} demo rooms (ids {ids[0]}..{ids[-1]}), {added} photos" if ids else "added no rooms")
    return len(ids)
