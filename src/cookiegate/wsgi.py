"""WSGI adapter (Flask, Django, any WSGI app). Translation only.

Usage::

    flask_app.wsgi_app = CookieGateMiddleware(flask_app.wsgi_app, gate=gate)

    consent().allows("performance")         # in a Flask view (uses flask.request)
    consent(environ).allows("performance")  # any WSGI app
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from types import TracebackType
from typing import Any

from . import ENVIRON_KEY, consent_of
from .consent import RequestConsent
from .gate import FRAME_HOLD_MAX, Decision, Gate, PlainResponse, RequestInfo

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

__all__ = ["CookieGateMiddleware", "consent"]


def consent(request_or_environ: Any = None) -> RequestConsent:
    """The visitor's consent. Without an argument, Flask's current request."""
    if request_or_environ is None:
        from flask import request  # only when asked for; Flask is optional

        request_or_environ = request
    return consent_of(request_or_environ)


def _request_info(environ: dict[str, Any]) -> RequestInfo:
    gpc = environ.get("HTTP_SEC_GPC")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if not path.isascii():
        # PEP 3333 gives the path's bytes as latin-1 text; ASGI gives it as UTF-8
        # text: read it as ASGI does, so both adapters match the same rules
        with contextlib.suppress(UnicodeEncodeError):  # else not PEP 3333: as it is
            path = path.encode("latin-1").decode("utf-8", "replace")
    return RequestInfo(
        environ.get("REQUEST_METHOD", "GET"),
        path or "/",
        environ.get("wsgi.url_scheme", "http"),
        environ.get("HTTP_HOST")
        or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}",
        environ.get("QUERY_STRING", ""),
        environ.get("HTTP_COOKIE"),
        None if gpc is None else [gpc],
        environ.get("HTTP_ORIGIN"),
        environ.get("HTTP_SEC_FETCH_SITE"),
        environ.get("CONTENT_TYPE"),
        environ.get("HTTP_ACCEPT"),
        accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"),
        user_agent=environ.get("HTTP_USER_AGENT"),
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        client=environ.get("REMOTE_ADDR"),
    )


def _server_host(environ: dict[str, Any]) -> str:
    name, port = environ.get("SERVER_NAME", ""), str(environ.get("SERVER_PORT", ""))
    default = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
    return f"{name}:{port}" if port and port != default else str(name)


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body, or ``None`` if it is over ``limit`` (read no further)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    if length <= 0:
        # No length (chunked): read at most limit + 1 bytes, if the server allows it.
        if not environ.get("wsgi.input_terminated"):
            return b""
        data = stream.read(limit + 1)
        return None if len(data) > limit else bytes(data)
    return bytes(stream.read(length))


def _plain(resp: PlainResponse, start_response: StartResponse, head: bool) -> list[bytes]:
    headers = list(resp.headers)
    if resp.status not in (204, 304):  # they have no body, nor Content-Length
        headers.append(("content-length", str(len(resp.body))))
    start_response(f"{resp.status} {HTTPStatus(resp.status).phrase}", headers)
    return [b"" if head else resp.body]


class CookieGateMiddleware:
    """WSGI middleware enforcing a :class:`~cookiegate.Gate`.

    :param app: the WSGI application to protect.
    :param gate: the configured gate.
    """

    def __init__(self, app: WSGIApp, *, gate: Gate) -> None:
        if not isinstance(gate, Gate):
            raise TypeError("gate must be a cookiegate.Gate")
        self.app = app
        self.gate = gate
        #: the consent records' writer is started by the first request: journals
        #: that a stopped process left are replayed then, not at the first record
        self._unstarted: Callable[[], object] | None = getattr(gate.records, "start", None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._unstarted is not None:
            start, self._unstarted = self._unstarted, None
            start()
        info = _request_info(environ)
        decision = self.gate.begin(info)
        head = info.method == "HEAD"
        if decision.response is not None:
            return _plain(decision.response, start_response, head)
        if decision.deferred is not None:
            return _plain(decision.deferred(), start_response, head)
        if decision.needs_body:
            body = _read_body(environ, self.gate.max_body)
            return _plain(self.gate.respond(decision, body), start_response, head)

        if decision.cookie_header is not None:
            if decision.cookie_header:
                environ["HTTP_COOKIE"] = decision.cookie_header
            else:
                environ.pop("HTTP_COOKIE", None)
        environ[ENVIRON_KEY] = decision

        started = False
        # A rewritten page with a declared length (Decision.body_length) has its
        # start held, with the edited body, until the body's exact length is known.
        hold: list[_Held] = []
        told = False  # whether the server's start_response was called

        def to_server(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal told
            told = True
            return _start(start_response, status, headers, exc_info)

        def gated_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal started
            if hold:
                # a held start is this middleware's to replace, as a server would
                if exc_info is None:
                    raise AssertionError("start_response called again without exc_info")
                hold.clear()  # nothing of it was sent: the app starts over
            started = True
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            try:
                code = int(status.split(" ", 1)[0])
            except ValueError:
                code = 0
            filtered = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in decision.response_headers(raw, code)
            ]
            if decision.injector is None:
                return to_server(status, filtered, exc_info)
            if decision.body_length is not None and not told and _unframed(filtered):
                # nothing reached the server: nothing to replace there, and no
                # traceback kept with the held start
                held = _Held(to_server, status, filtered, hold)
                hold.append(held)
                server_write = held.server_write
            else:
                # (a restart after a start reached the server: the server judges,
                # and raises when the headers are out)
                write = to_server(status, filtered, exc_info)

                def server_write() -> Callable[[bytes], object]:
                    return write

            def gated_write(data: bytes) -> object:
                # the legacy write() goes through the same body edits as the iterable
                injector = decision.injector
                out = injector.feed(data) if injector is not None else data
                return server_write()(out) if out else None

            return gated_write

        result = self.app(environ, gated_start_response)
        if not self.gate.may_inject or (
            started and decision.injector is None and _final(result, environ)
        ):
            # Nothing to insert: the app's iterable goes back as is, so the server
            # calls its close() directly (and may send a file_wrapper's file
            # itself). Only an iterable that cannot start over: a generator may
            # still call start_response again with exc_info, as an HTML page.
            return result
        return _Injecting(result, decision, hold)


def _start(
    start_response: StartResponse,
    status: str,
    headers: list[tuple[str, str]],
    exc_info: ExcInfo | None,
) -> Callable[[bytes], object]:
    if exc_info is not None:
        return start_response(status, headers, exc_info)
    return start_response(status, headers)


def _unframed(headers: list[tuple[str, str]]) -> bool:
    """Whether response headers leave the body's framing to the server."""
    for name, _ in headers:
        lower = name.lower()
        if lower == "content-length" or lower == "transfer-encoding":
            return False
    return True


class _Held:
    """A start_response call held back with the edited body so far."""

    __slots__ = (
        "body",
        "headers",
        "hold",
        "size",
        "start_response",
        "status",
        "write",
    )

    def __init__(
        self,
        start_response: StartResponse,
        status: str,
        headers: list[tuple[str, str]],
        hold: list[_Held],
    ) -> None:
        #: the request's list of held starts (this one, until it is released)
        self.hold = hold
        self.start_response = start_response
        self.status = status
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        #: the server's write(), once its start_response was called
        self.write: Callable[[bytes], object] | None = None

    def release(self, length: int | None) -> Callable[[bytes], object]:
        """Call the server's start_response, with ``length`` as Content-Length."""
        headers = self.headers
        if length is not None:
            headers = [*headers, ("content-length", str(length))]
        self.write = self.start_response(self.status, headers)
        return self.write

    def server_write(self) -> Callable[[bytes], object]:
        """The server's write() for the legacy write(), which cannot wait for
        the whole body: the start goes now, without a length, with the body so far."""
        write = self.write
        if write is None:
            hold = self.hold
            if hold and hold[0] is self:
                hold.clear()
            write = self.release(None)
            if self.body:
                write(b"".join(self.body))
                self.body.clear()
        return write


def _final(result: Iterable[bytes], environ: dict[str, Any]) -> bool:
    """Whether the app can no longer call start_response for this response: its
    body is a list or tuple (computed before it returned) or a file_wrapper."""
    if isinstance(result, list | tuple):
        return True
    wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(result, wrapper)


class _Injecting:
    """The app's iterable, with the banner inserted when the response turned out to
    be an HTML page (start_response may be called during the first iteration);
    ``close()`` is passed on."""

    def __init__(self, result: Iterable[bytes], decision: Decision, hold: list[_Held]) -> None:
        self.result = result
        self.decision = decision
        self.hold = hold

    def __iter__(self) -> Iterator[bytes]:
        hold = self.hold
        for chunk in self.result:
            injector = self.decision.injector
            if injector is None:
                yield chunk
                continue
            out = injector.feed(chunk)
            if hold:
                held = hold[0]
                if not out:
                    continue
                held.body.append(out)
                held.size += len(out)
                if held.size <= FRAME_HOLD_MAX:
                    continue
                hold.clear()  # it grew: stream from here
                held.release(None)
                out = b"".join(held.body)
                held.body.clear()
            yield out
        injector = self.decision.injector
        if injector is not None:
            tail = injector.close()
            if hold:
                held = hold.pop()
                held.body.append(tail)
                body = b"".join(held.body)
                held.release(len(body))
                yield body
            elif tail:
                yield tail

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()
