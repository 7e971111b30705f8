"""ShardCalendar against a reference model too simple to be wrong, over random command sequences.

The model is a dict (room, night) -> Slot(owner, status, expiry) plus how each ended hold ended.
Its rules read straight from the spec: a night is taken if booked or held past now; a hold covers
all its nights or none; a hold past its expiry is dead whether or not the sweep has run; a night's
version counts the changes that altered it. Undo restores the state before the last command, and a
rebuilt calendar forgets how ended holds ended (rows keep no tombstones).
"""

import dataclasses
import datetime as dt

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from roombook.domain.calendar import ShardCalendar
from roombook.domain.errors import NightsUnavailable, RoombookError
from roombook.domain.nights import Night, NightStatus
from roombook.domain.stays import Stay

ROOMS = (1, 2)
FIRST_NIGHT = dt.date(2025, 6, 1)
WINDOW_NIGHTS = 5
HOLD_IDS = ("h0", "h1", "h2", "h3")
TTLS_S = (10.0, 30.0, 60.0)
CLOCK_STEPS_S = (0.0, 0.5, 5.0, 10.0, 20.0, 30.0, 60.0)

HELD, BOOKED = NightStatus.HELD, NightStatus.BOOKED
Key = tuple[int, dt.date]


@dataclasses.dataclass(frozen=True)
class Slot:
    owner: str
    status: NightStatus
    expires_at_s: float | None


def alive(slot: Slot, now_s: float) -> bool:
    return slot.status is BOOKED or slot.expires_at_s > now_s


@dataclasses.dataclass
class ReferenceCalendar:
    slots: dict[Key, Slot] = dataclasses.field(default_factory=dict)
    versions: dict[Key, int] = dataclasses.field(default_factory=dict)
    ended: dict[str, str] = dataclasses.field(default_factory=dict)

    def copy(self) -> "ReferenceCalendar":
        return ReferenceCalendar(dict(self.slots), dict(self.versions), dict(self.ended))

    def keys_of(self, hold_id: str) -> set[Key]:
        return {key for key, slot in self.slots.items() if slot.owner == hold_id}

    def hold_on(self, hold_id: str, room_id: int) -> Slot | None:
        """Any slot of the hold if it lives on that room (all its slots agree on status and expiry)."""
        keys = self.keys_of(hold_id)
        return self.slots[min(keys)] if keys and min(keys)[0] == room_id else None

    def end(self, hold_id: str, how: str) -> None:
        for key in self.keys_of(hold_id):
            del self.slots[key]
        self.ended[hold_id] = how

    def place_hold(self, hold_id: str, room_id: int, nights: list[dt.date], ttl_s: float, now_s: float):
        keys = self.keys_of(hold_id)
        if keys and alive(self.slots[min(keys)], now_s):
            return "ok" if keys == {(room_id, d) for d in nights} else "HoldMismatch"
        taken = [d for d in nights if (room_id, d) in self.slots and alive(self.slots[room_id, d], now_s)]
        if taken:
            return ("NightsUnavailable", room_id, taken)
        stale = {self.slots[room_id, d].owner for d in nights if (room_id, d) in self.slots}
        for owner in stale | ({hold_id} if keys else set()):
            self.end(owner, "expired")
        for d in nights:
            self.slots[room_id, d] = Slot(hold_id, HELD, now_s + ttl_s)
        return "ok"

    def confirm(self, hold_id: str, room_id: int, now_s: float):
        slot = self.hold_on(hold_id, room_id)
        if slot is None:
            return "HoldExpired" if self.ended.get(hold_id) == "expired" else "UnknownHold"
        if slot.status is HELD:
            if not alive(slot, now_s):
                return "HoldExpired"
            for key in self.keys_of(hold_id):
                self.slots[key] = Slot(hold_id, BOOKED, None)
        return "ok"

    def release(self, hold_id: str, room_id: int, now_s: float):
        slot = self.hold_on(hold_id, room_id)
        if slot is not None and slot.status is HELD:
            self.end(hold_id, "released" if alive(slot, now_s) else "expired")
        return "ok"

    def cancel(self, hold_id: str, room_id: int, now_s: float):
        slot = self.hold_on(hold_id, room_id)
        if slot is not None:
            self.end(hold_id, "cancelled" if alive(slot, now_s) else "expired")
        return "ok"

    def expire_due(self, now_s: float) -> list[str]:
        due = sorted({(s.expires_at_s, s.owner) for s in self.slots.values() if s.status is HELD})
        due = [owner for expires_at_s, owner in due if expires_at_s <= now_s]
        for owner in due:
            self.end(owner, "expired")
        return due

    def count_changes(self, before: dict[Key, Slot]) -> set[Key]:
        changed = {key for key in before.keys() | self.slots.keys() if before.get(key) != self.slots.get(key)}
        for key in changed:
            self.versions[key] = self.versions.get(key, 0) + 1
        return changed


def outcome(command):
    """What a command did, in the model's terms: "ok", an error name, or the nights it found taken."""
    try:
        return "ok", command()
    except RoombookError as error:
        if isinstance(error, NightsUnavailable):
            return ("NightsUnavailable", error.room_id, error.nights), None
        return type(error).__name__, None


def night(i: int) -> dt.date:
    return FIRST_NIGHT + dt.timedelta(days=i)


class CalendarAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.calendar = ShardCalendar()
        self.model = ReferenceCalendar()
        self.now_s = 1_000.0
        self.last_changes = []
        self.model_before_last = self.model.copy()
        self.highest_versions: dict[Key, int] = {}
        self.undone = False

    # -- driving both ----------------------------------------------------------------------

    def run(self, command, model_command) -> None:
        """Run a command on both and check they agree on the result and on the rows written."""
        model_before = self.model.copy()
        result, changes = outcome(command)
        expected = model_command(self.model)
        changed = self.model.count_changes(model_before.slots)
        if isinstance(expected, list):  # expire_due: the holds ended, in deadline order
            assert [change.view.hold_id for change in changes] == expected
        else:
            assert result == expected
            changes = [changes] if changes is not None else []
        written = [row for change in changes for row in change.after]
        assert sorted((row.room_id, row.date) for row in written) == sorted(changed)
        for row in written:
            assert row == self.calendar.night(row.room_id, row.date)
        for change in changes:
            for old, new in zip(change.before, change.after, strict=True):
                assert (old.room_id, old.date, old.version + 1) == (new.room_id, new.date, new.version)
        self.last_changes = changes
        self.model_before_last = model_before
        self.undone = False

    @rule(
        hold_id=st.sampled_from(HOLD_IDS),
        room_id=st.sampled_from(ROOMS),
        first=st.integers(0, WINDOW_NIGHTS - 1),
        nights=st.integers(1, 3),
        ttl_s=st.sampled_from(TTLS_S),
    )
    def place_hold(self, hold_id, room_id, first, nights, ttl_s):
        stay = Stay(check_in=night(first), check_out=night(min(first + nights, WINDOW_NIGHTS)))
        now_s = self.now_s
        self.run(
            lambda: self.calendar.place_hold(hold_id=hold_id, room_id=room_id, stay=stay, ttl_s=ttl_s, now_s=now_s),
            lambda model: model.place_hold(hold_id, room_id, stay.nights(), ttl_s, now_s),
        )

    @rule(hold_id=st.sampled_from(HOLD_IDS), room_id=st.sampled_from(ROOMS))
    def confirm(self, hold_id, room_id):
        self.run(
            lambda: self.calendar.confirm(hold_id=hold_id, room_id=room_id, now_s=self.now_s),
            lambda model: model.confirm(hold_id, room_id, self.now_s),
        )

    @rule(hold_id=st.sampled_from(HOLD_IDS), room_id=st.sampled_from(ROOMS))
    def release(self, hold_id, room_id):
        self.run(
            lambda: self.calendar.release(hold_id=hold_id, room_id=room_id, now_s=self.now_s),
            lambda model: model.release(hold_id, room_id, self.now_s),
        )

    @rule(hold_id=st.sampled_from(HOLD_IDS), room_id=st.sampled_from(ROOMS))
    def cancel(self, hold_id, room_id):
        self.run(
            lambda: self.calendar.cancel(booking_id=hold_id, room_id=room_id, now_s=self.now_s),
            lambda model: model.cancel(hold_id, room_id, self.now_s),
        )

    @rule()
    def expire_due(self):
        self.run(lambda: self.calendar.expire_due(self.now_s), lambda model: model.expire_due(self.now_s))

    @rule(step_s=st.sampled_from(CLOCK_STEPS_S))
    def let_time_pass(self, step_s):
        self.now_s += step_s

    @precondition(lambda self: self.last_changes)
    @rule()
    def undo_last_command(self):
        for change in reversed(self.last_changes):
            self.calendar.undo(change)
        self.model = self.model_before_last
        self.last_changes = []
        self.undone = True

    @rule()
    def rebuild_from_rows(self):
        self.calendar = ShardCalendar(self.calendar.rows())
        self.model.ended.clear()
        self.last_changes = []

    # -- what must always hold -------------------------------------------------------------

    @invariant()
    def nights_match_the_model(self):
        for room_id in ROOMS:
            for i in range(WINDOW_NIGHTS):
                key = (room_id, night(i))
                slot = self.model.slots.get(key)
                assert self.calendar.night(*key) == Night(
                    room_id=room_id,
                    date=night(i),
                    status=slot.status if slot else NightStatus.AVAILABLE,
                    holder=slot.owner if slot else None,
                    hold_expires_at_s=slot.expires_at_s if slot else None,
                    version=self.model.versions.get(key, 0),
                )
        assert all(night.version > 0 for night in self.calendar.rows())

    @invariant()
    def holds_match_the_model_and_no_night_has_two_owners(self):
        owned: set[Key] = set()
        for hold_id in HOLD_IDS:
            view = self.calendar.hold(hold_id)
            keys = self.model.keys_of(hold_id)
            if not keys:
                assert view is None
                continue
            slot = self.model.slots[min(keys)]
            assert {(view.room_id, night) for night in view.nights} == keys
            assert view.nights == sorted(view.nights)
            assert (view.status, view.expires_at_s) == (slot.status.value, slot.expires_at_s)
            assert not owned & keys
            owned |= keys

    @invariant()
    def guests_see_a_night_as_available_unless_it_is_taken(self):
        for room_id in ROOMS:
            seen = self.calendar.nights_between(room_id, night(0), night(WINDOW_NIGHTS), self.now_s)
            slots = [self.model.slots.get((room_id, night(i))) for i in range(WINDOW_NIGHTS)]
            assert [n.status for n in seen] == [
                slot.status if slot and alive(slot, self.now_s) else NightStatus.AVAILABLE for slot in slots
            ]

    @invariant()
    def versions_only_grow_except_by_undo(self):
        versions = {(night.room_id, night.date): night.version for night in self.calendar.rows()}
        if not self.undone:
            for key, highest in self.highest_versions.items():
                assert versions.get(key, 0) >= highest
        self.highest_versions = versions

    @invariant()
    def every_held_hold_has_a_wake_up_no_later_than_its_deadline(self):
        deadlines = [slot.expires_at_s for slot in self.model.slots.values() if slot.status is HELD]
        if deadlines:
            assert self.calendar.next_deadline_s() is not None
            assert self.calendar.next_deadline_s() <= min(deadlines)


CalendarAgainstModel.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None, database=None
)
test_calendar_agrees_with_the_reference_model = CalendarAgainstModel.TestCase
