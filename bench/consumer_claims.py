"""What the waitlist consumer spends on availability updates that free no night, side by side.

    python -m bench.consumer_claims --events 500 --rounds 3 [--mysql-dsn mysql://root@127.0.0.1:3306/test]

Every commit of a shard publishes an `availability.updated` for each room it changed, and the
waitlist consumer receives them all; only an update that frees a night can tell a watcher
anything. This delivers the same kind of updates (nights held, then booked: what a booking
makes) to the waitlist consumer as the worker registers it, which acknowledges them without a
claim (`acts_on`), and to the same handler claiming every event in `processed_events` first,
on a scratch MariaDB database, alternating the order by round. Prints µs per event for both and
the ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time

from bench.databases import DEFAULT_MYSQL_DSN, scratch_mysql
from roombook.domain.events import AvailabilityUpdated, NightState, new_event_id
from roombook.events.idempotent_handler import IdempotentHandler
from roombook.events.waitlist_notifications import CONSUMER, WaitlistNotifier, frees_nights
from roombook.storage.mail.file_mail import FileMailSender
from roombook.storage.ports import AvailabilityStore
from roombook.storage.sql.connect import availability_store

DAY = dt.date(2031, 6, 1)


def updates(n: int, room_id: int) -> list[AvailabilityUpdated]:
    now = time.time()
    return [
        AvailabilityUpdated(
            id=new_event_id(now),
            occurred_at=dt.datetime.now(dt.UTC),
            room_id=room_id,
            nights=[
                NightState(date=DAY + dt.timedelta(days=d), status=("held", "booked")[i % 2], version=i)
                for d in range(2)
            ],
        )
        for i in range(n)
    ]


async def per_event_us(handler: IdempotentHandler, events: list[AvailabilityUpdated]) -> float:
    started = time.perf_counter()
    for event in events:
        await handler(event)
    return (time.perf_counter() - started) / len(events) * 1e6


async def run(dsn: str, n: int, rounds: int) -> None:
    async with scratch_mysql(dsn, prefix="rb_claims") as scratch, availability_store(scratch) as store:
        await store.migrate()
        waitlist = WaitlistNotifier(catalogue=store, regions={}, mail=FileMailSender("/nonexistent"), sender="x@y.org")
        catalogue: AvailabilityStore = store
        ways = {
            "registered (acts_on)": IdempotentHandler(CONSUMER, waitlist, catalogue, acts_on=frees_nights),
            "claiming every event": IdempotentHandler(CONSUMER, waitlist, catalogue),
        }
        figures: dict[str, list[float]] = {name: [] for name in ways}
        for r in range(rounds):
            for name in list(ways) if r % 2 == 0 else list(reversed(ways)):
                figures[name].append(await per_event_us(ways[name], updates(n, room_id=1)))
            print(f"round {r + 1}: " + ", ".join(f"{name} {figures[name][-1]:.0f} µs" for name in ways), flush=True)
        ours, theirs = (statistics.median(figures[name]) for name in ways)
        print(
            f"median per availability update that frees no night: registered {ours:.1f} µs, "
            f"claiming every event {theirs:.0f} µs, ratio {theirs / ours:.0f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.mysql_dsn, args.events, args.rounds))


if __name__ == "__main__":
    main()
