"""The API keeps the contract its own OpenAPI document states, under generated requests.

Schemathesis reads /api/v1/openapi.json from the real app (embedded stack, in-process shards,
a seeded catalogue) listening on a free port, generates valid and invalid requests for every
operation, sends them over HTTP as a signed-in admin (Bearer), and checks each answer: never a
5xx, a status the operation declares, the content type and body schema declared for that status,
and the declared headers.

Every third request carries a card number, in one of the layouts people write them, inside a
string of its body, its query or its Idempotency-Key. Once the fuzzing is over, no file the app
wrote (its SQLite stores, the mail it sent, its log) holds any of those numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from booking_harness import room
from e2e_app import PASSWORD, auth_settings, settings_for
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from roombook.domain.accounts import Region
from roombook.domain.rooms import Location
from roombook.http.app import API_TABLES, create_app
from roombook.http.keys import CATALOGUE
from roombook.http.openapi import openapi_document
from roombook.http.server_limits import HANDLER_ARGS
from roombook.ops.admin import create_admin
from roombook.services.payments import CARD_GROUPINGS, CARD_SEPARATORS, PaymentSettings, luhn_valid

API = "/api/v1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ADMIN_EMAIL = "fuzz-admin@example.com"
START_TIMEOUT_S = 30.0

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[tuple[str, Run]]:
    """Run `app` on 127.0.0.1 (a free port) on its own loop in a thread; yields its base URL and
    a function that runs a coroutine on that loop (the app's stores belong to it)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-app", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(START_TIMEOUT_S)

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, **HANDLER_ARGS)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = run(start())
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", run
    finally:
        run(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        loop.close()


class FuzzedApp:
    def __init__(self, base: str, headers: dict[str, str], data_dir: Path) -> None:
        self.base = base
        self.headers = headers
        self.data_dir = data_dir  # everything the app writes: stores, mail, and its log


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedApp]:
    """A running app with a small catalogue, an admin's Bearer headers, and where it writes."""
    data_dir = Path(tmp_path_factory.mktemp("fuzz"))
    settings = settings_for(data_dir)
    asyncio.run(create_admin(settings, email=ADMIN_EMAIL, password=PASSWORD, region=Region.EU))
    app = create_app(settings, auth=auth_settings(), payments=PaymentSettings(seed=1))
    log_file = logging.FileHandler(data_dir / "roombook.log")
    app_log = logging.getLogger("roombook")
    app_log.addHandler(log_file)
    app_log.setLevel(logging.DEBUG)
    try:
        with serving(app) as (base, run):
            rooms = [room(), room(title="Loft", location=Location(city="Boston", country="US"), capacity=4)]
            run(app[CATALOGUE].add_rooms(rooms))
            body = {"email": ADMIN_EMAIL, "password": PASSWORD}
            login = requests.post(f"{base}{API}/auth/login", json=body, timeout=10)
            assert login.status_code == 200, login.text
            yield FuzzedApp(base, {"Authorization": f"Bearer {login.json()['access_token']}"}, data_dir)
    finally:
        app_log.removeHandler(log_file)
        app_log.setLevel(logging.NOTSET)
        log_file.close()


# The document the app serves, derived from the route tables (pure: no app, no I/O). Loaded at
# import so pytest collects one test per operation; schemathesis' lazy `from_fixture` loader, which
# would read it from the running server, relies on a pytest internal (Node._nodeid) pytest 9 dropped.
# test_the_served_document_is_the_one_fuzzed ties the two together.
DOCUMENT = openapi_document(API_TABLES)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(api) -> None:
    served = requests.get(f"{api.base}{API}/openapi.json", timeout=10)
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json() == DOCUMENT


def test_a_search_with_every_parameter_at_its_documented_longest_reaches_the_app(api) -> None:
    # 1,000 four-byte characters percent-encode to 12,000 bytes: past the HTTP parser's default
    # request line, which would answer a bare 400 before the app could say anything
    longest = "\U0010ffff" * 1000
    answer = requests.get(f"{api.base}{API}/rooms", params={"amenities": longest, "q": "x"}, timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["total"] == 0


# -- card numbers mixed into the fuzzing ---------------------------------------------------------

_cards = random.Random(20261202)
_case_numbers = itertools.count()
SENT_CARDS: list[str] = []  # the digits of every card number sent, to look for in the data files


def written_card_number(rng: random.Random) -> tuple[str, str]:
    """A Luhn-valid card number and how it is written: contiguous, or grouped with one separator."""
    grouping = rng.choice([(16,), (15,), (19,), (13,), *CARD_GROUPINGS])
    body = "".join(rng.choice("0123456789") for _ in range(sum(grouping) - 1))
    digits = next(body + d for d in "0123456789" if luhn_valid(body + d))
    if len(grouping) == 1:
        return digits, digits
    starts = [sum(grouping[:i]) for i in range(len(grouping))]
    sep = rng.choice(CARD_SEPARATORS)
    return digits, sep.join(digits[s : s + n] for s, n in zip(starts, grouping, strict=True))


def _with_card_in_a_string(value: object, card: str) -> tuple[object, bool]:
    """value with a card number appended to its first string (depth first); whether there was one."""
    if isinstance(value, str):
        return f"{value} {card}", True
    if isinstance(value, dict):
        for key, inner in value.items():
            changed, done = _with_card_in_a_string(inner, card)
            if done:
                return value | {key: changed}, True
    if isinstance(value, list):
        for i, inner in enumerate(value):
            changed, done = _with_card_in_a_string(inner, card)
            if done:
                return [*value[:i], changed, *value[i + 1 :]], True
    return value, False


def carry_a_card_number(case: schemathesis.Case) -> None:
    """Put a card number into the case's Idempotency-Key, else a body string, else a query value."""
    digits, written = written_card_number(_cards)
    headers = case.headers or {}
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"{str(headers['Idempotency-Key'])[:200]}-{written}"
        SENT_CARDS.append(digits)
        return
    body, done = _with_card_in_a_string(case.body, written)
    if done:
        case.body = body
        SENT_CARDS.append(digits)
        return
    query, done = _with_card_in_a_string(case.query or {}, written)
    if done:
        case.query = query
        SENT_CARDS.append(digits)


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, derandomize=True, database=None)
def test_every_operation_answers_as_its_openapi_document_says(case: schemathesis.Case, api) -> None:
    if next(_case_numbers) % 3 == 0:
        carry_a_card_number(case)
    case.call_and_validate(base_url=api.base, headers=api.headers, checks=CHECKS, timeout=10)


def test_no_card_number_sent_while_fuzzing_reached_a_data_file(api) -> None:
    # runs after the fuzzing above (pytest keeps a module's order); a number may be stored with
    # any separator between its digits, or none
    assert len(SENT_CARDS) >= 50, "the fuzzing above sent too few card numbers to say anything"
    found = re.compile("|".join("[ ._-]?".join(digits) for digits in SENT_CARDS).encode())
    written = [path for path in sorted(api.data_dir.rglob("*")) if path.is_file()]
    assert any(path.name == "eu.db" for path in written) and any(path.suffix == ".log" for path in written)
    holding = [path.name for path in written if found.search(path.read_bytes())]
    assert holding == []
