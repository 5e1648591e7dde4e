"""Fixtures for the browser tests: the demo shop served by uvicorn on 127.0.0.1,
one Chromium for the session and a fresh browser context per test.

Needs ``playwright`` (``pip install -e '.[dev]'``) and Debian's ``chromium``
(``apt-get install chromium``); Playwright's own browser downloads are not used.
Without either, the tests are skipped (and CI fails on skips).
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
#: Cookies the demo shop sets on the home page; performance category.
TRACKING = ("_ga", "ab_variant")
#: Version of the re-asking policy served by ``server_v2``.
V2_VERSION = "2026-12-01"
V2_CHANGES = "We now also measure loading errors."

NewContext = Callable[..., "BrowserContext"]


class Server:
    """An ASGI app served by uvicorn in a background thread, on 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """Base URL of the example Starlette shop (policy from examples/cookiegate.toml)."""
    from examples.starlette_app.app import app

    srv = Server(app).start()
    yield srv.url
    srv.stop()


def _v2_app() -> Any:
    """A tiny shop whose policy is examples/cookiegate.toml with a newer version
    and a "what changed" text: consent given on ``server`` is stale here."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from cookiegate import Gate, Policy
    from cookiegate.asgi import CookieGateMiddleware
    from examples.common import PAGE_HEADERS, POLICY_FILE, secret_keys

    data = tomllib.loads(POLICY_FILE.read_text("utf-8"))
    data["version"] = V2_VERSION
    data["texts"] = {"en": {"changes_text": V2_CHANGES, "changes_date": V2_VERSION}}
    gate = Gate(Policy.from_dict(data), secret_keys=secret_keys())

    async def home(request: Request) -> HTMLResponse:
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Shop v2</title></head><body><main><h1>Shop v2</h1>"
            "<p>The policy changed.</p></main></body></html>"
        )
        return HTMLResponse(body, headers=dict(PAGE_HEADERS))

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(CookieGateMiddleware, gate=gate)
    return app


@pytest.fixture(scope="session")
def server_v2() -> Iterator[str]:
    """Base URL of a shop on another port whose policy version is newer. Cookies
    ignore the port, so both servers see the same consent cookie."""
    srv = Server(_v2_app()).start()
    yield srv.url
    srv.stop()


@pytest.fixture(scope="package")
def pw() -> Iterator[Playwright]:
    """Playwright's sync API, for this package only: while it runs, the main
    thread has a running asyncio loop, which would break other tests' asyncio.run()."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(reason="playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(pw: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip(reason="Debian's chromium is not installed: apt-get install -y chromium")
    browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser, server: str) -> Iterator[NewContext]:
    """Make a fresh browser context (closed after the test); keyword arguments
    go to ``browser.new_context``. ``base_url`` defaults to the shop."""
    made: list[BrowserContext] = []

    def make(**kwargs: Any) -> BrowserContext:
        kwargs.setdefault("base_url", server)
        kwargs.setdefault("locale", "en-US")
        kwargs.setdefault("color_scheme", "light")
        kwargs.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(**kwargs)
        context.set_default_timeout(5_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def cookie_names(context: BrowserContext) -> set[str]:
    """Names of the cookies the browser holds right now."""
    return {c["name"] for c in context.cookies()}


def wait_for_cookies(
    context: BrowserContext, *, present: tuple[str, ...] = (), absent: tuple[str, ...] = ()
) -> set[str]:
    """Poll the browser's cookie jar until ``present`` are there and ``absent`` are
    gone (Set-Cookie of a fetch() is applied asynchronously)."""
    deadline = time.monotonic() + 5
    while True:
        names = cookie_names(context)
        if set(present) <= names and not set(absent) & names:
            return names
        if time.monotonic() > deadline:
            raise AssertionError(f"cookies {sorted(names)}: want {present}, not {absent}")
        time.sleep(0.05)


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if not re.fullmatch(r"[a-z0-9-]+\.png", name):
        raise ValueError(name)
    return str(SCREENSHOTS / name)
