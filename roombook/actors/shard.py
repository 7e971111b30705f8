"""The room-shard: sole writer of the nights of the rooms the ring places on one shard.

Invariant: commands change the calendar one at a time, in arrival order, in one task (`_run`),
and a reply that reports a change (or a read) leaves only once every row changed by that command,
and by every command before it, is committed to the store. A refusal (a Failure: nights taken,
hold expired, ...) changes nothing, so to a caller that listens (apply's `early`: the direct socket
and the in-process runtime do) it leaves as soon as its command has run, while the batch it ran
in is still being committed: at worst it was caused by a change whose commit then fails, and the
caller's retry finds the nights free, which costs a retry and never a double booking. A stay
check's answer (CheckStay) leaves early too, free or not: it only advises the booking saga, whose
hold decides.
Callers may be many concurrent coroutines (a Ray async actor runs up to 1000 calls at once,
interleaved at each `await`): they only enqueue and wait.

Group commit: the loop takes everything queued (up to `max_batch` commands), applies it to the
calendar, writes the changed rows (with one availability.updated event per room touched, into
the store's outbox) in one store transaction, then replies. While that transaction
runs, new commands queue up and form the next batch. A batch never changes one night twice (a
command that would is cut off into the next batch), so each row write is one version step.

A failed write is not a refused one: its COMMIT may have reached the store with only the answer
lost. So the shard never guesses. It renews its lease (a new epoch, which waits for and then fences
any write of its own still in flight), reloads its rooms from the store, and runs the batch's
commands again on what the store holds: every command is idempotent by hold id, so one that did
commit answers as it did, and one that did not runs now. Commands wait in the queue meanwhile; a
store that stays down makes the shard refuse them (as outcome_unknown where a command's batch may
have committed) until a reload succeeds. A fenced write (a newer owner took the shard) undoes the
batch in memory, fails its commands (shard_fenced: nothing of them ran), and this RoomShard stops
serving for good; the actor around it decides whether to start a new one (see ray_runtime).

Leases: with lease_s > 0 the owner promises the store to renew its lease within lease_s (every
commit does; an idle shard sends a heartbeat every lease_s/3), and never takes a lease another
deployment keeps live. stop() is the first half of a hand-off: it answers and commits what is
queued, then refuses as shard_moved.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable

import msgspec

from roombook.domain.calendar import Change, HoldView, ShardCalendar
from roombook.domain.commands import (
    CalendarView,
    CancelBooking,
    CheckStay,
    Command,
    ConfirmHold,
    Failure,
    FreeRooms,
    MoveBooking,
    NightView,
    PlaceHold,
    ReadCalendar,
    ReadFreeRooms,
    ReleaseHold,
    Reply,
    failure_of,
)
from roombook.domain.errors import (
    NightsUnavailable,
    OutcomeUnknown,
    RingChanged,
    RoombookError,
    ShardDiverged,
    ShardFenced,
    ShardMoved,
    ShardOwnedElsewhere,
    ShardUnavailable,
    StoreUnavailable,
)
from roombook.domain.events import AvailabilityUpdated, NightState, availability_updated
from roombook.domain.nights import Night
from roombook.routing.ring import ShardRing
from roombook.storage.ports import ShardStore

log = logging.getLogger(__name__)


class GroupCommit(msgspec.Struct, frozen=True, kw_only=True):
    """enabled=False writes one transaction per changing command (the baseline to compare with).

    linger_s: how long a shard that was idle waits, once a call arrives, for others to join its
    batch. With linger_alone=False (the default) it waits only while batches gather more than one
    call: a lone caller (one front process, one call in flight per shard) sends nothing more until
    it hears back, so waiting for company would only delay it."""

    enabled: bool = True
    max_batch: int = 1024
    linger_s: float = 0.001
    linger_alone: bool = False


class HistogramCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Observations by bucket (cumulative, as Prometheus has them: counts[i] of values <= bounds[i],
    the last bound +inf), their sum and their count, since the owner started."""

    bounds: list[float]
    counts: list[int]
    total: float
    count: int


class Histogram:
    """A few bucket counters: a shard keeps its own, and the fronts expose them (see /metrics)."""

    __slots__ = ("_bounds", "_counts", "_total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._total += value

    def counts(self) -> HistogramCounts:
        return HistogramCounts(
            bounds=[*self._bounds, math.inf],
            counts=list(itertools.accumulate(self._counts)),
            total=self._total,
            count=sum(self._counts),
        )


COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_COMMANDS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ShardStatus(msgspec.Struct, frozen=True, kw_only=True):
    shard_id: int
    epoch: int
    owner: str
    serving: bool
    rows: int
    pending: int
    batches: int
    commands: int
    rows_written: int
    reloads: int = 0  # times a failed write made this owner reload from the store
    commit_seconds: HistogramCounts | None = None  # of this owner's write transactions
    batch_commands: HistogramCounts | None = None  # commands per committed batch
    deployment: str = ""
    state: str = "serving"  # serving | starting | handing_over | handed_over | fenced | unavailable
    ring_version: int = 0
    shard_count: int = 0  # of the ring it serves by


# How many times a command whose write failed without an answer runs again on the reloaded calendar
# before it is answered outcome_unknown.
_MAX_TRIES = 3

# Told, while a batch is being committed, of a call's refusals in it: [(index in the call, reply)].
EarlyReplies = Callable[[list[tuple[int, Reply]]], None]


class _Call:
    """One caller's commands: answered together once the last of them is; refusals may also go
    ahead through `early` (see EarlyReplies)."""

    __slots__ = ("commands", "early", "early_refusals", "remaining", "replies", "result", "uncertain")

    def __init__(
        self, commands: list[Command], result: asyncio.Future[list[Reply]], early: EarlyReplies | None
    ) -> None:
        size = len(commands)
        self.commands = commands
        self.replies: list[Reply | None] = [None] * size
        self.remaining = size
        self.uncertain: dict[int, int] = {}  # index -> failed writes of its batches (it may have committed)
        self.result = result
        self.early = early
        self.early_refusals: list[tuple[int, Reply]] = []  # run, not yet told through `early`

    def answer(self, index: int, reply: Reply) -> None:
        if self.replies[index] is None:
            self.replies[index] = reply
            self.remaining -= 1
        if self.remaining == 0 and not self.result.done():  # done: the caller gave up (cancelled)
            self.result.set_result(self.replies)  # type: ignore[arg-type]  # remaining == 0: every slot is filled


class RoomShard:
    """One shard's calendar, its command loop and its writer. See the module docstring."""

    def __init__(
        self,
        store: ShardStore,
        ring: ShardRing,
        shard_id: int,
        *,
        owner: str,
        group_commit: GroupCommit | None = None,
        clock: Callable[[], float] = time.time,
        max_sweep_wait_s: float = 1.0,
        unavailable_after_s: float = 1.0,
        deployment: str = "",
        actor: str = "",
        lease_s: float = 0.0,
    ) -> None:
        """unavailable_after_s: how long commands wait for a reload after a failed write before
        they are refused (a store that is down answers fast refusals, not hung calls).

        deployment, actor: recorded with the lease (see ShardLease). lease_s > 0: the lease is
        live for lease_s after each commit or heartbeat; an idle shard renews it every lease_s/3,
        and start() never takes a lease another deployment keeps live (it waits up to 1.5 lease_s
        for it to lapse, then raises ShardOwnedElsewhere). 0: no heartbeat, no liveness check."""
        if not 0 <= shard_id < ring.shard_count:
            raise ValueError(f"shard {shard_id} is outside the ring of {ring.shard_count}")
        self.shard_id = shard_id
        self.owner = owner
        self.epoch = 0
        self._store = store
        self._ring = ring
        self._group_commit = group_commit or GroupCommit()
        self._clock = clock
        self._max_sweep_wait_s = max_sweep_wait_s
        self._calendar = ShardCalendar()
        self._queue: collections.deque[tuple[Command, _Call, int]] = collections.deque()
        self._batch: list[tuple[_Call, int, Reply]] = []  # taken from the queue, not answered yet
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._unavailable_after_s = unavailable_after_s
        self._fenced: str | None = None
        self._unavailable: str | None = None  # set while a reload has been failing for a while
        self._stopping = False
        self._stopped = False
        self._calendar_taken = False
        self.deployment = deployment
        self.actor = actor
        self._lease_s = lease_s
        self._renewed_at = 0.0  # loop.time() of the last commit or heartbeat
        self._batches = self._commands = self._rows_written = self._reloads = 0
        self._commit_seconds = Histogram(COMMIT_SECONDS_BUCKETS)  # of each write transaction
        self._batch_commands = Histogram(BATCH_COMMANDS_BUCKETS)  # commands in each committed batch
        self._calls_in_last_batch = 2  # until a batch says otherwise, assume company worth waiting for

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, resumed: RoomShard | None = None) -> None:
        """Take ownership (a new epoch), load the shard's nights, release holds expired meanwhile.

        resumed: this shard id's previous RoomShard in this process, stopped cleanly under another
        ring (a resize): the nights of its rooms that stay here are taken from its memory, which
        matches the store (it committed everything before it stopped, and no one else writes its
        rooms), and only the rooms this shard gains are read from the store."""
        self.epoch = await self._take_lease()
        self._renewed_at = asyncio.get_running_loop().time()
        taken = resumed.take_calendar() if resumed is not None else None
        if taken is None:
            self._calendar = ShardCalendar(await self._store.load_nights(self._ring, self.shard_id))
        else:
            previous_ring, calendar = taken
            # Jump hash grows by moving rooms only onto the new shards: a grown ring gives an old
            # shard nothing to read
            grown = self._ring.shard_count >= previous_ring.shard_count
            gained = (
                [] if grown else await self._store.load_nights(self._ring, self.shard_id, unless_owned_by=previous_ring)
            )
            calendar.resize(lambda room_id: self._ring.owns(self.shard_id, room_id), gained)
            self._calendar = calendar
        await self._run_batch()  # release and persist the holds that expired while no one owned the shard
        if self._fenced is not None:
            raise ShardFenced(self._fenced)
        self._loop_task = asyncio.create_task(self._run(), name=f"shard-{self.shard_id}")
        log.info("shard %d owned by %s at epoch %d", self.shard_id, self.owner, self.epoch)

    async def _take_lease(self) -> int:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + 1.5 * self._lease_s
        while True:
            try:
                return await self._store.acquire_shard(
                    self.shard_id, self.owner, deployment=self.deployment, actor=self.actor, lease_s=self._lease_s
                )
            except ShardOwnedElsewhere as exc:
                wait_s = exc.lease_s - exc.renewed_s_ago + 0.05  # until it lapses, unless renewed meanwhile
                if loop.time() + wait_s > give_up_at:
                    raise
                log.warning("shard %d: %s; waiting %.1f s for that lease to lapse", self.shard_id, exc, wait_s)
                await asyncio.sleep(wait_s)

    async def stop(self) -> None:
        """Stop taking commands, finish and persist the queued ones, end the loop. Calls that
        arrive meanwhile, or after, are refused as ShardMoved: nothing of theirs ran, and a caller
        that can find a new owner sends them there."""
        self._stopping = True
        self._wakeup.set()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._stopped = True

    def take_calendar(self) -> tuple[ShardRing, ShardCalendar] | None:
        """The ring and calendar of a shard that stopped cleanly (so its nights are the store's),
        handed over once to the shard that resumes it; None for one that did not stop cleanly."""
        if not self._stopped or self._fenced is not None or self._unavailable is not None or self._calendar_taken:
            return None
        calendar, self._calendar = self._calendar, ShardCalendar()
        self._calendar_taken = True
        return self._ring, calendar

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    @property
    def state(self) -> str:
        if self._fenced is not None:
            return "fenced"
        if self._stopping:
            return "handed_over" if self._stopped else "handing_over"
        if self._loop_task is None:
            return "starting"
        return "unavailable" if self._unavailable is not None else "serving"

    # -- the one entry point ---------------------------------------------------------------

    async def apply(
        self, commands: list[Command], early: EarlyReplies | None = None, ring_version: int | None = None
    ) -> list[Reply]:
        """Run commands in order; each reply is sent once its effects are durable. `early`, if
        given, hears of refusals while their batch is still being committed (the returned list
        has every reply, those included). ring_version: that of the ring the caller routed them
        by; another than this shard's is refused as ring_changed, running nothing."""
        if self._fenced is not None or self._unavailable is not None or self._stopping or self._loop_task is None:
            return [self._not_serving() for _ in commands]
        if ring_version is not None and ring_version != self._ring.version:
            changed = failure_of(
                RingChanged(f"routed by ring version {ring_version}; shard {self.shard_id} is on {self._ring.version}")
            )
            return [changed for _ in commands]
        if not commands:
            return []
        call = _Call(commands, asyncio.get_running_loop().create_future(), early)
        self._queue.extend([(command, call, i) for i, command in enumerate(commands)])
        self._wakeup.set()
        return await call.result

    def _not_serving(self) -> Failure:
        if self._fenced is not None:
            return failure_of(ShardFenced(self._fenced))
        if self._unavailable is not None:
            return failure_of(ShardUnavailable(self._unavailable))
        if self._stopping:
            return failure_of(ShardMoved(f"shard {self.shard_id} epoch {self.epoch} is handed over"))
        return failure_of(ShardUnavailable(f"shard {self.shard_id} is starting"))

    @property
    def ring(self) -> ShardRing:
        return self._ring

    def status(self) -> ShardStatus:
        return ShardStatus(
            shard_id=self.shard_id,
            epoch=self.epoch,
            owner=self.owner,
            serving=self._fenced is None and self._unavailable is None and not self._stopping,
            rows=self._calendar.row_count,
            pending=len(self._queue),
            batches=self._batches,
            commands=self._commands,
            rows_written=self._rows_written,
            reloads=self._reloads,
            deployment=self.deployment,
            state=self.state,
            ring_version=self._ring.version,
            shard_count=self._ring.shard_count,
            commit_seconds=self._commit_seconds.counts(),
            batch_commands=self._batch_commands.counts(),
        )

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._sweep_wait_s())
                if self._queue and self._should_linger():
                    await asyncio.sleep(self._group_commit.linger_s)
            try:
                if not self._queue and self._heartbeat_due():
                    await self._heartbeat()
                if self._fenced is None:
                    await self._run_batch()
            except Exception as exc:  # a bug, not a refusal: the calendar may be inconsistent, stop serving
                log.exception("shard %d: command loop failed", self.shard_id)
                self._fenced = f"shard {self.shard_id} stopped after an internal error"
                self._refuse(self._batch, exc)
            if self._fenced is not None:
                self._fail_all_queued()
                return

    def _should_linger(self) -> bool:
        policy = self._group_commit
        return policy.enabled and policy.linger_s > 0 and (policy.linger_alone or self._calls_in_last_batch > 1)

    def _sweep_wait_s(self) -> float:
        wait_s = self._max_sweep_wait_s
        if self._lease_s > 0:
            next_beat = self._renewed_at + self._lease_s / 3 - asyncio.get_running_loop().time()
            wait_s = min(wait_s, max(next_beat, 0.0))
        deadline = self._calendar.next_deadline_s()
        if deadline is None:
            return wait_s
        return min(max(deadline - self._clock(), 0.0), wait_s)

    def _heartbeat_due(self) -> bool:
        return self._lease_s > 0 and asyncio.get_running_loop().time() - self._renewed_at >= self._lease_s / 3

    async def _heartbeat(self) -> None:
        """Renew the lease of an idle shard (a commit renews it too). A refusal means a newer
        owner took the shard: stop serving. A store that does not answer is tried again at the
        next beat: nothing is lost meanwhile, and the lease lapses only after lease_s."""
        try:
            renewed = await self._store.renew_lease(self.shard_id, self.epoch)
        except Exception as exc:
            log.warning("shard %d: lease renewal failed (%r)", self.shard_id, exc)
            self._renewed_at += self._lease_s / 6  # try again sooner than a full beat
            return
        if not renewed:
            self._fenced = f"shard {self.shard_id} epoch {self.epoch} was fenced: a newer owner took the lease"
            log.warning("%s; this owner stops serving it", self._fenced)
            return
        self._renewed_at = asyncio.get_running_loop().time()

    async def _run_batch(self) -> None:
        now_s = self._clock()
        changes = self._calendar.expire_due(now_s)
        touched = {(row.room_id, row.date) for change in changes for row in change.after}
        batch = self._batch = []
        calls, last_call = 0, None
        while self._queue and len(batch) < self._group_commit.max_batch:
            command, call, index = self._queue[0]
            reply, change = self._execute(command, now_s)
            if change is not None and change.after:
                keys = {(row.room_id, row.date) for row in change.after}
                if not touched.isdisjoint(keys):  # second change to a night: next batch
                    self._calendar.undo(change)
                    break
                touched |= keys
                changes.append(change)
            self._queue.popleft()
            batch.append((call, index, reply))
            if call is not last_call:  # a call's commands are queued together, so this counts calls
                calls, last_call = calls + 1, call
            # A refusal changes nothing; a stay check only advises (the hold decides): neither waits
            # for the batch's commit.
            if call.early is not None and (isinstance(reply, Failure) or isinstance(command, CheckStay)):
                call.early_refusals.append((index, reply))
            if not self._group_commit.enabled and change is not None and change.after:
                break
        rows = [row for change in changes for row in change.after]
        # A reply that a hold is held, booked, released or cancelled must be true in the store even
        # when it changed nothing (a replay, a release of what is gone): an empty write still
        # proves the epoch, so an owner that a newer one replaced never acknowledges from stale memory.
        if rows or any(isinstance(reply, HoldView) for _, _, reply in batch):
            _tell_early(batch)
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await self._store.write_nights(self.shard_id, self.epoch, rows, _availability_events(rows, now_s))
            except Exception as exc:
                await self._write_failed(changes, batch, exc)
                return
            self._renewed_at = loop.time()
            self._commit_seconds.observe(self._renewed_at - started)
            self._batch_commands.observe(len(batch))
        if batch:
            self._calls_in_last_batch = calls
        self._batches += 1
        self._commands += len(batch)
        self._rows_written += len(rows)
        for call, index, reply in batch:
            call.answer(index, reply)
        batch.clear()

    async def _write_failed(self, changes: list[Change], batch: list[tuple[_Call, int, Reply]], exc: Exception) -> None:
        """What a batch whose write raised leaves behind, in memory and for its callers (see the
        module docstring): fenced, it is undone and refused; otherwise its outcome is unknown, so
        the store's truth is reloaded and the batch's changing commands run again on it."""
        unknown = (isinstance(exc, StoreUnavailable) and exc.outcome_unknown) or isinstance(exc, ShardDiverged)
        if not unknown or self._loop_task is None:
            # fenced, or the store answered with an error: nothing of the batch was committed
            for change in reversed(changes):
                self._calendar.undo(change)
            self._refuse(batch, exc)
            return
        log.warning("shard %d: a batch's write failed (%r); reloading from the store", self.shard_id, exc)
        again: list[tuple[Command, _Call, int]] = []
        gave_up = failure_of(OutcomeUnknown(f"shard {self.shard_id}: the store did not confirm a write"))
        for call, index, reply in batch:
            tries = call.uncertain[index] = call.uncertain.get(index, 0) + 1
            if isinstance(reply, Failure):  # it changed nothing (and may have been told already)
                call.answer(index, reply)
            elif tries >= _MAX_TRIES:  # a write that fails every time must not hold the queue for ever
                call.answer(index, gave_up)
            else:
                again.append((call.commands[index], call, index))
        batch.clear()
        self._queue.extendleft(reversed(again))
        await self._reload()

    async def _reload(self) -> None:
        """Renew the lease and load the store's rows, retrying until both succeed. Meanwhile the
        queue waits; after unavailable_after_s it is refused, and so is every new call."""
        loop = asyncio.get_running_loop()
        started, delay_s = loop.time(), 0.01
        while True:
            try:
                epoch = await self._store.acquire_shard(self.shard_id, self.owner, renew=True)
                nights = await self._store.load_nights(self._ring, self.shard_id)
                break
            except ShardFenced as exc:
                self._refuse_queued(exc)
                self._fenced = f"shard {self.shard_id} epoch {self.epoch} was fenced: {exc}"
                log.warning("%s; this owner stops serving it", self._fenced)
                return
            except Exception as exc:
                log.warning("shard %d: reload failed (%r); retrying in %.2f s", self.shard_id, exc, delay_s)
                if self._unavailable is None and loop.time() - started >= self._unavailable_after_s:
                    self._unavailable = f"shard {self.shard_id}: the store is not answering"
                    self._refuse_queued(exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.5)
        self.epoch = epoch
        self._renewed_at = loop.time()
        self._calendar = ShardCalendar(nights)
        self._unavailable = None
        self._reloads += 1
        log.info("shard %d reloaded %d rows at epoch %d", self.shard_id, len(nights), epoch)

    def _refuse_queued(self, exc: Exception) -> None:
        """Answer every queued command: outcome_unknown where its batch's write may have committed."""
        unknown = failure_of(OutcomeUnknown(f"shard {self.shard_id}: the store did not confirm a write"))
        unavailable = failure_of(ShardUnavailable(f"shard {self.shard_id}: {type(exc).__name__}"))
        while self._queue:
            _, call, index = self._queue.popleft()
            call.answer(index, unknown if index in call.uncertain else unavailable)

    def _execute(self, command: Command, now_s: float) -> tuple[Reply, Change | None]:
        calendar = self._calendar
        try:
            match command:
                case PlaceHold(room_id=room_id, hold_id=hold_id, stay=stay, ttl_s=ttl_s, not_after_s=not_after_s):
                    self._check_owned(room_id)
                    change = calendar.place_hold(
                        hold_id=hold_id, room_id=room_id, stay=stay, ttl_s=ttl_s, now_s=now_s, not_after_s=not_after_s
                    )
                case ConfirmHold(room_id=room_id, hold_id=hold_id):
                    self._check_owned(room_id)
                    change = calendar.confirm(hold_id=hold_id, room_id=room_id, now_s=now_s)
                case ReleaseHold(room_id=room_id, hold_id=hold_id):
                    self._check_owned(room_id)
                    change = calendar.release(hold_id=hold_id, room_id=room_id, now_s=now_s)
                case CancelBooking(room_id=room_id, booking_id=booking_id):
                    self._check_owned(room_id)
                    change = calendar.cancel(booking_id=booking_id, room_id=room_id, now_s=now_s)
                case MoveBooking(room_id=room_id, booking_id=booking_id, to_room_id=to_room_id, stay=stay):
                    self._check_owned(room_id)
                    self._check_owned(to_room_id)
                    change = calendar.move_booking(
                        booking_id=booking_id, room_id=room_id, to_room_id=to_room_id, stay=stay, now_s=now_s
                    )
                case ReadCalendar(room_id=room_id, start=start, end=end):
                    self._check_owned(room_id)
                    nights = calendar.nights_between(room_id, start, end, now_s)
                    view = [NightView(date=n.date, status=n.status) for n in nights]
                    return CalendarView(room_id=room_id, nights=view), None
                case ReadFreeRooms(room_id=room_id, room_ids=room_ids, start=start, end=end):
                    # the client grouped the rooms by the ring apply() checked the version of: one
                    # room stands for them all (hashing each again would double a search's cost)
                    self._check_owned(room_id)
                    return FreeRooms(room_ids=calendar.free_rooms(room_ids, start, end, now_s)), None
                case CheckStay(room_id=room_id, stay=stay, claim=claim, claim_ttl_s=claim_ttl_s):
                    self._check_owned(room_id)
                    if claim is None:
                        taken = calendar.taken_nights(room_id, stay.nights(), now_s)
                    else:
                        taken = calendar.claim_stay(room_id, stay.nights(), now_s, claim=claim, ttl_s=claim_ttl_s)
                    if taken:
                        raise NightsUnavailable(room_id, taken)
                    return FreeRooms(room_ids=[room_id]), None
        except RoombookError as exc:
            return failure_of(exc), None
        return change.view, change

    def _check_owned(self, room_id: int) -> None:
        if not self._ring.owns(self.shard_id, room_id):
            # only a client whose ring differs from ours (a misconfigured shard count) gets here
            raise ShardUnavailable(f"room {room_id} belongs to shard {self._ring.shard_of(room_id)}")

    def _refuse(self, batch: list[tuple[_Call, int, Reply]], exc: Exception) -> None:
        if self._fenced is not None:
            failure = failure_of(ShardFenced(self._fenced))
        elif isinstance(exc, ShardFenced):
            self._fenced = f"shard {self.shard_id} epoch {self.epoch} was fenced: {exc}"
            log.warning("%s; this owner stops serving it", self._fenced)
            failure = failure_of(ShardFenced(self._fenced))
        else:
            log.exception("shard %d: store write failed; %d commands refused", self.shard_id, len(batch))
            failure = failure_of(ShardUnavailable(f"store write failed: {type(exc).__name__}"))
        for call, index, _ in batch:
            call.answer(index, failure)

    def _fail_all_queued(self) -> None:
        failure = failure_of(ShardFenced(self._fenced or "fenced"))
        while self._queue:
            _, call, index = self._queue.popleft()
            call.answer(index, failure)


def _tell_early(batch: list[tuple[_Call, int, Reply]]) -> None:
    """Before a batch's commit: tell each call that listens of its refusals so far (a call runs
    across batches only when cut off, so this is once or twice a call)."""
    for call, _, _ in batch:
        if call.early is None or not call.early_refusals:
            continue
        refusals, call.early_refusals = call.early_refusals, []
        try:
            call.early(refusals)
        except Exception:  # the listener's fault (a closed socket): the full answer still follows
            log.exception("shard: early replies could not be delivered")


def _availability_events(rows: list[Night], now_s: float) -> list[AvailabilityUpdated]:
    """One availability.updated per room the batch touched: each changed night's final state and
    version (a batch changes a night at most once), committed with the rows."""
    by_room: dict[int, list[NightState]] = {}
    for row in rows:
        state = NightState(date=row.date, status=row.status.value, version=row.version)
        by_room.setdefault(row.room_id, []).append(state)
    return [
        availability_updated(room_id, sorted(nights, key=lambda n: n.date), now_s=now_s)
        for room_id, nights in by_room.items()
    ]
