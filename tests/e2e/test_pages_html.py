"""The web pages' server HTML over real HTTP, without a browser: what a crawler or a browser with
scripts off gets (titles, prices, JSON-LD, escaping, headers, the same results as the JSON API)."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import html.parser
import json
import re
import secrets

import aiohttp
import pytest
import yarl
from booking_harness import API, PASSWORD, add_rooms, app_for, local_settings, night, room, stay

from roombook.domain.rooms import Location, RoomPatch
from roombook.http.keys import CATALOGUE

BERLIN = Location(city="Berlin", country="DE", address="Torstraße 1", lat=52.52, lon=13.405)


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


class _Page(html.parser.HTMLParser):
    """The parts of a page the tests read: JSON-LD blocks, meta and link tags, scripts, result ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ld: list[object] = []
        self.meta: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.scripts: list[dict[str, str | None]] = []
        self.card_ids: list[int] = []
        self._in_ld = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
            self._in_ld = a.get("type") == "application/ld+json"
        elif tag == "meta" and (a.get("name") or a.get("property")):
            self.meta[a.get("name") or a.get("property") or ""] = a.get("content") or ""
        elif tag == "link" and a.get("rel"):
            self.links[a["rel"] or ""] = a.get("href") or ""
        elif tag == "li" and "card" in (a.get("class") or "").split():
            self.card_ids.append(int(a["data-room-id"] or 0))

    def handle_data(self, data: str) -> None:
        if self._in_ld:
            self.ld.append(json.loads(data))
            self._in_ld = False


async def _page(
    client, path: str, status: int = 200, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, str]:
    response = await client.get(path, headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return response, text


async def test_the_room_page_has_its_title_price_seo_tags_and_json_ld(client):
    (room_id,) = await add_rooms(
        client, room(title="Loft by the canal", location=BERLIN, price_per_night=decimal.Decimal("150.50"))
    )
    response, text = await _page(client, f"/rooms/{room_id}")
    assert response.content_type == "text/html"
    page = _Page(text)
    assert "<title>Loft by the canal · Berlin · roombook</title>" in text
    assert "150,50\xa0€" in text  # English as written in Germany
    assert page.links["canonical"].endswith(f"/rooms/{room_id}")
    assert page.meta["og:title"] == "Loft by the canal"
    assert page.meta["description"]
    [ld] = page.ld
    assert ld["@type"] == "HotelRoom" and ld["name"] == "Loft by the canal"
    assert ld["offers"] | {"priceSpecification": None} == {
        "@type": "Offer",
        "url": page.links["canonical"],
        "price": "150.50",
        "priceCurrency": "EUR",
        "priceSpecification": None,
    }
    assert ld["containedInPlace"]["address"]["addressLocality"] == "Berlin"
    assert ld["occupancy"]["maxValue"] == 2


async def test_an_unknown_room_is_a_404_page(client):
    for path in ("/rooms/999", "/rooms/abc", "/rooms/99999999999999999999"):
        response, text = await _page(client, path, status=404)
        assert response.content_type == "text/html"
        assert "<h1>Not found</h1>" in text


async def test_every_user_string_is_escaped_on_the_room_and_search_pages(client):
    evil = "<script>alert(1)</script>"
    (room_id,) = await add_rooms(client, room(title=evil, description=f"{evil} & </script>"))
    _, text = await _page(client, f"/rooms/{room_id}")
    assert evil not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    [ld] = _Page(text).ld  # the JSON-LD block is not ended early by the title's </script>
    assert ld["name"] == evil
    assert sorted(str(s.get("type")) for s in _Page(text).scripts) == ["application/ld+json", "module"]
    _, text = await _page(client, "/search?q=" + evil.replace("<", "%3C").replace(">", "%3E"))
    assert evil not in text


async def test_pages_forbid_inline_scripts_and_styles(client):
    (room_id,) = await add_rooms(client)
    for path in ("/", f"/rooms/{room_id}", "/rooms/999"):
        response, text = await _page(client, path, status=404 if path == "/rooms/999" else 200)
        csp = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        page = _Page(text)
        assert all(s.get("src") or s.get("type") == "application/ld+json" for s in page.scripts), path
        assert " style=" not in text and "<style" not in text
    api = await client.get(f"{API}/rooms/{room_id}")
    assert api.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert api.headers["Cache-Control"] == "no-store"


async def test_assets_are_named_by_their_content_and_cached_for_a_year(client):
    _, text = await _page(client, "/")
    urls = re.findall(r'(?:href|src)="(/static/[0-9a-f]{16}/[a-z_]+\.(?:css|js|svg))"', text)
    assert {u.rsplit("/", 1)[1] for u in urls} >= {"app.css", "search.js", "favicon.svg"}
    for url in urls:
        response = await client.get(url)
        assert response.status == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    module = await client.get(next(u for u in urls if u.endswith(".js")))
    assert module.content_type == "text/javascript"
    stale = await client.get("/static/0123456789abcdef/app.css")
    assert stale.status == 404


async def test_search_results_are_the_json_apis_results(client):
    lisbon = [room(title=f"Lisbon {i}", price_per_night=decimal.Decimal(100 + i)) for i in range(5)]
    await add_rooms(client, *lisbon, room(title="Elsewhere", location=BERLIN))
    query = f"city=lisbon&check_in={night(0)}&check_out={night(2)}&guests=2&sort=-price&per_page=3"
    api = await (await client.get(f"{API}/rooms?{query}")).json()
    _, text = await _page(client, f"/search?{query}&q=")  # an empty field means no filter
    page = _Page(text)
    assert page.card_ids == [r["id"] for r in api["items"]]
    assert f"{api['total']} rooms" in text
    assert 'rel="next"' in text and "page=2" in text
    assert "208,00\xa0€ in total" in text  # 2 nights of the dearest room, as written in Portugal


async def test_a_search_the_api_refuses_is_a_422_page_saying_why(client):
    _, text = await _page(client, f"/search?check_in={night(3)}&check_out={night(1)}", status=422)
    assert "must be after check_in" in text
    _, text = await _page(client, "/search?q=4111111111111111", status=422)
    assert "4111111111111111" not in text


# -- the signed-in pages ------------------------------------------------------------------------


async def _browser_session(client) -> dict[str, str]:
    """Register as a browser does: the cookies the answer sets, as a Cookie header."""
    email = f"pages-{secrets.token_hex(4)}@example.com"
    body = {"email": email, "password": PASSWORD, "region": "eu", "first_name": "Ada"}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status == 201, await response.text()
    jar = {name: morsel.value for name, morsel in response.cookies.items()}
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items() if k != "refresh_token"), "csrf": jar["csrf_token"]}


async def _book(client, session: dict[str, str], room_id: int, first: int, last: int) -> str:
    key = secrets.token_urlsafe(8)  # 11 characters: too short to hold a card number
    headers = {"Cookie": session["Cookie"], "X-CSRF-Token": session["csrf"], "Idempotency-Key": key}
    response = await client.post(f"{API}/bookings", json=stay(room_id, first, last), headers=headers)
    assert response.status == 201, await response.text()
    return (await response.json())["booking"]["id"]


async def test_account_pages_send_a_visitor_without_a_session_to_sign_in_and_back(client):
    for path in ("/account", "/account?page=2", "/account/bookings/bk_x", "/account/bookings/bk_x/cancel"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        location = yarl.URL(response.headers["Location"])
        assert (location.path, location.query["next"]) == ("/login", path)
    forged = await client.get("/account", headers={"Cookie": "access_token=forged"}, allow_redirects=False)
    assert forged.status == 303
    _, text = await _page(client, "/login?next=/account/bookings/bk_1")
    assert 'data-next="/account/bookings/bk_1"' in text
    _, text = await _page(client, "/login?next=//evil.example/")  # never sent to another site
    assert 'data-next="/account"' in text


async def test_the_account_page_lists_ones_own_bookings_newest_first_and_pages_them(client):
    (room_id,) = await add_rooms(client, room(title="Quiet double"))
    me, other = await _browser_session(client), await _browser_session(client)
    mine = [await _book(client, me, room_id, 2 * i, 2 * i + 1) for i in range(12)]
    theirs = await _book(client, other, room_id, 40, 41)
    _, text = await _page(client, "/account", headers={"Cookie": me["Cookie"]})
    assert "12 bookings" in text and "Ada" in text
    assert re.findall(r'data-booking-id="(bk_[0-9A-Za-z]+)"', text) == mine[::-1][:10]
    assert theirs not in text
    assert 'href="/account?page=2"' in text
    _, text = await _page(client, "/account?page=2", headers={"Cookie": me["Cookie"]})
    assert re.findall(r'data-booking-id="(bk_[0-9A-Za-z]+)"', text) == mine[::-1][10:]
    await _page(client, f"/account/bookings/{theirs}", status=404, headers={"Cookie": me["Cookie"]})


async def test_cancelling_from_the_account_needs_the_confirmation_forms_csrf_token(client):
    (room_id,) = await add_rooms(client)
    me = await _browser_session(client)
    booking_id = await _book(client, me, room_id, 0, 2)
    _, text = await _page(client, f"/account/bookings/{booking_id}/cancel", headers={"Cookie": me["Cookie"]})
    assert f'name="csrf_token" value="{me["csrf"]}"' in text
    url = f"/account/bookings/{booking_id}/cancel"
    for sent in ({}, {"csrf_token": "guess"}):
        response = await client.post(url, data=sent, headers={"Cookie": me["Cookie"]}, allow_redirects=False)
        assert response.status == 403
    response = await client.get(f"{API}/bookings/{booking_id}", headers={"Cookie": me["Cookie"]})
    assert (await response.json())["booking"]["status"] == "CONFIRMED"
    response = await client.post(
        url, data={"csrf_token": me["csrf"]}, headers={"Cookie": me["Cookie"]}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/account/bookings/{booking_id}?cancelled=1"
    _, text = await _page(client, response.headers["Location"], headers={"Cookie": me["Cookie"]})
    assert "Cancelled. Its nights are free again" in text
    calendar = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(2)})
    assert {n["status"] for n in (await calendar.json())["nights"]} == {"available"}


async def test_a_changed_room_gets_a_new_page_never_the_one_rendered_before(client):
    (room_id,) = await add_rooms(client, room(title="Old title"))
    _, text = await _page(client, f"/rooms/{room_id}")
    assert '<h1 id="room-title">Old title</h1>' in text
    await client.app[CATALOGUE].update_room(room_id, RoomPatch(title="New title"))
    async with asyncio.timeout(20):  # the room.updated event drops room:{id}:details
        while "New title" not in (await _page(client, f"/rooms/{room_id}"))[1]:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    _, text = await _page(client, f"/rooms/{room_id}")
    assert "Old title" not in text and _Page(text).ld[0]["name"] == "New title"


async def test_the_room_page_says_when_check_in_and_check_out_are_on_the_propertys_clock(client):
    location = Location(
        city="New York",
        country="US",
        timezone="America/New_York",
        check_in_time=dt.time(16),
        check_out_time=dt.time(10),
    )
    (room_id,) = await add_rooms(client, room(location=location))

    _, text = await _page(client, f"/rooms/{room_id}")

    assert "Check-in from 16:00, check-out by 10:00 (America/New York time)" in text
