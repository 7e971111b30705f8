"""The search index on OpenSearch, through opensearch-py's async client.

Searches and writes go through the alias `<alias>` (default `rooms`), which names exactly one
concrete index `<alias>-<UTC timestamp>`. `reindex` loads a new index beside the live one and
swaps the alias in one `_aliases` call, so searches never see a missing or half-filled index,
then deletes the old index. Queries are plain bool/term/range/match/geo_distance with sorts: no
scripts (osmem-server, the test server, has no scripting, and none is needed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, cast

from opensearchpy import AsyncOpenSearch, NotFoundError
from opensearchpy.helpers import BulkIndexError, async_bulk

from roombook.domain.rooms import Room
from roombook.domain.search import RoomQuery, SearchHit, SearchPage, SearchSort, haversine_km, result_window

Refresh = Literal["true", "wait_for", "false"]

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "room_id": {"type": "long"},  # the tie-breaker of every sort (_id sorts as a string)
        "title": {"type": "text", "copy_to": "text"},
        "description": {"type": "text", "copy_to": "text"},
        "city": {"type": "keyword", "copy_to": "text"},  # case-folded: filters compare exactly
        "text": {"type": "text"},  # title + description + city, what free text is matched against
        "country": {"type": "keyword"},
        "amenities": {"type": "keyword"},
        "price": {"type": "scaled_float", "scaling_factor": 100},  # exact cents, compact doubles
        "capacity": {"type": "integer"},
        "location": {"type": "geo_point"},
    },
}
BULK_CHUNK = 1_000


def room_document(room: Room) -> dict[str, Any]:
    if room.id < 1:
        raise ValueError(f"a room needs its id before it is indexed: {room.title!r}")
    loc = room.location
    return {
        "room_id": room.id,
        "title": room.title,
        "description": room.description,
        "city": loc.city.casefold(),
        "country": loc.country.upper(),
        "amenities": sorted({a.lower() for a in room.amenities}),
        "price": float(room.price_per_night),
        "capacity": room.capacity,
        "location": {"lat": loc.lat, "lon": loc.lon},
    }


def search_body(q: RoomQuery, offset: int, size: int) -> dict[str, Any]:
    """The request body answering `q`: filters in filter context (cached, unscored), text in must."""
    filters: list[dict[str, Any]] = []
    if q.city is not None:
        filters.append({"term": {"city": q.city}})
    if q.country is not None:
        filters.append({"term": {"country": q.country}})
    filters.extend({"term": {"amenities": amenity}} for amenity in q.required_amenities)
    if q.guests is not None:
        filters.append({"range": {"capacity": {"gte": q.guests}}})
    price = {op: str(v) for op, v in (("gte", q.min_price), ("lte", q.max_price)) if v is not None}
    if price:
        filters.append({"range": {"price": price}})
    point = {"lat": q.lat, "lon": q.lon} if q.has_point else None
    if q.radius_km is not None:
        filters.append({"geo_distance": {"distance": f"{q.radius_km}km", "location": point}})
    must = [{"match": {"text": {"query": q.text}}}] if q.text is not None else [{"match_all": {}}]
    return {
        "query": {"bool": {"must": must, "filter": filters}},
        "sort": [_SORTS[q.order](point), {"room_id": "asc"}],
        # from/size serves pages up to index.max_result_window (10,000; RoomQuery stops there);
        # `candidates` reads every match with search_after instead
        "from": offset,
        "size": size,
        "track_total_hits": True,
        "_source": ["location"] if point is not None else False,
    }


_SORTS = {
    SearchSort.RELEVANCE: lambda _: "_score",
    SearchSort.PRICE: lambda _: {"price": "asc"},
    SearchSort.PRICE_DESC: lambda _: {"price": "desc"},
    SearchSort.CAPACITY: lambda _: {"capacity": "asc"},
    SearchSort.CAPACITY_DESC: lambda _: {"capacity": "desc"},
    SearchSort.ID: lambda _: {"room_id": "asc"},
    SearchSort.DISTANCE: lambda point: {
        "_geo_distance": {"location": point, "order": "asc", "unit": "km", "distance_type": "arc"}
    },
}


def _action(index: str, room_id: int, version: int, doc: dict[str, Any] | None) -> dict[str, Any]:
    action = {"_index": index, "_id": str(room_id), "_version": version, "_version_type": "external"}
    if doc is None:
        return action | {"_op_type": "delete"}
    return action | {"_op_type": "index", "_source": doc}


class OpenSearchSearchIndex:
    """Rooms in OpenSearch behind one alias.

    Every write carries an external version, this process's clock in ns (strictly increasing), so
    OpenSearch keeps the newest write of a room whatever order requests arrive in; between
    processes the later timestamp wins. While a reindex runs, writes also go to the index being
    built and are replayed into it after the bulk load (with their versions, so a replay never
    undoes a newer write), and the rooms given to the reindex carry a version older than all of
    them: the swap loses no write made during a reindex.
    """

    def __init__(
        self,
        hosts: str | Sequence[str],
        *,
        alias: str = "rooms",
        refresh: Refresh = "wait_for",
        index_settings: dict[str, Any] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.alias = alias
        self._hosts = [hosts] if isinstance(hosts, str) else list(hosts)
        self._refresh = refresh  # "wait_for": a write returns once searches see it
        self._index_settings = index_settings or {}  # e.g. number_of_shards, number_of_replicas
        self._client_options = client_options or {}
        self._client: AsyncOpenSearch | None = None
        self._last_version = 0
        self._reindexing = asyncio.Lock()
        self._building: str | None = None  # the index a reindex is filling, once it exists
        self._writes_during_reindex: dict[int, tuple[int, dict[str, Any] | None]] | None = None

    async def __aenter__(self) -> OpenSearchSearchIndex:
        self._client = AsyncOpenSearch(hosts=self._hosts, **self._client_options)
        try:
            if not await self.client.indices.exists_alias(name=self.alias):
                # A fixed first name: processes starting together create one index, not several.
                first = f"{self.alias}-initial"
                body = {"settings": self._index_settings, "mappings": MAPPING}
                await self.client.indices.create(index=first, body=body, ignore=400)
                await self.client.indices.put_alias(index=first, name=self.alias)
        except BaseException:
            await self.client.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> AsyncOpenSearch:
        if self._client is None:
            raise RuntimeError("the search index is not open")
        return self._client

    async def upsert(self, rooms: Sequence[Room]) -> None:
        docs: dict[int, dict[str, Any] | None] = {room.id: room_document(room) for room in rooms}
        await self._write(docs)

    async def delete(self, room_ids: Sequence[int]) -> None:
        await self._write(dict.fromkeys(room_ids))

    async def _write(self, docs: dict[int, dict[str, Any] | None]) -> None:
        """Index each document (None: delete the room) in the live index, and in the one a reindex
        is building: apart, since the new index does not refresh until it is loaded."""
        version, building = self._next_version(), self._building
        if self._writes_during_reindex is not None:
            self._writes_during_reindex.update((room_id, (version, doc)) for room_id, doc in docs.items())
        await self._bulk([_action(self.alias, i, version, doc) for i, doc in docs.items()], refresh=self._refresh)
        if building is not None:
            await self._bulk([_action(building, i, version, doc) for i, doc in docs.items()], refresh="false")

    def _next_version(self) -> int:
        self._last_version = max(self._last_version + 1, time.time_ns())
        return self._last_version

    async def search(self, query: RoomQuery, *, candidate_limit: int | None = None) -> SearchPage:
        offset, size = result_window(query, candidate_limit)
        response = await self.client.search(index=self.alias, body=search_body(query, offset, size))
        hits = [self._hit(query, hit) for hit in response["hits"]["hits"]]
        total = response["hits"]["total"]["value"]
        if candidate_limit is None:
            return SearchPage(hits=hits, total=total, page=query.page, per_page=query.per_page)
        return SearchPage(hits=hits, total=total, page=1, per_page=candidate_limit)

    async def candidates(self, query: RoomQuery, *, page_size: int) -> AsyncIterator[list[int]]:
        """search_after on the query's sort, whose last key (room_id) makes every position unique,
        so pages go on past index.max_result_window. A relevance order is read by room_id with
        the scores and ranked here: a score is a float, and paging after one that went through
        JSON can skip its ties. A room a write moves between two pages may be left out; none is
        yielded twice."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if query.order is SearchSort.RELEVANCE:
            scored = [
                (-hit["_score"], int(hit["_id"]))
                async for hits in self._scan(query, page_size, sort=[{"room_id": "asc"}], track_scores=True)
                for hit in hits
            ]
            ranked = [room_id for _, room_id in sorted(set(scored))]
            for start in range(0, len(ranked), page_size):
                yield ranked[start : start + page_size]
            return
        seen: set[int] = set()
        async for hits in self._scan(query, page_size):
            ids = [room_id for hit in hits if (room_id := int(hit["_id"])) not in seen]
            seen.update(ids)
            if ids:
                yield ids

    async def _scan(self, query: RoomQuery, page_size: int, **body_changes: object) -> AsyncIterator[list[Any]]:
        """Every hit of the query, page by page, by search_after on the body's sort."""
        body = search_body(query, 0, page_size)
        del body["from"]
        body |= {"track_total_hits": False, "_source": False, **body_changes}
        while True:
            response = await self.client.search(index=self.alias, body=body)
            hits = response["hits"]["hits"]
            if hits:
                yield hits
            if len(hits) < page_size:
                return
            body["search_after"] = hits[-1]["sort"]

    async def count(self) -> int:
        return (await self.client.count(index=self.alias))["count"]

    async def reindex(self, rooms: Sequence[Room]) -> None:
        async with self._reindexing:
            snapshot_version = self._next_version()  # older than every write from here on
            docs = {room.id: room_document(room) for room in rooms}
            self._writes_during_reindex = {}
            new = f"{self.alias}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}"
            body = {"settings": self._index_settings | {"refresh_interval": "-1"}, "mappings": MAPPING}
            try:
                await self.client.indices.create(index=new, body=body)
                self._building = new
                load = [_action(new, room_id, snapshot_version, doc) for room_id, doc in docs.items()]
                await self._bulk(load, refresh="false")
                # Writes made before `new` existed reached only the live index: replay them all.
                replay = [_action(new, i, v, doc) for i, (v, doc) in self._writes_during_reindex.items()]
                await self._bulk(replay, refresh="false")
                await self.client.indices.put_settings(index=new, body={"refresh_interval": None})
                await self.client.indices.refresh(index=new)
                old = list(await self.client.indices.get_alias(name=self.alias))
                swap = [{"remove": {"index": index, "alias": self.alias}} for index in old]
                swap.append({"add": {"index": new, "alias": self.alias}})
                await self.client.indices.update_aliases(body={"actions": swap})  # atomic
            except BaseException:
                self._building = None  # before the delete: a write to it would recreate it
                await self.client.indices.delete(index=new, ignore=404)
                raise
            finally:
                self._building, self._writes_during_reindex = None, None
            for index in old:
                await self.client.indices.delete(index=index, ignore=404)

    async def drop(self) -> None:
        """Delete the alias and every index of it (for tests and teardown; not part of the port)."""
        try:
            indices = list(await self.client.indices.get(index=f"{self.alias}-*"))
        except NotFoundError:
            indices = []
        for index in indices:
            await self.client.indices.delete(index=index, ignore=404)

    async def _bulk(self, actions: list[dict[str, Any]], *, refresh: Refresh) -> None:
        if not actions:
            return
        _, errors = await async_bulk(
            self.client, actions, chunk_size=BULK_CHUNK, refresh=refresh, raise_on_error=False, max_retries=2
        )
        # 409: a newer version of that room is there already; 404: deleting a room that is not.
        failed = [
            item
            for error in cast("list[dict[str, Any]]", errors)  # each {op_type: item} (a count with stats_only)
            for op, item in error.items()
            if not (item.get("status") == 409 or (op == "delete" and item.get("status") == 404))
        ]
        if failed:
            raise BulkIndexError(f"{len(failed)} bulk operation(s) failed", failed)

    @staticmethod
    def _hit(query: RoomQuery, hit: dict[str, Any]) -> SearchHit:
        room_id = int(hit["_id"])
        if query.lat is None or query.lon is None:
            return SearchHit(room_id=room_id)
        location = hit["_source"]["location"]
        return SearchHit(
            room_id=room_id, distance_km=haversine_km(query.lat, query.lon, location["lat"], location["lon"])
        )
