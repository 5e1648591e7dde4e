"""WSGI adapter specifics: close(), exc_info, write(), Flask glue."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

from flask import Flask, make_response

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
    assert result is body  # the app's iterable is handed to the server as is
    assert b"".join(result) == b"ab"
    result.close()
    assert body.closed
    assert [v for k, v in captured["headers"] if k == "set-cookie"] == ["session=s"]

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
