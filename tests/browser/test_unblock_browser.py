"""static/cookiegate-unblock.js in Chromium, on a page rewritten by HtmlRewriter.

Everything is served from memory by Playwright's request interception, so the
tracker hosts are never contacted: the test records which URLs the page asks for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cookiegate.rewrite import HtmlRewriter
from cookiegate.trackers import TrackerMatcher

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://shop.test"
PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>unblock</title>
<script>window.__log = [];</script>
<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>
<script>/* gtag('js', new Date()) */ window.__log.push("inline");</script>
<script src="https://static.hotjar.com/c/hotjar-1.js?sv=6"></script>
<script type="text/plain" data-category="performance">window.__log.push("marked");</script>
<script>/* gtag('js', new Date()); fbq('init', '1') */ window.__log.push("bundle");</script>
</head><body>
<img id="px" height="1" width="1" src="https://www.facebook.com/tr?id=1&amp;ev=PageView">
<iframe id="yt" width="320" height="180" src="https://www.youtube.com/embed/x"></iframe>
<script src="/static/cookiegate-unblock.js"></script>
</body></html>
"""
#: a 1x1 transparent GIF
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
TRACKER_HOSTS = ("googletagmanager.com", "hotjar.com", "facebook.com", "youtube.com")


def test_unblock_restores_granted_categories(browser: Browser) -> None:
    matcher = TrackerMatcher(category_map={"marketing": "marketing"})
    rw = HtmlRewriter(frozenset({"performance", "marketing"}), b"", trackers=matcher)
    page_bytes = rw.feed(PAGE) + rw.close()
    assert page_bytes.count(b"data-cg-blocked") == 6  # + the text/plain marked one
    assert b'data-cg-blocked="performance marketing"' in page_bytes  # the bundle
    requested: list[str] = []
    posted: list[Any] = []

    def handle(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if url == ORIGIN + "/":
            route.fulfill(status=200, content_type="text/html", body=page_bytes)
        elif url.endswith("/static/cookiegate-unblock.js"):
            route.fulfill(
                status=200,
                content_type="text/javascript",
                body=(ROOT / "static" / "cookiegate-unblock.js").read_bytes(),
            )
        elif url == ORIGIN + "/_cookiegate/consent":
            posted.append(json.loads(route.request.post_data or "null"))
            route.fulfill(status=200, content_type="application/json", body="{}")
        elif "gtag/js" in url:
            route.fulfill(status=200, content_type="text/javascript", body='__log.push("gtag.js")')
        elif "hotjar" in url:
            route.fulfill(status=200, content_type="text/javascript", body='__log.push("hotjar")')
        elif "youtube" in url:
            route.fulfill(status=200, content_type="text/html", body="<p>video</p>")
        else:
            route.fulfill(status=200, content_type="image/gif", body=b"GIF89a")

    context = browser.new_context()
    context.set_default_timeout(5_000)
    try:
        context.route("**/*", handle)
        page = context.new_page()
        page.goto(ORIGIN + "/")
        page.wait_for_load_state("load")
        assert not [u for u in requested if any(h in u for h in TRACKER_HOSTS)]
        assert page.evaluate("window.__log") == []
        placeholder = page.locator("[data-cg-placeholder=marketing]")
        assert placeholder.is_visible()
        assert page.locator("#yt").is_hidden()

        # performance granted: scripts in document order, externals awaited
        page.evaluate(
            "document.dispatchEvent(new CustomEvent('cookiegate:consent',"
            " {detail: {categories: {performance: true, marketing: false}}}))"
        )
        page.wait_for_function("window.__log.length === 4")
        assert page.evaluate("window.__log") == ["gtag.js", "inline", "hotjar", "marked"]
        assert not [u for u in requested if "facebook.com" in u or "youtube.com" in u]
        # (the gtag + fbq bundle waits for marketing too)

        # the placeholder's button grants marketing, merged with the current state
        page.locator("[data-cg-load=marketing]").click()
        page.wait_for_function("document.getElementById('yt').getAttribute('src') !== null")
        assert posted == [{"categories": {"performance": True, "marketing": True}}]
        assert placeholder.count() == 0
        assert page.locator("#yt").is_visible()
        page.wait_for_function("document.getElementById('px').complete")
        assert [u for u in requested if "facebook.com/tr" in u]
        assert [u for u in requested if "youtube.com/embed/x" in u]
        page.wait_for_function("window.__log.length === 5")
        assert page.evaluate("window.__log") == ["gtag.js", "inline", "hotjar", "marked", "bundle"]
    finally:
        context.close()


ORDER_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>order</title>
<script>window.__log = [];</script>
<script type="text/plain" data-category="performance" src="/b1.js"></script>
<script type="text/plain" data-category="performance">
  window.__log.push(window.B1 ? "B2 after B1" : "B2 before B1");
</script>
</head><body>
<iframe id="yt" width="320" height="180" src="https://www.youtube.com/embed/x"></iframe>
<script src="/static/cookiegate-unblock.js"></script>
</body></html>
"""


def test_marked_external_script_is_awaited_and_withdrawal_is_kept(browser: Browser) -> None:
    """A site-marked ``type="text/plain"`` script with a real ``src`` runs before
    the marked script after it; a placeholder pressed after a withdrawal grants
    only its own category (the withdrawn one stays refused)."""
    matcher = TrackerMatcher(category_map={"marketing": "marketing"})
    rw = HtmlRewriter(frozenset({"performance", "marketing"}), b"", trackers=matcher)
    page_bytes = rw.feed(ORDER_PAGE) + rw.close()
    posted: list[Any] = []

    def handle(route: Route) -> None:
        url = route.request.url
        if url == ORIGIN + "/":
            route.fulfill(status=200, content_type="text/html", body=page_bytes)
        elif url.endswith("/static/cookiegate-unblock.js"):
            route.fulfill(
                status=200,
                content_type="text/javascript",
                body=(ROOT / "static" / "cookiegate-unblock.js").read_bytes(),
            )
        elif url.endswith("/b1.js"):
            body = 'window.B1 = 1; window.__log.push("B1");'
            route.fulfill(status=200, content_type="text/javascript", body=body)
        elif url == ORIGIN + "/_cookiegate/consent":
            posted.append(json.loads(route.request.post_data or "null"))
            route.fulfill(status=200, content_type="application/json", body="{}")
        else:
            route.fulfill(status=200, content_type="text/html", body="<p>video</p>")

    context = browser.new_context()
    context.set_default_timeout(5_000)
    try:
        context.route("**/*", handle)
        page = context.new_page()
        page.goto(ORIGIN + "/")
        page.wait_for_load_state("load")
        assert page.evaluate("window.__log") == []
        event = (
            "c => document.dispatchEvent(new CustomEvent('cookiegate:consent',"
            " {detail: {categories: c}}))"
        )
        page.evaluate(event, {"performance": True, "marketing": False})
        page.wait_for_function("window.__log.length === 2")
        assert page.evaluate("window.__log") == ["B1", "B2 after B1"]
        page.evaluate(event, {"performance": False, "marketing": False})  # withdrawn
        page.locator("[data-cg-load=marketing]").click()
        page.wait_for_function("document.getElementById('yt').getAttribute('src') !== null")
        assert posted == [{"categories": {"performance": False, "marketing": True}}]
    finally:
        context.close()


MEDIA_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>media</title></head><body>
<svg width="2" height="2"><image href="https://www.facebook.com/tr?ev=svg" width="1"
 height="1"/></svg>
<picture><source srcset="https://www.facebook.com/tr?ev=source"><img alt="" src="/a.gif">
</picture>
<input type="image" alt="go" src="https://www.facebook.com/tr?ev=input">
<video width="2" height="2" poster="https://www.facebook.com/tr?ev=poster"></video>
<object data="https://www.facebook.com/tr?ev=object" type="image/gif" width="1" height="1">
</object>
<embed src="https://www.facebook.com/tr?ev=embed" type="image/gif" width="1" height="1">
<script src="/static/cookiegate-unblock.js"></script>
</body></html>
"""
MEDIA_EVENTS = ("svg", "source", "input", "poster", "object", "embed")


def test_media_and_embedded_trackers_load_only_after_consent(browser: Browser) -> None:
    """SVG images, picture sources, image inputs, video posters, objects and
    embeds pointing at a tracker load nothing before consent and all load once
    their category is granted."""
    matcher = TrackerMatcher(category_map={"marketing": "marketing"})
    rw = HtmlRewriter(frozenset({"performance", "marketing"}), b"", trackers=matcher)
    page_bytes = rw.feed(MEDIA_PAGE) + rw.close()
    assert page_bytes.count(b'data-cg-blocked="marketing"') == len(MEDIA_EVENTS)
    requested: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if url == ORIGIN + "/":
            route.fulfill(status=200, content_type="text/html", body=page_bytes)
        elif url.endswith("/static/cookiegate-unblock.js"):
            route.fulfill(
                status=200,
                content_type="text/javascript",
                body=(ROOT / "static" / "cookiegate-unblock.js").read_bytes(),
            )
        else:
            route.fulfill(status=200, content_type="image/gif", body=GIF)

    context = browser.new_context()
    context.set_default_timeout(5_000)
    try:
        context.route("**/*", handle)
        page = context.new_page()
        page.goto(ORIGIN + "/")
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        assert not [u for u in requested if "facebook.com" in u]
        page.evaluate(
            "document.dispatchEvent(new CustomEvent('cookiegate:consent',"
            " {detail: {categories: {performance: false, marketing: true}}}))"
        )
        page.wait_for_function("() => !document.querySelector('[data-cg-blocked]')")
        deadline = 50
        while deadline and not all(any(f"ev={ev}" in u for u in requested) for ev in MEDIA_EVENTS):
            page.wait_for_timeout(100)
            deadline -= 1
        missing = [ev for ev in MEDIA_EVENTS if not any(f"ev={ev}" in u for u in requested)]
        assert missing == []
    finally:
        context.close()
