"""The tracking gate in a real browser: every vendor snippet of the corpus
(``tests/corpus/trackers/*.html``) served through cookiegate, in Chromium.

Every request the page makes to a host other than 127.0.0.1 is intercepted
(nothing leaves the machine) and recorded; scripts get a stub that itself
reports to the tracker's host, so a script that *executes* is seen as well as
one that loads. Before consent no tracker host may be contacted; after "Accept
all" — with JavaScript, without a reload — every vendor's host is; without
JavaScript, after the plain form's consent, the page's ``<noscript>`` pixels load.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright.sync_api", reason="install the dev extras: pip install -e '.[dev]'")
from playwright.sync_api import BrowserContext, Page, Route, expect

from cookiegate.trackers import default_matcher

from .conftest import CHROMIUM_ARGS, NewContext, Server  # noqa: F401 - CHROMIUM_ARGS documents

pytestmark = pytest.mark.browser

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "trackers"
PAGES = sorted(p.stem for p in CORPUS.glob("*.html"))
ACCEPT = "#cookiegate-banner button[value=accept_all]"
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def test_the_corpus_covers_the_vendors() -> None:
    assert len(PAGES) >= 12, PAGES


def _gated_app(path: str, pages: dict[str, str]) -> Any:
    """A Starlette app serving ``pages`` (name -> HTML) at ``path`` + name,
    behind cookiegate with the default policy."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route as StarletteRoute

    from cookiegate import Gate, Policy
    from cookiegate.asgi import CookieGateMiddleware

    async def page(request: Request) -> Response:
        html = pages.get(request.path_params["name"])
        if html is None:
            return Response("no such page", status_code=404)
        return HTMLResponse(html)

    app = Starlette(routes=[StarletteRoute(path + "{name}", page)])
    gate = Gate(Policy(version="1"), secret_keys=["corpus-test-key-0123456789abcdef"])
    app.add_middleware(CookieGateMiddleware, gate=gate)
    return app


def _corpus_app() -> Any:
    return _gated_app("/corpus/", {n: (CORPUS / f"{n}.html").read_text("utf-8") for n in PAGES})


@pytest.fixture(scope="module")
def corpus_server() -> Iterator[str]:
    srv = Server(_corpus_app()).start()
    yield srv.url
    srv.stop()


class Outside:
    """Intercepts and records every request to a host other than 127.0.0.1."""

    def __init__(self, context: BrowserContext) -> None:
        self.hosts: list[str] = []
        context.route("**/*", self._handle)

    def _handle(self, route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if host == "127.0.0.1":
            route.continue_()
            return
        self.hosts.append(host)
        kind = route.request.resource_type
        if kind == "script":
            # a script that runs reports itself to its own host
            beacon = f"https://{host}/__cg_ran__"
            body = f"(function(){{var i=new Image();i.src={beacon!r};}})();"
            route.fulfill(status=200, content_type="application/javascript", body=body)
        elif kind == "image":
            route.fulfill(status=200, content_type="image/gif", body=GIF)
        elif kind == "document":
            route.fulfill(status=200, content_type="text/html", body="<p>embed</p>")
        else:
            route.fulfill(status=204, body="")

    def contacted(self) -> set[str]:
        return set(self.hosts)


def _settle(page: Page) -> None:
    page.wait_for_load_state("load")
    time.sleep(0.3)  # async loaders insert their scripts after load


def _expected_vendor_hosts(name: str) -> set[str]:
    """Hosts of the tracker URLs (as the catalogue recognises them) named in the
    page's markup: at least one must be contacted after consent."""
    text = (CORPUS / f"{name}.html").read_text("utf-8")
    matcher = default_matcher()
    hosts = set()
    for m in re.finditer(r"(?:https?:)?//([a-z0-9.-]+\.[a-z]{2,})(/[^\s\"'<>)]*)?", text, re.I):
        if matcher.match_url("https://" + m.group(1) + (m.group(2) or "/")) is not None:
            hosts.add(m.group(1).lower())
    return hosts


def _none_before_and_one_after(context: BrowserContext, path: str, expected: set[str]) -> Page:
    """Open ``path``: no host outside is contacted before consent; after "Accept
    all" at least one of ``expected`` is (within 5 s). Returns the page."""
    outside = Outside(context)
    page = context.new_page()
    page.goto(path)
    _settle(page)
    assert outside.hosts == [], f"{path}: contacted before consent: {outside.hosts}"
    page.click(ACCEPT)
    deadline = time.monotonic() + 5
    while not (outside.contacted() & expected) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert outside.contacted() & expected, (
        f"{path}: after consent none of {sorted(expected)} was contacted ({outside.hosts})"
    )
    return page


@pytest.mark.parametrize("name", PAGES)
def test_nothing_reaches_a_tracker_before_consent_and_all_after(
    new_context: NewContext, corpus_server: str, name: str
) -> None:
    expected = _expected_vendor_hosts(name)
    assert expected, f"{name}: the corpus page names no known tracker host"
    page = _none_before_and_one_after(
        new_context(base_url=corpus_server), f"/corpus/{name}", expected
    )
    assert page.evaluate("document.querySelectorAll('[data-cg-placeholder]').length") == 0


def test_scripts_run_after_consent_in_document_order(
    new_context: NewContext, corpus_server: str
) -> None:
    """The GA4 snippet's inline part defines ``gtag`` and the external loader
    runs after it: after consent ``dataLayer`` holds the page's commands."""
    name = next(n for n in PAGES if "google-analytics" in n)
    context = new_context(base_url=corpus_server)
    Outside(context)
    page = context.new_page()
    page.goto(f"/corpus/{name}")
    _settle(page)
    assert page.evaluate("typeof window.gtag") == "undefined"
    page.click(ACCEPT)
    page.wait_for_function("() => typeof window.gtag === 'function'", polling=50)
    assert page.evaluate("Array.isArray(window.dataLayer) && window.dataLayer.length > 0")


def test_without_javascript_noscript_pixels_wait_for_consent(
    new_context: NewContext, corpus_server: str
) -> None:
    name = next(n for n in PAGES if "meta-pixel" in n)
    context = new_context(base_url=corpus_server, java_script_enabled=False)
    outside = Outside(context)
    page = context.new_page()
    page.goto(f"/corpus/{name}")
    _settle(page)
    assert outside.hosts == [], outside.hosts
    page.click(ACCEPT)  # a plain form: 303 back to the page, now consented
    expect(page.locator("#cookiegate-banner")).to_have_count(0)
    _settle(page)
    assert "www.facebook.com" in outside.contacted(), outside.hosts


def test_without_javascript_a_placeholder_loads_its_iframe(
    new_context: NewContext, corpus_server: str
) -> None:
    """No script runs, yet the placeholder's button is not dead: it submits the
    gate's form (``action=grant``), the 303 brings the visitor back and the
    video loads."""
    name = next(n for n in PAGES if "youtube" in n)
    context = new_context(base_url=corpus_server, java_script_enabled=False)
    outside = Outside(context)
    page = context.new_page()
    page.goto(f"/corpus/{name}")
    _settle(page)
    assert outside.hosts == [], outside.hosts
    page.locator("[data-cg-placeholder] button").first.click()
    page.wait_for_url(f"**/corpus/{name}")
    _settle(page)
    expect(page.locator("[data-cg-placeholder]")).to_have_count(0)
    expect(page.locator("#cookiegate-banner")).to_have_count(0)  # decided now
    assert "www.youtube.com" in outside.contacted() or "www.youtube-nocookie.com" in (
        outside.contacted()
    ), outside.hosts


#: Foreign content (SVG / MathML) where a browser reads HTML again: each page
#: hides one tracker from a reader that takes <svg> content as foreign to the
#: end (before commit "rewriter: foreign content..." each of these reached its
#: host in Chromium before consent). ``(name, markup, tracker host)``.
FOREIGN_CASES = [
    (
        "breakout-script-comment",
        '<svg><p><script>var a="<!--";</script>'
        '<script src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>--></svg>',
        "www.googletagmanager.com",
    ),
    (
        "breakout-style-comment",
        "<svg><p><style><!--</style>"
        '<script src="https://connect.facebook.net/en_US/fbevents.js"></script>--></svg>',
        "connect.facebook.net",
    ),
    (
        "foreignobject-style",
        "<svg><foreignObject><style><!--</style>"
        '<script src="https://static.hotjar.com/c/hotjar-1.js"></script>--></foreignObject></svg>',
        "static.hotjar.com",
    ),
    (
        "svg-script-href",
        '<svg><script href="https://www.clarity.ms/tag/abc"></script></svg>',
        "www.clarity.ms",
    ),
    (
        "mathml-mi-style",
        "<math><mi><style><!--</style>"
        '<img src="https://px.ads.linkedin.com/collect?pid=1">--></mi></math>',
        "px.ads.linkedin.com",
    ),
    (
        "cdata-attribute",
        '<svg><![CDATA[ > <a title="]]><img src="https://www.facebook.com/tr?id=1">"></svg>',
        "www.facebook.com",
    ),
    (
        "svg-title-style",
        "<svg><title><style><!--</style>"
        '<script src="https://cdn.segment.com/analytics.js/v1/k/analytics.min.js"></script>'
        "--></title></svg>",
        "cdn.segment.com",
    ),
    # an attribute value left open (no quote after it in the page), holding a
    # token, that a browser running scripts ends at </noscript> (raw text)
    (
        "noscript-open-value",
        '<noscript><p title="<script>x</noscript>'
        "<script src=https://static.hotjar.com/c/hotjar-2.js></script>",
        "static.hotjar.com",
    ),
    # a URL in the same value, before that </noscript>
    (
        "noscript-value-after-url",
        "<noscript><img src=//127.0.0.1/a.png alt='</noscript>"
        "<script src=https://www.clarity.ms/tag/xyz></script>'>",
        "www.clarity.ms",
    ),
    # in the attributes of a nested <noscript> (read only once whole)
    (
        "noscript-in-nested-noscript",
        '<noscript><noscript title="</noscript>"><script>window.fbq=function(){};'
        "var s=document.createElement('script');"
        "s.src='https://connect.facebook.net/en_US/fbevents.js';"
        "document.head.appendChild(s);fbq('init', '1');</script>",
        "connect.facebook.net",
    ),
    # in an end tag inside a MathML integration point in <noscript>
    (
        "noscript-in-ip-end-tag",
        '<noscript><math><mi><script></script p="</noscript>"><script>window.fbq=function(){};'
        "var s=document.createElement('script');"
        "s.src='https://connect.facebook.net/en_US/fbevents.js';"
        "document.head.appendChild(s);fbq('init', '1');</script>",
        "connect.facebook.net",
    ),
    # in the attributes of a script's end tag
    (
        "noscript-in-end-tag",
        "<noscript><script></script </noscript><script>window.fbq=function(){};"
        "var s=document.createElement('script');"
        "s.src='https://connect.facebook.net/en_US/fbevents.js';"
        "document.head.appendChild(s);fbq('init', '1');</script>",
        "connect.facebook.net",
    ),
    # a host letter Unicode added after IDNA 2003 (U+1D43, modifier letter a),
    # which the browser maps to "a" (UTS #46)
    (
        "idn-modifier-letter",
        '<img src="https://www.f\u1d43cebook.com/tr?id=3&amp;ev=PageView" alt="">',
        "www.facebook.com",
    ),
]


def _foreign_app() -> Any:
    return _gated_app(
        "/foreign/",
        {
            name: '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>svg</title>'
            f"</head><body><main><h1>Foreign content</h1>{markup}<p>end</p></main></body></html>"
            for name, markup, _ in FOREIGN_CASES
        },
    )


@pytest.fixture(scope="module")
def foreign_server() -> Iterator[str]:
    srv = Server(_foreign_app()).start()
    yield srv.url
    srv.stop()


@pytest.mark.parametrize(("name", "host"), [(n, h) for n, _, h in FOREIGN_CASES])
def test_foreign_content_hides_no_tracker(
    new_context: NewContext, foreign_server: str, name: str, host: str
) -> None:
    """Breakouts (``<p>`` in ``<svg>``), HTML integration points
    (``foreignObject``, SVG ``title``, MathML ``mi``), CDATA sections and an
    SVG script's ``href``, and an attribute value left open in ``<noscript>``:
    nothing reaches the tracker before consent, and the tracker loads after
    "Accept all"."""
    _none_before_and_one_after(new_context(base_url=foreign_server), f"/foreign/{name}", {host})


BASE_CASES = [
    (
        "base-pixel",
        '<base href="https://www.facebook.com/">',
        '<img src="tr?id=1&amp;ev=PageView" alt="">',
        "www.facebook.com",
    ),
    (
        "base-script",
        '<BASE HREF="//www.googletagmanager.com/">',
        '<script async src="gtag/js?id=G-1"></script>',
        "www.googletagmanager.com",
    ),
]


@pytest.fixture(scope="module")
def base_server() -> Iterator[str]:
    app = _gated_app(
        "/base/",
        {
            name: f'<!doctype html><html lang="en"><head><meta charset="utf-8">{base}'
            f"<title>base</title></head><body><main><h1>Base</h1>{markup}</main></body></html>"
            for name, base, markup, _ in BASE_CASES
        },
    )
    srv = Server(app).start()
    yield srv.url
    srv.stop()


@pytest.mark.parametrize(("name", "host"), [(n, h) for n, _, _, h in BASE_CASES])
def test_a_base_on_a_tracker_host_sends_no_relative_url_there(
    new_context: NewContext, base_server: str, name: str, host: str
) -> None:
    """A ``<base href>`` on a refused tracker's host would send the page's
    relative URLs (a pixel, a script) there: before consent it is neutralised
    and nothing reaches the tracker; once the visitor accepts, the next page
    view loads it (what loaded already stays loaded from the page's host)."""
    context = new_context(base_url=base_server)
    outside = Outside(context)
    page = context.new_page()
    page.goto(f"/base/{name}")
    _settle(page)
    assert outside.hosts == [], f"contacted before consent: {outside.hosts}"
    page.click(ACCEPT)
    page.wait_for_timeout(300)
    page.reload()
    _settle(page)
    assert host in outside.contacted(), outside.hosts
