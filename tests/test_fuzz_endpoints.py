"""Malformed input, fuzzed with hypothesis, to cookiegate's own endpoints and to
ordinary app routes, through both the ASGI and the WSGI adapter (tests/harness.py).

Header values are latin-1 text (``\\x80``-``\\xff`` included): the ASGI harness
sends them as those raw bytes, the WSGI one as the latin-1 ``str`` a WSGI server
puts in the environ, so both adapters see non-UTF-8 bytes as servers deliver them.

Properties checked on every response:

- nothing escapes the middleware and the status is never 5xx (my-data's
  documented 503 aside, which needs a failing store);
- every response header is one line (no CR, LF or NUL); when every request
  header was a valid field value, so is every response header value;
- cookiegate's own answers carry ``Cache-Control: no-store`` (static assets and
  gpc.json aside), a HEAD answer has no body, a JSON answer parses;
- a 4xx answer has a body that says what was wrong;
- a ``303``'s ``Location``, and every link, form action and ``next`` field of the
  pages cookiegate renders, stays on the request's site;

and, per test: a rejected (4xx) request to a consent endpoint changes nothing (no
Set-Cookie, no ``on_consent`` call, no record, the same state from ``GET consent``
afterwards), an accepted one exactly one of each; a cross-site post is 403; an
undecided (or refused) visitor's ordinary pages never set, nor hand the app, a
performance cookie such as ``_ga``, and a forged, mutated, stale, foreign or
misnamed consent token is never an explicit decision.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from cookiegate import Beacon, ConsentChange, Gate

from .conftest import KEY, KEY_OLD, make_gate, make_policy
from .harness import Result, make_asgi, make_wsgi

PREFIX = "/_cookiegate/"
HOST = "shop.test"
#: categories the app's cookies belong to that the undecided visitor never granted
NON_NECESSARY = re.compile(r"_ga|_ga_.*|ab_variant|mystery")
#: a valid HTTP field value (RFC 9110 5.5): HTAB, SP, VCHAR, obs-text
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
EVIL_ORIGINS = ("http://evil.example", "https://evil.example:443", "null")
#: no "explain" phase: it traces every line of a failing case, which costs more
#: than the whole passing run
FUZZ = settings(deadline=None, phases=[p for p in Phase if p is not Phase.explain])

# -- the gates under test ---------------------------------------------------------


class FakeRecorder:
    """An in-memory stand-in for cookiegate.records.Recorder: counts events."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.locales: list[str | None] = []

    def consent_changed(self, change: ConsentChange, *, event: str, **details: Any) -> None:
        self.events.append(event)
        self.locales.append(details.get("locale"))

    def my_data(self, consent_id: str | None) -> dict[str, Any]:
        return {"records": [], "receipt": None, "account_linked": False, "telemetry": 0}

    def withdrawn(self, consent_id: str | None) -> dict[str, int]:
        return {"telemetry": 0}


@dataclass
class Setup:
    gate: Gate
    changes: list[ConsentChange] = field(repr=False)  # long: kept out of tracebacks
    recorder: FakeRecorder | None = field(repr=False)
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    clients: dict[str, Callable[..., Result]] = field(default_factory=dict, repr=False)


_SETUPS: dict[str, Setup] = {}


def setup_for(name: str) -> Setup:
    """``plain``: the default UI (banner, pages, tracking gate) and beacon routes;
    ``records``: no UI, a recorder, two keys (rotation) and a trusted origin."""
    found = _SETUPS.get(name)
    if found is not None:
        return found
    changes: list[ConsentChange] = []
    policy = make_policy(beacons=[Beacon("/track", "performance"), Beacon("/gtm/*", "performance")])
    recorder = None
    if name == "plain":
        gate = make_gate(policy, on_consent=changes.append)
    else:
        recorder = FakeRecorder()
        gate = make_gate(
            policy,
            ui=None,
            records=recorder,
            secret_keys=[KEY_OLD, KEY],
            trusted_origins=["https://www.shop.test"],
            on_consent=changes.append,
        )
    old = Gate(make_policy(), secret_keys=[KEY_OLD])
    foreign = Gate(make_policy(), secret_keys=["someone-elses-key-0123456789"])
    now = int(time.time())
    setup = Setup(gate, changes, recorder)
    setup.tokens = {
        "accepted": gate.make_token(["performance"], method="banner"),
        "refused": gate.make_token([], method="banner"),
        "oldkey": old.make_token(["performance"]),  # valid for `records` only
        "stale": gate.make_token(["performance"], policy_version="2020-01-01"),
        "expired": gate.make_token(["performance"], decided_at=now - gate.max_age - 5),
        "future": gate.make_token(["performance"], decided_at=now + 3600),
        "foreign": foreign.make_token(["performance"]),
    }
    setup.clients = {"asgi": make_asgi(gate), "wsgi": make_wsgi(gate)}
    _SETUPS[name] = setup
    return setup


# -- requests -----------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    scheme: str = "http"
    host: str = HOST

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")


def send(setup: Setup, kind: str, req: Req) -> Result:
    try:
        return setup.clients[kind](
            req.method, req.target(), req.headers, req.body, scheme=req.scheme, host=req.host
        )
    except Exception as exc:  # the property: no exception escapes the middleware
        raise AssertionError(f"{type(exc).__name__} escaped the middleware: {exc}") from exc


def consent_name(scheme: str) -> str:
    return "__Host-cookiegate" if scheme == "https" else "cookiegate"


def read_state(setup: Setup, kind: str, req: Req, cookie: str | None) -> dict[str, Any]:
    """``GET consent`` with ``cookie`` and the request's Sec-GPC, scheme and host."""
    headers = [(k, v) for k, v in req.headers if k == "sec-gpc"]
    if cookie:
        headers.append(("cookie", cookie))
    probe = Req("GET", PREFIX + "consent", "", headers, b"", req.scheme, req.host)
    res = send(setup, kind, probe)
    assert res.status == 200, (res.status, res.body[:200])
    doc: dict[str, Any] = res.json()
    return doc


# -- strategies --------------------------------------------------------------------

_FIELD_CHAR = st.characters(
    min_codepoint=0x09,
    max_codepoint=0xFF,
    exclude_characters=[chr(c) for c in range(0x0A, 0x20)] + ["\x7f"],
)
_CTL_CHAR = st.sampled_from(["\x01", "\x0b", "\x1f", "\x7f"])
#: header text: mostly valid field values, sometimes with control characters
#: (never CR, LF or NUL: no server delivers those inside a header)
header_text = st.one_of(
    st.text(_FIELD_CHAR, max_size=40),
    st.text(st.one_of(_FIELD_CHAR, _CTL_CHAR), max_size=12),
)


def garbage(*samples: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(samples), header_text)


GPC = garbage("1", "0", " 1", "1 ", "1,1", "0, 1", "true", "", "\xff1")
ORIGIN = garbage(
    "http://shop.test",
    "https://shop.test",
    "http://SHOP.TEST",
    " http://shop.test ",
    "http://shop.test/",
    "http://shop.test:8080",
    "https://www.shop.test",
    "http://shop.test.evil.example",
    "http://user@shop.test",
    "http://[::1",
    "file://shop.test",
    "http://sh\xf6p.test",
    *EVIL_ORIGINS,
)
FETCH_SITE = garbage("same-origin", "none", "same-site", "cross-site", " Same-Origin ", "")
ACCEPT = garbage("application/json", "text/html", "*/*", "application/json;q=0", "")
HOSTS = garbage("shop.test", "SHOP.TEST", "shop.test:80", "[::1]:8000", "", "shop.test\xe9", " ")
CONTENT_TYPES = garbage(
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "multipart/form-data; boundary=XyZ",
    "text/plain",
    "application/json;;;",
)
#: values of the other headers cookiegate reads on some path
OTHER_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            ["accept-language", "user-agent", "if-none-match", "accept-encoding", "x-junk"]
        ),
        garbage("ko-KR,ko;q=0.9", "de;q=x", "*", "curl/8.0", '"x"', "gzip", ";;;,,"),
    ),
    max_size=3,
)

NASTY_NEXT = (
    "/",
    "/cart?x=1",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example",
    "http:evil.example",
    "http://shop.test/ok",
    "javascript:alert(1)",
    "data:text/html,x",
    "/\t/evil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/.//evil.example",
    "/x\r\nSet-Cookie: a=1",
    "/caf\xe9",
    "/\u2215evil.example",
    "/\uff0f/evil.example",
    "//",
    "",
    "@evil.example",
    "/@evil.example",
    "%2F%2Fevil.example",
    "/" * 3000,
    "/_cookiegate/preferences?next=//evil.example",
)
next_value = st.one_of(
    st.sampled_from(NASTY_NEXT),
    st.text(max_size=30),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY_NEXT), st.text(max_size=10)),
)
FIELD_NAMES = ("action", "category", "categories", "next", "theme", "lang")
#: the field an endpoint needs, and its valid values
PRIMARY = {
    "consent": ("action", ("accept_all", "reject_all", "save")),
    "theme": ("theme", ("light", "dark", "auto")),
}
CATEGORY_NAMES = ("performance", "strictly_necessary", "marketing", "", "Performance")
form_value = st.one_of(
    st.sampled_from([v for _, vs in PRIMARY.values() for v in vs] + list(CATEGORY_NAMES)),
    next_value,
    st.text(max_size=20),
)
#: text JSON can carry and a form cannot: lone surrogates (``"\\ud800"``)
surrogate_text = st.text(st.characters(categories=["Cs", "Ll", "Nd"]), min_size=1, max_size=4)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    form_value,
    surrogate_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=6,
)
lang_value = st.one_of(st.sampled_from(["ko", "de-DE", "xx", "\ud800", "e\udcff"]), json_value)
extra_key = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)


@st.composite
def form_body(draw: st.DrawFn, endpoint: str) -> bytes:
    """A urlencoded body for ``endpoint``: usually with the field it needs (valid
    or not), a ``next``, categories, and extra or repeated fields."""
    pairs: list[tuple[str, str]] = []
    primary = PRIMARY.get(endpoint)
    if primary is not None and draw(st.integers(0, 3)):
        good = st.sampled_from(primary[1])
        pairs.append((primary[0], draw(good if draw(st.integers(0, 3)) else form_value)))
    if draw(st.booleans()):
        pairs.append(("next", draw(next_value)))
    if endpoint == "consent":
        pairs += draw(st.lists(st.tuples(st.just("category"), form_value), max_size=2))
    pairs += draw(st.lists(st.tuples(extra_key, form_value), max_size=3))
    draw(st.randoms()).shuffle(pairs)
    body = urlencode(pairs).encode()
    tail = draw(st.sampled_from([b"", b"", b"", b"&\xff\xfe=1", b"&%ff=%fe", b"&&==&", b";x"]))
    if draw(st.integers(0, 19)) == 0:
        tail += b"&x=1" * 70  # over the 64-field limit
    return body + tail


@st.composite
def json_body(draw: st.DrawFn, endpoint: str) -> bytes:
    """A JSON body for ``endpoint``: usually an object with the field it needs,
    ``categories``, ``next``, ``lang`` of any JSON type; sometimes any JSON value;
    sometimes cut short, with a BOM, non-UTF-8 or nested too deeply."""
    doc: Any
    if draw(st.integers(0, 9)) < 8:
        doc = {}
        primary = PRIMARY.get(endpoint)
        if primary is not None and draw(st.integers(0, 3)):
            good = st.sampled_from(primary[1])
            doc[primary[0]] = draw(good if draw(st.integers(0, 3)) else json_value)
        if endpoint == "consent" and draw(st.integers(0, 2)) == 0:
            cats = st.dictionaries(st.sampled_from(CATEGORY_NAMES) | surrogate_text, json_scalar)
            doc["categories"] = draw(cats | json_value)
        if endpoint == "consent" and draw(st.integers(0, 3)) == 0:
            doc["category"] = draw(json_value)
        if draw(st.booleans()):
            doc["next"] = draw(json_value)
        if draw(st.booleans()):
            doc["lang"] = draw(lang_value)
        doc.update(draw(st.dictionaries(extra_key, json_value, max_size=2)))
    else:
        doc = draw(json_value)
    text = json.dumps(doc).encode()
    mangle = draw(st.integers(0, 11))
    if mangle == 0:  # cut short
        text = text[: draw(st.integers(0, len(text)))]
    elif mangle == 1:
        text = b"\xef\xbb\xbf" + text  # a BOM
    elif mangle == 2:
        text = text.replace(b'"', b"\xff", 1)
    elif mangle == 3:
        text = b"[" * draw(st.integers(1, 3000))
    return text


@st.composite
def multipart_body(draw: st.DrawFn, endpoint: str) -> bytes:
    parts = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES), form_value), max_size=3))
    out = b"".join(
        b'--XyZ\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"\r\n\r\n'
        + value.encode("utf-8", "replace")
        + b"\r\n"
        for name, value in parts
    )
    return out + b"--XyZ--\r\n"


FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPES = ("application/json", "application/json; charset=utf-8", "text/x+json")
OVERSIZED = b"action=accept_all&pad=" + b"x" * (16 * 1024)


def typed_body(endpoint: str) -> st.SearchStrategy[tuple[str | None, bytes]]:
    """(Content-Type or ``None`` for none, body): matched pairs, crossed ones, junk."""
    any_body = st.one_of(
        form_body(endpoint), json_body(endpoint), multipart_body(endpoint), st.binary(max_size=64)
    )
    return st.one_of(
        st.tuples(st.just(FORM_TYPE), form_body(endpoint)),
        st.tuples(st.none(), form_body(endpoint)),
        st.tuples(st.sampled_from(JSON_TYPES), json_body(endpoint)),
        st.tuples(st.just("application/json"), json_body(endpoint)),
        st.tuples(st.just("multipart/form-data; boundary=XyZ"), multipart_body(endpoint)),
        st.tuples(st.none() | CONTENT_TYPES, any_body),
        st.tuples(st.just(FORM_TYPE), st.just(OVERSIZED)),
    )


@st.composite
def mutated(draw: st.DrawFn, token: str) -> str:
    """``token`` with one character replaced, inserted or deleted, or cut short,
    such that the value the cookie parser reads differs from it."""
    i = draw(st.integers(0, len(token) - 1))
    ch = draw(st.sampled_from("AaZz09-_.=\"'; \t%") | _FIELD_CHAR)
    op = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
    if op == "replace":
        out = token[:i] + ch + token[i + 1 :]
    elif op == "insert":
        out = token[:i] + ch + token[i:]
    elif op == "delete":
        out = token[:i] + token[i + 1 :]
    else:
        out = token[:i]
    if out.split(";", 1)[0].strip().strip('"') == token:
        out = token[:-1]  # the same token once parsed: take a real change instead
    return out


#: how the consent cookie's value is chosen (see cookie_header)
CONSENT_KINDS = (
    "none",
    "garbage",
    "mutated",
    "stale",
    "expired",
    "future",
    "foreign",
    "refused",
    "misnamed",
)


@st.composite
def cookie_header(
    draw: st.DrawFn, setup: Setup, scheme: str, kinds: tuple[str, ...]
) -> tuple[str, list[str]]:
    """``(kind, segments)`` of a Cookie header: a consent cookie of ``kind`` (a
    valid token for ``accepted``/``refused``/``oldkey``, a misnamed valid one, a
    mutated one...) among garbage and the app's own cookies, in any order."""
    kind = draw(st.sampled_from(kinds))
    name = consent_name(scheme)
    toks = setup.tokens
    segments: list[str] = []
    if kind == "garbage":
        segments.append(f"{name}={draw(header_text)}")
    elif kind == "mutated":
        segments.append(f"{name}={draw(mutated(toks['accepted']))}")
    elif kind == "misnamed":  # valid, but under the other scheme's name
        other = consent_name("http" if scheme == "https" else "https")
        segments.append(f"{other}={toks['accepted']}")
    elif kind != "none":
        segments.append(f"{name}={toks[kind]}")
    names = st.sampled_from(
        ["_ga", "_ga_ABC123", "ab_variant", "session", "theme", "mystery", "cookiegate_theme"]
    )
    others = st.one_of(
        st.builds(lambda n, v: f"{n}={v}", names, header_text),
        header_text,
        st.sampled_from(['"', "=", "==", "_ga", '_ga="GA1.1"', " _ga =1", "\xa0_ga=1"]),
    )
    before = draw(st.lists(others, max_size=3))
    after = draw(st.lists(others, max_size=3))
    return kind, before + segments + after


def join_cookie(segments: list[str], sep: str = "; ") -> str:
    return sep.join(segments)


# -- checks -----------------------------------------------------------------------


def on_site(url: str, host: str, what: str) -> None:
    """``url`` leads to the request's own site: a path (not ``//host``, no
    backslash, no whitespace or control character a browser would drop or
    fold), or an absolute URL whose host is the request's."""
    assert re.fullmatch(r"[\x21-\x7e]+", url), f"{what} {url!r}: not printable ASCII"
    assert "\\" not in url, f"{what} {url!r}: backslash (browsers read it as '/')"
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/"):
        assert parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower(), (
            f"{what} {url!r} leaves the site {host!r}"
        )
    else:
        assert not url.startswith("//"), f"{what} {url!r} is protocol-relative (off-site)"


def is_deletion(set_cookie: str) -> bool:
    """Whether a Set-Cookie value deletes its cookie (Max-Age <= 0, which wins,
    or an Expires date in the past), trimming space and tab as browsers do."""
    max_age: str | None = None
    expires: str | None = None
    for attr in set_cookie.split(";")[1:]:
        key, _, value = attr.partition("=")
        key = key.strip(" \t").lower()
        if key == "max-age" and max_age is None:
            max_age = value.strip(" \t")
        elif key == "expires" and expires is None:
            expires = value.strip(" \t")
    if max_age is not None:
        try:
            return int(max_age) <= 0
        except ValueError:
            pass
    if expires is not None:
        try:
            return parsedate_to_datetime(expires).timestamp() < time.time()
        except (TypeError, ValueError):
            return False
    return False


def cookie_names(header: str | None) -> set[str]:
    if not header:
        return set()
    return {seg.split("=", 1)[0].strip() for seg in header.split(";") if "=" in seg}


def check_response(res: Result, req: Req, *, own: bool) -> None:
    """What every response must satisfy, whatever the request was."""
    assert res.status < 500 or (res.status == 503 and req.path.endswith("my-data")), (
        res.status,
        res.body[:300],
    )
    clean = all(FIELD_VALUE.fullmatch(v) for _, v in req.headers) and FIELD_VALUE.fullmatch(
        req.host
    )
    for name, value in res.headers:
        assert re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name), f"header name {name!r}"
        assert not re.search(r"[\r\n\x00]", value), f"{name}: {value!r} (header injection)"
        if clean:
            assert FIELD_VALUE.fullmatch(value), f"{name}: {value!r} is not a field value"
    ctype = (res.header("content-type") or "").lower()
    if own:
        assert not res.app_called, "the app was called for cookiegate's own endpoint"
        if req.method == "HEAD":
            assert res.body == b"", "a HEAD answer has no body"
        static = req.path.startswith(PREFIX + "static/") or req.path == "/.well-known/gpc.json"
        if not (static and res.status in (200, 304)):
            assert "no-store" in (res.header("cache-control") or ""), (res.status, res.headers)
        if 400 <= res.status < 500 and req.method != "HEAD":
            says_what_was_wrong(res)
    if ctype.startswith("application/json") and res.body:
        json.loads(res.body)
    if res.status in (301, 302, 303, 307, 308):
        location = res.header("location")
        assert location is not None, f"{res.status} without Location"
        on_site(location, req.host, "Location")
    if ctype.startswith("text/html") and res.body:
        page = res.body.decode("utf-8", "replace")
        for attr in re.findall(r'(?<![\w-])(?:href|action)="([^"]*)"', page):
            on_site(html.unescape(attr), req.host, "link")
        for value in re.findall(r'name="next" value="([^"]*)"', page):
            on_site(html.unescape(value), req.host, "next field")


def says_what_was_wrong(res: Result) -> None:
    assert res.body.strip(), f"a {res.status} with an empty body"
    if (res.header("content-type") or "").startswith("application/json"):
        doc = res.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str), doc
        message = doc["error"]
    else:
        text = res.body.decode("utf-8")
        assert text.startswith(f"{res.status} "), text
        message = text[4:]
    assert len(message.strip()) >= 8, f"{res.status}: {message!r} does not say what is wrong"
    keyword = {403: "cross-site", 405: "method", 413: "larger", 415: "content-type"}
    if res.status in keyword:
        assert keyword[res.status] in message.lower(), message


def apply_set_cookies(segments: list[str], res: Result) -> list[str]:
    """The Cookie segments a browser would send after ``res``."""
    out = list(segments)
    for value in res.set_cookies():
        name, _, rest = value.split(";", 1)[0].partition("=")
        out = [s for s in out if s.split("=", 1)[0].strip() != name.strip()]
        if not is_deletion(value):
            out.append(f"{name}={rest}")
    return out


# -- the tests ---------------------------------------------------------------------

STATE_CHANGING = {PREFIX + "consent", PREFIX + "withdraw", PREFIX + "theme"}
DECIDING = {PREFIX + "consent", PREFIX + "withdraw"}
OWN_ANY_PATHS = (
    "consent",
    "consent",
    "withdraw",
    "theme",
    "my-data",
    "preferences",
    "cookies",
    "static/cookiegate.css",
    "nope",
    "",
)


def with_cookie(req: Req, segments: list[str]) -> Req:
    if segments:
        req.headers.append(("cookie", join_cookie(segments)))
    return req


def expected_403(req: Req) -> bool:
    """Whether this is a post a browser makes from another site (refused)."""
    if req.method != "POST" or req.path not in STATE_CHANGING:
        return False
    if req.host.strip().lower() in ("evil.example", "evil.example:443"):
        return False
    origin, site = req.header("origin"), req.header("sec-fetch-site")
    if site is None:
        return origin in EVIL_ORIGINS
    return site in ("cross-site", "same-site") and (origin is None or origin in EVIL_ORIGINS)


def check_own_request(setup: Setup, kind: str, req: Req, segments: list[str]) -> Result:
    """Send ``req`` to an own endpoint and check it, and the consent state read
    with ``GET consent`` before and after it: a rejected (4xx) request loses
    nothing and changes nothing; an accepted decision changes it, once."""
    before = read_state(setup, kind, req, join_cookie(segments))
    changes = len(setup.changes)
    records = len(setup.recorder.events) if setup.recorder else 0

    res = send(setup, kind, req)
    check_response(res, req, own=True)
    assert res.status in (200, 303, 400, 403, 404, 405, 413, 415), (res.status, res.body[:200])
    if expected_403(req):
        assert res.status == 403, ("cross-site post not refused", res.status, req.headers)

    after = read_state(setup, kind, req, join_cookie(apply_set_cookies(segments, res)))
    new_changes = len(setup.changes) - changes
    new_records = (len(setup.recorder.events) if setup.recorder else 0) - records
    if res.status >= 400:
        assert res.set_cookies() == [], f"a {res.status} sets cookies: {res.set_cookies()}"
        assert after == before, "a rejected request changed the consent state"
        assert (new_changes, new_records) == (0, 0), "a rejected request was a decision"
    elif req.method == "POST" and req.path in DECIDING:
        assert after["decided"] is True, after
        assert after["method"] in ("banner", "preferences", "api", "withdraw"), after
        if req.path.endswith("withdraw"):
            assert after["categories"] == {"performance": False}, after
        assert new_changes == 1, "one decision, one on_consent call"
        if setup.recorder is not None:
            assert new_records == 1, "an accepted consent POST without its (one) record"
    else:  # GET/HEAD consent, or the theme: the consent state stays as it was
        assert after == before, "the consent state changed"
        assert (new_changes, new_records) == (0, 0)
    return res


@st.composite
def benign_headers(draw: st.DrawFn, scheme: str) -> list[tuple[str, str]]:
    """What a same-site browser (or a non-browser client) sends; sometimes garbage."""
    own = f"{scheme}://{HOST}"
    choice = draw(st.integers(0, 5))
    if choice == 0:
        headers = []
    elif choice == 1:
        headers = [("sec-fetch-site", "same-origin"), ("origin", own)]
    elif choice == 2:
        headers = [("origin", own)]
    elif choice == 3:
        headers = [("sec-fetch-site", "none"), ("origin", "null")]
    elif choice == 4:
        headers = [("sec-fetch-site", "same-origin")]
    else:
        headers = [("origin", draw(ORIGIN)), ("sec-fetch-site", draw(FETCH_SITE))]
        headers = draw(st.lists(st.sampled_from(headers), max_size=2, unique=True))
    for name, strategy in (("accept", ACCEPT), ("sec-gpc", GPC)):
        if draw(st.booleans()):
            headers.append((name, draw(strategy)))
    return headers + draw(OTHER_HEADERS)


ALL_KINDS = (*CONSENT_KINDS, "accepted", "oldkey")


@pytest.mark.parametrize("setup_name", ["plain", "records"])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("endpoint", ["consent", "withdraw", "theme"])
@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_post_malformed_bodies(
    endpoint: str, kind: str, setup_name: str, data: st.DataObject
) -> None:
    """POST consent, withdraw and theme from the site itself with any body under
    any Content-Type (form, JSON, multipart, none, garbage; non-UTF-8, cut short,
    oversized, any JSON type where a string belongs), any consent cookie."""
    setup = setup_for(setup_name)
    scheme = data.draw(st.sampled_from(["http", "https"]))
    ctype, body = data.draw(typed_body(endpoint))
    headers = data.draw(benign_headers(scheme))
    if ctype is not None:
        headers.insert(0, ("content-type", ctype))
    _, segments = data.draw(cookie_header(setup, scheme, ALL_KINDS))
    req = with_cookie(Req("POST", PREFIX + endpoint, "", headers, body, scheme), segments)
    check_own_request(setup, kind, req, segments)


BASE_JSON: dict[str, dict[str, Any]] = {
    "consent": {"action": "accept_all"},
    "withdraw": {},
    "theme": {"theme": "dark"},
}
#: any of the fields an endpoint reads, with a value of any JSON type
json_fields = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(FIELD_NAMES, json_value),
        "lang": lang_value,
        "categories": st.dictionaries(st.sampled_from(CATEGORY_NAMES), json_scalar) | json_value,
    },
)


@pytest.mark.parametrize("setup_name", ["plain", "records"])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("endpoint", ["consent", "withdraw", "theme"])
@settings(FUZZ, max_examples=25)
@given(fields=json_fields, scheme=st.sampled_from(["http", "https"]))
def test_post_json_fields_of_any_type(
    endpoint: str, kind: str, setup_name: str, fields: dict[str, Any], scheme: str
) -> None:
    """A well-formed JSON object whose fields (``action``, ``theme``, ``next``,
    ``lang``, ``category``, ``categories``) may each be of any JSON type: a 400
    that says which, or the decision; never an exception."""
    setup = setup_for(setup_name)
    body = json.dumps({**BASE_JSON[endpoint], **fields}).encode()
    headers = [("content-type", "application/json"), ("sec-fetch-site", "same-origin")]
    req = Req("POST", PREFIX + endpoint, "", headers, body, scheme)
    check_own_request(setup, kind, req, [])


@st.composite
def own_request(draw: st.DrawFn, setup: Setup) -> tuple[Req, list[str]]:
    """Any method to any own endpoint, with garbage in every header cookiegate
    reads (Origin, Sec-Fetch-Site, Accept, Sec-GPC, Host, Content-Type...)."""
    scheme = draw(st.sampled_from(["http", "https"]))
    endpoint = draw(st.sampled_from(OWN_ANY_PATHS))
    path = PREFIX + endpoint if draw(st.integers(0, 9)) else "/.well-known/gpc.json"
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "HEAD", "PUT", "DELETE", "post", "X\xe9"]))
    ctype, body = draw(typed_body(endpoint))
    headers: list[tuple[str, str]] = []
    if ctype is not None:
        headers.append(("content-type", ctype))
    for name, strategy in (
        ("origin", ORIGIN),
        ("sec-fetch-site", FETCH_SITE),
        ("accept", ACCEPT),
        ("sec-gpc", GPC),
    ):
        if draw(st.booleans()):
            headers.append((name, draw(strategy)))
    headers += draw(OTHER_HEADERS)
    _, segments = draw(cookie_header(setup, scheme, ALL_KINDS))
    host = HOST if draw(st.booleans()) else draw(HOSTS)
    query = draw(st.sampled_from(["", "next=//evil.example", "lang=ko"]) | st.text(max_size=10))
    query = query.replace("#", "")
    req = Req(method, path, query, headers, body, scheme, host)
    return with_cookie(req, segments), segments


@pytest.mark.parametrize("setup_name", ["plain", "records"])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_own_endpoints_garbage_headers(kind: str, setup_name: str, data: st.DataObject) -> None:
    """Any method, body and headers (cross-site ones included) to any own
    endpoint: no 5xx, explained 4xx, on-site redirects, cross-site posts
    refused, and a rejected request changes nothing."""
    setup = setup_for(setup_name)
    req, segments = data.draw(own_request(setup))
    check_own_request(setup, kind, req, segments)


OWN_GET_PATHS = (
    "consent",
    "consent",
    "preferences",
    "preferences",
    "cookies",
    "my-data",
    "static/cookiegate.css",
    "static/cookiegate.0badf00d.js",
    "static/../../../etc/passwd",
    "static/",
    "withdraw",
    "theme",
    "nope",
    "consent/",
    "",
)


@st.composite
def own_get(draw: st.DrawFn, setup: Setup) -> Req:
    scheme = draw(st.sampled_from(["http", "https"]))
    path = draw(
        st.one_of(
            st.sampled_from(OWN_GET_PATHS).map(lambda p: PREFIX + p),
            st.just("/.well-known/gpc.json"),
            st.text(_FIELD_CHAR, max_size=20).map(lambda p: PREFIX + p.replace("?", "")),
        )
    )
    params = st.lists(
        st.tuples(st.sampled_from(["next", "lang", "withdrawn", "x"]), form_value), max_size=3
    )
    query = draw(
        st.one_of(
            params.map(urlencode),
            st.text(_FIELD_CHAR, max_size=30).map(lambda q: q.replace("#", "")),
            st.just("next=" + "%2F" * 2 + "evil.example&withdrawn=" + "x" * 300),
        )
    )
    headers: list[tuple[str, str]] = []
    for name, strategy in (
        ("accept", ACCEPT),
        ("sec-gpc", GPC),
        ("origin", ORIGIN),
        ("if-none-match", garbage('"x"', "*", 'W/"a", "b"')),
    ):
        if draw(st.booleans()):
            headers.append((name, draw(strategy)))
    headers += draw(OTHER_HEADERS)
    _, segments = draw(cookie_header(setup, scheme, ALL_KINDS))
    if segments:
        headers.append(("cookie", join_cookie(segments, draw(st.sampled_from(["; ", ";", " ;"])))))
    host = HOST if draw(st.integers(0, 3)) else draw(HOSTS)
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    return Req(method, path, query, headers, b"", scheme, host)


@pytest.mark.parametrize("setup_name", ["plain", "records"])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_own_endpoints_get(kind: str, setup_name: str, data: st.DataObject) -> None:
    """GET and HEAD to every own endpoint (and unknown ones under the prefix)
    with garbage queries, cookies and headers: no 5xx, pages link on-site."""
    setup = setup_for(setup_name)
    req = data.draw(own_get(setup))
    changes = len(setup.changes)
    res = send(setup, kind, req)
    check_response(res, req, own=True)
    assert res.status in (200, 304, 404, 405), (res.status, res.body[:200])
    assert len(setup.changes) == changes, "a GET never decides"
    for value in res.set_cookies():  # a GET only re-issues the consent cookie
        assert value.split("=", 1)[0] == consent_name(req.scheme), value


APP_PATHS = (
    "/",
    "/",
    "/attr-order",
    "/delete",
    "/unknown",
    "/bad-date",
    "/plain",
    "/page",
    "/page-gz",
    "/tracked",
    "/tracked-gz",
    "/track",
    "//track/",
    "/gtm/collect",
    "/tracker",
)


def app_safe(query: str) -> bool:
    """The harness app copies some query values into its response headers; a
    WSGI app must send latin-1 field values there, so keep those valid."""
    for key, values in parse_qs(query).items():
        if key in ("vary", "cc", "csp") and not all(FIELD_VALUE.fullmatch(v) for v in values):
            return False
    return True


@st.composite
def app_request(draw: st.DrawFn, setup: Setup) -> tuple[Req, str]:
    scheme = draw(st.sampled_from(["http", "https"]))
    path = draw(
        st.sampled_from(APP_PATHS) | st.text(_FIELD_CHAR, max_size=12).map(lambda p: "/" + p)
    )
    path = path.replace("?", "")
    if path.startswith(PREFIX) or path == "/.well-known/gpc.json":
        path = "/plain"
    params = st.lists(
        st.tuples(
            st.sampled_from(["lang", "ask", "vary", "cc", "etag", "case", "twice", "next"]),
            st.sampled_from(["1", "ko", "xx-\xe9", "Accept-Encoding", "*", "no-store", ""])
            | st.text(max_size=10),
        ),
        max_size=3,
    )
    query = draw(st.one_of(params.map(urlencode), st.text(_FIELD_CHAR, max_size=20)))
    query = query.replace("#", "")
    if not app_safe(query):
        query = ""
    kind, segments = draw(cookie_header(setup, scheme, CONSENT_KINDS))
    headers: list[tuple[str, str]] = []
    if segments:
        headers.append(("cookie", join_cookie(segments, draw(st.sampled_from(["; ", ";", " ;"])))))
    for name, strategy in (
        ("sec-gpc", GPC),
        ("origin", ORIGIN),
        ("sec-fetch-site", FETCH_SITE),
        ("accept", ACCEPT),
        ("content-type", CONTENT_TYPES),
    ):
        if draw(st.booleans()):
            headers.append((name, draw(strategy)))
    headers += draw(OTHER_HEADERS)
    method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "OPTIONS"]))
    body = draw(st.binary(max_size=32)) if method in ("POST", "PUT") else b""
    host = HOST if draw(st.integers(0, 3)) else draw(HOSTS)
    return Req(method, path, query, headers, body, scheme, host), kind


BEACON_PATHS = {"/track", "//track/", "/gtm/collect"}


def beacon_like(path: str) -> bool:
    """Whether a generated path may reach a beacon route (``/track``, ``/gtm/*``)
    once slashes are merged (then either answer is right)."""
    squeezed = re.sub("/{2,}", "/", path)
    return squeezed.rstrip("/") == "/track" or squeezed.startswith("/gtm") or "/gtm/" in path


@pytest.mark.parametrize("setup_name", ["plain", "records"])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_app_routes_undecided(kind: str, setup_name: str, data: st.DataObject) -> None:
    """Ordinary routes with a visitor who is undecided (no, a garbage, mutated,
    stale, expired, future-dated, foreign or misnamed consent cookie) or refused,
    and garbage everywhere else: the app answers, and no performance cookie is set
    or reaches the app."""
    setup = setup_for(setup_name)
    req, consent_kind = data.draw(app_request(setup))
    res = send(setup, kind, req)
    check_response(res, req, own=False)
    if req.path in BEACON_PATHS:
        assert (res.status, res.app_called) == (204, False), (res.status, req.path)
    elif beacon_like(req.path):
        assert (res.status, res.app_called) in ((204, False), (200, True)), res.status
    else:
        assert (res.status, res.app_called) == (200, True), (res.status, res.body[:200])
    for value in res.set_cookies():
        name = value.split("=", 1)[0].strip()
        if NON_NECESSARY.fullmatch(name):
            assert is_deletion(value), f"non-consented cookie set: {value!r}"
    leaked = {n for n in cookie_names(res.app_cookie) if NON_NECESSARY.fullmatch(n)}
    assert not leaked, f"the app received {leaked} ({res.app_cookie!r})"
    if res.app_state is not None:
        assert res.app_state["performance"] is False, res.app_state

    # the premise, as GET consent reads it: performance not granted, and nothing
    # but the refused token is an explicit decision
    state = read_state(setup, kind, req, req.header("cookie"))
    assert state["categories"]["performance"] is False, (consent_kind, state)
    if consent_kind != "refused":
        assert state["method"] in (None, "gpc"), (consent_kind, req.header("cookie"), state)


# -- found by the fuzzers, kept as plain examples ----------------------------------


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("nxt", [5, ["/"], {"a": 1}, True])
def test_theme_json_with_a_non_string_next(kind: str, nxt: Any) -> None:
    """``POST theme`` with a JSON body whose ``next`` is not a string is a
    malformed request (or a redirect to ``/``), never an exception."""
    setup = setup_for("plain")
    body = json.dumps({"theme": "dark", "next": nxt}).encode()
    req = Req("POST", PREFIX + "theme", "", [("content-type", "application/json")], body)
    res = send(setup, kind, req)
    check_response(res, req, own=True)
    assert res.status in (303, 400)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_json_lang_with_a_lone_surrogate_is_still_recorded(kind: str) -> None:
    """Without a UI, the JSON ``lang`` goes into the record as the locale; a lone
    surrogate in it (valid JSON: ``"\\ud800"``) must not cost the record of a
    consent the visitor was told was saved."""
    setup = setup_for("records")
    assert setup.recorder is not None
    records = len(setup.recorder.events)
    body = b'{"action": "accept_all", "lang": "\\ud800"}'
    req = Req("POST", PREFIX + "consent", "", [("content-type", "application/json")], body)
    res = send(setup, kind, req)
    assert res.status == 200
    assert len(setup.recorder.events) == records + 1, "a saved consent without its record"


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("lang", "accept", "stored"),
    [
        ("de-CH", None, "de-CH"),
        ("<b>x</b>", None, None),
        ("x" * 200, None, None),
        ("\\ud800", "fr-FR,fr;q=0.9", "fr-FR"),
        (None, "en-GB;q=0.8", "en-GB"),
        (None, "*", None),
    ],
)
def test_without_a_ui_only_a_language_tag_is_stored_as_the_locale(
    kind: str, lang: str | None, accept: str | None, stored: str | None
) -> None:
    setup = setup_for("records")
    assert setup.recorder is not None
    doc = '{"action": "accept_all"' + (f', "lang": "{lang}"' if lang is not None else "") + "}"
    headers = [("content-type", "application/json")]
    if accept is not None:
        headers.append(("accept-language", accept))
    res = send(setup, kind, Req("POST", PREFIX + "consent", "", headers, doc.encode()))
    assert res.status == 200
    assert setup.recorder.locales[-1] == stored
