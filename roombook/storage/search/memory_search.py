"""The embedded search index, the default: every room in this process's memory.

Text goes through an inverted index (term -> {room id: term frequency}) scored by BM25 with
Lucene's formula, so relevance orders agree with OpenSearch's. City, country and each amenity have
a posting set, and locations a grid of 1° cells, so a selective filter starts from its few rooms
and the sets are intersected in C. Rooms are also kept sorted by each price and capacity order:
ranges (price, guests) are slices of them, and the first page of a large match set is read off
the order rather than sorted out of it.

The methods never await, so each runs whole on the event loop; `reindex` builds its new index in
a worker thread while searches and writes go on against the old one.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import heapq
import math
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from roombook.domain.rooms import Room
from roombook.domain.search import RoomQuery, SearchHit, SearchPage, SearchSort, haversine_km, result_window, tokenize

_K1, _B = 1.2, 0.75  # BM25 parameters, Lucene's defaults
_KM_PER_DEGREE = math.pi * 6371.0088 / 180
_EMPTY: frozenset[int] = frozenset()


class _Doc:
    """What a search needs of one room."""

    __slots__ = ("amenities", "capacity", "city", "country", "lat", "length", "lon", "price", "room_id", "terms")

    def __init__(self, room: Room) -> None:
        if room.id < 1:
            raise ValueError(f"a room needs its id before it is indexed: {room.title!r}")
        loc = room.location
        tokens = tokenize(f"{room.title}\n{room.description}\n{loc.city}")
        self.room_id = room.id
        self.price = room.price_per_night
        self.capacity = room.capacity
        self.city = loc.city.casefold()
        self.country = loc.country.upper()
        self.amenities = frozenset(a.lower() for a in room.amenities)
        self.lat, self.lon = loc.lat, loc.lon
        self.terms = collections.Counter(tokens)
        self.length = len(tokens)

    def field_keys(self) -> Iterable[tuple[str, str]]:
        yield "city", self.city
        yield "country", self.country
        for amenity in self.amenities:
            yield "amenity", amenity

    @property
    def cell(self) -> tuple[int, int]:
        return math.floor(self.lat), math.floor(self.lon)


_ORDER_KEYS: dict[SearchSort, Callable[[_Doc], tuple[Any, int]]] = {
    SearchSort.PRICE: lambda d: (d.price, d.room_id),
    SearchSort.PRICE_DESC: lambda d: (-d.price, d.room_id),
    SearchSort.CAPACITY: lambda d: (d.capacity, d.room_id),
    SearchSort.CAPACITY_DESC: lambda d: (-d.capacity, d.room_id),
    SearchSort.ID: lambda d: (d.room_id, d.room_id),
}


class _Postings:
    """The index proper; every room in `docs` is in exactly the postings and orders its fields name."""

    def __init__(self) -> None:
        self.docs: dict[int, _Doc] = {}
        self.terms: dict[str, dict[int, int]] = {}
        self.fields: dict[tuple[str, str], set[int]] = {}
        self.cells: dict[tuple[int, int], set[int]] = {}
        self.orders: dict[SearchSort, list[int]] = {sort: [] for sort in _ORDER_KEYS}  # room ids
        self.total_length = 0
        self._keep_orders = True  # off while `build` adds rooms: it sorts once at the end

    @classmethod
    def build(cls, rooms: Sequence[Room]) -> _Postings:
        postings = cls()
        postings._keep_orders = False
        for room in rooms:
            postings.add(_Doc(room))
        for sort, key in _ORDER_KEYS.items():
            postings.orders[sort] = [doc.room_id for doc in sorted(postings.docs.values(), key=key)]
        postings._keep_orders = True
        return postings

    def add(self, doc: _Doc) -> None:
        self.remove(doc.room_id)
        room_id = doc.room_id
        self.docs[room_id] = doc
        for term, tf in doc.terms.items():
            self.terms.setdefault(term, {})[room_id] = tf
        for key in doc.field_keys():
            self.fields.setdefault(key, set()).add(room_id)
        self.cells.setdefault(doc.cell, set()).add(room_id)
        self.total_length += doc.length
        if self._keep_orders:
            for sort, order in self.orders.items():
                bisect.insort(order, room_id, key=self._order_key(sort))

    def remove(self, room_id: int) -> None:
        doc = self.docs.get(room_id)
        if doc is None:
            return
        if self._keep_orders:
            for sort, order in self.orders.items():  # before the doc goes: the order's key reads it
                del order[bisect.bisect_left(order, _ORDER_KEYS[sort](doc), key=self._order_key(sort))]
        del self.docs[room_id]
        for term in doc.terms:
            _discard(self.terms, term, room_id)
        for key in doc.field_keys():
            _discard(self.fields, key, room_id)
        _discard(self.cells, doc.cell, room_id)
        self.total_length -= doc.length

    def _order_key(self, sort: SearchSort) -> Callable[[int], tuple[Any, int]]:
        key, docs = _ORDER_KEYS[sort], self.docs
        return lambda room_id: key(docs[room_id])

    def search(self, q: RoomQuery, need: int) -> tuple[int, list[int], dict[int, float]]:
        """(total, the first `need` matching room ids in order, distances known so far)."""
        sets, check_price, check_guests = self._posting_sets(q)
        matched: Collection[int] | None = None
        if sets:
            sets.sort(key=len)
            matched = sets[0].intersection(*sets[1:]) if len(sets) > 1 else sets[0]
        scores: dict[int, float] = {}
        if q.text is not None:
            scores = self._scores(tokenize(q.text), matched)
            matched = scores.keys()
        distances: dict[int, float] = {}
        by_distance = q.radius_km is not None or q.order is SearchSort.DISTANCE
        if check_price or check_guests or by_distance:
            matched = self._checked(q, self.docs if matched is None else matched, check_price, check_guests, distances)
        total = len(self.docs) if matched is None else len(matched)
        match q.order:
            case SearchSort.RELEVANCE:
                best = heapq.nsmallest(need, ((-scores[room_id], room_id) for room_id in matched or ()))
                return total, [room_id for _, room_id in best], distances
            case SearchSort.DISTANCE:
                nearest = heapq.nsmallest(need, ((distances[room_id], room_id) for room_id in matched or ()))
                return total, [room_id for _, room_id in nearest], distances
            case sort:
                return total, self._first_in_order(sort, matched, need), distances

    def _posting_sets(self, q: RoomQuery) -> tuple[list[set[int] | frozenset[int]], bool, bool]:
        """The sets every match is in, and whether price and guests still need checking one by one."""
        sets: list[set[int] | frozenset[int]] = []
        if q.city is not None:
            sets.append(self.fields.get(("city", q.city), _EMPTY))
        if q.country is not None:
            sets.append(self.fields.get(("country", q.country), _EMPTY))
        sets.extend(self.fields.get(("amenity", amenity), _EMPTY) for amenity in q.required_amenities)
        if q.radius_km is not None and q.lat is not None and q.lon is not None:
            sets.append(self._near(q.lat, q.lon, q.radius_km))
        check_price = q.min_price is not None or q.max_price is not None
        check_guests = q.guests is not None
        if not sets and check_guests:  # nothing narrower: the rooms large enough, sliced off an order
            order = self.orders[SearchSort.CAPACITY]
            sets.append(
                set(order[bisect.bisect_left(order, (q.guests, 0), key=self._order_key(SearchSort.CAPACITY)) :])
            )
            check_guests = False
        elif not sets and check_price:
            order, key = self.orders[SearchSort.PRICE], self._order_key(SearchSort.PRICE)
            start = 0 if q.min_price is None else bisect.bisect_left(order, (q.min_price, 0), key=key)
            end = len(order) if q.max_price is None else bisect.bisect_right(order, (q.max_price, math.inf), key=key)
            sets.append(set(order[start:end]))
            check_price = False
        return sets, check_price, check_guests

    def _checked(
        self, q: RoomQuery, ids: Iterable[int], check_price: bool, check_guests: bool, distances: dict[int, float]
    ) -> list[int]:
        """The ids passing the conditions no posting set answered, recording distances on the way."""
        docs, kept = self.docs, []
        low, high, radius = q.min_price, q.max_price, q.radius_km
        guests = q.guests if check_guests else None
        point = None  # where distances are measured from, when they are needed (they come with one)
        if q.lat is not None and q.lon is not None and (radius is not None or q.order is SearchSort.DISTANCE):
            point = (q.lat, q.lon)
        for room_id in ids:
            doc = docs[room_id]
            if guests is not None and doc.capacity < guests:
                continue
            if check_price and ((low is not None and doc.price < low) or (high is not None and doc.price > high)):
                continue
            if point is not None:
                km = haversine_km(*point, doc.lat, doc.lon)
                if radius is not None and km > radius:
                    continue
                distances[room_id] = km
            kept.append(room_id)
        return kept

    def _first_in_order(self, sort: SearchSort, matched: Collection[int] | None, need: int) -> list[int]:
        order = self.orders[sort]
        if matched is None:
            return order[:need]
        # walking the order meets `need` matches soon, or every match is needed (a dated search)
        if need >= len(matched) or need * len(order) < len(matched) ** 2:
            members = matched if isinstance(matched, AbstractSet) else set(matched)
            first: list[int] = []
            for room_id in order:
                if room_id in members:
                    first.append(room_id)
                    if len(first) == need:
                        break
            return first
        return heapq.nsmallest(need, matched, key=self._order_key(sort))

    def _near(self, lat: float, lon: float, radius_km: float) -> set[int]:
        """Rooms in the cells the circle's bounding box touches (a superset of those inside)."""
        dlat = radius_km / _KM_PER_DEGREE
        south, north = math.floor(lat - dlat), math.floor(lat + dlat)
        widest = math.cos(math.radians(min(90.0, max(abs(lat - dlat), abs(lat + dlat)))))
        dlon = radius_km / (_KM_PER_DEGREE * widest) if widest > 1e-9 else 360.0
        west = math.floor(lon - dlon)
        span = math.floor(lon + dlon) - west  # cells east of `west`, wrapping at the antimeridian
        near: set[int] = set()
        for (cell_lat, cell_lon), ids in self.cells.items():
            if south <= cell_lat <= north and (span >= 359 or (cell_lon - west) % 360 <= span):
                near |= ids
        return near

    def _scores(self, terms: list[str], candidates: Collection[int] | None) -> dict[int, float]:
        """BM25 of every candidate containing any of the terms (each occurrence in the query counts)."""
        n, docs = len(self.docs), self.docs
        mean_length = self.total_length / n if n else 1.0
        norms: dict[int, float] = {}  # by document length: few distinct values
        scores: dict[int, float] = {}
        for term in terms:
            postings = self.terms.get(term)
            if not postings:
                continue
            idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
            if candidates is None:
                pairs: Iterable[tuple[int, int]] = postings.items()
            elif len(candidates) < len(postings):
                pairs = ((room_id, postings[room_id]) for room_id in candidates if room_id in postings)
            else:
                pairs = ((room_id, tf) for room_id, tf in postings.items() if room_id in candidates)
            get = scores.get
            for room_id, tf in pairs:
                length = docs[room_id].length
                norm = norms.get(length)
                if norm is None:
                    norm = norms[length] = _K1 * (1 - _B + _B * length / mean_length)
                scores[room_id] = get(room_id, 0.0) + idf * tf / (tf + norm)
        return scores


def _discard(postings: dict[Any, Any], key: object, room_id: int) -> None:
    """Take room_id out of postings[key] (a set or a dict), and the key out when it empties."""
    members = postings[key]
    if isinstance(members, set):
        members.discard(room_id)
    else:
        del members[room_id]
    if not members:
        del postings[key]


class MemorySearchIndex:
    """Rooms searchable in this process; a search sees every write that returned before it."""

    def __init__(self) -> None:
        self._postings = _Postings()
        self._reindexing = asyncio.Lock()
        self._changes_during_reindex: dict[int, Room | None] | None = None

    async def __aenter__(self) -> MemorySearchIndex:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def upsert(self, rooms: Sequence[Room]) -> None:
        docs = [_Doc(room) for room in rooms]  # every id checked before anything changes
        for room, doc in zip(rooms, docs, strict=True):
            self._postings.add(doc)
            if self._changes_during_reindex is not None:
                self._changes_during_reindex[room.id] = room

    async def delete(self, room_ids: Sequence[int]) -> None:
        for room_id in room_ids:
            self._postings.remove(room_id)
            if self._changes_during_reindex is not None:
                self._changes_during_reindex[room_id] = None

    async def search(self, query: RoomQuery, *, candidate_limit: int | None = None) -> SearchPage:
        offset, size = result_window(query, candidate_limit)
        total, first, distances = self._postings.search(query, offset + size)
        hits = [SearchHit(room_id=i, distance_km=self._distance(query, i, distances)) for i in first[offset:]]
        if candidate_limit is None:
            return SearchPage(hits=hits, total=total, page=query.page, per_page=query.per_page)
        return SearchPage(hits=hits, total=total, page=1, per_page=candidate_limit)

    async def candidates(self, query: RoomQuery, *, page_size: int) -> AsyncIterator[list[int]]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        _, ordered, _ = self._postings.search(query, len(self._postings.docs))  # one snapshot: no await in it
        for start in range(0, len(ordered), page_size):
            yield ordered[start : start + page_size]

    def _distance(self, q: RoomQuery, room_id: int, known: dict[int, float]) -> float | None:
        if q.lat is None or q.lon is None:
            return None
        if room_id in known:
            return known[room_id]
        doc = self._postings.docs[room_id]
        return haversine_km(q.lat, q.lon, doc.lat, doc.lon)

    async def count(self) -> int:
        return len(self._postings.docs)

    async def reindex(self, rooms: Sequence[Room]) -> None:
        async with self._reindexing:
            self._changes_during_reindex = {}
            try:
                fresh = await asyncio.to_thread(_Postings.build, list(rooms))
                # Writes made while the thread ran are newer than `rooms`: replay them, then swap,
                # with no await in between so no write can slip past.
                for room_id, room in self._changes_during_reindex.items():
                    if room is None:
                        fresh.remove(room_id)
                    else:
                        fresh.add(_Doc(room))
                self._postings = fresh
            finally:
                self._changes_during_reindex = None
