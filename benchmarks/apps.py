"""The applications measured by ``run.py`` (served by uvicorn) and ``micro.py``
(called in-process).

Every configuration serves the same route: ``GET /`` answers ``ok`` as
``text/plain`` (a non-HTML response, so nothing is injected into the body) and
sends three ``Set-Cookie`` headers:

* ``session``    - strictly necessary
* ``_ga``        - performance
* ``ab_variant`` - performance

Configurations (one uvicorn server each, except that both cookiegate cases share
one server and differ only in the request's Cookie header):

``bare``
    the Starlette app, nothing in front.
``cookiegate``
    the same app with ``CookieGateMiddleware`` (``Starlette(middleware=[...])``).
``session``
    the same app with Starlette's ``SessionMiddleware``. The handler writes
    ``request.session["n"] = 1`` so the middleware verifies *and* re-signs the
    session on every request; ``SessionMiddleware`` then emits the ``session``
    Set-Cookie, so the handler sets only ``_ga`` and ``ab_variant`` itself and
    the response carries the same three cookies as the other configurations.
``noop`` (``run.py --noop``)
    the same app behind :class:`NoopHeaderMiddleware`, the floor of any
    response-header-editing ASGI middleware.

The ``bare`` and ``cookiegate`` apps also serve ``GET /page``: the realistic
~30 KB shop page of ``pages.shop_page()`` (GA4, GTM + noscript iframe, Meta
Pixel + noscript image, Hotjar, a YouTube embed, 150 first-party images) as
``text/html; charset=utf-8``, built once at import, no ``Set-Cookie``. Behind
cookiegate it gets the settings control (a visitor who granted every category:
``HtmlInjector``, nothing rewritten) or the banner and the tracking rewriter
(an undecided visitor: ``HtmlRewriter``).

uvicorn imports this module by name (``--app-dir benchmarks apps:bare``); the
only other benchmark module it imports is ``pages`` (found on the same path).
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import itsdangerous
import pages
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cookiegate import Gate, Policy
from cookiegate.asgi import CookieGateMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Benchmark-only keys (never use them for anything else).
GATE_SECRET = "cookiegate-benchmark-secret-0001"
SESSION_SECRET = "starlette-benchmark-secret-0001"
#: The name the consent cookie has on plain http (``__Host-`` is added on https).
CONSENT_COOKIE = "cookiegate"

SESSION_VALUE = "s1"
GA_VALUE = "GA1.1.123456789.1700000000"
AB_VALUE = "B"
GA_MAX_AGE = 2 * 365 * 24 * 3600
AB_MAX_AGE = 30 * 24 * 3600


def make_policy() -> Policy:
    """The site's policy. The three cookies are declared explicitly and the
    built-in catalogue is off, so the classification does not depend on the
    catalogue's contents (site rules win over the catalogue anyway, and every
    lookup after the first is one dict hit either way)."""
    return Policy(
        version="bench-1",
        use_catalog=False,
        cookies=[
            {"name": "session", "category": "strictly_necessary", "purpose": "login"},
            {"name": "_ga", "category": "performance", "vendor": "Google Analytics"},
            {"name": "ab_variant", "category": "performance", "purpose": "design testing"},
        ],
    )


def make_gate(**options: Any) -> Gate:
    return Gate(make_policy(), secret_keys=[GATE_SECRET], cookie_name=CONSENT_COOKIE, **options)


GATE = make_gate()
#: a site that links to the preference page itself: a visitor who granted
#: everything gets its pages as written (``run.py --noop``: context row)
GATE_OWN_LINK = make_gate(settings_control=False)


def session_cookie_value(data: dict[str, Any] | None = None) -> str:
    """A valid Starlette session cookie value, signed as ``SessionMiddleware`` does."""
    payload = b64encode(json.dumps(data if data is not None else {"n": 0}).encode("utf-8"))
    return itsdangerous.TimestampSigner(SESSION_SECRET).sign(payload).decode("utf-8")


def _tracking_cookies(response: Response) -> None:
    response.set_cookie("_ga", GA_VALUE, max_age=GA_MAX_AGE, path="/", samesite="lax")
    response.set_cookie("ab_variant", AB_VALUE, max_age=AB_MAX_AGE, path="/", samesite="lax")


async def home(request: Request) -> Response:
    response = PlainTextResponse("ok")
    response.set_cookie("session", SESSION_VALUE, path="/", httponly=True, samesite="lax")
    _tracking_cookies(response)
    return response


async def home_session_write(request: Request) -> Response:
    request.session["n"] = 1  # marks the session modified: verify + re-sign + Set-Cookie
    response = PlainTextResponse("ok")
    _tracking_cookies(response)
    return response


async def home_session_read(request: Request) -> Response:
    # Read-only use (micro.py only): verify, no re-sign; the handler sets `session`
    # itself so the response still carries three cookies.
    request.session.get("n")
    return await home(request)


#: The page of ``GET /page``, built once (the handler only wraps the bytes).
PAGE = pages.shop_page()


async def page(request: Request) -> Response:
    return Response(PAGE, media_type="text/html")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/", home), Route("/page", page)])


def cookiegate_app(gate: Gate | None = None) -> Starlette:
    return Starlette(
        routes=[Route("/", home), Route("/page", page)],
        middleware=[Middleware(CookieGateMiddleware, gate=gate or GATE)],
    )


def session_app(*, write: bool = True) -> Starlette:
    return Starlette(
        routes=[Route("/", home_session_write if write else home_session_read)],
        middleware=[Middleware(SessionMiddleware, secret_key=SESSION_SECRET)],
    )


class NoopHeaderMiddleware:
    """The floor of any pure ASGI middleware that edits response headers: wrap
    ``send``, copy the start message, append ``Vary``. Nothing else. Measuring it
    (``run.py --noop``, ``micro.py``) shows how much of cookiegate's cost is ASGI
    plumbing that no implementation of the feature can avoid."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), (b"vary", b"Cookie")]
            await send(message)

        await self.app(scope, receive, send_wrapper)


class FloorGateMiddleware:
    """The least a consent gate must do for a visitor who accepted everything,
    and nothing more: find ``Cookie`` and ``Sec-GPC`` in the request, look the
    verified consent up in a dict (filled through ``gate.begin`` on a miss), put
    a per-request object in the scope, and on the way out find ``Set-Cookie`` /
    ``Content-Type`` and append ``Vary``. On an HTML page it also does the least
    the persistent "Cookie settings" control (issue 3) costs: the control's bytes,
    made once per visitor and path, go before the body's last ``</body>`` (one
    ``rfind``, one copy of the page) and ``Content-Length`` grows by their length.
    No own routes, beacons, stripping, rewriting, CSP or expiry handling; a page
    must come in one body message (as Starlette's ``Response`` sends it). Measuring
    it (``run.py --noop``) shows how close any Python implementation of the
    feature can come to the bare app."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate
        self.plans: dict[tuple[bytes | None, str, bytes | None, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = gpc = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == b"sec-gpc":
                gpc = value
        key = (cookie, scope["scheme"], gpc, scope["path"])
        plan = self.plans.get(key)
        if plan is None:
            from cookiegate.asgi import _request_info

            decision = self.gate.begin(_request_info(scope, False))
            fragment = self.gate.page_fragment(decision, "text/html; charset=utf-8") or b""
            plan = self.plans[key] = (decision._state, fragment)
        scope["cookiegate.floor"] = [plan[0], False]
        vary = self.gate.vary_value
        insert = b""

        async def send_wrapper(message: Message) -> None:
            nonlocal insert
            if message["type"] == "http.response.start":
                depends = html = False
                length_at = -1
                out: list[tuple[bytes, bytes]] = []
                for item in message["headers"]:
                    name = item[0]
                    if name == b"set-cookie":
                        depends = True
                    elif name == b"content-type":
                        html = b"htm" in item[1]
                    elif name == b"content-length":
                        length_at = len(out)
                    out.append(item)
                if html:
                    insert = plan[1]
                    if length_at >= 0:
                        added = int(out[length_at][1]) + len(insert)
                        out[length_at] = (b"content-length", str(added).encode())
                if depends or html:
                    out.append((b"vary", vary))
                message["headers"] = out
            elif insert and message["type"] == "http.response.body":
                body = message.get("body", b"")
                at = body.rfind(b"</body")
                if at < 0:
                    at = len(body)
                view = memoryview(body)
                message["body"] = b"".join((view[:at], insert, view[at:]))
            await send(message)

        await self.app(scope, receive, send_wrapper)


def floor_app() -> Starlette:
    return Starlette(
        routes=[Route("/", home), Route("/page", page)],
        middleware=[Middleware(FloorGateMiddleware, gate=GATE)],
    )


def noop_app() -> Starlette:
    return Starlette(routes=[Route("/", home)], middleware=[Middleware(NoopHeaderMiddleware)])


# The module-level apps uvicorn serves (``apps:bare``, ``apps:gated``, ...).
bare = bare_app()
gated = cookiegate_app()
gated_own_link = cookiegate_app(GATE_OWN_LINK)
with_session = session_app()
noop = noop_app()
floor = floor_app()


def request_cookie(granted: list[str] | None) -> str:
    """The Cookie header of the benchmark's visitor: a consent token granting
    ``granted`` (``None``: no token, undecided), a valid Starlette session and
    ``_ga``. The same header is sent to every configuration (the token is an inert
    cookie to the apps without cookiegate; the session is opaque to those without
    SessionMiddleware)."""
    parts = []
    if granted is not None:
        parts.append(f"{CONSENT_COOKIE}={GATE.make_token(granted)}")
    parts.append(f"session={session_cookie_value()}")
    parts.append(f"_ga={GA_VALUE}")
    return "; ".join(parts)


# -- raw ASGI (micro.py): the middleware's own cost, without Starlette's ------

_RAW_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"2"),
    (b"set-cookie", f"session={SESSION_VALUE}; HttpOnly; Path=/; SameSite=lax".encode()),
    (b"set-cookie", f"_ga={GA_VALUE}; Max-Age={GA_MAX_AGE}; Path=/; SameSite=lax".encode()),
    (b"set-cookie", f"ab_variant={AB_VALUE}; Max-Age={AB_MAX_AGE}; Path=/; SameSite=lax".encode()),
]


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A minimal ASGI app with the same response, for measuring middleware
    overhead in isolation. Touches ``scope["session"]`` when one is present."""
    if scope["type"] != "http":
        return
    session_data = scope.get("session")
    headers = list(_RAW_HEADERS)
    if session_data is not None:
        session_data["n"] = 1
        del headers[2]  # SessionMiddleware sets `session`
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def raw_cookiegate(gate: Gate | None = None) -> ASGIApp:
    return CookieGateMiddleware(raw_app, gate=gate or GATE)


def raw_noop() -> ASGIApp:
    return NoopHeaderMiddleware(raw_app)


def raw_floor() -> ASGIApp:
    return FloorGateMiddleware(raw_app, GATE)


def raw_session() -> ASGIApp:
    return SessionMiddleware(raw_app, secret_key=SESSION_SECRET)
