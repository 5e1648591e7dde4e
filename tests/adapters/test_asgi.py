"""ASGI adapter specifics: non-HTTP scopes, streaming, HEAD/304, Starlette glue."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from cookiegate import asgi
from cookiegate.asgi import CookieGateMiddleware, consent
from cookiegate.gate import FRAME_LIMIT

from ..conftest import make_gate


def run(
    app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]], *, stay: bool = False
) -> list[dict[str, Any]]:
    """Run one request; after ``incoming`` the client disconnects (``stay``: it
    waits, as a client does while the response comes)."""
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        if not queue and stay:
            await asyncio.Event().wait()  # cancelled with the app's listener
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_lifespan_passes_through_untouched() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    sent = run(CookieGateMiddleware(app, gate=make_gate()), scope, [{"type": "lifespan.startup"}])
    assert seen == [scope] and seen[0] is scope
    assert sent == [{"type": "lifespan.startup.complete"}]


def _starlette() -> Starlette:
    async def home(request: Request) -> Response:
        resp = PlainTextResponse(
            f"perf={consent(request).allows('performance')} cookies={sorted(request.cookies)}"
        )
        resp.set_cookie("_ga", "GA1.1.1")
        resp.set_cookie("session", "s")
        return resp

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for i in range(50):
                yield f"chunk{i}\n".encode()

        resp = StreamingResponse(chunks(), media_type="text/plain")
        resp.set_cookie("_ga", "GA1.1.1")
        return resp

    async def not_modified(request: Request) -> Response:
        return Response(status_code=304, headers={"etag": '"x"', "set-cookie": "_ga=1"})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept(headers=[(b"set-cookie", b"_ga=1"), (b"set-cookie", b"session=s")])
        await websocket.send_text(",".join(sorted(websocket.cookies)))
        await websocket.close()

    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(",".join(sorted(websocket.cookies)))
        await websocket.close()

    app = Starlette(
        routes=[
            WebSocketRoute("/_cookiegate/live", ws_echo),
            Route("/", home),
            Route("/stream", stream),
            Route("/304", not_modified),
            WebSocketRoute("/ws", ws),
        ]
    )
    app.add_middleware(CookieGateMiddleware, gate=make_gate())
    return app


def test_starlette_add_middleware_and_helper() -> None:
    with TestClient(_starlette()) as client:
        res = client.get("/", headers={"cookie": "_ga=x; session=s"})
    assert res.text == "perf=False cookies=['session']"
    assert [c.split("=")[0] for c in res.headers.get_list("set-cookie")] == ["session"]
    assert "Cookie" in res.headers["vary"]


def test_streaming_body_passes_through() -> None:
    with TestClient(_starlette()) as client:
        res = client.get("/stream")
    assert res.text == "".join(f"chunk{i}\n" for i in range(50))
    assert "set-cookie" not in res.headers


def test_head_and_304() -> None:
    with TestClient(_starlette()) as client:
        head = client.head("/")
        assert head.status_code == 200 and head.content == b""
        assert [c.split("=")[0] for c in head.headers.get_list("set-cookie")] == ["session"]
        nm = client.get("/304")
        assert nm.status_code == 304 and nm.content == b"" and "set-cookie" not in nm.headers
        assert nm.headers["etag"] == '"x"'
        own = client.head("/_cookiegate/consent")
        assert own.status_code == 200 and own.content == b""


def test_websocket_cookies_filtered_both_ways() -> None:
    with (
        TestClient(_starlette()) as client,
        client.websocket_connect("/ws", headers={"cookie": "_ga=1; session=s"}) as ws,
    ):
        assert ws.receive_text() == "session"


def test_body_read_stops_at_limit() -> None:
    gate = make_gate(max_body=1024)
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not reached
        nonlocal called
        called = True

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_cookiegate/consent",
        "scheme": "http",
        "headers": [(b"host", b"t"), (b"content-type", b"application/x-www-form-urlencoded")],
    }
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 5
    sent = run(CookieGateMiddleware(app, gate=gate), scope, chunks)
    assert sent[0]["status"] == 413 and not called


def test_websocket_on_own_prefix_is_still_filtered() -> None:
    with (
        TestClient(_starlette()) as client,
        client.websocket_connect("/_cookiegate/live", headers={"cookie": "_ga=1; session=s"}) as ws,
    ):
        assert ws.receive_text() == "session"


def test_websocket_denial_response_is_filtered() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [(b"set-cookie", b"_ga=1"), (b"set-cookie", b"session=s")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b""})

    scope = {"type": "websocket", "path": "/ws", "scheme": "ws", "headers": [(b"host", b"t")]}
    sent = run(CookieGateMiddleware(app, gate=make_gate()), scope, [{"type": "websocket.connect"}])
    cookies = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
    assert cookies == [b"session=s"]


def test_websocket_html_denial_keeps_its_length() -> None:
    """The body of a WebSocket denial response is never edited, so an HTML one
    keeps the app's headers: before, the gate grew its Content-Length for a
    settings control it never inserted (decided visitor) or dropped it
    (undecided), and the client waited for bytes that never came."""
    body = b"<html><body><h1>Forbidden</h1></body></html>"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"set-cookie", b"_ga=1"),
        ]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})

    gate = make_gate()
    for cookie in (f"cookiegate={gate.make_token(['performance'])}", ""):
        scope = {
            "type": "websocket",
            "path": "/ws",
            "scheme": "ws",
            "headers": [(b"host", b"t"), (b"cookie", cookie.encode())],
        }
        sent = run(CookieGateMiddleware(app, gate=gate), scope, [{"type": "websocket.connect"}])
        headers = dict(sent[0]["headers"])
        assert headers[b"content-length"] == str(len(body)).encode(), cookie
        assert headers[b"content-type"] == b"text/html; charset=utf-8"
        assert sent[1]["body"] == body
        assert (b"_ga=1" in [v for k, v in sent[0]["headers"] if k == b"set-cookie"]) is bool(
            cookie
        )


def test_the_apps_message_dicts_are_never_edited_in_place() -> None:
    """An app may send the same pre-built start and body dicts to every visitor:
    one visitor's edits (a re-issued consent cookie, the inserted control) must
    not reach the next visitor's response."""
    page = b"<html><body><p>static</p></body></html>"
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/html"), (b"content-length", b"38")],
    }
    body = {"type": "http.response.body", "body": page}
    start_headers = list(start["headers"])  # type: ignore[call-overload]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send(body)

    gate = make_gate()
    mw = CookieGateMiddleware(app, gate=gate)
    for granted in (["performance"], []):
        cookie = f"cookiegate={gate.make_token(granted)}".encode()
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "scheme": "http",
            "headers": [(b"host", b"t"), (b"cookie", cookie)],
        }
        sent = run(mw, scope, [{"type": "http.request", "body": b""}])
        assert sent[1]["body"].count(b'id="cookiegate-settings"') == 1
        assert start["headers"] == start_headers and body["body"] == page


def test_disconnect_mid_body_decides_nothing() -> None:
    decided: list[object] = []
    gate = make_gate(on_consent=decided.append)

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not reached
        raise AssertionError("the app must not be called")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_cookiegate/consent",
        "scheme": "http",
        "headers": [(b"host", b"t"), (b"content-type", b"application/x-www-form-urlencoded")],
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"action=rej", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = run(CookieGateMiddleware(app, gate=gate), scope, incoming)
    assert sent == [] and decided == []


def test_missing_host_header_uses_server_without_default_port() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not reached
        raise AssertionError("the app must not be called")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_cookiegate/consent",
        "scheme": "https",
        "server": ("shop.test", 443),
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"origin", b"https://shop.test"),
        ],
    }
    incoming = [{"type": "http.request", "body": b"action=accept_all"}]
    sent = run(CookieGateMiddleware(app, gate=make_gate()), scope, incoming)
    assert sent[0]["status"] == 303


def _html_app() -> Starlette:
    async def page(request: Request) -> Response:
        from starlette.responses import HTMLResponse

        return HTMLResponse("<html><body>" + "<p>shop</p>" * 200 + "</body></html>")

    return Starlette(routes=[Route("/", page)])


def test_compression_inside_cookiegate_gets_the_banner() -> None:
    """cookiegate added before GZipMiddleware runs inside it: it sees plain HTML."""
    from starlette.middleware.gzip import GZipMiddleware

    app = _html_app()
    app.add_middleware(CookieGateMiddleware, gate=make_gate())
    app.add_middleware(GZipMiddleware, minimum_size=100)
    with TestClient(app) as client:
        res = client.get("/", headers={"accept-encoding": "gzip"})
    assert res.headers["content-encoding"] == "gzip"
    assert 'id="cookiegate-banner"' in res.text  # httpx decoded the gzip body
    assert res.text.endswith("</body></html>")


def test_compressed_body_is_never_corrupted() -> None:
    """The other order: cookiegate sees gzip. It decodes, edits and re-encodes the
    page (banner, tracking gate), so the page still gets its banner; with nothing
    to insert (``ui=None``, no tracking gate) it leaves the body alone. Never a
    corrupt body, and the app's validators never describe an edited body."""
    from starlette.middleware.gzip import GZipMiddleware

    page = "<html><body>" + "<p>shop</p>" * 200 + "</body></html>"
    gates = (
        (make_gate(block_trackers=False), True),
        (make_gate(), True),
        (make_gate(ui=None, block_trackers=False), False),
    )
    for gate, banner in gates:
        app = _html_app()
        app.add_middleware(GZipMiddleware, minimum_size=100)
        app.add_middleware(CookieGateMiddleware, gate=gate)
        with TestClient(app) as client:
            res = client.get("/", headers={"accept-encoding": "gzip"})
        assert res.headers["content-encoding"] == "gzip"
        if banner:
            assert 'id="cookiegate-banner"' in res.text
            assert res.text.replace(res.text[res.text.index("<link") : -14], "") == page
        else:
            assert res.text == page


def test_streamed_html_gets_the_banner_once() -> None:
    async def page(request: Request) -> Response:
        async def chunks() -> Any:
            yield b"<html><body><p>a</p></bo"
            yield b"dy></html>"

        return StreamingResponse(chunks(), media_type="text/html")

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(CookieGateMiddleware, gate=make_gate())
    with TestClient(app) as client:
        body = client.get("/").text
    assert body.count('id="cookiegate-banner"') == 1
    assert body.index('id="cookiegate-banner"') < body.index("</body></html>")


def test_body_bypass_extensions_are_withheld_from_the_app() -> None:
    """A server offering pathsend / zero-copy would let the app send a page the
    gate never sees: cookiegate hides those extensions (others stay)."""
    import asyncio

    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["extensions"] = scope.get("extensions")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = CookieGateMiddleware(app, gate=make_gate())
    ext: dict[str, Any] = {
        "http.response.pathsend": {},
        "http.response.zerocopy": {},
        "http.response.trailers": {},
    }
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "extensions": ext}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    asyncio.run(mw(scope, receive, send))
    assert seen["extensions"] == {"http.response.trailers": {}}


def _page_app(kind: type, pieces: int) -> Any:
    page = b"<html><head><title>t</title></head><body><p>shop</p></body></html>"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        size = -(-len(page) // pieces)
        parts = [page[i : i + size] for i in range(0, len(page), size)]
        for i, part in enumerate(parts):
            more = i < len(parts) - 1
            await send({"type": "http.response.body", "body": kind(part), "more_body": more})

    return app


def test_bytes_like_body_messages_are_edited_like_bytes() -> None:
    """An app sending bytearray / memoryview bodies (ASGI asks for bytes; some
    send these) gets the same page edits: banner, Consent Mode's head script."""
    gate = make_gate(consent_mode=True)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"host", b"shop.test"), (b"user-agent", b"Mozilla/5.0 Firefox/140")],
    }

    def body(kind: type, pieces: int) -> bytes:
        sent = run(CookieGateMiddleware(_page_app(kind, pieces), gate=gate), dict(scope), [])
        out = b"".join(bytes(m["body"]) for m in sent if m["type"] == "http.response.body")
        return re.sub(rb'nonce="[^"]*"', b'nonce=""', out)  # a new nonce per response

    want = body(bytes, 1)
    assert b'id="cookiegate-banner"' in want and b"gtag(" in want
    for kind in (bytes, bytearray, memoryview):
        for pieces in (1, 3):
            assert body(kind, pieces) == want, (kind, pieces)


_PAGE = (
    b"<html><head><title>t</title></head><body><p>shop</p>"
    b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    b"</body></html>"
)


def _undecided_page(
    pieces: int,
    body: bool = True,
    *,
    page: bytes = _PAGE,
    length: bool = True,
    finish: bool = True,
) -> Any:
    """An app sending ``page`` in ``pieces`` body messages (``finish=False``: the
    last one never comes), with its Content-Length unless ``length`` is false."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html")]
        if length:
            headers.append((b"content-length", b"%d" % len(page)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if not body:
            return
        size = -(-len(page) // pieces)
        parts = [page[i : i + size] for i in range(0, len(page), size)]
        if not finish:
            parts.pop()
        for i, part in enumerate(parts):
            more = i < len(parts) - 1 or not finish
            await send({"type": "http.response.body", "body": part, "more_body": more})

    return app


_PAGE_SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/",
    "headers": [(b"host", b"shop.test"), (b"user-agent", b"Mozilla/5.0 Firefox/140")],
}


def _length_of(start: dict[str, Any]) -> list[bytes]:
    return [v for k, v in start["headers"] if k == b"content-length"]


def test_rewritten_page_keeps_an_exact_length() -> None:
    """The start of a rewritten page waits for its body: in one message, or in
    several with a declared length of at most FRAME_LIMIT (held whole), the page
    goes out in one message with its exact new length."""
    gate = make_gate()
    sent = run(CookieGateMiddleware(_undecided_page(1), gate=gate), dict(_PAGE_SCOPE), [])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    one = sent[1]["body"]
    assert b"data-cg-blocked" in one and b'id="cookiegate-banner"' in one
    assert _length_of(sent[0]) == [str(len(one)).encode()]
    for pieces in (2, 4, 40):
        sent = run(CookieGateMiddleware(_undecided_page(pieces), gate=gate), dict(_PAGE_SCOPE), [])
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[1]["body"] == one and not sent[1].get("more_body", False)
        assert _length_of(sent[0]) == [str(len(one)).encode()]


def test_rewritten_page_without_a_length_streams() -> None:
    """Without a declared length the app chose streaming: the start goes with
    the first body message, without a length (the server frames it), same bytes."""
    gate = make_gate()
    whole = run(CookieGateMiddleware(_undecided_page(1), gate=gate), dict(_PAGE_SCOPE), [])
    app = _undecided_page(4, length=False)
    sent = run(CookieGateMiddleware(app, gate=gate), dict(_PAGE_SCOPE), [])
    assert sent[0]["type"] == "http.response.start" and _length_of(sent[0]) == []
    assert len(sent) == 5  # each piece goes on as it comes
    assert b"".join(m.get("body", b"") for m in sent[1:]) == whole[1]["body"]


def test_long_rewritten_page_streams() -> None:
    """A declared length over FRAME_LIMIT is not held: the page streams (memory
    stays bounded whatever the app declares), same bytes as in one message."""
    gate = make_gate()
    page = _PAGE.replace(b"<p>shop</p>", b"<p>" + b"x" * (FRAME_LIMIT + 1) + b"</p>")
    whole = run(
        CookieGateMiddleware(_undecided_page(1, page=page), gate=gate), dict(_PAGE_SCOPE), []
    )
    assert _length_of(whole[0]) == [str(len(whole[1]["body"])).encode()]
    sent = run(
        CookieGateMiddleware(_undecided_page(8, page=page), gate=gate), dict(_PAGE_SCOPE), []
    )
    assert _length_of(sent[0]) == [] and len(sent) == 9
    assert b"".join(m.get("body", b"") for m in sent[1:]) == whole[1]["body"]


def test_held_page_that_grows_past_the_hold_limit_streams(monkeypatch: Any) -> None:
    """The held edited body is bounded too (a re-encoded body may grow): past
    FRAME_HOLD_MAX the start and what is held go, and the rest streams."""
    gate = make_gate()
    whole = run(CookieGateMiddleware(_undecided_page(1), gate=gate), dict(_PAGE_SCOPE), [])
    monkeypatch.setattr(asgi, "FRAME_HOLD_MAX", 40)
    sent = run(CookieGateMiddleware(_undecided_page(8), gate=gate), dict(_PAGE_SCOPE), [])
    assert sent[0]["type"] == "http.response.start" and _length_of(sent[0]) == []
    assert len(sent[1]["body"]) > 40 and len(sent) > 3  # pieces held together, then streamed
    assert b"".join(m.get("body", b"") for m in sent[1:]) == whole[1]["body"]


def test_held_page_goes_out_when_the_app_stops_mid_body() -> None:
    """An app that returns before its last body message: the start and what was
    held still go (as the app left it, unfinished), nothing is lost."""
    gate = make_gate()
    app = _undecided_page(4, finish=False)
    sent = run(CookieGateMiddleware(app, gate=gate), dict(_PAGE_SCOPE), [])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert _length_of(sent[0]) == [] and sent[1]["more_body"] is True
    assert b"<p>shop</p>" in sent[1]["body"]


def test_held_start_is_sent_when_the_app_sends_no_body() -> None:
    gate = make_gate()
    sent = run(
        CookieGateMiddleware(_undecided_page(1, body=False), gate=gate), dict(_PAGE_SCOPE), []
    )
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert sent[0]["status"] == 200


def test_file_response_page_keeps_an_exact_length(tmp_path: Any) -> None:
    """Starlette's FileResponse sends a 150 KB page in 64 KiB pieces with its
    Content-Length (and ETag): the rewritten page goes out whole, exact length,
    no validators."""
    from starlette.responses import FileResponse

    page = _PAGE.replace(b"<p>shop</p>", b"<p>shop</p>" + b"<p>item</p>\n" * 12_500)
    path = tmp_path / "index.html"
    path.write_bytes(page)
    app = Starlette(routes=[Route("/", lambda request: FileResponse(path))])
    gated = CookieGateMiddleware(app, gate=make_gate())
    sent = run(gated, dict(_PAGE_SCOPE), [{"type": "http.request"}], stay=True)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    body = sent[1]["body"]
    assert b"data-cg-blocked" in body and body.count(b"<p>item</p>") == 12_500
    assert _length_of(sent[0]) == [str(len(body)).encode()]
    assert not any(k in (b"etag", b"last-modified") for k, _ in sent[0]["headers"])


def test_second_start_while_held_reaches_the_server_in_order() -> None:
    """An app that sends a second start (an ASGI error) while the first is held:
    the first goes out first, then the second, for the server to refuse."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(_PAGE))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _PAGE[:40], "more_body": True})
        again = [(b"content-type", b"text/html"), (b"x-second", b"1")]  # held too
        await send({"type": "http.response.start", "status": 200, "headers": again})
        await send({"type": "http.response.body", "body": b"<p>x</p>"})

    sent = run(CookieGateMiddleware(app, gate=make_gate()), dict(_PAGE_SCOPE), [])
    starts = [i for i, m in enumerate(sent) if m["type"] == "http.response.start"]
    assert len(starts) == 2 and starts[0] == 0
    assert not any(k == b"x-second" for k, _ in sent[0]["headers"])
    assert any(k == b"x-second" for k, _ in sent[starts[1]]["headers"])
    assert sent[1]["type"] == "http.response.body"  # the first start's held body


def test_empty_body_messages_of_a_held_page_change_nothing() -> None:
    gate = make_gate()
    whole = run(CookieGateMiddleware(_undecided_page(1), gate=gate), dict(_PAGE_SCOPE), [])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(_PAGE))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(_PAGE), 50):
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            await send({"type": "http.response.body", "body": _PAGE[i : i + 50], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sent = run(CookieGateMiddleware(app, gate=gate), dict(_PAGE_SCOPE), [])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == whole[1]["body"]
    assert _length_of(sent[0]) == [str(len(whole[1]["body"])).encode()]
