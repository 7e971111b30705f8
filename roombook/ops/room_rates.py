"""`roombook admin rates` and `roombook admin stay-rules`: a room's calendar from the command line.

They change the global store the way the admin API does (the same compare-and-set, the same
room.updated event into the outbox), so a running server's search and caches follow.
"""

from __future__ import annotations

import datetime as dt
import decimal

import msgspec

from roombook import bootstrap
from roombook.config import Settings
from roombook.domain.errors import UnknownRoom
from roombook.domain.rates import RateOverride, Weekday
from roombook.domain.rooms import Room, RoomPatch
from roombook.domain.stay_rules import StayRules
from roombook.services.room_rates import RateChange, change_rates

_json = msgspec.json.Encoder(decimal_format="number")


def rate_change(
    *, start: dt.date | None, end: dt.date | None, price: decimal.Decimal | None, weekdays: list[str]
) -> RateChange:
    """The change the options ask for (ValueError for a malformed one): a range with --from and
    --to, else the standing weekday prices."""
    prices: dict[Weekday, decimal.Decimal] = {}
    for item in weekdays:
        day, sep, value = item.partition("=")
        try:
            prices[Weekday(day.strip().lower())] = decimal.Decimal(value)
        except (ValueError, decimal.InvalidOperation):
            raise ValueError(f"--weekday takes DAY=PRICE, e.g. sat=150.00, not {item!r}") from None
        if not sep or not prices[Weekday(day.strip().lower())] > 0:
            raise ValueError(f"--weekday takes DAY=PRICE with a positive price, not {item!r}")
    for amount in [price, *prices.values()]:
        if amount is not None and (not amount > 0 or amount != amount.quantize(decimal.Decimal("0.01"))):
            raise ValueError(f"a price is positive with at most two decimals, not {amount}")
    if (start is None) != (end is None):
        raise ValueError("give both --from and --to, or neither")
    if start is not None and end is not None:
        if end <= start:
            raise ValueError("--to must be after --from")
        return RateChange(override=RateOverride(start=start, end=end, price=price, weekdays=prices))
    if price is not None:
        raise ValueError("--price needs --from and --to (the base price is the room's price_per_night)")
    return RateChange(standing_weekdays=prices)


async def show_or_change_rates(settings: Settings, room_id: int, change: RateChange | None) -> None:
    async with bootstrap.global_store(settings) as store:
        await store.migrate()
        room = await store.room(room_id) if change is None else await change_rates(store, room_id, change)
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    print(_rates_text(room))


async def set_stay_rules(settings: Settings, room_id: int, rules_json: str | None) -> None:
    """Print the room's stay rules, after replacing them with rules_json if given."""
    rules = None if rules_json is None else msgspec.json.decode(rules_json, type=StayRules)
    async with bootstrap.global_store(settings) as store:
        await store.migrate()
        room = (
            await store.room(room_id)
            if rules is None
            else await store.update_room(room_id, RoomPatch(stay_rules=rules))
        )
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    print(_json.encode(room.stay_rules).decode())


def _rates_text(room: Room) -> str:
    lines = [f"room {room.id}: base {room.price_per_night} {room.currency} a night"]
    for day, price in room.rates.weekdays.items():
        lines.append(f"  every {day}: {price}")
    for o in room.rates.overrides:
        weekdays = "".join(f", {day} {price}" for day, price in o.weekdays.items())
        flat = "" if o.price is None else f" {o.price}"
        lines.append(f"  {o.start} .. {o.end} (exclusive):{flat}{weekdays}")
    return "\n".join(lines)
