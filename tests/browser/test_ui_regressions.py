"""The banner, the preference centre and the re-activation script in Chromium,
on a small app of their own: keyboard focus, stacking, room for the banner,
CSP nonces, and a choice made from an iframe's placeholder.

Tracker hosts are answered by Playwright's request interception (never
contacted); the app itself is served by uvicorn on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from cookiegate import Category, Gate, Policy
from cookiegate.asgi import CookieGateMiddleware

from .conftest import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

pytestmark = pytest.mark.browser

NONCE = "r4nd0mN0nce123"
LINKS = "\n".join(f'<p><a href="/p{i}">Product {i}</a> about product {i}.</p>' for i in range(40))
PAGES = {
    "/": (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Shop</title>'
        f'<script nonce="{NONCE}">window.__log = [];</script>'
        '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
        f'<script nonce="{NONCE}">window.dataLayer = window.dataLayer || [];'
        "function gtag(){dataLayer.push(arguments);} gtag('js', new Date());"
        "gtag('config', 'G-1'); window.__log.push('inline');</script>"
        f"</head><body><main><h1>Shop</h1>{LINKS}"
        '<iframe id="yt" width="320" height="180" title="Video"'
        ' src="https://www.youtube.com/embed/x"></iframe>'
        '<p><a href="/after">After the video</a></p></main></body></html>'
    ),
}
CSP = f"script-src 'self' 'nonce-{NONCE}' https://www.googletagmanager.com"


def _app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route as StarletteRoute

    policy = Policy(
        version="2026-12-01",
        categories=[
            Category("performance", "Performance", "Analytics."),
            Category("marketing", "Marketing", "Ads and embedded videos."),
        ],
    )
    gate = Gate(policy, secret_keys=["k" * 32], secure=False)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGES["/"], headers={"content-security-policy": CSP})

    app = Starlette(routes=[StarletteRoute("/", page)])
    app.add_middleware(CookieGateMiddleware, gate=gate)
    return app


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    srv = Server(_app()).start()
    yield srv.url
    srv.stop()


def _trackers(route: Route) -> None:
    url = route.request.url
    if "gtag/js" in url:
        route.fulfill(status=200, content_type="text/javascript", body="__log.push('gtag.js')")
    elif "youtube" in url:
        route.fulfill(status=200, content_type="text/html", body="<p>video</p>")
    else:
        route.fulfill(status=204)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made: list[BrowserContext] = []

    def make(**kwargs: Any) -> BrowserContext:
        kwargs.setdefault("viewport", {"width": 1280, "height": 720})
        kwargs.setdefault("locale", "en-US")
        ctx = browser.new_context(**kwargs)
        ctx.set_default_timeout(5_000)
        ctx.route("https://**/*", _trackers)
        made.append(ctx)
        return ctx

    yield make  # type: ignore[misc]
    for ctx in made:
        ctx.close()


def _open(context: Any, shop: str, **kwargs: Any) -> Page:
    page: Page = context(**kwargs).new_page()
    page.goto(shop + "/")
    page.wait_for_load_state("networkidle")
    return page


def test_recreated_inline_scripts_keep_their_csp_nonce(context: Any, shop: str) -> None:
    """A nonce is hidden from getAttribute once parsed: the re-created inline
    script must carry it as a property, or the app's CSP blocks it."""
    page = _open(context, shop)
    assert page.evaluate("window.__log") == []
    page.get_by_role("button", name="Accept all").click()
    # (no wait_for_function: it evaluates a string, which this page's CSP forbids)
    log: list[str] = []
    for _ in range(50):
        log = page.evaluate("window.__log")
        if len(log) >= 2:
            break
        page.wait_for_timeout(100)
    assert sorted(log) == ["gtag.js", "inline"]


def test_load_after_consent_keeps_focus_and_updates_the_banner(context: Any, shop: str) -> None:
    page = _open(context, shop, locale="de-DE")
    placeholder = page.locator("[data-cg-placeholder]")
    assert placeholder.get_attribute("lang") == "de"  # its wording's language (WCAG 3.1.2)
    button = placeholder.locator("button")
    button.focus()
    page.keyboard.press("Enter")
    page.locator("#yt[src]").wait_for(state="attached")
    # focus moved to the restored video, not lost to <body> (WCAG 2.4.3)
    assert page.evaluate("document.activeElement.id") == "yt"
    # the choice was made: the banner goes, the settings control comes
    assert page.locator("#cookiegate-banner").is_hidden()
    assert page.locator("#cookiegate-settings").is_visible()


def test_the_open_preference_centre_is_above_the_settings_control(context: Any, shop: str) -> None:
    page = _open(context, shop, viewport={"width": 320, "height": 640})
    page.get_by_role("button", name="Accept all").click()
    page.locator("#cookiegate-settings [data-cg-open]").click()
    page.locator("#cookiegate-preferences .cg-dialog").wait_for(state="visible")
    on_top = page.evaluate(
        """() => [...document.querySelectorAll('#cookiegate-settings .cg-settings__btn')]
        .filter(el => el.getClientRects().length)
        .map(el => { const r = el.getBoundingClientRect();
          const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          return !!top && !!top.closest('#cookiegate-settings'); })"""
    )
    assert on_top and not any(on_top)


@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (320, 640)])
def test_focus_is_never_hidden_behind_the_banner(
    context: Any, shop: str, size: tuple[int, int]
) -> None:
    """WCAG 2.4.11: tabbing through the page's links while the banner shows,
    none is entirely behind it (the page keeps room for it)."""
    page = _open(context, shop, viewport={"width": size[0], "height": size[1]})
    hidden, seen = [], 0
    for _ in range(60):
        page.keyboard.press("Tab")
        r = page.evaluate(
            """() => { const a = document.activeElement;
            const b = document.getElementById('cookiegate-banner').getBoundingClientRect();
            const e = a.getBoundingClientRect();
            return {inBanner: !!a.closest('#cookiegate'), text: a.textContent.trim(),
              hidden: e.top >= b.top && e.bottom <= b.bottom && e.left >= b.left
                && e.right <= b.right}; }"""
        )
        if r["inBanner"]:
            break
        seen += 1
        if r["hidden"]:
            hidden.append(r["text"])
    assert seen >= 40 and hidden == []


def test_settings_mode_dialog_headings_sit_under_the_page(context: Any, shop: str) -> None:
    """Opened on a decided visitor's page, the panel fetched from the preferences
    page has its <h1> demoted: the host page keeps its one <h1>."""
    page = _open(context, shop)
    page.get_by_role("button", name="Reject all").click()
    page.reload()
    page.wait_for_load_state("networkidle")
    page.locator("#cookiegate-settings [data-cg-open]").click()
    page.locator("#cookiegate-preferences .cg-dialog").wait_for(state="visible")
    levels = page.evaluate(
        "[...document.querySelectorAll('#cookiegate-preferences h1,"
        " #cookiegate-preferences h2, #cookiegate-preferences h3')].map(h => h.tagName)"
    )
    assert levels and "H1" not in levels and levels[0] == "H2"


@pytest.mark.parametrize("size", [(1280, 720), (320, 640)])
def test_the_settings_control_leaves_the_page_end_clear(
    context: Any, shop: str, size: tuple[int, int]
) -> None:
    """WCAG 2.4.11 for a decided visitor: scrolled to the end, the page's last
    link is not behind the fixed "Cookie settings" control (the page keeps room
    for it), so it can be seen, focused and clicked."""
    page = _open(context, shop, viewport={"width": size[0], "height": size[1]})
    page.get_by_role("button", name="Accept all").click()
    page.locator("#cookiegate-settings").wait_for(state="visible")
    for reload in (False, True):  # right after the choice, and on the next page
        if reload:
            page.reload()
            page.wait_for_load_state("networkidle")
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        covered = page.evaluate(
            """() => { const a = document.querySelector("a[href='/after']");
            const r = a.getBoundingClientRect();
            return [[0.1, 0.5], [0.5, 0.5], [0.9, 0.5]].some(([x, y]) => {
              const top = document.elementFromPoint(r.left + r.width * x, r.top + r.height * y);
              return !top || !a.contains(top); }); }"""
        )
        assert not covered


def test_opening_the_settings_twice_while_loading_gives_one_panel(context: Any, shop: str) -> None:
    """Two quick presses of "Cookie settings" while the panel is fetched insert
    it once (no duplicate ids, whose labels would toggle the other panel)."""
    page = _open(context, shop)
    page.get_by_role("button", name="Reject all").click()
    page.reload()
    page.wait_for_load_state("networkidle")

    def slow(route: Route) -> None:
        import time

        time.sleep(0.3)  # as on a real network
        route.continue_()

    page.route("**/_cookiegate/preferences*", slow)
    page.focus("#cookiegate-settings a[data-cg-open]")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.locator("#cookiegate-preferences .cg-dialog").wait_for(state="visible")
    page.wait_for_timeout(600)
    panels = page.evaluate(
        "document.querySelectorAll('#cookiegate-preferences [data-cg-panel]').length"
    )
    assert panels == 1
    assert page.evaluate("document.querySelectorAll('#cg-cat-performance').length") == 1
