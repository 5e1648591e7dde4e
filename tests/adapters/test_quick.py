"""The quick path: a known visitor's request decided from the raw Cookie /
Sec-GPC bytes (``Gate.quick``) must get exactly what ``Gate.begin`` gives.
The parity table's ``test_gate_warm`` compares whole responses; these tests pin
the edges."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cookiegate import Gate, RequestInfo, consent_of
from cookiegate.asgi import CookieGateMiddleware
from cookiegate.gate import Decision

from ..conftest import make_gate, make_policy
from ..harness import TRACKED

BEACONS = [{"path": "/track", "category": "performance"}]


def _gate(**kwargs: Any) -> Gate:
    return make_gate(make_policy(beacons=BEACONS), **kwargs)


def _key(gate: Gate, granted: list[str] | None, extra: str = "") -> tuple[Any, str, None]:
    cookie = extra
    if granted is not None:
        cookie = f"{gate.cookie_name}={gate.make_token(granted)}" + ("; " + extra if extra else "")
    return (cookie.encode() or None, "http", None)


def _begin(gate: Gate, key: tuple[Any, str, Any], path: str = "/") -> Decision:
    cookie = key[0].decode() if key[0] is not None else None
    return gate.begin(RequestInfo("GET", path, cookie=cookie, host="shop.test"), key)


def test_quick_knows_what_begin_decided() -> None:
    gate = _gate()
    accepted = _key(gate, ["performance"], "_ga=1; session=s")
    refused_clean = _key(gate, [], "session=s")
    refused_ga = _key(gate, [], "_ga=1; session=s")
    assert gate.quick(accepted, "/") is None  # never seen
    decisions = {key: _begin(gate, key) for key in (accepted, refused_clean, refused_ga)}
    plan = gate.quick(accepted, "/")
    assert plan is not None and plan[0].complete and plan[1:] == (None, (), ())
    plan = gate.quick(refused_clean, "/")
    assert plan is not None and plan[0].decided and not plan[0].granted and plan[1] is None
    # _ga is withheld from the app and expired, as begin decided
    plan = gate.quick(refused_ga, "/")
    slow = decisions[refused_ga]
    assert plan is not None and plan[1] == slow.cookie_header
    assert plan[1] is not None and plan[1].endswith("; session=s") and "_ga" not in plan[1]
    assert plan[2] == slow.removed == ("_ga",) and plan[3] == slow.expire and plan[3]


@pytest.mark.parametrize(
    "path", ["/_cookiegate/consent", "/_cookiegate/withdraw", "/.well-known/gpc.json", "/track"]
)
def test_quick_never_answers_own_endpoints_or_beacons(path: str) -> None:
    gate = _gate(gpc_json=True)
    key = _key(gate, [])
    _begin(gate, key)
    assert gate.quick(key, "/") is not None
    assert gate.quick(key, path) is None
    assert gate.quick(key, "//" + path.lstrip("/")) is None
    assert _begin(gate, key, path).response is not None  # begin answers them


def test_quick_rechecks_the_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = _gate(max_age=3600)
    token = gate.make_token(["performance"], decided_at=int(time.time()) - 3590)
    key = (f"{gate.cookie_name}={token}".encode(), "http", None)
    _begin(gate, key)
    assert gate.quick(key, "/") is not None
    later = time.time() + 20
    monkeypatch.setattr(time, "time", lambda: later)
    assert gate.quick(key, "/") is None
    assert _begin(gate, key).state.reason == "expired"
    plan = gate.quick(key, "/")  # expired for good: now known as such
    assert plan is not None and plan[0].reason == "expired"


def test_quick_cache_is_bounded() -> None:
    gate = _gate(token_cache_size=8)
    for _ in range(50):
        _begin(gate, _key(gate, ["performance"]))
    assert len(gate._quick) <= 8


def test_domain_rules_turn_the_quick_path_off() -> None:
    from cookiegate import CookieRule

    rules = [CookieRule("_ga", "performance", domain="shop.test")]
    gate = make_gate(make_policy(cookies=rules))
    key = _key(gate, ["performance"])
    _begin(gate, key)
    assert gate.quick(key, "/") is None


cookies: list[list[bytes]] = []


def _asgi(gate: Gate) -> tuple[Any, list[Any]]:
    seen: list[Any] = []
    cookies.clear()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["cookiegate"])
        cookies.append([v for k, v in scope["headers"] if k == b"cookie"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"set-cookie", b"_ga=GA1.1; Path=/"),
                    (b"set-cookie", b"session=s; Path=/"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return CookieGateMiddleware(app, gate=gate), seen


def _call(mw: Any, cookie: bytes, path: str = "/") -> list[dict[str, Any]]:
    return _request(mw, [(b"cookie", cookie)], path)


def _request(
    mw: Any, headers: list[tuple[bytes, bytes]], path: str = "/", query: bytes = b""
) -> list[dict[str, Any]]:
    """A GET through ``mw`` (Host ``shop.test`` and ``headers``); what it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "query_string": query,
        "headers": [(b"host", b"shop.test"), *headers],
        "server": ("shop.test", 80),
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(mw(scope, receive, send))
    return sent


@pytest.mark.parametrize("granted", [["performance"], []])
def test_asgi_second_request_is_quick_and_the_same(
    granted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _gate()
    mw, seen = _asgi(gate)
    cookie = _key(gate, granted, "_ga=1; session=s")[0]
    first = _call(mw, cookie)
    calls: list[Any] = []
    original = gate.begin

    def spy(*args: Any) -> Decision:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(gate, "begin", spy)
    second = _call(mw, cookie)
    assert calls == []  # answered by Gate.quick
    assert second == first
    assert cookies[1] == cookies[0]
    assert seen[1].info.host == "shop.test"
    headers = second[0]["headers"]
    assert dict(headers)[b"vary"] == b"Cookie, Sec-GPC"
    set_cookies = [v for k, v in headers if k == b"set-cookie"]
    if granted:
        assert seen[1].allows("performance") and cookies[1] == [cookie]
        assert b"_ga=GA1.1; Path=/" in set_cookies
    else:
        assert not seen[1].allows("performance")
        assert b"_ga" not in cookies[1][0] and cookies[1][0].endswith(b"; session=s")
        assert b"_ga=GA1.1; Path=/" not in set_cookies  # stripped
        assert any(v.startswith(b"_ga=;") and b"Max-Age=0" in v for v in set_cookies)


def test_asgi_quick_requests_leave_no_reference_cycles() -> None:
    """The decision sits in the scope; were the scope in the decision, every
    request would leave a cycle for the garbage collector (measured: -8 %
    requests/s under uvicorn)."""
    gate = _gate()
    mw, seen = _asgi(gate)
    cookie = _key(gate, ["performance"])[0]
    _call(mw, cookie)
    seen.clear()
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            _call(mw, cookie)
        seen.clear()
        assert gc.collect() == 0
    finally:
        gc.enable()


#: response header values by the header's (lower-case) name
_HEADER_VALUES: dict[bytes, list[bytes]] = {
    b"set-cookie": [b"_ga=1; Path=/", b"session=2"],
    b"vary": [b"Accept-Language", b"Cookie"],
    b"content-type": [
        b"text/plain",
        b"text/html; charset=utf-8",
        b"TEXT/HTML",
        b"text/html; charset=iso-8859-1",
        b"application/xhtml+xml",
        b"text/htmlx",
    ],
    b"content-length": [b"123", b" 4567 ", b"12x"],
    b"content-encoding": [b"gzip", b"identity"],
    b"content-security-policy": [b"default-src 'self'"],
    b"etag": [b'"abc"'],
    b"last-modified": [b"Tue, 01 Dec 2026 10:00:00 GMT"],
    b"x-custom": [b"1"],
}


@st.composite
def _header(draw: st.DrawFn) -> tuple[bytes, bytes]:
    name = draw(st.sampled_from(sorted(_HEADER_VALUES)))
    value = draw(st.sampled_from(_HEADER_VALUES[name]))
    if draw(st.integers(0, 9)) == 0:  # now and then in another letter case
        name = draw(st.sampled_from([name.title(), name.upper()]))
    return name, value


_PAGE = (b"content-type", b"text/html; charset=utf-8")


@settings(max_examples=400)
@example([_PAGE, (b"content-length", b"123")], False, 200, "GET", "/", True)  # the usual page
@example([(b"vary", b"Accept"), _PAGE, (b"vary", b"Cookie")], True, 200, "GET", "/", True)
@example(
    [(b"etag", b'"1"'), _PAGE, (b"last-modified", b"x"), (b"set-cookie", b"a=1")],
    0,
    200,
    "GET",
    "/",
    True,
)
@example([_PAGE, (b"content-length", b"123")], False, 200, "HEAD", "/shop?q=1", True)
# no settings control: the page as written, validators kept, Vary added
@example([(b"etag", b'"1"'), _PAGE, (b"content-length", b"123")], False, 200, "GET", "/", False)
@example([(b"vary", b"Accept"), _PAGE, (b"vary", b"Cookie")], False, 200, "GET", "/", False)
@given(
    headers=st.lists(_header(), max_size=8),
    queried=st.booleans(),
    status=st.sampled_from([200, 404]),
    method=st.sampled_from(["GET", "HEAD"]),
    path=st.sampled_from(["/", "/shop?q=1"]),
    control=st.booleans(),
)
def test_complete_headers_shortcut_equals_the_general_path(
    headers: list[tuple[bytes, bytes]],
    queried: bool,
    status: int,
    method: str,
    path: str,
    control: bool,
) -> None:
    """Same headers, and the same body edit (the settings control of a page, or
    none with ``settings_control=False``)."""
    gate = _GATE if control else _GATE_NO_CONTROL
    state = gate.state_for(_ACCEPTED)
    assert state.complete
    page, _, query = path.partition("?")
    info = RequestInfo(method, page, host="shop.test", query=query, accept_language="en")
    fast = Decision(gate, info, state)
    fast.queried = queried
    general = _General(gate, info, state)
    general.queried = queried
    assert fast.response_headers(headers, status) == general.response_headers(headers, status)
    assert (fast.injector is None) == (general.injector is None)
    if fast.injector is not None and general.injector is not None:
        body = b"<html><body><p>shop</p></body></html>"
        assert fast.injector.feed(body) + fast.injector.close() == (
            general.injector.feed(body) + general.injector.close()
        )


class _General(Decision):
    """A decision that always takes the general path of ``response_headers``."""

    def _complete_headers(self, headers: Any, status: int) -> None:
        return None


_GATE = _gate()
_GATE_NO_CONTROL = _gate(settings_control=False)
_ACCEPTED = _GATE.make_token(["performance"])


def test_complete_shortcut_reads_one_shot_header_iterables() -> None:
    """ASGI allows any iterable of headers: a generator must not be used up by
    the shortcut's look before the copy."""
    state = _GATE.state_for(_ACCEPTED)
    decision = Decision(_GATE, RequestInfo("GET", "/", host="shop.test"), state)
    headers = [(b"content-type", b"text/plain"), (b"x-a", b"1"), (b"set-cookie", b"_ga=1")]
    out = decision.response_headers((h for h in headers), 200)
    assert out == [*headers, (b"vary", b"Cookie, Sec-GPC")]


def test_long_sec_gpc_values_are_not_quick_keys() -> None:
    gate = _gate()
    cookie = _key(gate, ["performance"])[0]
    short = (cookie, "http", b"1")
    long = (cookie, "http", b"1" + b" " * 5000)
    for key in (short, long):
        gate.begin(RequestInfo("GET", "/", cookie=cookie.decode(), sec_gpc=[key[2].decode()]), key)
    assert gate.quick(short, "/") is not None
    assert gate.quick(long, "/") is None and long not in gate._quick


def test_asgi_quick_info_is_the_request_as_it_came() -> None:
    """An inner app editing the scope's header list in place does not change what
    the gate read for the decision's request."""
    gate = _gate()
    seen_info: list[RequestInfo] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["headers"][:] = [(b"host", b"evil.example"), (b"cookie", b"x=1")]
        seen_info.append(scope["cookiegate"].info)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = CookieGateMiddleware(app, gate=gate)
    cookie = _key(gate, ["performance"])[0]
    _call(mw, cookie)
    _call(mw, cookie)  # quick
    assert [i.host for i in seen_info] == ["shop.test", "shop.test"]
    assert all(i.cookie == cookie.decode() for i in seen_info)


def test_rewriter_profiles_follow_a_replaced_tracker_catalogue() -> None:
    from cookiegate.trackers import TrackerMatcher

    gate = _gate()
    decision = gate.begin(RequestInfo("GET", "/", host="shop.test"))
    first = gate.rewriter(decision, None, "text/html")
    assert first is not None
    gate.trackers = TrackerMatcher()
    second = gate.rewriter(decision, None, "text/html")
    assert second is not None and second.trackers is gate.trackers


def _page_call(
    mw: Any, headers: list[tuple[bytes, bytes]], path: str = "/", query: bytes = b""
) -> bytes:
    """A GET of an HTML page through ``mw``; the body as the visitor gets it."""
    sent = _request(mw, headers, path, query)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def _locale_page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A page whose app picks the banner's language from a header of its own."""
    for name, value in scope["headers"]:
        if name == b"x-site-language":
            consent_of(scope).use_locale(value.decode())
    body = b"<html><body><p>shop</p></body></html>"
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("granted", [["performance"], None])
def test_quick_page_fragment_follows_what_it_depends_on(granted: list[str] | None) -> None:
    """A known visitor's pages, served from the quick path and its fragment cache,
    carry exactly the banner / settings control a gate without that path renders:
    per language (Accept-Language, the app's choice), theme cookie, page (the
    return path), and bots spared."""
    warm = CookieGateMiddleware(_locale_page, gate=_gate(hide_from_bots=True))
    cold_gate = _gate(hide_from_bots=True)
    cold_gate.quick = lambda key, path: None  # type: ignore[method-assign]
    cold = CookieGateMiddleware(_locale_page, gate=cold_gate)
    token = _key(warm.gate, granted)[0] or b""
    themed = token + b"; " + warm.gate.theme_cookie.encode() + b"=dark"
    variants: list[tuple[list[tuple[bytes, bytes]], str, bytes]] = [
        ([(b"cookie", token)], "/", b""),
        ([(b"cookie", token), (b"accept-language", b"de")], "/", b""),
        ([(b"cookie", token), (b"accept-language", b"fr")], "/", b""),
        ([(b"cookie", token), (b"x-site-language", b"de")], "/", b""),
        ([(b"cookie", themed)], "/", b""),
        ([(b"cookie", token)], "/shop", b"q=1"),
        ([(b"cookie", token)], "/shop", b""),
        ([(b"cookie", token)], "/", b"q=1"),
        (
            [
                (b"cookie", token),
                (b"user-agent", b"Googlebot/2.1 (+http://www.google.com/bot.html)"),
            ],
            "/",
            b"",
        ),
    ]
    browser = (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    )
    for headers, _, _ in variants:
        if not any(name == b"user-agent" for name, _ in headers):
            headers.append(browser)  # no User-Agent: a tool, spared like a bot
    bodies = set()
    for _ in range(2):  # the second round is answered from the caches
        for headers, path, query in variants:
            got = _page_call(warm, headers, path, query)
            assert got == _page_call(cold, headers, path, query), (headers, path)
            bodies.add(got)
    assert len(bodies) == len(variants)  # each variant has its own fragment


async def _tracked_page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A page with a tracker iframe: its placeholder is in the banner's language."""
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": TRACKED})


def test_quick_tracked_page_placeholders_follow_the_language() -> None:
    """The tracking gate's placeholders take the banner's language, also when the
    banner comes from the quick path's fragment cache (a visitor's third page)."""
    warm = CookieGateMiddleware(_tracked_page, gate=_gate())
    cold_gate = _gate()
    cold_gate.quick = lambda key, path: None  # type: ignore[method-assign]
    cold = CookieGateMiddleware(_tracked_page, gate=cold_gate)
    cookie = b"session=s1"  # undecided: banner + trackers neutralised
    bodies = {}
    for language in (b"de", b"fr", b"de", b"en"):
        for _ in range(3):
            headers = [(b"cookie", cookie), (b"accept-language", language)]
            got = _page_call(warm, headers)
            assert got == _page_call(cold, headers), language
            assert b"data-cg-blocked" in got
            bodies[language] = got
    assert len(set(bodies.values())) == 3


def test_page_caches_stay_bounded() -> None:
    """Visitors sending ever new Accept-Language values, apps setting ever new
    blocked cookie values: the caches behind the quick path do not grow past their
    bounds."""
    gate = _gate()
    mw = CookieGateMiddleware(_locale_page, gate=gate)
    token = _key(gate, ["performance"])[0] or b""
    browser = (b"user-agent", b"Mozilla/5.0 Firefox/140")
    for i in range(1100):
        _page_call(mw, [(b"cookie", token), browser, (b"accept-language", b"x-%d" % i)])
    assert 0 < len(gate._quick_fragments) <= 1024
    state = gate.state_for(gate.make_token([]))
    info = RequestInfo("GET", "/", host="shop.test")
    for i in range(5000):
        assert not gate.set_cookie_allowed(state, b"ab_variant=%d; Max-Age=60" % i, info)
    assert 0 < len(gate._set_cookie_raw) <= 4096
