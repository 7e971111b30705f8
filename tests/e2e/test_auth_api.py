"""Accounts over real HTTP: register, log in (cookies and their flags), refresh rotation and reuse,
log out, /me with a Bearer token and with the cookie, CSRF, throttling and the problem shapes."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie

import jwt
import pytest
from e2e_app import JWT_SECRET, PASSWORD, new_email

from roombook.domain.accounts import Region
from roombook.http.keys import REGIONS

PROBLEM = "application/problem+json"


async def register(client, email: str, *, region: str = "eu", password: str = PASSWORD, **extra):
    return await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "region": region} | extra
    )


async def login(client, email: str, password: str = PASSWORD):
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


def cookies_of(resp) -> SimpleCookie:
    jar = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


def cookie_header(jar: SimpleCookie, *names: str) -> str:
    return "; ".join(f"{name}={jar[name].value}" for name in names)


async def assert_problem(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert {"type", "title", "status"} <= body.keys()
    assert body["status"] == status
    return body


async def test_register_returns_the_user_and_signs_them_in(client):
    email = new_email()
    resp = await register(client, email, first_name="Ada", last_name="Lovelace")
    assert resp.status == 201
    user = (await resp.json())["user"]
    assert user["email"] == email and user["region"] == "eu" and user["first_name"] == "Ada"
    assert "password_hash" not in user and "password" not in user
    jar = cookies_of(resp)
    assert {"access_token", "refresh_token", "csrf_token"} <= set(jar)
    me = await client.get("/api/v1/me", headers={"Cookie": cookie_header(jar, "access_token")})
    assert (await me.json())["user"]["id"] == user["id"]


async def test_login_sets_httponly_secure_lax_cookies_and_returns_a_bearer_token(client):
    email = new_email()
    await register(client, email)
    resp = await login(client, email)
    assert resp.status == 200
    body = await resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"]
    assert body["user"]["email"] == email
    assert "refresh_token" not in body
    jar = cookies_of(resp)
    for name in ("access_token", "refresh_token"):
        assert jar[name]["httponly"] is True, name
        assert jar[name]["secure"] is True, name
        assert jar[name]["samesite"] == "Lax", name
    assert jar["access_token"]["path"] == "/"
    assert jar["refresh_token"]["path"] == "/api/v1/auth"
    assert not jar["csrf_token"]["httponly"]
    assert jar["csrf_token"]["secure"] is True and jar["csrf_token"]["samesite"] == "Lax"


async def test_me_accepts_a_bearer_token(client, sign_up):
    headers = await sign_up(client, region="us")
    resp = await client.get("/api/v1/me", headers=headers)
    assert resp.status == 200
    assert (await resp.json())["user"]["region"] == "us"


async def test_me_without_credentials_is_a_401_problem(client):
    body = await assert_problem(await client.get("/api/v1/me"), 401)
    assert body["type"].endswith("/unauthorized")


async def test_me_with_a_forged_token_is_401(client):
    await assert_problem(await client.get("/api/v1/me", headers={"Authorization": "Bearer abc.def.ghi"}), 401)


def signed_token(**change: object) -> str:
    """A token signed with the app's own secret: valid except for what `change` sets."""
    now = int(time.time())
    claims = {"sub": "1", "region": "eu", "role": "user", "iat": now, "exp": now + 900, "jti": "j", "iss": "roombook"}
    return jwt.encode(claims | change, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "change",
    [{"sub": "9999999999999999999"}, {"sub": str(2**63)}, {"exp": 10**30}, {"iat": -(10**30)}],
    ids=["sub-19-nines", "sub-2**63", "exp-huge", "iat-huge-negative"],
)
@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/bookings"])
async def test_a_signed_token_with_an_out_of_range_claim_is_401_not_500(client, path, change):
    resp = await client.get(path, headers={"Authorization": f"Bearer {signed_token(**change)}"})

    body = await assert_problem(resp, 401)
    assert body["type"].endswith("/unauthorized")


async def test_wrong_password_and_unknown_email_get_the_same_401(client):
    email = new_email()
    await register(client, email)
    wrong_password = await assert_problem(await login(client, email, "not the password"), 401)
    unknown_email = await assert_problem(await login(client, new_email()), 401)
    assert wrong_password == unknown_email


async def test_repeated_failures_are_throttled_with_retry_after(client):
    email = new_email()
    await register(client, email)
    for _ in range(5):
        await assert_problem(await login(client, email, "not the password"), 401)
    resp = await login(client, email)  # even the right password, until the window passes
    await assert_problem(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0


async def test_duplicate_email_is_409_in_either_region(client):
    email = new_email()
    assert (await register(client, email, region="eu")).status == 201
    await assert_problem(await register(client, email.upper(), region="us"), 409)


async def test_weak_password_bad_email_and_unknown_fields_are_422(client):
    await assert_problem(await register(client, new_email(), password="short"), 422)
    await assert_problem(await register(client, "not-an-email"), 422)
    await assert_problem(await register(client, new_email(), is_admin=True), 422)
    await assert_problem(await register(client, new_email(), region="mars"), 422)
    resp = await client.post("/api/v1/auth/login", json={"email": new_email(), "password": PASSWORD, "x": 1})
    await assert_problem(resp, 422)


async def test_malformed_json_is_a_400_problem(client):
    resp = await client.post("/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"})
    await assert_problem(resp, 400)


async def test_an_eu_user_is_stored_only_in_the_eu_store(client):
    email = new_email()
    assert (await register(client, email, region="eu")).status == 201
    stores = client.app[REGIONS]
    assert (await stores[Region.EU].account_by_email(email)) is not None
    assert (await stores[Region.US].account_by_email(email)) is None


async def _logged_in(client) -> SimpleCookie:
    email = new_email()
    await register(client, email)
    return cookies_of(await login(client, email))


async def test_refresh_with_the_cookie_rotates_the_pair(client):
    jar = await _logged_in(client)
    resp = await client.post(
        "/api/v1/auth/refresh",
        headers={"Cookie": cookie_header(jar, "refresh_token", "csrf_token"), "X-CSRF-Token": jar["csrf_token"].value},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    rotated = cookies_of(resp)
    assert rotated["refresh_token"].value != jar["refresh_token"].value
    assert rotated["refresh_token"]["path"] == "/api/v1/auth"
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_family(client):
    jar = await _logged_in(client)
    first = jar["refresh_token"].value
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    second = cookies_of(resp)["refresh_token"].value
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    await assert_problem(reuse, 401)
    assert cookies_of(reuse)["refresh_token"].value == ""  # the browser is told to forget it
    # the successor died with the family, though it was never used
    await assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": second}), 401)


async def test_refresh_without_a_token_or_with_garbage_is_401(client):
    await assert_problem(await client.post("/api/v1/auth/refresh"), 401)
    await assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": "eu.nope"}), 401)
    await assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": "xx"}), 401)


async def test_cookie_refresh_and_logout_need_the_csrf_header(client):
    jar = await _logged_in(client)
    cookies = {"Cookie": cookie_header(jar, "refresh_token", "csrf_token")}
    body = await assert_problem(await client.post("/api/v1/auth/refresh", headers=cookies), 403)
    assert body["type"].endswith("/csrf")
    await assert_problem(await client.post("/api/v1/auth/logout", headers=cookies), 403)
    wrong = cookies | {"X-CSRF-Token": "not-the-cookie"}
    await assert_problem(await client.post("/api/v1/auth/logout", headers=wrong), 403)


async def test_logout_clears_the_cookies_and_revokes_the_refresh_token(client):
    jar = await _logged_in(client)
    resp = await client.post(
        "/api/v1/auth/logout",
        headers={"Cookie": cookie_header(jar, "refresh_token", "csrf_token"), "X-CSRF-Token": jar["csrf_token"].value},
    )
    assert resp.status == 204
    cleared = cookies_of(resp)
    for name in ("access_token", "refresh_token", "csrf_token"):
        assert cleared[name].value == "", name
    assert cleared["refresh_token"]["path"] == "/api/v1/auth"
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": jar["refresh_token"].value})
    await assert_problem(again, 401)


async def test_logout_without_a_session_is_still_204(client):
    assert (await client.post("/api/v1/auth/logout")).status == 204
