"""WSGI adapter specifics: close(), exc_info, write(), Flask glue."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, make_response

from cookiegate import wsgi
from cookiegate.gate import FRAME_LIMIT
from cookiegate.wsgi import CookieGateMiddleware, consent

from ..conftest import make_gate


def environ(path: str = "/", cookie: str | None = None, method: str = "GET") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "HTTP_HOST": "t",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
    }
    if cookie:
        env["HTTP_COOKIE"] = cookie
    return env


class Body:
    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.closed = True


def test_close_is_honoured() -> None:
    body = Body()

    def app(env: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Set-Cookie", "_ga=1"), ("Set-Cookie", "session=s")])
        return body

    html_body = Body()

    def html_app(env: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Content-Type", "text/html")])
        return html_body

    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["headers"] = headers
        return lambda data: None

    result = CookieGateMiddleware(app, gate=make_gate())(environ(), start_response)
    # an iterable that may still call start_response (exc_info) is wrapped;
    # close() reaches the app's
    assert b"".join(result) == b"ab"
    result.close()  # type: ignore[attr-defined]
    assert body.closed
    assert [v for k, v in captured["headers"] if k == "set-cookie"] == ["session=s"]

    def list_app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return done

    done = [b"x"]
    # a list was computed before the app returned: handed to the server as is
    assert CookieGateMiddleware(list_app, gate=make_gate())(environ(), start_response) is done

    # An HTML page is wrapped to insert the banner; close() still reaches the app.
    wrapped = CookieGateMiddleware(html_app, gate=make_gate())(environ(), start_response)
    assert wrapped is not html_body
    assert b"cookiegate-banner" in b"".join(wrapped)
    wrapped.close()  # type: ignore[attr-defined]
    assert html_body.closed


def test_exc_info_and_write_pass_through() -> None:
    written: list[bytes] = []
    got: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Set-Cookie", "_ga=1")])
        try:
            raise ValueError("boom")
        except ValueError:
            write = start_response("500 Error", [("Set-Cookie", "_ga=1")], sys.exc_info())
        write(b"partial")
        return [b"!"]

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["status"], got["headers"], got["exc_info"] = status, headers, exc_info
        return written.append

    out = CookieGateMiddleware(app, gate=make_gate())(environ(), start_response)
    assert list(out) == [b"!"]
    assert written == [b"partial"]
    assert got["status"] == "500 Error"
    assert got["exc_info"] is not None and got["exc_info"][0] is ValueError
    assert not any(k == "set-cookie" for k, _ in got["headers"])


def test_flask_helper_and_filtering() -> None:
    app = Flask(__name__)

    @app.route("/")
    def home() -> Any:
        from flask import request

        resp = make_response(
            f"perf={consent().allows('performance')} cookies={sorted(request.cookies)}"
        )
        resp.set_cookie("_ga", "GA1.1.1")
        resp.set_cookie("session", "s")
        return resp

    app.wsgi_app = CookieGateMiddleware(app.wsgi_app, gate=make_gate())  # type: ignore[method-assign]
    client = app.test_client()
    client.set_cookie("_ga", "x")
    client.set_cookie("session", "s")
    res = client.get("/")
    assert res.get_data(as_text=True).startswith("perf=False cookies=['session']")
    assert [c.split("=")[0] for c in res.headers.getlist("Set-Cookie")] == ["session"]
    assert client.get("/_cookiegate/consent").get_json()["decided"] is False


def test_wsgi_chunked_body_limit() -> None:
    gate = make_gate(max_body=1024)
    env = environ("/_cookiegate/consent", method="POST")
    env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    env["wsgi.input"] = io.BytesIO(b"x" * 5000)
    env["wsgi.input_terminated"] = True
    got: dict[str, Any] = {}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        got["status"] = status
        return lambda d: None

    CookieGateMiddleware(lambda e, s: [], gate=gate)(env, start_response)
    assert got["status"].startswith("413")


def test_passes_wsgiref_validator() -> None:
    """PEP 3333 conformance on both sides of the middleware (environ key with a dot,
    header types, close())."""
    from wsgiref.util import setup_testing_defaults
    from wsgiref.validate import validator

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "_ga=1")])
        return [b"ok"]

    wrapped = validator(CookieGateMiddleware(validator(app), gate=make_gate()))
    env: dict[str, Any] = {}
    setup_testing_defaults(env)
    env["HTTP_COOKIE"] = "_ga=1; session=s"
    env["QUERY_STRING"] = ""
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["headers"] = headers
        return lambda data: None

    result = wrapped(env, start_response)
    assert b"".join(result) == b"ok"
    result.close()  # type: ignore[attr-defined]
    assert not any(k.lower() == "set-cookie" for k, _ in got["headers"])


PAGE_HTML = b"<html><body><p>shop</p></body></html>"


def test_exc_info_restart_forgets_the_first_responses_edits() -> None:
    """An app that began an HTML page and then starts over with an error response
    (exc_info) gets exactly the error body, with its own Content-Length."""
    got: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "38")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response(
                "500 Error",
                [("Content-Type", "text/plain"), ("Content-Length", "5")],
                sys.exc_info(),
            )
        return [b"error"]

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["status"], got["headers"] = status, headers
        return lambda data: None

    out = b"".join(CookieGateMiddleware(app, gate=make_gate())(environ(), start_response))
    assert out == b"error"
    assert ("content-length", "5") in [(k.lower(), v) for k, v in got["headers"]]


def test_a_generator_restarting_as_a_page_gets_the_page_edits() -> None:
    """start_response (JSON) during the call, then a generator that fails before
    its first byte and starts over with an HTML page (exc_info, PEP 3333): the
    page gets the banner or control with an exact length, as any page does."""
    got: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])

        def body() -> Iterator[bytes]:
            try:
                raise ValueError("no data")
            except ValueError:
                start_response(
                    "200 OK",
                    [("Content-Type", "text/html"), ("Content-Length", str(len(PAGE_HTML)))],
                    sys.exc_info(),
                )
            yield PAGE_HTML

        return body()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["headers"] = headers
        return lambda data: None

    gate = make_gate()
    for cookie in (f"cookiegate={gate.make_token(['performance'])}", ""):
        env = environ()
        if cookie:
            env["HTTP_COOKIE"] = cookie
        out = b"".join(CookieGateMiddleware(app, gate=gate)(env, start_response))
        assert b'id="cookiegate' in out, cookie
        lengths = [v for k, v in got["headers"] if k.lower() == "content-length"]
        assert lengths in ([], [str(len(out))]), (lengths, len(out))


def test_write_goes_through_the_body_edits() -> None:
    """The legacy write() callable gets the banner inserted like the iterable."""
    written: list[bytes] = []

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/html")])
        write(PAGE_HTML[:10])
        write(PAGE_HTML[10:])
        return []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return written.append

    rest = b"".join(CookieGateMiddleware(app, gate=make_gate())(environ(), start_response))
    body = b"".join(written) + rest
    assert b'id="cookiegate-banner"' in body
    assert body.index(b'id="cookiegate-banner"') < body.index(b"</body>")
    assert body.replace(body[body.index(b"<link") : body.index(b"</body>")], b"") == PAGE_HTML


TRACKED_PAGE = (
    b"<html><head><title>t</title></head><body><p>shop</p>"
    b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    b"</body></html>"
)


class Server:
    """A WSGI server's side of one request: what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.events.append(("start", (status, headers)))
        return lambda data: self.events.append(("write", data))

    def run(self, app: Any, env: dict[str, Any] | None = None) -> bytes:
        result = CookieGateMiddleware(app, gate=make_gate())(env or environ(), self.start_response)
        try:
            for chunk in result:
                self.events.append(("chunk", chunk))
        finally:
            getattr(result, "close", lambda: None)()
        return b"".join(data for kind, data in self.events if kind != "start" and data)

    def lengths(self) -> list[str]:
        starts = [data[1] for kind, data in self.events if kind == "start"]
        assert len(starts) == 1
        return [v for k, v in starts[0] if k.lower() == "content-length"]


def tracked_app(pieces: int, *, page: bytes = TRACKED_PAGE, length: bool = True) -> Any:
    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        headers = [("Content-Type", "text/html")]
        if length:
            headers.append(("Content-Length", str(len(page))))
        start_response("200 OK", headers)
        size = -(-len(page) // pieces)
        for i in range(0, len(page), size):
            yield page[i : i + size]

    return app


def test_rewritten_page_keeps_an_exact_length() -> None:
    """A rewritten page with a declared length (up to FRAME_LIMIT), however the
    app cuts it: the server's start_response waits for the whole edited body,
    which then goes with its exact Content-Length, as one chunk."""
    one = Server()
    whole = one.run(tracked_app(1))
    assert b"data-cg-blocked" in whole and b'id="cookiegate-banner"' in whole
    assert one.lengths() == [str(len(whole))]
    for pieces in (2, 5, 40):
        server = Server()
        assert server.run(tracked_app(pieces)) == whole
        assert server.lengths() == [str(len(whole))]
        assert [kind for kind, _ in server.events] == ["start", "chunk"]


def test_held_page_passes_the_wsgiref_validator() -> None:
    from wsgiref.util import setup_testing_defaults
    from wsgiref.validate import validator

    env: dict[str, Any] = {}
    setup_testing_defaults(env)
    env["QUERY_STRING"] = ""
    events: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        events.append(headers)
        return lambda data: None

    wrapped = validator(CookieGateMiddleware(validator(tracked_app(4)), gate=make_gate()))
    result = wrapped(env, start_response)
    body = b"".join(result)
    result.close()  # type: ignore[attr-defined]
    assert b"data-cg-blocked" in body
    assert [v for k, v in events[0] if k == "content-length"] == [str(len(body))]


def test_rewritten_page_without_a_length_streams() -> None:
    """No declared length: the app chose streaming; each piece goes on as it
    comes, the server frames the body."""
    whole = Server().run(tracked_app(1))
    server = Server()
    assert server.run(tracked_app(4, length=False)) == whole
    assert server.lengths() == []
    assert [kind for kind, _ in server.events][:2] == ["start", "chunk"]
    assert len(server.events) >= 5


def test_long_rewritten_page_streams() -> None:
    """A declared length over FRAME_LIMIT is not held (bounded memory)."""
    page = TRACKED_PAGE.replace(b"<p>shop</p>", b"<p>" + b"x" * (FRAME_LIMIT + 1) + b"</p>")
    whole = Server().run(tracked_app(1, page=page))
    server = Server()
    assert server.run(tracked_app(8, page=page)) == whole
    assert server.lengths() == [] and len(server.events) >= 9


def test_held_page_that_grows_past_the_hold_limit_streams(monkeypatch: Any) -> None:
    whole = Server().run(tracked_app(1))
    monkeypatch.setattr(wsgi, "FRAME_HOLD_MAX", 40)
    server = Server()
    assert server.run(tracked_app(8)) == whole
    assert server.lengths() == []
    chunks = [data for kind, data in server.events if kind == "chunk"]
    assert len(chunks[0]) > 40 and len(chunks) > 2  # pieces held together, then streamed


def test_write_releases_a_held_start() -> None:
    """The legacy write() cannot wait for the whole body: the held start goes
    (without a length) with what was held, then the written data, in order."""

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response(
            "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(TRACKED_PAGE)))]
        )
        yield TRACKED_PAGE[:20]
        write(TRACKED_PAGE[20:60])
        yield TRACKED_PAGE[60:]

    whole = Server().run(tracked_app(1))
    server = Server()
    assert server.run(app) == whole
    assert server.lengths() == []
    assert server.events[0][0] == "start"


def test_exc_info_restart_drops_a_held_body() -> None:
    """An app that starts over (exc_info) after yielding part of a held page:
    nothing of the page was sent, so the server gets only the error response."""

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response(
            "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(TRACKED_PAGE)))]
        )
        yield TRACKED_PAGE[:50]
        try:
            raise ValueError("boom")
        except ValueError:
            start_response(
                "500 Error",
                [("Content-Type", "text/plain"), ("Content-Length", "5")],
                sys.exc_info(),
            )
        yield b"error"

    server = Server()
    assert server.run(app) == b"error"
    assert server.lengths() == ["5"]
    assert server.events[0][1][0] == "500 Error"


def test_flask_send_file_page_keeps_an_exact_length(tmp_path: Any) -> None:
    """Flask's send_file streams a 150 KB page in 8 KiB pieces with its
    Content-Length: the rewritten page goes to the server whole, exact length."""
    from flask import send_file

    page = TRACKED_PAGE.replace(b"<p>shop</p>", b"<p>shop</p>" + b"<p>item</p>\n" * 12_500)
    path = tmp_path / "index.html"
    path.write_bytes(page)
    flask_app = Flask(__name__)
    flask_app.add_url_rule("/", "index", lambda: send_file(path))
    server = Server()
    body = server.run(flask_app.wsgi_app)
    assert b"data-cg-blocked" in body and body.count(b"<p>item</p>") == 12_500
    assert server.lengths() == [str(len(body))]
    assert [kind for kind, _ in server.events] == ["start", "chunk"]


def test_start_response_twice_without_exc_info_is_refused_while_held() -> None:
    """A held start is the middleware's: a second start_response without
    exc_info is the error a server reports (PEP 3333), not a silent replacement."""

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        headers = [("Content-Type", "text/html"), ("Content-Length", str(len(TRACKED_PAGE)))]
        start_response("200 OK", headers)
        yield TRACKED_PAGE[:30]
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"second"

    with pytest.raises(AssertionError, match="without exc_info"):
        Server().run(app)


def test_exc_info_restart_after_the_start_reached_the_server_goes_to_it() -> None:
    """Once a start went to the server (write() released it), a restart with
    exc_info is the server's to judge: wsgiref re-raises the app's error, at
    the call."""
    from wsgiref.handlers import SimpleHandler

    at_call: list[bool] = []

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        headers = [("Content-Type", "text/html"), ("Content-Length", str(len(TRACKED_PAGE)))]
        write = start_response("200 OK", headers)
        write(TRACKED_PAGE[:60])
        try:
            raise ValueError("boom")
        except ValueError:
            try:
                start_response("200 OK", headers, sys.exc_info())  # another page
            except ValueError:
                at_call.append(True)  # PEP 3333: raised right there
                raise
        yield b"never"

    out = io.BytesIO()
    env = environ()
    env["SERVER_PROTOCOL"] = "HTTP/1.1"
    handler = SimpleHandler(io.BytesIO(b""), out, io.StringIO(), env)
    handler.error_output = io.StringIO()  # type: ignore[assignment]
    raised: list[BaseException] = []

    def log_exception(exc_info: Any) -> None:
        raised.append(exc_info[1])

    handler.log_exception = log_exception  # type: ignore[method-assign]
    handler.run(CookieGateMiddleware(app, gate=make_gate()))
    assert raised and isinstance(raised[0], ValueError)  # the app's own error
    assert at_call == [True]
    assert b"never" not in out.getvalue()
