"""ASGI adapter (Starlette, FastAPI, any ASGI 3 app). Translation only.

Usage::

    app.add_middleware(CookieGateMiddleware, gate=gate)          # Starlette / FastAPI
    app = CookieGateMiddleware(app, gate=gate)                    # any ASGI app

    consent(request).allows("performance")                       # in a handler
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from . import SCOPE_KEY, consent_of
from .consent import RequestConsent
from .gate import FRAME_HOLD_MAX, Decision, Gate, PlainResponse, RequestInfo

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

__all__ = ["CookieGateMiddleware", "consent"]
_WS_HEADERS = ("websocket.accept", "websocket.http.response.start")


def consent(request: HTTPConnection) -> RequestConsent:
    """The visitor's consent for a Starlette/FastAPI ``Request`` or ``WebSocket``.

    Annotated with Starlette's ``HTTPConnection``, so FastAPI can inject it:
    ``Depends(consent)``. For a bare ASGI scope use :func:`cookiegate.consent_of`."""
    return consent_of(request)


def _request_info(scope: Scope, own: bool) -> RequestInfo:
    """The plain request values the gate needs. ``own``: the path may be one of
    cookiegate's endpoints, which also need Origin, Sec-Fetch-Site, Content-Type
    and Accept (only then are they collected: this runs on every request)."""
    info = _info_of(
        scope["headers"],
        scope.get("method", "GET"),
        scope.get("path", "/"),
        scope.get("scheme", "http"),
        scope.get("query_string", b""),
        scope.get("server"),
    )
    if own:
        info.client = scope["client"][0] if scope.get("client") else None
        info.read_own_headers()
    return info


def _info_of(
    headers: Any, method: str, path: str, scheme: str, query: bytes, server: Any
) -> RequestInfo:
    cookie = None
    host = ""
    gpc: list[str] | None = None
    for name, value in headers:
        if name == b"cookie":
            # several Cookie headers (HTTP/2) are joined, as RFC 9113 says
            text = value.decode("latin-1")
            cookie = text if cookie is None else cookie + "; " + text
        elif name == b"host":
            host = value.decode("latin-1")
        elif name == b"sec-gpc":
            (gpc := gpc or []).append(value.decode("latin-1"))
    if not host and server:
        server_host, port = server[0], server[1]
        default = 443 if scheme in ("https", "wss") else 80
        host = f"{server_host}:{port}" if port and port != default else str(server_host)
    info = RequestInfo(method, path, scheme, host, query.decode("latin-1"), cookie, gpc)
    info.raw_headers = headers
    return info


def _quick_info(source: tuple[Any, ...]) -> RequestInfo:
    """The RequestInfo of a quick decision, from the scope values it kept
    (not the scope itself: the scope holds the decision, and a reference cycle per
    request would leave every request's objects to the garbage collector)."""
    return _info_of(*source)


def _unframed(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether response headers leave the body's framing to the server (no
    Content-Length, no Transfer-Encoding)."""
    for name, _ in headers:
        lower = name.lower()
        if lower == b"content-length" or lower == b"transfer-encoding":
            return False
    return True


def _with_cookie(scope: Scope, cookie: str) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return {**scope, "headers": headers}


async def _send_plain(resp: PlainResponse, send: Send, head: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers]
    if resp.status not in (204, 304):  # they have no body, nor Content-Length
        headers.append((b"content-length", str(len(resp.body)).encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else resp.body})


class _Disconnected(Exception):
    """The client went away before its request body was complete."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` if it is over ``limit`` (read no further).

    :raises _Disconnected: the client left mid-body; nothing must be decided.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


#: ASGI extensions that send a body without ``http.response.body`` messages
_BYPASS = frozenset(("http.response.pathsend", "http.response.zerocopy"))


class _Held:
    """A response start held back, with the edited body so far."""

    __slots__ = ("body", "size", "start")

    def __init__(self, start: Message) -> None:
        self.start = start
        self.body: list[bytes] = []
        self.size = 0

    async def flush(self, send: Send) -> None:
        """Send the start and what is held of the body; the rest streams."""
        await send(self.start)
        if self.body:
            body = b"".join(self.body)
            self.body = []
            await send({"type": "http.response.body", "body": body, "more_body": True})


class CookieGateMiddleware:
    """Pure ASGI middleware enforcing a :class:`~cookiegate.Gate`.

    :param app: the ASGI application to protect.
    :param gate: the configured gate.
    """

    def __init__(self, app: ASGIApp, *, gate: Gate) -> None:
        if not isinstance(gate, Gate):
            raise TypeError("gate must be a cookiegate.Gate")
        self.app = app
        self.gate = gate
        #: the consent records' writer is started by the first call (lifespan
        #: start-up, or the first request without one): journals that a
        #: stopped process left are replayed then, not at the first record
        self._unstarted: Callable[[], object] | None = getattr(gate.records, "start", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Any) -> None:
        if self._unstarted is not None:
            start, self._unstarted = self._unstarted, None
            start()
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)  # lifespan and anything else
            return
        # The common request (a known visitor on an ordinary page) is decided from
        # the raw Cookie / Sec-GPC bytes alone (Gate.quick); its RequestInfo is
        # built only if something later needs it (an HTML page, a Set-Cookie to check).
        cookie = gpc = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == b"sec-gpc":
                gpc = value if gpc is None else gpc + b"\n" + value
        gate = self.gate
        scheme = scope.get("scheme", "http")
        path = scope.get("path", "/")
        key = (cookie, scheme, gpc)
        plan = gate.quick(key, path)
        if plan is not None:
            source = (  # what _quick_info needs, not the scope (see there)
                tuple(scope["headers"]),  # as they came, whatever the app does to the list
                scope.get("method", "GET"),
                path,
                scheme,
                scope.get("query_string", b""),
                scope.get("server"),
            )
            decision = Decision(gate, None, plan[0], source, _quick_info, key)
            if plan[1] is not None:  # cookies withheld from the app (and expired)
                decision.cookie_header, decision.removed, decision.expire = plan[1:]
                scope = _with_cookie(scope, plan[1])
        else:
            decision = gate.begin(_request_info(scope, gate.may_be_own(path)), key)
            if decision.response or decision.needs_body or decision.deferred:
                await self._own(decision, receive, send)
                return
            if decision.cookie_header is not None:
                scope = _with_cookie(scope, decision.cookie_header)
        ext = scope.get("extensions")
        if ext and not _BYPASS.isdisjoint(ext) and gate.may_inject:
            # a body sent by path or zero-copy would skip the body edits
            scope = {**scope, "extensions": {k: v for k, v in ext.items() if k not in _BYPASS}}
        scope[SCOPE_KEY] = decision

        # The start of a page whose edit changes its length waits for the first
        # body message: when that is the whole body, the edited length is known
        # and the page goes out with a Content-Length instead of chunked. A
        # rewritten page the app sent in pieces with a declared length (up to
        # FRAME_LIMIT: Decision.body_length) is held whole for the same reason.
        held: _Held | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal held
            kind = message["type"]
            if kind == "http.response.start":
                if held is not None:  # a second start (an app bug): the server judges it
                    await held.flush(send)
                    held = None
                headers = decision.response_headers(
                    message.get("headers", ()), message.get("status", 200)
                )
                # a copy: the app may send the same dict again (to the next visitor)
                message = {**message, "headers": headers}
                if decision.injector is not None and _unframed(headers):
                    held = _Held(message)
                    return
            elif kind == "http.response.body" and decision.injector is not None:
                body = message.get("body", b"")
                if type(body) is not bytes:
                    body = bytes(body)  # a bytearray or memoryview: the filters edit bytes
                if message.get("more_body", False):
                    body = decision.injector.feed(body)
                    if held is not None and decision.body_length is not None:
                        if body:
                            held.body.append(body)
                            held.size += len(body)
                            if held.size > FRAME_HOLD_MAX:  # it grew: stream from here
                                await held.flush(send)
                                held = None
                        return
                    message = {**message, "body": body}
                else:
                    body = decision.injector.finish(body)
                    if held is not None:
                        if held.body:
                            held.body.append(body)
                            body = b"".join(held.body)
                            held.body = []
                        length = str(len(body)).encode()
                        held.start["headers"].append((b"content-length", length))
                    message = {**message, "body": body}
            if held is not None:
                await held.flush(send)
                held = None
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if held is not None:  # the app sent no (complete) body: the start still goes
            await held.flush(send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = _request_info(scope, False)
        info.websocket = True
        decision = self.gate.begin(info)
        if decision.cookie_header is not None:
            scope = _with_cookie(scope, decision.cookie_header)
        scope[SCOPE_KEY] = decision

        async def ws_send(message: Message) -> None:
            # Set-Cookie of websocket.accept and of a denial response. The body of
            # a denial response is never edited, so its headers are filtered as
            # those of a non-page (its Content-Type set aside and put back):
            # an HTML denial's Content-Length must stay the app's
            if message["type"] in _WS_HEADERS and message.get("headers"):
                raw = list(message["headers"])
                kept = [h for h in raw if bytes(h[0]).lower() != b"content-type"]
                ctype = [h for h in raw if bytes(h[0]).lower() == b"content-type"]
                headers = decision.response_headers(kept, message.get("status", 200))
                message = {**message, "headers": [*headers, *ctype]}
            await send(message)

        await self.app(scope, receive, ws_send)

    async def _own(self, decision: Decision, receive: Receive, send: Send) -> None:
        head = decision.info.method == "HEAD"
        if decision.response is not None:
            await _send_plain(decision.response, send, head)
            return
        if decision.deferred is not None:  # my-data reads the database: off the loop
            await _send_plain(await run_in_threadpool(decision.deferred), send, head)
            return
        try:
            body = await _read_body(receive, self.gate.max_body)
        except _Disconnected:
            return  # a partial body is not a decision; there is nobody to answer
        respond = self.gate.respond  # a withdrawal erasing telemetry does I/O: off the loop
        resp = await run_in_threadpool(respond, decision, body) if decision.blocking else None
        await _send_plain(resp or respond(decision, body), send, head)
