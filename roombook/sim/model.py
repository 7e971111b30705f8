"""The sequential model of what guests were told, and the invariants checked against it.

Every hold the workload places gets a record: its nights, what it was last acknowledged as
(held with an expiry, booked, released, cancelled, refused) and whether a command on it is in
flight (then the store may show either side of that command). From that model:
- an acknowledged booking, with no cancel sent, is booked by its hold in the store, every night;
- an acknowledged hold, with nothing sent since and before its expiry, is held by it in the store;
- so no night is held or booked by two acknowledged holds at once (a double booking breaks one);
- a calendar read shows those nights as the model says;
- after an acknowledged release or cancel (or a refusal) the hold never books a night again, and
  once the run has quiesced none of its nights is taken;
- once quiesced: every command was answered, the newest owner of each shard serves, holds the
  store's epoch, and its memory equals the store row for row.
Checks record a Violation and never raise: they run inside the store's commit, product code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import msgspec

from roombook.domain.nights import Night, NightStatus

Key = tuple[int, dt.date]


class Violation(msgspec.Struct, frozen=True):
    at_s: float
    what: str


class HoldRecord:
    """One attempt's hold, as its guest (or the reconciler) knows it."""

    __slots__ = ("by_guest", "expires_at_s", "hold_id", "in_flight", "nights", "room_id", "sends", "state")

    def __init__(self, hold_id: str, room_id: int, nights: list[dt.date]) -> None:
        self.hold_id = hold_id
        self.room_id = room_id
        self.nights = nights
        self.state = "placing"  # placing|held|booked|released|cancelled|refused|expired|abandoned
        self.in_flight: str | None = "place"  # the command sent and not answered yet
        self.expires_at_s = 0.0
        self.by_guest = True  # False once the reconciler settled it (a stray place may still land)
        self.sends = 0  # commands sent on this hold so far


class Model:
    def __init__(self, rows: dict[Key, Night], clock: Callable[[], float]) -> None:
        self.records: dict[str, HoldRecord] = {}
        self.violations: list[Violation] = []
        self.violated = asyncio.Event()
        self._rows = rows
        self._clock = clock

    def violate(self, what: str) -> None:
        if len(self.violations) < 20 and all(v.what != what for v in self.violations):
            self.violations.append(Violation(self._clock(), what))
        self.violated.set()

    def check_double_booking(self, booked: HoldRecord) -> None:
        """A booking just acknowledged shares no night with another acknowledged, uncancelled one."""
        for record in self.records.values():
            if record is booked or record.room_id != booked.room_id or record.state != "booked":
                continue
            if record.in_flight != "cancel" and (shared := set(record.nights) & set(booked.nights)):
                self.violate(f"double booking: {booked.hold_id} and {record.hold_id} both booked {min(shared)}")

    # -- continuous ----------------------------------------------------------------------------

    def check_store(self) -> None:
        """After every commit: what was acknowledged is what the store holds."""
        now_s = self._clock()
        for record in self.records.values():
            if record.state == "booked" and record.in_flight != "cancel":
                self._expect(record, (NightStatus.BOOKED,), "acknowledged booking")
            elif record.state == "held" and now_s < record.expires_at_s and record.in_flight in (None, "confirm"):
                allowed = (NightStatus.HELD,) if record.in_flight is None else (NightStatus.HELD, NightStatus.BOOKED)
                self._expect(record, allowed, "acknowledged live hold")
            elif record.state in ("released", "cancelled", "refused", "expired"):
                for date in record.nights:
                    night = self._rows.get((record.room_id, date))
                    if night is not None and night.holder == record.hold_id and night.status is NightStatus.BOOKED:
                        self.violate(f"{record.hold_id} was answered {record.state} but books {record.room_id}/{date}")

    def check_read(self, room_id: int, nights: list[tuple[dt.date, str]], sent_s: float, acked: dict[str, int]) -> None:
        """A calendar read against the holds acknowledged before it was sent (`acked`: hold id ->
        commands sent on it then) and not touched since: booked nights read booked, live held
        nights read held."""
        now_s = self._clock()
        shown = dict(nights)
        for hold_id, sends in acked.items():
            record = self.records[hold_id]
            if record.room_id != room_id or record.sends != sends:
                continue
            if record.state == "booked":
                want = "booked"
            elif record.state == "held" and now_s < record.expires_at_s:
                want = "held"
            else:
                continue
            for date in record.nights:
                if date in shown and shown[date] != want:
                    self.violate(f"read of room {room_id} sent at {sent_s:.3f}: {date} {shown[date]}, {hold_id} {want}")

    def settled(self, room_id: int) -> dict[str, int]:
        """The room's holds whose last answer stands (a read sent now must agree with them)."""
        return {
            hold_id: record.sends
            for hold_id, record in self.records.items()
            if record.room_id == room_id and record.in_flight is None and record.state in ("held", "booked")
        }

    def _expect(self, record: HoldRecord, allowed: tuple[NightStatus, ...], what: str) -> None:
        for date in record.nights:
            night = self._rows.get((record.room_id, date))
            if night is None or night.holder != record.hold_id or night.status not in allowed:
                shown = "no row" if night is None else f"{night.status.value} by {night.holder} v{night.version}"
                self.violate(f"{what} {record.hold_id}: the store has {record.room_id}/{date} {shown}")

    # -- at the end ----------------------------------------------------------------------------

    def check_quiesced(self) -> None:
        now_s = self._clock()
        self.check_store()
        for record in self.records.values():
            if record.in_flight is not None or record.state in ("placing", "abandoned"):
                self.violate(f"{record.hold_id}: {record.in_flight or record.state} never settled")
            elif record.state in ("released", "cancelled", "refused", "expired") and record.by_guest:
                for date in record.nights:
                    night = self._rows.get((record.room_id, date))
                    if night is not None and night.holder == record.hold_id and night.is_taken(now_s):
                        self.violate(f"{record.hold_id} was answered {record.state} but still takes {date}")
