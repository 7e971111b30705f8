"""The calendars of the rooms one shard owns, and the only code that changes a night.

Invariant: every night has at most one holder, and a hold or booking covers all of its
nights or none. A booking is a confirmed hold and keeps the hold's id.

Every method takes `now_s` (unix seconds) and returns a `Change`: the rows it rewrote, each
with its version bumped, and the rows as they were so that `undo` can roll the change back
when the store refuses to persist it.
"""

from __future__ import annotations

import datetime as dt
import enum
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable

import msgspec

from roombook.domain.errors import HoldExpired, HoldMismatch, NightsUnavailable, UnknownHold
from roombook.domain.nights import Night, NightStatus, free_night
from roombook.domain.stays import Stay

_MAX_TOMBSTONES = 100_000
_MAX_CLAIMS = 100_000  # past this many, ended claims are dropped


class HoldStatus(enum.StrEnum):
    """Where a hold (a booking keeps its hold's id) stands after a command."""

    HELD = "held"
    BOOKED = "booked"
    RELEASED = "released"  # by its holder, before it was confirmed
    CANCELLED = "cancelled"  # a booking cancelled: its nights are free
    EXPIRED = "expired"  # ran out before it was confirmed


class HoldView(msgspec.Struct, frozen=True, kw_only=True, tag="hold"):
    """What a hold or booking looks like after a command."""

    hold_id: str
    room_id: int
    status: HoldStatus
    nights: list[dt.date]
    expires_at_s: float | None = None


class Change(msgspec.Struct, kw_only=True):
    """The outcome of one command: its view, the rows written, and the rows they replaced."""

    view: HoldView
    after: list[Night] = msgspec.field(default_factory=list)
    before: list[Night] = msgspec.field(default_factory=list)
    # how each hold this change ended had ended before (None: never), so undo can put that back too
    ended_before: list[tuple[str, HoldStatus | None]] = msgspec.field(default_factory=list)
    # (room_id, date) -> index in `after`: a night rewritten within one change stays one row
    positions: dict[tuple[int, dt.date], int] = msgspec.field(default_factory=dict)


_HOLD_STATUS = {NightStatus.HELD: HoldStatus.HELD, NightStatus.BOOKED: HoldStatus.BOOKED}


class _Entry:
    """The nights one hold or booking owns right now (derived from the nights themselves)."""

    __slots__ = ("dates", "expires_at_s", "room_id", "status")

    def __init__(self, night: Night) -> None:
        self.room_id = night.room_id
        self.status = night.status
        self.expires_at_s = night.hold_expires_at_s
        self.dates: set[dt.date] = set()

    def view(self, hold_id: str) -> HoldView:
        return HoldView(
            hold_id=hold_id,
            room_id=self.room_id,
            status=_HOLD_STATUS[self.status],
            nights=sorted(self.dates),
            expires_at_s=self.expires_at_s,
        )

    def is_taken(self, now_s: float) -> bool:
        """Booked, or held and not expired yet (as `Night.is_taken` sees each of its nights)."""
        if self.status is NightStatus.BOOKED:
            return True
        return self.status is NightStatus.HELD and self.expires_at_s is not None and self.expires_at_s > now_s


class ShardCalendar:
    """All nights of the rooms one shard owns; see the module docstring for the invariant."""

    def __init__(self, nights: Iterable[Night] = ()) -> None:
        self._nights: dict[tuple[int, dt.date], Night] = {}
        self._entries: dict[str, _Entry] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._ended: OrderedDict[str, HoldStatus] = OrderedDict()
        # (room, date) -> (claim, until): advisory, in memory only (see claim_stay)
        self._claims: dict[tuple[int, dt.date], tuple[str, float]] = {}
        for night in nights:
            self._set(night)

    # -- reads -----------------------------------------------------------------------------

    def night(self, room_id: int, date: dt.date) -> Night:
        return self._nights.get((room_id, date)) or free_night(room_id, date)

    def nights_between(self, room_id: int, start: dt.date, end: dt.date, now_s: float) -> list[Night]:
        """The nights [start, end) as a guest would see them: expired holds show as available."""
        one = dt.timedelta(days=1)
        out = []
        for i in range((end - start).days):
            night = self.night(room_id, start + one * i)
            if night.status is NightStatus.HELD and not night.is_taken(now_s):
                night = msgspec.structs.replace(night, status=NightStatus.AVAILABLE, holder=None)
            out.append(night)
        return out

    def taken_nights(
        self, room_id: int, dates: Iterable[dt.date], now_s: float, *, hold_id: str | None = None
    ) -> list[dt.date]:
        """The nights among `dates` held or booked by anyone but hold_id. A night with no row is
        free, so only stored rows are looked at (no free_night built per date)."""
        nights = self._nights
        return [
            date
            for date in dates
            if (night := nights.get((room_id, date))) is not None and night.holder != hold_id and night.is_taken(now_s)
        ]

    def claim_stay(
        self, room_id: int, dates: list[dt.date], now_s: float, *, claim: str, ttl_s: float
    ) -> list[dt.date]:
        """The nights among `dates` taken (held, booked, or claimed by another claim), or, if none
        is, [] and the nights claimed for `claim` until now + ttl_s (ttl_s 0 ends its claim).

        A claim only makes other claims fail: holds never look at one, and a hold placed on a
        night ends its claim. So a claim can refuse a request early (as a hold would) but never
        decides who books; the attempt whose claim stood goes on to hold, while the attempts
        racing it are refused before they write anything."""
        taken = self.taken_nights(room_id, dates, now_s)
        claims = self._claims
        for date in dates:
            other = claims.get((room_id, date))
            if other is not None and other[0] != claim and other[1] > now_s:
                taken.append(date)
        if taken:
            return sorted(set(taken))
        if len(claims) > _MAX_CLAIMS:
            self._claims = claims = {night: c for night, c in claims.items() if c[1] > now_s}
        until = now_s + ttl_s
        for date in dates:
            claims[room_id, date] = (claim, until)
        return []

    def free_rooms(self, room_ids: Iterable[int], start: dt.date, end: dt.date, now_s: float) -> list[int]:
        """The rooms free every night [start, end), in the order given (as nights_between sees them)."""
        one = dt.timedelta(days=1)
        dates = [start + one * i for i in range((end - start).days)]
        nights = self._nights
        free = []
        for room_id in room_ids:
            for date in dates:
                night = nights.get((room_id, date))
                if night is not None and night.is_taken(now_s):
                    break
            else:
                free.append(room_id)
        return free

    def hold(self, hold_id: str) -> HoldView | None:
        entry = self._entries.get(hold_id)
        return entry.view(hold_id) if entry else None

    @property
    def row_count(self) -> int:
        return len(self._nights)

    def rows(self) -> list[Night]:
        return list(self._nights.values())

    def resize(self, keeps: Callable[[int], bool], gained: Iterable[Night]) -> None:
        """In place, for a shard resized: drop the rooms `keeps` refuses, take the gained rooms'
        nights. Cheaper than building the calendar anew from every row."""
        kept: dict[int, bool] = {}
        for key in [key for key in self._nights if not kept.setdefault(key[0], keeps(key[0]))]:
            del self._nights[key]
        self._entries = {hold_id: entry for hold_id, entry in self._entries.items() if kept.get(entry.room_id, True)}
        for night in gained:
            self._set(night)

    # -- commands --------------------------------------------------------------------------

    def place_hold(
        self, *, hold_id: str, room_id: int, stay: Stay, ttl_s: float, now_s: float, not_after_s: float | None = None
    ) -> Change:
        """Hold every night of the stay, or none. Replaying the same hold returns it unchanged.

        not_after_s: a hold not placed by then never is (HoldExpired): whoever gives the hold's
        booking up after that moment knows no later command can bring the hold back."""
        dates = stay.nights()
        entry = self._entries.get(hold_id)
        if entry is not None and entry.is_taken(now_s):
            if entry.room_id != room_id or entry.dates != set(dates):
                raise HoldMismatch(f"id {hold_id!r} already holds other nights")
            return Change(view=entry.view(hold_id))
        if not_after_s is not None and now_s > not_after_s:
            raise HoldExpired(f"hold {hold_id!r} came after its deadline")
        # The commonest command on a hot room ends here, refused.
        if taken := self.taken_nights(room_id, dates, now_s, hold_id=hold_id):
            raise NightsUnavailable(room_id, taken)
        change = Change(view=HoldView(hold_id=hold_id, room_id=room_id, status=HoldStatus.HELD, nights=dates))
        if entry is not None:  # our own expired hold ends whole, as if the sweep had already run
            self._end(hold_id, HoldStatus.EXPIRED, change)
        for date in dates:  # a stale hold on any of these nights ends whole, not night by night
            stale = self.night(room_id, date).holder
            if stale is not None and stale != hold_id and stale in self._entries:
                self._end(stale, HoldStatus.EXPIRED, change)
        expires_at_s = now_s + ttl_s
        claims = self._claims
        for date in dates:
            self._write(change, room_id, date, NightStatus.HELD, hold_id, expires_at_s)
            claims.pop((room_id, date), None)
        change.view = self._entries[hold_id].view(hold_id)
        return change

    def confirm(self, *, hold_id: str, room_id: int, now_s: float) -> Change:
        """Turn a live hold into a booking. Idempotent; an expired hold is never confirmed."""
        entry = self._entry_on(hold_id, room_id)
        if entry.status is NightStatus.HELD:
            if not entry.is_taken(now_s):
                raise HoldExpired(f"hold {hold_id!r} expired")
            change = Change(view=entry.view(hold_id))
            for date in sorted(entry.dates):
                self._write(change, room_id, date, NightStatus.BOOKED, hold_id, None)
            change.view = self._entries[hold_id].view(hold_id)
            return change
        return Change(view=entry.view(hold_id))

    def release(self, *, hold_id: str, room_id: int, now_s: float) -> Change:
        """Free the nights of a hold that was not confirmed. Idempotent; a booking stays booked."""
        entry = self._entries.get(hold_id)
        if entry is None or entry.room_id != room_id:
            return Change(view=HoldView(hold_id=hold_id, room_id=room_id, status=HoldStatus.RELEASED, nights=[]))
        if entry.status is NightStatus.BOOKED:
            return Change(view=entry.view(hold_id))
        change = Change(view=entry.view(hold_id))
        self._end(hold_id, HoldStatus.RELEASED if entry.is_taken(now_s) else HoldStatus.EXPIRED, change)
        change.view = msgspec.structs.replace(change.view, status=HoldStatus.RELEASED, expires_at_s=None)
        return change

    def move_booking(self, *, booking_id: str, room_id: int, to_room_id: int, stay: Stay, now_s: float) -> Change:
        """Move a booking of `room_id` to the nights of `stay` on `to_room_id` (the same room or
        another of this shard) in one step: its new nights are taken and those it no longer needs
        freed together, so it never has fewer nights than before nor the nights of both stays.
        Every new night not already the booking's must be free (else NightsUnavailable, changing
        nothing). Idempotent: a booking that has those nights already is left as it is."""
        dates = stay.nights()
        entry = self._entries.get(booking_id)
        if entry is None or entry.status is not NightStatus.BOOKED:
            raise UnknownHold(f"no booking {booking_id!r} on room {room_id}")
        if entry.room_id == to_room_id and entry.dates == set(dates):
            return Change(view=entry.view(booking_id))  # moved there already
        if entry.room_id != room_id:
            raise UnknownHold(f"no booking {booking_id!r} on room {room_id}")
        nights = self._nights
        taken = [
            date
            for date in dates
            if (night := nights.get((to_room_id, date))) is not None
            and night.holder != booking_id
            and night.is_taken(now_s)
        ]
        if taken:
            raise NightsUnavailable(to_room_id, taken)
        change = Change(view=entry.view(booking_id))
        for date in dates:  # a stale hold on any of the new nights ends whole
            stale = self.night(to_room_id, date).holder
            if stale is not None and stale != booking_id and stale in self._entries:
                self._end(stale, HoldStatus.EXPIRED, change)
        kept = set(dates) if to_room_id == room_id else set()
        # the nights it leaves first: a booking's nights are all on one room at every step
        for date in sorted(entry.dates - kept):
            self._write(change, room_id, date, NightStatus.AVAILABLE, None, None)
        for date in dates:
            if date not in kept or self.night(to_room_id, date).holder != booking_id:
                self._write(change, to_room_id, date, NightStatus.BOOKED, booking_id, None)
        change.view = self._entries[booking_id].view(booking_id)
        return change

    def cancel(self, *, booking_id: str, room_id: int, now_s: float) -> Change:
        """Free every night a booking (or its hold) owns. Idempotent."""
        entry = self._entries.get(booking_id)
        if entry is None or entry.room_id != room_id:
            return Change(view=HoldView(hold_id=booking_id, room_id=room_id, status=HoldStatus.CANCELLED, nights=[]))
        change = Change(view=entry.view(booking_id))
        expired = not entry.is_taken(now_s)  # a booking is taken whatever the time
        self._end(booking_id, HoldStatus.EXPIRED if expired else HoldStatus.CANCELLED, change)
        change.view = msgspec.structs.replace(change.view, status=HoldStatus.CANCELLED, expires_at_s=None)
        return change

    def expire_due(self, now_s: float) -> list[Change]:
        """Release every hold whose deadline is at or before now, earliest deadline first."""
        changes = []
        while self._deadlines and self._deadlines[0][0] <= now_s:
            deadline, hold_id = heapq.heappop(self._deadlines)
            entry = self._entries.get(hold_id)
            if entry is None or entry.status is not NightStatus.HELD or entry.expires_at_s != deadline:
                continue  # ended, confirmed or re-placed since this deadline was pushed
            change = Change(view=entry.view(hold_id))
            self._end(hold_id, HoldStatus.EXPIRED, change)
            change.view = msgspec.structs.replace(change.view, status=HoldStatus.EXPIRED, expires_at_s=None)
            changes.append(change)
        return changes

    def next_deadline_s(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    def undo(self, change: Change) -> None:
        """Put back the rows a change replaced (newest change first when undoing several)."""
        for night in reversed(change.before):
            self._set(night)
        for hold_id, how in reversed(change.ended_before):
            if how is None:
                self._ended.pop(hold_id, None)
            else:
                self._ended[hold_id] = how

    # -- internals -------------------------------------------------------------------------

    def _entry_on(self, hold_id: str, room_id: int) -> _Entry:
        entry = self._entries.get(hold_id)
        if entry is not None and entry.room_id == room_id:
            return entry
        if self._ended.get(hold_id) is HoldStatus.EXPIRED:
            raise HoldExpired(f"hold {hold_id!r} expired")
        raise UnknownHold(f"no hold {hold_id!r} on room {room_id}")

    def _end(self, hold_id: str, how: HoldStatus, change: Change) -> None:
        entry = self._entries[hold_id]
        for date in sorted(entry.dates):
            self._write(change, entry.room_id, date, NightStatus.AVAILABLE, None, None)
        change.ended_before.append((hold_id, self._ended.get(hold_id)))
        self._ended[hold_id] = how
        self._ended.move_to_end(hold_id)
        if len(self._ended) > _MAX_TOMBSTONES:
            self._ended.popitem(last=False)

    def _write(
        self,
        change: Change,
        room_id: int,
        date: dt.date,
        status: NightStatus,
        holder: str | None,
        expires_at_s: float | None,
    ) -> None:
        old = self.night(room_id, date)
        rewrite = change.positions.get((room_id, date))
        version = old.version + 1 if rewrite is None else old.version  # one bump per night per change
        new = Night(
            room_id=room_id,
            date=date,
            status=status,
            holder=holder,
            hold_expires_at_s=expires_at_s,
            version=version,
        )
        if rewrite is None:
            change.positions[room_id, date] = len(change.after)
            change.before.append(old)
            change.after.append(new)
        else:
            change.after[rewrite] = new
        self._set(new)

    def _set(self, night: Night) -> None:
        key = (night.room_id, night.date)
        old = self._nights.get(key)
        if old is not None and old.holder is not None:
            previous = self._entries[old.holder]
            previous.dates.discard(night.date)
            if not previous.dates:
                del self._entries[old.holder]
        if night.version == 0:
            self._nights.pop(key, None)
        else:
            self._nights[key] = night
        if night.holder is not None:
            entry = self._entries.get(night.holder)
            if entry is None:
                entry = self._entries[night.holder] = _Entry(night)
                entry.expires_at_s = None
            deadline = night.hold_expires_at_s  # set on every held night
            if night.status is NightStatus.HELD and deadline is not None and entry.expires_at_s != deadline:
                heapq.heappush(self._deadlines, (deadline, night.holder))
            entry.status = night.status
            entry.expires_at_s = night.hold_expires_at_s
            entry.dates.add(night.date)
