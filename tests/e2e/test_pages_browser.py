"""The web pages in a real browser (the system Chromium, through Playwright) against a real
`roombook serve`: a newcomer's whole journey, two guests racing for the same nights, a declined
card, and every page at phone and desktop width with nothing logged as an error. Screenshots go
to artifacts/screenshots (ROOMBOOK_ARTIFACTS), which CI keeps."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from site_browser import (
    CHROMIUM,
    DESKTOP,
    PASSWORD,
    PHONE,
    Console,
    api_json,
    day,
    new_context,
    screenshot,
    serve,
)

ROOMS = 40
GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
DOCS = {("search", "desktop"), ("room", "desktop"), ("room", "phone"), ("account", "phone")}  # the README's


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("pages-site"), rooms=ROOMS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _email() -> str:
    return f"guest-{secrets.token_hex(4)}@example.com"


def _register_inline(page: Page, first_name: str = "Ada") -> None:
    expect(page.locator("#auth-panel")).to_be_visible()
    form = page.get_by_role("form", name="Create an account")  # beside the "Sign in" form
    form.get_by_label("Email").fill(_email())
    form.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    form.get_by_label("First name").fill(first_name)
    form.get_by_role("button", name="Create account").click()


def _register(page: Page, site: str) -> None:
    page.goto(f"{site}/register?next=/account")
    page.get_by_label("Email").fill(_email())
    page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{site}/account")


def _fill_card(page: Page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM/YY)").fill("12/39")
    page.get_by_label("CVC").fill("123")


def _night(page: Page, iso: str):
    return page.locator(f'#calendar button[data-date="{iso}"]')


def test_a_newcomer_searches_books_sees_and_cancels_and_the_nights_are_free_again(site: str, browser: Browser):
    room = api_json(f"{site}/api/v1/rooms/5")
    city, check_in, check_out = room["location"]["city"], day(20), day(23)
    context = new_context(browser)
    console = Console()
    page = console.watch(context.new_page())
    sent: list[str] = []  # every request the page made: its URL, headers and body
    page.on("request", lambda r: sent.append(f"{r.url} {r.headers} {r.post_data or ''}"))

    page.goto(site + "/")
    page.get_by_label("City").fill(city)
    page.get_by_label("Check in").fill(check_in)
    page.get_by_label("Check out").fill(check_out)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"/search\?city=.+&check_in={check_in}&check_out={check_out}"))
    card = page.locator(f'.card[data-room-id="{room["id"]}"]')
    expect(card).to_contain_text("in total")
    screenshot(page, "search-desktop")

    card.get_by_role("link").click()
    expect(page).to_have_url(f"{site}/rooms/{room['id']}?check_in={check_in}&check_out={check_out}")
    expect(page.locator("#selection")).to_contain_text("3 nights")  # the search's dates, preselected
    expect(page.locator("#booking-total")).to_contain_text("in total")
    screenshot(page, "room-desktop")
    _fill_card(page, GOOD_CARD)
    page.locator("#book-button").click()
    _register_inline(page)  # not signed in: the panel asks, then the booking carries on
    outcome = page.locator("#booking-outcome")
    expect(outcome).to_contain_text("Booked:")
    for iso in (check_in, day(21), day(22)):
        expect(_night(page, iso)).to_be_disabled()  # the calendar was read again
    screenshot(page, "room-booked-desktop")

    digits = GOOD_CARD.replace(" ", "")
    assert not [r for r in sent if digits in r.replace(" ", "").replace("-", "")]  # the number never left
    [booking] = [r for r in sent if r.startswith(f"{site}/api/v1/bookings ")]
    assert re.search(r"'idempotency-key': '[0-9a-f-]{36}'", booking) and "'x-csrf-token': '" in booking
    assert re.search(r'"card_token":"tok_visa_[a-z]{20}"', booking)

    outcome.get_by_role("link", name="See your booking").click()
    expect(page.locator("#booking-status")).to_have_text("Confirmed")
    page.get_by_role("link", name="All your bookings").click()
    expect(page.locator("#bookings tbody tr")).to_have_count(1)
    expect(page.locator("#profile-name")).to_have_text("Ada")
    screenshot(page, "account-desktop")
    page.get_by_role("link", name="Cancel…").click()
    expect(page.get_by_role("heading", name="Cancel this booking?")).to_be_visible()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#cancelled-note")).to_be_visible()
    expect(page.locator("#booking-status")).to_contain_text("Cancelled")  # and what was refunded

    page.goto(f"{site}/rooms/{room['id']}")
    for iso in (check_in, day(21), day(22)):
        expect(_night(page, iso)).to_be_enabled()
    assert console.unexpected() == []
    context.close()


def test_two_guests_race_for_the_same_nights_one_wins_and_the_other_sees_which(site: str, browser: Browser):
    check_in, check_out = day(30), day(32)
    console = Console()
    contexts = [new_context(browser) for _ in range(2)]
    pages = [console.watch(context.new_page()) for context in contexts]
    for page in pages:
        _register(page, site)
        page.goto(f"{site}/rooms/7?check_in={check_in}&check_out={check_out}")
        expect(page.locator("#selection")).to_contain_text("2 nights")
        _fill_card(page, GOOD_CARD)
    for page in pages:  # both requests are in flight together: a click does not wait for the answer
        page.locator("#book-button").click(no_wait_after=True)
    outcomes = [page.locator("#booking-outcome") for page in pages]
    for outcome in outcomes:
        expect(outcome).to_be_visible()
    texts = [outcome.inner_text() for outcome in outcomes]
    assert sorted(t.startswith("Booked:") for t in texts) == [False, True], texts
    loser = next(page for page, text in zip(pages, texts, strict=True) if not text.startswith("Booked:"))
    expect(loser.locator("#booking-outcome")).to_contain_text("someone has just booked")
    expect(loser.locator("#booking-outcome")).to_contain_text(re.compile(r"\d+ \w+ 20\d\d, .+\d+ \w+ 20\d\d"))
    expect(_night(loser, check_in)).to_be_disabled()  # the loser's calendar was read again
    screenshot(loser, "room-taken-desktop")
    assert console.unexpected(409) == []
    for context in contexts:
        context.close()


def test_a_declined_card_books_nothing_and_another_card_then_books(site: str, browser: Browser):
    context = new_context(browser)
    console = Console()
    page = console.watch(context.new_page())
    _register(page, site)
    page.goto(f"{site}/rooms/9")
    _night(page, day(40)).focus()  # the calendar works from the keyboard
    page.keyboard.press("Enter")
    _night(page, day(41)).focus()
    page.keyboard.press("Space")
    expect(page.locator("#selection")).to_contain_text("1 night")
    _fill_card(page, DECLINED_CARD)
    page.locator("#book-button").click()
    expect(page.locator("#booking-outcome")).to_contain_text("declined")
    expect(page.get_by_label("Card number")).to_be_focused()
    screenshot(page, "room-declined-desktop")
    bookings = page.request.get(f"{site}/api/v1/bookings").json()
    assert [b["status"] for b in bookings["items"]] == ["REFUSED"]  # the refused attempt, kept
    _fill_card(page, GOOD_CARD)
    page.locator("#book-button").click()
    expect(page.locator("#booking-outcome")).to_contain_text("Booked:")
    assert console.unexpected(402) == []
    context.close()


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_every_page_renders_at_phone_and_desktop_width_without_console_errors(site: str, browser: Browser, width: str):
    context = new_context(browser, PHONE if width == "phone" else DESKTOP)
    console = Console()
    page = console.watch(context.new_page())
    room_id = 3 if width == "phone" else 4  # each books its own room
    visits = {"home": "/", "search": f"/search?check_in={day(50)}&check_out={day(52)}&guests=2"}
    visits["room"] = f"/rooms/{room_id}"
    visits |= {"login": "/login", "register": "/register", "not-found": "/rooms/999999"}
    for name, path in visits.items():
        page.goto(site + path)
        page.wait_for_load_state("networkidle")
        screenshot(page, f"{name}-{width}", for_docs=(name, width) in DOCS)
    _register(page, site)
    page.goto(f"{site}/rooms/{room_id}?check_in={day(50)}&check_out={day(51)}")
    _fill_card(page, GOOD_CARD)
    page.locator("#book-button").click()
    expect(page.locator("#booking-outcome")).to_contain_text("Booked:")
    page.goto(site + "/account")
    screenshot(page, f"account-{width}", for_docs=("account", width) in DOCS)
    page.locator("#bookings a").first.click()
    expect(page.locator("#booking-status")).to_have_text("Confirmed")
    screenshot(page, f"booking-{width}")
    if width == "phone":  # the layout fits the phone: nothing is wider than the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("link", name="All your bookings").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(site + "/")
    page.goto(site + "/account")
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)account$"))
    # the one failed load is the 404 page's own document
    assert console.unexpected(404) == [] and sum("status of 404" in e for e in console.errors) <= 1
    context.close()


def test_search_filters_sort_and_pages_from_the_api_in_place_and_the_back_button_returns(site: str, browser: Browser):
    context = new_context(browser)
    console = Console()
    page = console.watch(context.new_page())
    page.goto(f"{site}/search?per_page=5")
    page.evaluate("window.loadedOnce = true")  # gone if anything below reloads the page
    first_ids = page.locator(".card").evaluate_all("cards => cards.map(c => Number(c.dataset.roomId))")
    assert first_ids == [1, 2, 3, 4, 5]

    page.get_by_label("Sort by").select_option("-price")
    expect(page).to_have_url(f"{site}/search?sort=-price&per_page=5")
    dearest = api_json(f"{site}/api/v1/rooms?sort=-price&per_page=5")["items"]
    expect(page.locator(".card").first).to_have_attribute("data-room-id", str(dearest[0]["id"]))
    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(f"{site}/search?sort=-price&per_page=5&page=2")
    second = api_json(f"{site}/api/v1/rooms?sort=-price&per_page=5&page=2")["items"]
    expect(page.locator(".card").first).to_have_attribute("data-room-id", str(second[0]["id"]))

    page.go_back()
    expect(page).to_have_url(f"{site}/search?sort=-price&per_page=5")
    expect(page.locator(".card").first).to_have_attribute("data-room-id", str(dearest[0]["id"]))
    page.go_back()
    expect(page.get_by_label("Sort by")).to_have_value("")
    expect(page.locator(".card").first).to_have_attribute("data-room-id", "1")
    assert page.evaluate("window.loadedOnce") is True
    assert console.unexpected() == []
    context.close()


def test_search_works_without_javascript(site: str, browser: Browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site + "/")
    city = api_json(f"{site}/api/v1/rooms/2")["location"]["city"]
    page.get_by_label("City").fill(city)
    page.get_by_role("button", name="Search").click()  # a plain GET form: the server renders the results
    expect(page).to_have_url(re.compile(r"/search\?q=&city="))
    expected = api_json(f"{site}/api/v1/rooms?city={city.replace(' ', '+')}")
    expect(page.locator("#results-count")).to_have_text(f"{expected['total']} room" + "s" * (expected["total"] != 1))
    cards = page.locator(".card").evaluate_all("cards => cards.map(c => Number(c.dataset.roomId))")
    assert cards == [room["id"] for room in expected["items"]]
    context.close()


def test_a_double_click_and_a_retry_after_a_lost_answer_book_once(site: str, browser: Browser):
    context = new_context(browser)
    console = Console()
    page = console.watch(context.new_page())
    _register(page, site)
    keys: list[str] = []

    def lose_the_first_answer(route):  # the booking is made, but its answer never reaches the page
        keys.append(route.request.headers["idempotency-key"])
        response = route.fetch()
        if len(keys) == 1:
            assert response.status == 201
            body = '{"type":"https://roombook.dev/problems/unavailable","title":"Service unavailable","status":503}'
            route.fulfill(status=503, content_type="application/problem+json", body=body)
        else:
            route.fulfill(response=response)

    page.route("**/api/v1/bookings", lose_the_first_answer)
    page.goto(f"{site}/rooms/11?check_in={day(60)}&check_out={day(62)}")
    expect(page.locator("#selection")).to_contain_text("2 nights")
    _fill_card(page, GOOD_CARD)
    page.locator("#book-button").dblclick()
    expect(page.locator("#booking-outcome")).to_contain_text("Press Book again to retry")
    page.locator("#book-button").click()
    expect(page.locator("#booking-outcome")).to_contain_text("Booked:")
    assert len(keys) == 2 and keys[0] == keys[1]  # the double click sent one request; the retry, the same key
    bookings = page.request.get(f"{site}/api/v1/bookings").json()
    assert [(b["room_id"], b["status"]) for b in bookings["items"]] == [(11, "CONFIRMED")]
    assert console.unexpected(503) == []
    context.close()


def test_a_visitor_sent_to_sign_in_comes_back_to_the_page_after_one_wrong_password(site: str, browser: Browser):
    context = new_context(browser)
    console = Console()
    page = console.watch(context.new_page())
    email = _email()
    created = page.request.post(
        f"{site}/api/v1/auth/register", data={"email": email, "password": PASSWORD, "region": "us"}
    )
    assert created.status == 201
    page.request.post(f"{site}/api/v1/auth/logout", headers={"X-CSRF-Token": _csrf(context)})
    page.goto(f"{site}/account?page=1")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Password").press("Enter")  # the keyboard submits the form
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_role("alert")).to_be_focused()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site}/account?page=1")
    expect(page.locator("#profile-email")).to_have_text(email)
    assert console.unexpected(401) == []
    context.close()


def _csrf(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "csrf_token")
