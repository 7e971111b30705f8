"""The API keeps the contract its own OpenAPI document states, under generated requests.

Schemathesis reads /api/v1/openapi.json from the real app (embedded stack, in-process shards,
a seeded catalogue) listening on a free port, generates valid and invalid requests for every
operation, sends them over HTTP as a signed-in admin (Bearer), and checks each answer: never a
5xx, a status the operation declares, the content type and body schema declared for that status,
and the declared headers.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from roombook.cli import create_admin
from roombook.domain.accounts import Region
from roombook.domain.rooms import Location
from roombook.http.app import API_TABLES, create_app
from roombook.http.keys import CATALOGUE
from roombook.http.openapi import openapi_document
from roombook.payments import PaymentSettings

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
        runner = web.AppRunner(app, access_log=None)
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


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The base URL of a running app with a small catalogue, and an admin's Bearer headers."""
    settings = settings_for(Path(tmp_path_factory.mktemp("fuzz")))
    asyncio.run(create_admin(settings, email=ADMIN_EMAIL, password=PASSWORD, region=Region.EU))
    app = create_app(settings, auth=auth_settings(), payments=PaymentSettings(seed=1))
    with serving(app) as (base, run):
        rooms = [room(), room(title="Loft", location=Location(city="Boston", country="US"), capacity=4)]
        run(app[CATALOGUE].add_rooms(rooms))
        login = requests.post(f"{base}{API}/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}, timeout=10)
        assert login.status_code == 200, login.text
        yield base, {"Authorization": f"Bearer {login.json()['access_token']}"}


# The document the app serves, derived from the route tables (pure: no app, no I/O). Loaded at
# import so pytest collects one test per operation; schemathesis' lazy `from_fixture` loader, which
# would read it from the running server, relies on a pytest internal (Node._nodeid) pytest 9 dropped.
# test_the_served_document_is_the_one_fuzzed ties the two together.
DOCUMENT = openapi_document(API_TABLES)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(api) -> None:
    base, _ = api
    served = requests.get(f"{base}{API}/openapi.json", timeout=10)
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json() == DOCUMENT


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, derandomize=True, database=None)
def test_every_operation_answers_as_its_openapi_document_says(case: schemathesis.Case, api) -> None:
    base, headers = api
    case.call_and_validate(base_url=base, headers=headers, checks=CHECKS, timeout=10)
