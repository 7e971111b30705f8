"""A real `roombook serve` and the system Chromium, for the browser tests (test_pages_browser.py).

No browser can be downloaded here: Playwright drives Debian's /usr/bin/chromium (`apt-get install
chromium`; .ci/run installs it when it is missing). Room photos live on an image host the tests
cannot reach: the browser context answers those URLs with a placeholder image instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

CHROMIUM = os.environ.get("ROOMBOOK_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("ROOMBOOK_ARTIFACTS", "artifacts")) / "screenshots"
# the README's few, kept small (the visible part of the page only), written when this is set
DOCS_SCREENSHOTS = os.environ.get("ROOMBOOK_DOCS_SCREENSHOTS", "")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
IMAGE_HOST = "https://images.roombook.example/**"
PLACEHOLDER = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="480" height="320" viewBox="0 0 480 320">'
    b'<rect width="480" height="320" fill="#a9bccb"/><path d="M0 320 160 170l90 90 70-60 160 120z" fill="#6f8da3"/>'
    b'<circle cx="380" cy="80" r="34" fill="#e8eef2"/></svg>'
)
PASSWORD = "correct horse battery staple"
START_TIMEOUT_S = 60.0
_FAILED_LOAD = re.compile(r"status of (\d{3})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir: Path, *, rooms: int) -> Iterator[str]:
    """`roombook serve` on a free port with `rooms` demo rooms; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "roombook", "serve", "--data-dir", str(data_dir), "--runtime", "local"]
    command += ["--shards", "2", "--host", "127.0.0.1", "--port", str(port), "--seed-rooms", str(rooms)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rb-pages-")
    log = (data_dir / "serve.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, (data_dir / "serve.log").read_text()
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing answered at {base}"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def api_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def day(offset: int) -> str:
    """A night `offset` days from today, in the browser's calendar (and this machine's)."""
    return (dt.date.today() + dt.timedelta(days=offset)).isoformat()


class Console:
    """What a page logged as an error, and its uncaught exceptions. A failed request's line
    ("Failed to load resource: ... status of 409") is expected only for the statuses a test names."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def unexpected(self, *statuses: int) -> list[str]:
        allowed = {str(s) for s in statuses}
        return [e for e in self.errors if not ((m := _FAILED_LOAD.search(e)) and m.group(1) in allowed)]


def new_context(browser: Browser, viewport: dict[str, int] = DESKTOP) -> BrowserContext:
    context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(10_000)
    context.route(IMAGE_HOST, lambda route: route.fulfill(body=PLACEHOLDER, content_type="image/svg+xml"))
    return context


def screenshot(page: Page, name: str, *, for_docs: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if for_docs and DOCS_SCREENSHOTS:
        Path(DOCS_SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(DOCS_SCREENSHOTS) / f"{name}.png"))
