"""`roombook search reindex`: rebuild OpenSearch from the catalogue."""

from __future__ import annotations

from roombook import bootstrap
from roombook.config import Settings
from roombook.services.room_search import catalogue_rooms


async def reindex_search(settings: Settings) -> int:
    """Rebuild the index from the catalogue into a new index, then swap the alias; returns the rooms indexed."""
    async with bootstrap.global_store(settings) as store:
        await store.migrate()
        rooms = await catalogue_rooms(store)
    async with bootstrap.search_index(settings) as index:
        await index.reindex(rooms)
        count = await index.count()
    print(f"search: reindexed {len(rooms)} rooms; the index holds {count}")
    return len(rooms)
