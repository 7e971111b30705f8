"""Which queue receives which events, shared by every EventBus adapter.

One topic per event family (`booking`, `availability`, `room`); each queue subscribes to the
topics of the types it wants, with a filter on the `type` attribute, so a consumer only ever
sees its own types:

    cache-invalidation   availability.updated, room.updated      (drop the cached views)
    search-indexing      room.updated                            (reindex the room)
    email-notifications  booking.confirmed, booking.cancelled    (the guest's emails)
    waitlist-notifications availability.updated                  (the watchers' emails)
    analytics            booking.created, booking.confirmed, booking.cancelled  (daily counts)
"""

from __future__ import annotations

from roombook.domain.events import EVENT_TYPES

CACHE_INVALIDATION = "cache-invalidation"
SEARCH_INDEXING = "search-indexing"
EMAIL_NOTIFICATIONS = "email-notifications"
WAITLIST_NOTIFICATIONS = "waitlist-notifications"
ANALYTICS = "analytics"

QUEUE_TYPES: dict[str, frozenset[str]] = {
    CACHE_INVALIDATION: frozenset({"availability.updated", "room.updated"}),
    SEARCH_INDEXING: frozenset({"room.updated"}),
    EMAIL_NOTIFICATIONS: frozenset({"booking.confirmed", "booking.cancelled"}),
    WAITLIST_NOTIFICATIONS: frozenset({"availability.updated"}),
    ANALYTICS: frozenset({"booking.created", "booking.confirmed", "booking.cancelled"}),
}
QUEUES: tuple[str, ...] = tuple(QUEUE_TYPES)
FAMILIES: tuple[str, ...] = tuple(sorted({t.partition(".")[0] for t in EVENT_TYPES}))


def family_of(event_type: str) -> str:
    return event_type.partition(".")[0]


def queues_for(event_type: str) -> list[str]:
    return [queue for queue, types in QUEUE_TYPES.items() if event_type in types]


def check_queue(queue: str) -> None:
    if queue not in QUEUE_TYPES:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
