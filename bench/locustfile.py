"""roombook under load: Locust users for the contention case, search, browsing, cancels and a mix.

    locust -f bench/locustfile.py --headless -u 200 -r 50 -t 60s --host http://127.0.0.1:8080 \
        --tags hot --booking-log 'out/bookings-{pid}.jsonl' --csv out/hot --json-file out/hot
    python -m bench.check --host http://127.0.0.1:8080 --booking-log 'out/bookings-*.jsonl'

Users (pick by class name or by tag; with neither, Locust runs every class, equally weighted):

| class         | tag      | what one task is |
|---------------|----------|------------------|
| HotRoomBooker | `hot`    | book 1-4 nights of one of rooms 1..--hot-rooms within --horizon-days: overlapping stays |
| Searcher      | `search` | GET /rooms: city or country, dates, guests, price range, amenities, sort, page 1-3 |
| Browser       | `browse` | a room's page (60%) or its availability calendar for 2-8 weeks (40%) |
| Canceller     | `cancel` | book a random room, then cancel that booking |
| Mixed         | `mixed`  | out of 100: search 50, room 25, calendar 15, own bookings 5, book 4, book+cancel 1 |

Every user signs up once in on_start (a unique email, region eu or us at random) and sends its
access token as `Authorization: Bearer`; its cookie jar is emptied, so no CSRF header is needed.
Argon2 makes a sign-up cost the server about 0.4 CPU-seconds: `--accounts N` lets the users of one
Locust process share N accounts (user i takes account i mod N) so a short run measures the API,
not password hashing. Each booking attempt sends a fresh Idempotency-Key; `--replay-ratio` of
them are sent again with the same key and body and must get the same status (and booking id)
back, else the replay counts as a failure; a 409's replay may also book (a stay refused at once
stores nothing, so its key is free), and that booking is checked like any other. 409 and 402 are
expected answers, not failures.

`--booking-log PATH` appends JSON lines (accounts, every 201, cancels, outcome counts) for
bench/check.py; `{pid}` in PATH is the Locust process id (added before the suffix if absent), so
each `--processes` worker writes its own file. `--shape step` (or LOCUST_SHAPE=step) turns on
StepLoadShape: `--step-users` more users every `--step-seconds` up to -u, stopping at -t.
`--max-requests` stops the whole run after that many requests. Only ever point it at a server of
your own (127.0.0.1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import secrets
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import Semaphore
from locust import FastHttpUser, LoadTestShape, events, tag, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

API = "/api/v1"
PASSWORD_PREFIX = "load-test-"
CITIES = (
    "Paris", "Lyon", "Berlin", "Munich", "Amsterdam", "Rome", "Madrid", "Barcelona", "Lisbon", "Dublin",
    "New York", "Boston", "Chicago", "San Francisco", "Seattle", "Austin", "Toronto", "Vancouver",
)  # fmt: skip  # the demo catalogue's (roombook/ops/demo_catalogue.py)
COUNTRIES = ("FR", "DE", "IT", "ES", "NL", "US", "CA")
AMENITIES = ("wifi", "kitchen", "workspace", "balcony", "air_conditioning", "parking", "breakfast", "pool")
SORTS = ("id", "price", "-price", "capacity")
EXPECTED_BOOKING_STATUSES = frozenset({201, 402, 409})  # booked, declined, nights taken
RUN_ID = secrets.token_hex(3)  # in the emails: runs against one server never collide


def _requested_shape() -> str:
    """--shape from the command line (or LOCUST_SHAPE): Locust imports this file before it parses
    its arguments, and uses the first active LoadTestShape it finds, so the choice is made here."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--shape", default=os.environ.get("LOCUST_SHAPE", "none"))
    return peek.parse_known_args(sys.argv[1:])[0].shape


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("roombook")
    group.add_argument("--booking-log", default="", help="JSON lines for bench/check.py; {pid} = process id")
    group.add_argument("--hot-rooms", type=int, default=5, help="HotRoomBooker books rooms 1..N (default 5)")
    group.add_argument("--horizon-days", type=int, default=60, help="stays start within this many days")
    group.add_argument("--lead-days", type=int, default=7, help="the first bookable night is today + this")
    group.add_argument("--max-nights", type=int, default=4, help="stays last 1..N nights (default 4)")
    group.add_argument("--replay-ratio", type=float, default=0.05, help="share of attempts replayed with their key")
    group.add_argument("--decline-ratio", type=float, default=0.02, help="share of attempts paid with tok_decline")
    group.add_argument("--accounts", type=int, default=0, help="accounts per Locust process (0: one per user)")
    group.add_argument("--think-s", type=float, default=0.0, help="wait 0..T seconds between tasks (default 0)")
    group.add_argument("--max-requests", type=int, default=0, help="stop the run after this many requests")
    group.add_argument("--shape", choices=["none", "step"], default="none", help="step: StepLoadShape")
    group.add_argument("--step-users", type=int, default=0, help="users added per step (default -u / 5)")
    group.add_argument("--step-seconds", type=float, default=10.0, help="seconds per step (default 10)")


# -- the log bench/check.py reads -------------------------------------------------------------


class BookingLog:
    """JSON lines of one Locust process, opened on first use and flushed line by line, so a run
    that is stopped keeps every line written. Greenlets never yield inside write: lines stay whole."""

    def __init__(self) -> None:
        self._file: Any = None
        self._pid = 0
        self.outcomes: dict[str, int] = {}

    def write(self, environment: Any, record: dict[str, Any]) -> None:
        template = environment.parsed_options.booking_log
        if not template:
            return
        if self._file is None or self._pid != os.getpid():  # opened before a fork: not ours
            self._pid = os.getpid()
            if "{pid}" not in template:
                path = Path(template)
                template = str(path.with_name(f"{path.stem}-{{pid}}{path.suffix}"))
            path = Path(template.format(pid=self._pid))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", buffering=1, encoding="utf-8")
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


LOG = BookingLog()


@events.test_stop.add_listener
def _write_outcomes(environment: Any, **_: Any) -> None:
    if LOG.outcomes:
        LOG.write(environment, {"kind": "outcomes", "pid": os.getpid(), "counts": dict(LOG.outcomes)})
        LOG.outcomes.clear()


# -- run-wide controls --------------------------------------------------------------------------


@events.init.add_listener
def _keep_users_with_tasks(environment: Any, **_: Any) -> None:
    """With --tags, drop the user classes none of whose tasks carries one (Locust would start
    them with no task left and fail)."""
    tags = set(getattr(environment.parsed_options, "tags", None) or ())
    if tags:
        kept = [c for c in environment.user_classes if any(getattr(t, "locust_tag_set", set()) & tags for t in c.tasks)]
        environment.user_classes[:] = kept or environment.user_classes


@events.test_start.add_listener
def _enforce_request_cap(environment: Any, **_: Any) -> None:
    cap = environment.parsed_options.max_requests
    if cap <= 0 or isinstance(environment.runner, WorkerRunner):  # the master sees every worker's count
        return

    def watch() -> None:
        while environment.runner.stats.total.num_requests < cap:
            gevent.sleep(0.5)
        print(f"roombook locustfile: --max-requests {cap} reached, stopping", file=sys.stderr)
        environment.runner.quit()

    gevent.spawn(watch)


class StepLoadShape(LoadTestShape):
    """Users in steps: --step-users more every --step-seconds up to -u, spawned at -r; None (the
    end of the run) once -t has passed. Active only with --shape step."""

    abstract = _requested_shape() != "step"
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        options = None if runner is None else runner.environment.parsed_options
        if options is None:  # a shape ticks under its runner, once the options are parsed
            raise RuntimeError("the step shape ticked without a runner's options")
        limit_s = options.run_time or 60
        run_time = self.get_run_time()
        if run_time >= limit_s:
            return None
        peak = max(1, options.num_users or 10)
        step = options.step_users or max(1, peak // 5)
        users = min(peak, step * (1 + int(run_time // options.step_seconds)))
        return users, options.spawn_rate or step


# -- accounts -----------------------------------------------------------------------------------


class Account:
    """One signed-up user and its current access token (shared by the users of its slot)."""

    def __init__(self, *, user_id: int, email: str, password: str, region: str) -> None:
        self.user_id, self.email, self.password, self.region = user_id, email, password, region
        self.token = ""
        self.renew_at = 0.0  # monotonic time to log in again, a minute before the token expires

    def record(self) -> dict[str, Any]:
        return {"kind": "user", "user_id": self.user_id, "email": self.email, "password": self.password,
                "region": self.region, "token": self.token}  # fmt: skip


_ACCOUNTS: dict[int, Account] = {}
_SLOT_LOCKS: dict[int, Semaphore] = {}  # one greenlet signs up or renews a slot's account at a time
_USER_NUMBERS = itertools.count()


def _account(user: FastHttpUser) -> tuple[Account, Semaphore]:
    shared = user.environment.parsed_options.accounts
    number = next(_USER_NUMBERS)
    slot = number % shared if shared > 0 else number
    lock = _SLOT_LOCKS.setdefault(slot, Semaphore())
    with lock:
        account = _ACCOUNTS.get(slot)
        if account is None:
            account = _ACCOUNTS[slot] = _sign_up(user, slot)
            LOG.write(user.environment, account.record())
    return account, lock


def _sign_up(user: FastHttpUser, slot: int) -> Account:
    email = f"lt-{RUN_ID}-{os.getpid()}-{slot}@example.com"
    password = PASSWORD_PREFIX + secrets.token_hex(8)
    region = random.choice(("eu", "us"))
    body = {"email": email, "password": password, "region": region}
    with user.client.post(f"{API}/auth/register", json=body, catch_response=True) as response:
        user_id = response.json()["user"]["id"] if response.status_code == 201 else None
        if user_id is None:
            response.failure(f"register answered {response.status_code}")
    if user_id is None:
        raise StopUser()
    account = Account(user_id=user_id, email=email, password=password, region=region)
    _log_in(user, account)
    return account


def _log_in(user: FastHttpUser, account: Account) -> None:
    body = {"email": account.email, "password": account.password, "region": account.region}
    with user.client.post(f"{API}/auth/login", json=body, catch_response=True) as response:
        answer = response.json() if response.status_code == 200 else None
        if answer is None:
            response.failure(f"login answered {response.status_code}")
    if answer is None:
        raise StopUser()
    account.token = answer["access_token"]
    account.renew_at = time.monotonic() + max(30, answer["expires_in"] - 60)
    user.client.cookiejar.clear()  # Bearer only: no cookie, so no CSRF


# -- the users ----------------------------------------------------------------------------------


class RoombookUser(FastHttpUser):
    """Signs up once, then acts with its Bearer token. Not run itself (abstract)."""

    abstract = True
    account: Account
    account_lock: Semaphore
    catalogue_size = 0  # rooms 1..N, learnt once per process

    def wait_time(self) -> float:
        """Between two tasks: up to --think-s, drawn afresh each time (none by default)."""
        think_s = self.environment.parsed_options.think_s
        return random.uniform(0, think_s) if think_s > 0 else 0.0

    def on_start(self) -> None:
        self.account, self.account_lock = _account(self)
        if not RoombookUser.catalogue_size:
            response = self.client.get(f"{API}/rooms?per_page=1", name=f"{API}/rooms")
            if response.status_code != 200:
                raise StopUser()  # already counted as a failure
            RoombookUser.catalogue_size = max(1, response.json()["total"])

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def auth(self) -> dict[str, str]:
        if time.monotonic() > self.account.renew_at:
            with self.account_lock:
                if time.monotonic() > self.account.renew_at:  # not renewed meanwhile by another user
                    _log_in(self, self.account)
        return {"Authorization": f"Bearer {self.account.token}"}

    def any_room(self) -> int:
        return random.randint(1, self.catalogue_size)

    def stay(self) -> tuple[dt.date, dt.date]:
        first = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=self.options.lead_days)
        check_in = first + dt.timedelta(days=random.randrange(max(1, self.options.horizon_days)))
        return check_in, check_in + dt.timedelta(days=random.randint(1, max(1, self.options.max_nights)))

    # -- bookings ---

    def book(self, room_id: int) -> dict[str, Any] | None:
        """One attempt with a fresh key (replayed now and then); the booking if it was a 201."""
        check_in, check_out = self.stay()
        card = "tok_decline" if random.random() < self.options.decline_ratio else "tok_visa"
        body = {"room_id": room_id, "check_in": str(check_in), "check_out": str(check_out), "guests": 1}
        body["card_token"] = card
        key = str(uuid.uuid4())
        status, booking = self._post_booking(key, body)
        if random.random() < self.options.replay_ratio:
            _, again = self._post_booking(key, body, first=(status, booking))
            booking = booking or again  # a 409's key, retried, may book
        return booking

    def _post_booking(
        self, key: str, body: dict[str, Any], first: tuple[int, dict[str, Any] | None] | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        headers = {**self.auth(), "Idempotency-Key": key}
        name = f"{API}/bookings" + (" [replay]" if first else "")
        booking = None
        with self.client.post(f"{API}/bookings", json=body, headers=headers, name=name, catch_response=True) as resp:
            status = resp.status_code
            if status == 201:
                booking = resp.json()["booking"]
            if first is not None:
                first_id = first[1] and first[1]["id"]
                if first[0] == 409 and status in EXPECTED_BOOKING_STATUSES:
                    # a stay refused at once stores nothing: the same key is a new attempt, which
                    # may book if the nights have come free (its 201 is logged and checked below)
                    resp.success()
                    LOG.count("replay_same" if status == 409 else "replay_new_attempt")
                elif (status, booking and booking["id"]) != (first[0], first_id):
                    resp.failure(f"replayed key answered {status} {booking and booking['id']}, first {first[0]}")
                    LOG.count("replay_mismatch")
                    return status, booking
                else:
                    resp.success()
                    LOG.count("replay_same")
                    return status, booking
            else:
                LOG.count(str(status))
                if status in EXPECTED_BOOKING_STATUSES:
                    resp.success()
        if booking is not None:
            LOG.write(
                self.environment,
                {
                    "kind": "booking",
                    "booking_id": booking["id"],
                    "user_id": self.account.user_id,
                    "room_id": booking["room_id"],
                    "check_in": booking["check_in"],
                    "check_out": booking["check_out"],
                    "nights": booking["nights"],
                    "key": key,
                },
            )
        return status, booking

    def book_then_cancel(self, room_id: int) -> None:
        booking = self.book(room_id)
        if booking is None:
            return
        record = {"booking_id": booking["id"], "user_id": self.account.user_id}
        LOG.write(self.environment, {"kind": "cancelling", **record})  # a cut-off run may still apply it
        url, name = f"{API}/bookings/{booking['id']}/cancel", f"{API}/bookings/{{id}}/cancel"
        with self.client.post(url, headers=self.auth(), name=name, catch_response=True) as resp:
            if resp.status_code == 200 and resp.json()["booking"]["status"] == "CANCELLED":
                LOG.write(self.environment, {"kind": "cancelled", **record})
            elif resp.status_code == 200:
                resp.failure(f"cancel answered status {resp.json()['booking']['status']}")

    # -- reads ---

    def search(self) -> None:
        params: dict[str, Any] = {"sort": random.choice(SORTS), "page": random.choice((1, 1, 1, 2, 3))}
        if random.random() < 0.7:
            params["city"] = random.choice(CITIES)
        else:
            params["country"] = random.choice(COUNTRIES)
        if random.random() < 0.8:
            check_in, check_out = self.stay()
            params |= {"check_in": str(check_in), "check_out": str(check_out)}
        if random.random() < 0.6:
            params["guests"] = random.randint(1, 4)
        if random.random() < 0.5:
            low = random.choice((0, 50, 100))
            params |= {"min_price": low, "max_price": low + random.choice((100, 200, 400))}
        if random.random() < 0.4:
            params["amenities"] = ",".join(random.sample(AMENITIES, random.randint(1, 2)))
        self.client.get(f"{API}/rooms", params=params, name=f"{API}/rooms")

    def room_page(self) -> None:
        self.client.get(f"{API}/rooms/{self.any_room()}", name=f"{API}/rooms/{{id}}")

    def calendar(self) -> None:
        start = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=random.randrange(60))
        end = start + dt.timedelta(weeks=random.randint(2, 8))
        url = f"{API}/rooms/{self.any_room()}/availability?from={start}&to={end}"
        self.client.get(url, name=f"{API}/rooms/{{id}}/availability")

    def own_bookings(self) -> None:
        self.client.get(f"{API}/bookings?per_page=20", headers=self.auth(), name=f"{API}/bookings [list]")


class HotRoomBooker(RoombookUser):
    """Many users, few rooms: every attempt targets one of rooms 1..--hot-rooms."""

    @tag("hot")
    @task
    def book_hot_room(self) -> None:
        self.book(random.randint(1, max(1, min(self.options.hot_rooms, self.catalogue_size))))


class Searcher(RoombookUser):
    @tag("search")
    @task
    def search_rooms(self) -> None:
        self.search()


class Browser(RoombookUser):
    @tag("browse")
    @task(3)
    def view_room(self) -> None:
        self.room_page()

    @tag("browse")
    @task(2)
    def view_calendar(self) -> None:
        self.calendar()


class Canceller(RoombookUser):
    @tag("cancel")
    @task
    def book_and_cancel(self) -> None:
        self.book_then_cancel(self.any_room())


class Mixed(RoombookUser):
    """A realistic day: mostly looking, a few % booking. Weights are out of 100 tasks."""

    @tag("mixed")
    @task(50)
    def mixed_search(self) -> None:
        self.search()

    @tag("mixed")
    @task(25)
    def mixed_room(self) -> None:
        self.room_page()

    @tag("mixed")
    @task(15)
    def mixed_calendar(self) -> None:
        self.calendar()

    @tag("mixed")
    @task(5)
    def mixed_own_bookings(self) -> None:
        self.own_bookings()

    @tag("mixed")
    @task(4)
    def mixed_book(self) -> None:
        self.book(self.any_room())

    @tag("mixed")
    @task(1)
    def mixed_book_and_cancel(self) -> None:
        self.book_then_cancel(self.any_room())
