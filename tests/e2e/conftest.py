"""The real app over real HTTP (pytest-aiohttp), on the embedded stack in a temporary data dir.

    async def test_something(client, sign_up):
        headers = await sign_up(client)                  # a new EU user, signed in
        resp = await client.get("/api/v1/me", headers=headers)

`app_factory(**overrides)` builds more apps (other Settings fields); `settings_for(tmp_path)` is
the Settings every e2e app starts from: in-process shards, 2 of them, cheap password hashing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from e2e_app import PASSWORD, auth_settings, new_email, settings_for

from roombook.http.app import create_app
from roombook.services.accounts import AuthSettings
from roombook.services.payments import PaymentSettings


@pytest.fixture
def app_factory(tmp_path: Path) -> Callable[..., web.Application]:
    """Build an app over this test's data dir; keyword arguments override Settings fields, and
    `auth=` / `payments=` replace the AuthSettings / PaymentSettings."""

    def build(
        *, auth: AuthSettings | None = None, payments: PaymentSettings | None = None, **overrides: object
    ) -> web.Application:
        settings = settings_for(tmp_path, **overrides)
        return create_app(settings, auth=auth or auth_settings(), payments=payments or PaymentSettings(seed=1))

    return build


@pytest.fixture
async def client(aiohttp_client, app_factory) -> TestClient:
    """A client of the default embedded app (started: stores migrated, shards serving). It keeps
    no cookies: a test sends the ones it means to send, so what is tested is never implicit."""
    return await aiohttp_client(app_factory(), cookie_jar=aiohttp.DummyCookieJar())


SignUp = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def sign_up() -> SignUp:
    """`await sign_up(client, region="eu", email=None)`: register and log in a new user (password
    PASSWORD); returns the Bearer headers."""

    async def register_and_login(client: TestClient, *, region: str = "eu", email: str | None = None) -> dict[str, str]:
        email = email or new_email()
        resp = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "region": region})
        assert resp.status == 201, await resp.text()
        resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["access_token"]
        return {"Authorization": f"Bearer {token}"}

    return register_and_login
