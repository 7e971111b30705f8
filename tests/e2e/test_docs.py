"""`/docs`: Swagger UI over the API's own OpenAPI document, every file served by roombook itself.

Over HTTP: the page names only local files, each of them is served (and nothing else of the
package); in the system Chromium (Playwright, no browser download): the UI renders the API's
operations and the browser asks nothing of any other origin.
"""

from __future__ import annotations

import os
import re

import pytest
from booking_harness import app_for, local_settings
from playwright.async_api import async_playwright

CHROMIUM = os.environ.get("ROOMBOOK_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
async def server(aiohttp_server, tmp_path):
    return await aiohttp_server(app_for(local_settings(tmp_path)))


def local_references(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_names_only_files_roombook_serves(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(app_for(local_settings(tmp_path)))
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    references = local_references(await resp.text())
    assert len(references) == 5
    for reference in references:
        assert reference.startswith("/docs/"), reference  # no other origin, no CDN
        asset = await client.get(reference)
        assert asset.status == 200, reference
        assert asset.content_type in ("text/css", "text/javascript", "image/png"), reference
        assert len(await asset.read()) > 0
    start = await (await client.get("/docs/start.js")).text()
    assert 'url: "/api/v1/openapi.json"' in start and "validatorUrl: null" in start
    assert (await client.get("/api/v1/openapi.json")).status == 200
    for other in ("/docs/static/index.html", "/docs/static/swagger-initializer.js", "/docs/static/..%2f__init__.py"):
        resp = await client.get(other)
        assert resp.status == 404 and resp.content_type == "application/problem+json", other


async def test_the_ui_renders_the_api_without_asking_any_other_origin(server) -> None:
    base = str(server.make_url("")).rstrip("/")
    requested: list[str] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(base + "/docs")
            bookings = page.locator(".opblock-summary-path", has_text="/api/v1/bookings").first
            await bookings.wait_for(timeout=15_000)
            paths = await page.locator(".opblock-summary-path").all_inner_texts()
            title = await page.locator(".info .title").inner_text()
        finally:
            await browser.close()
    assert "roombook" in title
    assert {"/api/v1/auth/login", "/api/v1/rooms", "/api/v1/bookings"} <= {p.strip() for p in paths}
    assert requested and all(url.startswith(base + "/") for url in requested), requested
    assert f"{base}/api/v1/openapi.json" in requested
    assert not errors, errors
