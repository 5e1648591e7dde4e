"""The banner in a real browser (Chromium via Playwright), against the demo shop.

Covers what the unit tests cannot: the JavaScript flows (accept, reject,
customise, withdraw without reloading), keyboard use and the focus trap of the
preference centre, the plain-HTML flows with JavaScript off, a policy change,
and how the banner looks (mobile layout, equal buttons, contrast). Screenshots
go to docs/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright.sync_api", reason="install the dev extras: pip install -e '.[dev]'")
from playwright.sync_api import BrowserContext, Page, expect

from .conftest import (
    TRACKING,
    V2_CHANGES,
    NewContext,
    cookie_names,
    screenshot_path,
    wait_for_cookies,
)

pytestmark = pytest.mark.browser

ROOT = "#cookiegate"
BANNER = "#cookiegate-banner"
BUTTONS = "#cookiegate-banner .cg-btn"
ACCEPT = "#cookiegate-banner button[value=accept_all]"
REJECT = "#cookiegate-banner button[value=reject_all]"
CUSTOMISE = "#cookiegate-banner button[data-cg-open]"
MODAL = "#cookiegate-preferences"
DIALOG = "#cookiegate-preferences [role=dialog]"
SETTINGS = "#cookiegate-settings"
SETTINGS_LINK = "#cookiegate-settings a[data-cg-open]"
PERFORMANCE = "#cg-cat-performance"
CONSENT_COOKIE = "cookiegate"


# -- helpers -----------------------------------------------------------------


def open_shop(context: BrowserContext, path: str = "/") -> Page:
    page = context.new_page()
    page.goto(path)
    return page


def record_consent_events(page: Page) -> None:
    """Collect the detail of every ``cookiegate:consent`` event in
    ``window.__cgEvents``; also mark the document, to tell a reload apart."""
    page.locator(f"{ROOT}[data-cg-ready]").wait_for(state="attached")
    page.evaluate(
        """() => {
            window.__cgEvents = [];
            window.__cgSamePage = true;
            document.addEventListener("cookiegate:consent",
                (ev) => window.__cgEvents.push(ev.detail));
        }"""
    )


def wait_for_events(page: Page, count: int) -> None:
    """Poll (with evaluate, no string predicate) until ``count`` consent events
    arrived; a navigation instead of an in-page update fails here, clearly."""
    deadline = time.monotonic() + 5
    while True:
        got = page.evaluate("() => (window.__cgEvents || []).length")
        if got == count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{got} consent events, want {count} (did the page reload?)")
        time.sleep(0.05)


def consent_events(page: Page) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = page.evaluate("window.__cgEvents")
    return events


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__cgSamePage === true"))


def whoami(context: BrowserContext) -> dict[str, Any]:
    """``/whoami.json`` fetched with the browser's cookies: what the app received."""
    res = context.request.get("/whoami.json")
    assert res.ok, res.status
    doc: dict[str, Any] = json.loads(res.text())
    return doc


def active_matches(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            "(sel) => !!document.activeElement && document.activeElement.matches(sel)", selector
        )
    )


def focus_inside(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            "(sel) => { const el = document.querySelector(sel);"
            " return !!el && el.contains(document.activeElement); }",
            selector,
        )
    )


def tab_to(page: Page, selector: str, limit: int = 60) -> int:
    """Press Tab until ``selector`` has the focus; returns the number of presses."""
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if active_matches(page, selector):
            return n
    raise AssertionError(f"Tab never reached {selector}")


# -- WCAG contrast -------------------------------------------------------------

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"


def parse_css_color(value: str) -> tuple[float, float, float, float]:
    """``rgb()``/``rgba()``/``color(srgb ...)`` from getComputedStyle as (r, g, b, a),
    r/g/b in 0..255, a in 0..1."""
    value = value.strip().lower()
    if value == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    nums = [float(n) for n in re.findall(_NUM, value)]
    if value.startswith("rgb") and len(nums) in (3, 4):
        return (nums[0], nums[1], nums[2], nums[3] if len(nums) == 4 else 1.0)
    if value.startswith("color(srgb") and len(nums) in (3, 4):
        r, g, b = (n * 255 for n in nums[:3])
        return (r, g, b, nums[3] if len(nums) == 4 else 1.0)
    raise ValueError(f"unsupported CSS colour {value!r}")


def over(
    top: tuple[float, float, float, float], below: tuple[float, float, float]
) -> tuple[float, float, float]:
    """``top`` alpha-composited over the opaque colour ``below``."""
    a = top[3]
    return (
        top[0] * a + below[0] * (1 - a),
        top[1] * a + below[1] * (1 - a),
        top[2] * a + below[2] * (1 - a),
    )


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (channels 0..255)."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula() -> None:
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)
    assert parse_css_color("rgba(10, 20, 30, 0.5)") == (10, 20, 30, 0.5)
    assert parse_css_color("color(srgb 1 0 0.5 / 0.25)") == (255, 0, 127.5, 0.25)
    assert over((255, 255, 255, 0.5), (0, 0, 0)) == (127.5, 127.5, 127.5)


_STYLE_JS = """(el) => {
    const s = getComputedStyle(el);
    const backgrounds = [];
    for (let n = el; n; n = n.parentElement) {
        backgrounds.push(getComputedStyle(n).backgroundColor);
    }
    const r = el.getBoundingClientRect();
    return {color: s.color, fontWeight: s.fontWeight, fontSize: s.fontSize,
            backgrounds: backgrounds, width: r.width, height: r.height,
            text: el.textContent.trim()};
}"""


def effective_colors(
    style: dict[str, Any],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(text, background) as seen: backgrounds composited from the page up."""
    background: tuple[float, float, float] = (255.0, 255.0, 255.0)  # the canvas
    for css in reversed(style["backgrounds"]):
        background = over(parse_css_color(css), background)
    return over(parse_css_color(style["color"]), background), background


# -- first visit -----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_first_visit_shows_the_banner(new_context: NewContext, scheme: str) -> None:
    context = new_context(color_scheme=scheme)
    page = open_shop(context)
    expect(page.locator(BANNER)).to_be_visible()
    expect(page.locator(BANNER)).to_have_attribute("role", "region")
    buttons = page.locator(BUTTONS)
    expect(buttons).to_have_count(3)
    for i in range(3):
        expect(buttons.nth(i)).to_be_visible()
    expect(buttons).to_have_text(["Accept all", "Reject all", "Customise"])
    expect(page.locator(MODAL)).to_be_hidden()
    expect(page.locator(SETTINGS)).to_be_hidden()
    assert CONSENT_COOKIE not in cookie_names(context)
    assert not set(TRACKING) & cookie_names(context)
    page.screenshot(path=screenshot_path(f"banner-{scheme}.png"))


def test_banner_in_korean(new_context: NewContext) -> None:
    context = new_context(locale="ko-KR")
    page = open_shop(context)
    expect(page.locator(ROOT)).to_have_attribute("lang", "ko")
    expect(page.locator(BUTTONS)).to_have_text(["모두 허용", "모두 거부", "맞춤 설정"])
    page.screenshot(path=screenshot_path("banner-ko.png"))


# -- the JavaScript flows -----------------------------------------------------------


def test_accept_all(new_context: NewContext) -> None:
    context = new_context()
    page = open_shop(context)
    record_consent_events(page)
    page.click(ACCEPT)
    expect(page.locator(BANNER)).to_be_hidden()
    expect(page.locator(SETTINGS)).to_be_visible()
    page.wait_for_function("window.__cgEvents.length === 1")
    assert same_document(page), "the banner must hide without a reload"
    assert consent_events(page) == [{"categories": {"performance": True}}]
    assert page.evaluate("window.cookiegate.state") == {
        "decided": True,
        "categories": {"performance": True},
    }
    wait_for_cookies(context, present=(CONSENT_COOKIE,))

    page.reload()
    expect(page.locator(BANNER)).to_have_count(0)
    expect(page.locator(SETTINGS)).to_be_visible()
    doc = whoami(context)
    assert "_ga" in doc["cookies"]
    assert doc["consent"]["categories"] == {"performance": True}
    assert set(TRACKING) <= cookie_names(context)


def test_reject_all_never_stores_tracking_cookies(new_context: NewContext) -> None:
    context = new_context()
    page = open_shop(context)
    assert not set(TRACKING) & cookie_names(context)
    record_consent_events(page)
    page.click(REJECT)
    expect(page.locator(BANNER)).to_be_hidden()
    expect(page.locator(SETTINGS)).to_be_visible()
    page.wait_for_function("window.__cgEvents.length === 1")
    assert consent_events(page) == [{"categories": {"performance": False}}]
    wait_for_cookies(context, present=(CONSENT_COOKIE,))
    for path in ("/", "/whoami", "/", "/login", "/"):
        page.goto(path)
        expect(page.locator(BANNER)).to_have_count(0)
        names = cookie_names(context)
        assert not set(TRACKING) & names, (path, names)
    doc = whoami(context)
    assert doc["consent"]["categories"] == {"performance": False}
    assert not set(TRACKING) & set(doc["cookies"])


def test_customise_then_save(new_context: NewContext) -> None:
    context = new_context()
    page = open_shop(context)
    record_consent_events(page)
    page.click(CUSTOMISE)
    expect(page.locator(DIALOG)).to_be_visible()
    assert same_document(page)
    box = page.locator(PERFORMANCE)
    expect(box).not_to_be_checked()
    page.screenshot(path=screenshot_path("preferences-light.png"))
    box.check()
    page.locator(f"{MODAL} button[value=save]").click()
    expect(page.locator(MODAL)).to_be_hidden()
    expect(page.locator(BANNER)).to_be_hidden()
    expect(page.locator(SETTINGS)).to_be_visible()
    page.wait_for_function("window.__cgEvents.length === 1")
    assert consent_events(page) == [{"categories": {"performance": True}}]
    wait_for_cookies(context, present=(CONSENT_COOKIE,))
    page.reload()
    wait_for_cookies(context, present=TRACKING)
    assert "_ga" in whoami(context)["cookies"]
    # the preference centre shows the saved choice
    page.click(SETTINGS_LINK)
    expect(page.locator(DIALOG)).to_be_visible()
    expect(page.locator(PERFORMANCE)).to_be_checked()


def test_keyboard_only(new_context: NewContext) -> None:
    context = new_context()
    page = open_shop(context)
    record_consent_events(page)
    tab_to(page, ACCEPT)
    page.keyboard.press("Tab")
    assert active_matches(page, REJECT)
    page.keyboard.press("Tab")
    assert active_matches(page, CUSTOMISE)

    # open the preference centre with the keyboard: focus moves into the dialog
    page.keyboard.press("Enter")
    expect(page.locator(DIALOG)).to_be_visible()
    assert focus_inside(page, DIALOG)
    assert same_document(page)
    focusables: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              "#cookiegate-preferences .cg-dialog :is(a[href], button:not([disabled]),"
              + " input:not([disabled]), summary)"))
            .filter((el) => el.getClientRects().length > 0)
            .map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert len(focusables) >= 5, focusables
    # Tab cycles within the dialog (focus trap), in both directions
    first = "#cookiegate-preferences [data-cg-close]"
    seen_first = 0
    for _ in range(len(focusables) + 3):
        page.keyboard.press("Tab")
        assert focus_inside(page, DIALOG), page.evaluate("document.activeElement.outerHTML")
        seen_first += active_matches(page, first)
    assert seen_first >= 1, "Tab never wrapped round to the dialog's first control"
    page.focus(first)
    page.keyboard.press("Shift+Tab")
    assert focus_inside(page, DIALOG)
    assert not active_matches(page, first)
    # ticking a box with the keyboard and leaving with Escape does not consent
    page.focus(PERFORMANCE)
    page.keyboard.press("Space")
    expect(page.locator(PERFORMANCE)).to_be_checked()
    page.keyboard.press("Escape")
    expect(page.locator(MODAL)).to_be_hidden()
    assert active_matches(page, CUSTOMISE), "focus must return to the opener"
    expect(page.locator(BANNER)).to_be_visible()
    expect(page.locator(PERFORMANCE)).not_to_be_checked()
    assert consent_events(page) == []
    assert CONSENT_COOKIE not in cookie_names(context)

    # back to "Accept all" and Enter
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert active_matches(page, ACCEPT)
    page.keyboard.press("Enter")
    expect(page.locator(BANNER)).to_be_hidden()
    page.wait_for_function("window.__cgEvents.length === 1")
    assert consent_events(page) == [{"categories": {"performance": True}}]
    # the focus was in the banner, which is gone: it lands on the settings control
    assert active_matches(page, SETTINGS_LINK)
    wait_for_cookies(context, present=(CONSENT_COOKIE,))


def test_the_first_tab_offers_the_banner(new_context: NewContext) -> None:
    """The banner is inserted at the end of the page, after every link of it:
    the first Tab lands on a skip link (shown while focused) that takes the
    keyboard to the banner; it goes when the visitor decides."""
    context = new_context()
    page = open_shop(context)
    record_consent_events(page)
    page_links = page.evaluate(
        "document.querySelectorAll('body a[href]:not(.cg-root a):not(#cookiegate-skip)').length"
    )
    assert page_links >= 2, "the shop page must have links of its own before the banner"
    skip = page.locator("#cookiegate-skip")
    expect(skip).to_have_text(page.locator("#cg-banner-title").inner_text())
    assert page.evaluate("document.body.firstElementChild.id") == "cookiegate-skip"
    assert skip.bounding_box() is None or skip.bounding_box()["y"] < 0  # type: ignore[index]
    page.keyboard.press("Tab")
    assert active_matches(page, "#cookiegate-skip")
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0 and box["width"] > 20  # seen while focused
    page.keyboard.press("Enter")
    assert active_matches(page, BANNER)
    assert page.evaluate("location.hash") == ""
    tab_to(page, ACCEPT, limit=4)  # past the banner's own links, if any
    page.keyboard.press("Enter")
    wait_for_events(page, 1)
    expect(skip).to_have_count(0)


def test_reopen_and_withdraw(new_context: NewContext) -> None:
    context = new_context()
    page = open_shop(context)
    page.click(ACCEPT)
    expect(page.locator(BANNER)).to_be_hidden()
    wait_for_cookies(context, present=(CONSENT_COOKIE,))
    page.reload()
    wait_for_cookies(context, present=TRACKING)

    record_consent_events(page)
    page.click(SETTINGS_LINK)  # a settings-only page: the panel is fetched
    expect(page.locator(DIALOG)).to_be_visible()
    assert same_document(page)
    expect(page.locator(PERFORMANCE)).to_be_checked()
    withdraw = page.locator(f"{MODAL} [data-cg-form=withdraw] button")
    expect(withdraw).to_be_visible()
    withdraw.click()
    expect(page.locator(MODAL)).to_be_hidden()
    page.wait_for_function("window.__cgEvents.length === 1")
    assert consent_events(page) == [{"categories": {"performance": False}, "withdrawn": True}]
    wait_for_cookies(context, absent=TRACKING)

    page.reload()
    assert not set(TRACKING) & cookie_names(context)
    doc = whoami(context)
    assert doc["consent"]["categories"] == {"performance": False}
    assert not set(TRACKING) & set(doc["cookies"])


QUICK_WITHDRAW = "#cookiegate-settings [data-cg-quick-withdraw] button"


def test_one_click_withdraw(new_context: NewContext) -> None:
    """Withdrawing takes one click, like accepting: the settings control carries a
    withdraw button while something is granted, and it disappears afterwards."""
    context = new_context()
    page = open_shop(context)
    record_consent_events(page)
    page.click(ACCEPT)
    quick = page.locator(QUICK_WITHDRAW)
    expect(quick).to_be_visible()  # shown by the script, without a reload
    page.reload()
    wait_for_cookies(context, present=TRACKING)
    record_consent_events(page)
    expect(quick).to_be_visible()
    quick.click()
    wait_for_events(page, 1)
    assert consent_events(page) == [{"categories": {"performance": False}, "withdrawn": True}]
    expect(quick).to_be_hidden()
    expect(page.locator(SETTINGS_LINK)).to_be_focused()
    wait_for_cookies(context, absent=TRACKING)
    page.reload()
    expect(page.locator(QUICK_WITHDRAW)).to_be_hidden()
    assert whoami(context)["consent"]["categories"] == {"performance": False}


def test_policy_change_asks_again(new_context: NewContext, server_v2: str) -> None:
    context = new_context()
    page = open_shop(context)
    page.click(ACCEPT)
    expect(page.locator(BANNER)).to_be_hidden()
    wait_for_cookies(context, present=(CONSENT_COOKIE,))
    page.reload()
    expect(page.locator(BANNER)).to_have_count(0)
    expect(page.locator(".cg-changes")).to_have_count(0)

    # same host, other port: same cookies, newer policy version
    page.goto(server_v2 + "/")
    expect(page.locator(BANNER)).to_be_visible()
    notice = page.locator(f"{BANNER} .cg-changes")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("What changed")
    expect(notice).to_contain_text(V2_CHANGES)
    page.click(ACCEPT)
    expect(page.locator(BANNER)).to_be_hidden()
    page.reload()
    expect(page.locator(BANNER)).to_have_count(0)


# -- without JavaScript ----------------------------------------------------------------


def test_no_javascript_accept_all(new_context: NewContext) -> None:
    context = new_context(java_script_enabled=False)
    page = open_shop(context)
    expect(page.locator(BANNER)).to_be_visible()
    expect(page.locator(MODAL)).to_be_hidden()
    with page.expect_navigation():
        page.click(ACCEPT)
    assert urlsplit(page.url).path == "/"  # redirected back
    expect(page.locator(BANNER)).to_have_count(0)
    expect(page.locator(SETTINGS)).to_be_visible()
    assert {CONSENT_COOKIE, *TRACKING} <= cookie_names(context)
    assert "_ga" in whoami(context)["cookies"]


def test_no_javascript_customise_uses_the_preferences_page(new_context: NewContext) -> None:
    context = new_context(java_script_enabled=False)
    page = open_shop(context, "/whoami")
    with page.expect_navigation():
        page.click(CUSTOMISE)
    assert urlsplit(page.url).path == "/_cookiegate/preferences"
    expect(page.locator("h1")).to_have_text("Cookie preferences")
    box = page.locator(PERFORMANCE)
    expect(box).not_to_be_checked()
    box.check()
    with page.expect_navigation():
        page.locator("button[value=save]").click()
    assert urlsplit(page.url).path == "/whoami"
    expect(page.locator(BANNER)).to_have_count(0)
    page.goto("/")
    assert {CONSENT_COOKIE, *TRACKING} <= cookie_names(context)
    assert whoami(context)["consent"]["categories"] == {"performance": True}
    # the settings control is a plain link to the same page, which shows the choice
    with page.expect_navigation():
        page.click(SETTINGS_LINK)
    expect(page.locator(PERFORMANCE)).to_be_checked()
    # withdrawing without JavaScript lands on a page that says what was destroyed
    with page.expect_navigation():
        page.locator("form.cg-withdraw button").click()
    assert urlsplit(page.url).path == "/_cookiegate/preferences"
    expect(page.locator("p.cg-status[role=status]")).to_contain_text(
        "Your consent was withdrawn. Destroyed: 0 telemetry records;"
    )
    expect(page.locator(PERFORMANCE)).not_to_be_checked()


# -- layout -------------------------------------------------------------------------------


def test_mobile_layout(new_context: NewContext) -> None:
    context = new_context(viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True)
    page = open_shop(context)
    banner = page.locator(BANNER)
    expect(banner).to_be_visible()
    expect(banner).to_be_in_viewport()
    width = 375
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = banner.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box
    assert box["y"] + box["height"] <= 812 + 0.5, box
    buttons = page.locator(BUTTONS)
    for i in range(3):
        b = buttons.nth(i).bounding_box()
        assert b is not None
        assert b["x"] >= 0 and b["x"] + b["width"] <= width + 0.5, b
        assert b["height"] >= 44 - 0.5, b  # touch target
    page.screenshot(path=screenshot_path("banner-mobile.png"))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_first_layer_buttons_look_the_same(new_context: NewContext, scheme: str) -> None:
    context = new_context(color_scheme=scheme)
    page = open_shop(context)
    expect(page.locator(BANNER)).to_be_visible()
    styles = [page.locator(BUTTONS).nth(i).evaluate(_STYLE_JS) for i in range(3)]
    names = [s["text"] for s in styles]
    for s in styles[1:]:
        assert abs(s["width"] - styles[0]["width"]) <= 1, (names, styles)
        assert abs(s["height"] - styles[0]["height"]) <= 1, (names, styles)
        assert s["fontWeight"] == styles[0]["fontWeight"], styles
        assert s["fontSize"] == styles[0]["fontSize"], styles
    for s in styles:
        text, background = effective_colors(s)
        ratio = contrast_ratio(text, background)
        assert ratio >= 4.5, f"{s['text']!r}: contrast {ratio:.2f}:1 ({s})"
