"""Drive the same tiny application through the ASGI and the WSGI adapter with raw
messages, so one scenario table can prove both behave identically."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_to_bytes

from cookiegate import Gate, consent_of
from cookiegate.asgi import CookieGateMiddleware as AsgiGate
from cookiegate.wsgi import CookieGateMiddleware as WsgiGate

# What the app does, by path: the Set-Cookie headers it sends.
APP_COOKIES: dict[str, list[str]] = {
    "/": [
        "session=s1; Path=/; HttpOnly",
        "_ga=GA1.1.123.456; Max-Age=63072000; Path=/",
        "ab_variant=B; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/",
    ],
    "/attr-order": [
        "_ga=GA1.1.9; Secure; HttpOnly; Domain=example.com; Path=/; SameSite=Lax",
        "theme=dark; SameSite=Lax; Path=/",
    ],
    "/delete": [
        "_ga=; Max-Age=0; Path=/",
        "ab_variant=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
    ],
    "/unknown": ["mystery=1; Path=/"],
    "/bad-date": [
        "_ga=1; Expires=Thu, 31 Feb 2037 00:00:00 GMT; Path=/",
        "ab_variant=1; Expires=Thu, 31 Feb 2000 00:00:00 GMT; Path=/",
    ],
    "/odd-max-age": [
        # a Max-Age of 5000 digits (int() would raise) and Max-Age / attribute
        # names behind a vertical tab, which browsers do not trim: none deletes
        "_ga=1; Max-Age=" + "9" * 5000 + "; Path=/",
        "ab_variant=1; Max-Age=\x0b0; Path=/",
        "_gid=1;\x0bMax-Age=0;\x0bExpires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
    ],
    "/plain": [],
}


@dataclass
class Result:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    app_called: bool
    app_cookie: str | None = None
    app_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def set_cookie_names(self) -> list[str]:
        return [v.split("=", 1)[0] for v in self.set_cookies()]

    def cookie_value(self, name: str) -> str | None:
        for v in self.set_cookies():
            head = v.split(";", 1)[0]
            if head.split("=", 1)[0] == name:
                return head.split("=", 1)[1]
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class Seen:
    """What the app behind the gate received."""

    def __init__(self) -> None:
        self.called = False
        self.cookie: str | None = None
        self.state: dict[str, Any] | None = None


PAGE = b"<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1></body></html>"
#: a page with trackers, served at /tracked (gzip-encoded at /tracked-gz)
TRACKED = (
    b"<!doctype html><html><head><title>Shop</title>"
    b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    b"<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
    b"gtag('js',new Date());gtag('config','G-1');</script></head><body><h1>Shop</h1>"
    b'<img src="/img/p.jpg" alt="product">'
    b'<iframe src="https://www.youtube.com/embed/x" title="video"></iframe></body></html>'
)


def _app_response(
    path: str, query: str, seen: Seen, consent: Any
) -> tuple[int, list[tuple[str, str]], bytes]:
    params = parse_qs(query)
    if "lang" in params:  # the site chooses the banner's language for this page
        consent.use_locale(params["lang"][0])
    if path.startswith("/tracked"):
        body = TRACKED
        headers = [("content-type", "text/html; charset=utf-8")]
        if path == "/tracked-gz":
            body = gzip.compress(TRACKED)
            headers.append(("content-encoding", "gzip"))
        if "bom" in params:  # ?bom=le|be: UTF-16, told by its byte-order mark
            order = params["bom"][0]
            body = {"le": b"\xff\xfe", "be": b"\xfe\xff"}[order] + TRACKED.decode().encode(
                f"utf-16-{order}"
            )
        if "marked" in params:  # ?marked=<category>: a script the site marks
            mark = params["marked"][0].encode()
            body = body.replace(
                b"</body>", b'<script data-category="' + mark + b'">m()</script></body>'
            )
        if "ctype" in params:
            headers[0] = ("content-type", params["ctype"][0])
        headers += [("content-encoding", v) for v in params.get("ce", [])]
        if "range" in params:  # ?status=206&range=1: the page's first bytes
            body = body[:100]
            headers.append(("content-range", f"bytes 0-99/{len(TRACKED)}"))
        headers.append(("content-length", str(len(body))))
        # ?status=404: the same page as an error page (or a 201, a 500...)
        return int(params.get("status", ["200"])[0]), headers, body
    if path.startswith("/page"):
        headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", str(len(PAGE))),
        ]
        if path == "/page-gz":
            headers.append(("content-encoding", "gzip"))
        headers += [("content-security-policy", v) for v in params.get("csp", [])]
        if "etag" in params:  # validators of the page as the app wrote it
            headers += [("etag", '"v1"'), ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT")]
        if "twice" in params:  # a second (duplicate) Content-Length
            headers.append(("content-length", str(len(PAGE))))
        return 200, headers, PAGE
    headers = [("content-type", "text/plain")]
    if "ask" in params:
        seen.state = {"performance": consent.allows("performance"), "decided": consent.decided}
    headers += [("set-cookie", c) for c in APP_COOKIES.get(path, [])]
    if "vary" in params:
        headers.append(("vary", params["vary"][0]))
    headers += [("content-security-policy", v) for v in params.get("csp", [])]
    if "cc" in params:
        headers.append(("cache-control", params["cc"][0]))
    if "case" in params:  # header names as Django and many WSGI apps write them
        headers = [("-".join(p.capitalize() for p in k.split("-")), v) for k, v in headers]
    return 200, headers, b"app:" + path.encode()


def make_asgi(gate: Gate) -> Callable[..., Result]:
    seen = Seen()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.called = True
        cookies = [v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie"]
        seen.cookie = "; ".join(cookies) if cookies else None
        status, headers, body = _app_response(
            scope["path"], scope.get("query_string", b"").decode(), seen, consent_of(scope)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    mw = AsgiGate(app, gate=gate)

    def call(
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        scheme: str = "http",
        host: str = "shop.test",
    ) -> Result:
        seen.__init__()  # type: ignore[misc]
        path, _, query = path.partition("?")
        raw = [(b"host", host.encode())] + [
            (k.lower().encode(), v.encode("latin-1")) for k, v in headers
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": unquote(path),  # as servers give it: percent-decoded, UTF-8
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 5000),
            "server": ("shop.test", 80),
        }
        messages: list[dict[str, Any]] = []
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        asyncio.run(mw(scope, receive, send))
        start = messages[0]
        out_body = b"".join(m.get("body", b"") for m in messages[1:])
        return Result(
            start["status"],
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
            out_body,
            seen.called,
            seen.cookie,
            seen.state,
        )

    return call


def make_wsgi(gate: Gate) -> Callable[..., Result]:
    seen = Seen()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.called = True
        seen.cookie = environ.get("HTTP_COOKIE")
        status, headers, body = _app_response(
            environ["PATH_INFO"], environ.get("QUERY_STRING", ""), seen, consent_of(environ)
        )
        start_response(f"{status} OK", headers)
        return [body]

    mw = WsgiGate(app, gate=gate)

    def call(
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        scheme: str = "http",
        host: str = "shop.test",
    ) -> Result:
        seen.__init__()  # type: ignore[misc]
        path, _, query = path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),  # PEP 3333
            "QUERY_STRING": query,
            "SERVER_NAME": "shop.test",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": host,
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)) if body else "",
        }
        for k, v in headers:
            key = k.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = v
            else:
                name = "HTTP_" + key
                environ[name] = environ[name] + "," + v if name in environ else v
        captured: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(hdrs)
            return lambda data: None

        chunks = mw(environ, start_response)
        out = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        return Result(
            captured["status"], captured["headers"], out, seen.called, seen.cookie, seen.state
        )

    return call
