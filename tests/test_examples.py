"""The two demo shops (examples/starlette_app and examples/flask_app) behave the
same, and cookiegate keeps them honest.

Both are driven through an httpx2 client with a cookie jar, like a browser:
Starlette through ``starlette.testclient.TestClient``, Flask through
``httpx2.WSGITransport``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from examples.common import Shop, parse_cookie_header, safe_next
from examples.flask_app import app as flask_module
from examples.starlette_app import app as starlette_module

BASE = "http://testserver"
GA = re.compile(r"GA1\.1\.\d+\.\d+")
TRACKING = ("_ga", "ab_variant")


@dataclass
class Site:
    name: str
    client: httpx2.Client
    shop: Shop

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx2.Response:
        return self.client.post(path, data=data or {}, **kwargs)

    def choose(self, action: str, *categories: str) -> httpx2.Response:
        """Press a button of the home page's consent form."""
        data = {"action": action, "next": "/", "category": list(categories)}
        resp = self.client.post("/_cookiegate/consent", data=data)
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"] == "/"
        return resp

    def withdraw(self) -> httpx2.Response:
        resp = self.post("/_cookiegate/withdraw", {"next": "/"})
        assert resp.status_code == 303, resp.text
        return resp

    def whoami(self, **kwargs: Any) -> dict[str, Any]:
        resp = self.get("/whoami.json", **kwargs)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        doc = resp.json()
        assert isinstance(doc, dict)
        return doc


def _client(name: str) -> httpx2.Client:
    if name == "starlette":
        return TestClient(starlette_module.app, base_url=BASE, follow_redirects=False)
    return httpx2.Client(transport=httpx2.WSGITransport(app=flask_module.app), base_url=BASE)


SHOPS = {"starlette": starlette_module.shop, "flask": flask_module.shop}


@pytest.fixture(params=["starlette", "flask"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    name = str(request.param)
    with _client(name) as client:
        yield Site(name, client, SHOPS[name])


def set_cookies(resp: httpx2.Response) -> dict[str, str]:
    """Set-Cookie headers of a response, by cookie name (the whole header value)."""
    return {v.split("=", 1)[0].strip(): v for v in resp.headers.get_list("set-cookie")}


def is_expiry(set_cookie: str) -> bool:
    attrs = [a.strip().lower() for a in set_cookie.split(";")[1:]]
    return "max-age=0" in attrs or any(a.startswith("expires=thu, 01 jan 1970") for a in attrs)


def login(site: Site, name: str = "alice") -> httpx2.Response:
    resp = site.post("/login", {"username": name})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/"
    return resp


# -- before consent -------------------------------------------------------


def test_home_page_before_consent_sets_no_tracking_cookie(site: Site) -> None:
    resp = site.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert "cookie" in resp.headers["vary"].lower()
    cookies = set_cookies(resp)
    for name in TRACKING:
        assert name not in cookies
    assert "cookiegate" not in cookies  # no decision, no consent cookie
    assert not site.client.cookies
    page = resp.text
    assert "Oatmeal cookies" in page
    # cookiegate's banner is injected into the page: no JS needed to choose
    assert 'id="cookiegate-banner"' in page
    assert 'method="post" action="/_cookiegate/consent"' in page
    assert '<input type="hidden" name="next" value="/">' in page
    for action in ("accept_all", "reject_all"):
        assert f'name="action" value="{action}"' in page
    box = re.search(r'<input type="checkbox"[^>]*value="performance"[^>]*>', page)
    assert box is not None
    assert "checked" not in box.group(0)
    assert '<a href="/_cookiegate/preferences?next=/">Change it</a>' in page


def test_login_sets_session_before_consent(site: Site) -> None:
    assert site.get("/login").status_code == 200
    resp = login(site)
    cookies = set_cookies(resp)
    assert "session" in cookies
    assert "httponly" in cookies["session"].lower()
    home = site.get("/")
    assert "Signed in as <strong>alice</strong>" in home.text
    for name in TRACKING:
        assert name not in set_cookies(home)
    assert set(site.whoami()["cookies"]) == {"session"}
    out = site.post("/logout")
    assert out.status_code == 303
    assert is_expiry(set_cookies(out)["session"])
    assert "Sign in</a>" in site.get("/").text


def test_login_rejects_empty_name(site: Site) -> None:
    resp = site.post("/login", {"username": "  "})
    assert resp.status_code == 400
    assert "Please enter a name." in resp.text
    assert "session" not in set_cookies(resp)


def test_output_is_escaped(site: Site) -> None:
    login(site, "<script>alert(1)</script>")
    page = site.get("/").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_theme_works_before_consent(site: Site) -> None:
    resp = site.post("/theme", {"theme": "dark", "next": "/whoami"})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/whoami"
    assert set_cookies(resp)["theme"].startswith("theme=dark")
    assert '<body class="theme-dark">' in site.get("/").text
    doc = site.whoami()
    assert doc["cookies"] == {"theme": "dark"}
    assert doc["consent"]["decided"] is False
    site.post("/theme", {"theme": "light", "next": "/"})
    assert '<body class="theme-light">' in site.get("/").text


def test_theme_rejects_bad_input(site: Site) -> None:
    bad = site.post("/theme", {"theme": "purple"})
    assert bad.status_code == 400
    assert "theme" not in set_cookies(bad)
    offsite = site.post("/theme", {"theme": "dark", "next": "//evil.example/"})
    assert offsite.headers["location"] == "/"


# -- decisions ------------------------------------------------------------


@pytest.mark.parametrize(("action", "categories"), [("accept_all", ()), ("save", ("performance",))])
def test_consent_lets_tracking_cookies_through(
    site: Site, action: str, categories: tuple[str, ...]
) -> None:
    login(site)
    decision = site.choose(action, *categories)
    assert "cookiegate" in set_cookies(decision)
    resp = site.get("/")
    cookies = set_cookies(resp)
    assert GA.fullmatch(cookies["_ga"].split(";", 1)[0].split("=", 1)[1])
    assert cookies["ab_variant"].split(";", 1)[0] in ("ab_variant=A", "ab_variant=B")
    assert "You allowed: Performance" in resp.text
    doc = site.whoami()
    assert doc["consent"]["decided"] is True
    assert doc["consent"]["categories"] == {"performance": True}
    assert set(doc["cookies"]) == {"cookiegate", "session", "_ga", "ab_variant"}
    # The app sees its own cookies again and keeps them stable.
    again = set_cookies(site.get("/"))
    # (the value; Expires may have moved on by a second)
    assert again["_ga"].split(";", 1)[0] == cookies["_ga"].split(";", 1)[0]
    assert again["ab_variant"].split(";", 1)[0] == cookies["ab_variant"].split(";", 1)[0]


def test_save_without_ticking_refuses(site: Site) -> None:
    site.choose("save")
    doc = site.whoami()
    assert doc["consent"]["decided"] is True
    assert doc["consent"]["categories"] == {"performance": False}
    for name in TRACKING:
        assert name not in set_cookies(site.get("/"))


@pytest.mark.parametrize("how", ["reject_all", "withdraw"])
def test_refusal_hides_and_expires_tracking_cookies(site: Site, how: str) -> None:
    login(site)
    site.choose("accept_all")
    site.get("/")
    assert {"_ga", "ab_variant"} <= set(site.client.cookies.keys())

    resp = site.choose("reject_all") if how == "reject_all" else site.withdraw()
    cookies = set_cookies(resp)
    assert is_expiry(cookies["_ga"])
    assert is_expiry(cookies["ab_variant"])
    assert not is_expiry(cookies["cookiegate"])
    assert "session" not in cookies  # strictly necessary: the login survives
    jar = set(site.client.cookies.keys())
    assert "_ga" not in jar
    assert "ab_variant" not in jar
    assert {"session", "cookiegate"} <= jar

    # The browser still sends _ga (say, script set it again): the app never sees it
    # and the response expires it once more.
    site.client.cookies.set("_ga", "GA1.1.1234567890.1700000000")
    who = site.get("/whoami.json")
    doc = who.json()
    assert "_ga" not in doc["cookies"]
    assert set(doc["cookies"]) == {"cookiegate", "session"}
    assert doc["consent"]["decided"] is True
    assert doc["consent"]["categories"] == {"performance": False}
    assert doc["consent"]["method"] == ("banner" if how == "reject_all" else "withdraw")
    assert is_expiry(set_cookies(who)["_ga"])
    page = site.get("/whoami")
    assert "GA1.1.1234567890" not in page.text

    home = site.get("/")
    assert "Signed in as <strong>alice</strong>" in home.text
    for name in TRACKING:
        assert name not in set_cookies(home) or is_expiry(set_cookies(home)[name])


def test_whoami_shows_consent_state(site: Site) -> None:
    site.choose("accept_all")
    state = site.get("/_cookiegate/consent").json()
    doc = site.whoami()
    assert doc["consent"] == state
    assert doc["consent"]["policy_version"] == "2026-11-01"
    page = site.get("/whoami").text
    assert state["consent_id"] in page
    assert "<th>performance</th><td>allowed</td>" in page
    assert doc["cookies"]["cookiegate"] == site.client.cookies["cookiegate"]


def test_gpc_is_a_refusal(site: Site) -> None:
    gpc = {"sec-gpc": "1"}
    for name in TRACKING:
        assert name not in set_cookies(site.get("/", headers=gpc))
    before = site.shop.hits
    assert site.post("/track", headers=gpc).status_code == 204
    assert site.shop.hits == before
    doc = site.whoami(headers=gpc)
    assert doc["consent"]["gpc"] is True
    assert doc["consent"]["method"] == "gpc"


# -- the beacon -----------------------------------------------------------


def test_track_counts_only_with_consent(site: Site) -> None:
    def hit(method: str = "POST") -> int:
        before = site.shop.hits
        resp = site.client.request(method, "/track")
        assert resp.status_code == 204
        assert resp.content == b""
        return site.shop.hits - before

    assert hit() == 0  # undecided
    assert hit("GET") == 0
    site.choose("reject_all")
    assert hit() == 0
    site.choose("save")
    assert hit() == 0
    site.choose("accept_all")
    assert hit() == 1
    assert hit("GET") == 1
    site.withdraw()
    assert hit() == 0
    site.choose("save", "performance")
    assert hit() == 1


def test_track_is_a_declared_beacon_answered_by_cookiegate(site: Site) -> None:
    """Before consent the app is not even called: cookiegate answers /track."""
    resp = site.client.request("POST", "/track")
    assert resp.status_code == 204
    assert resp.headers["x-cookiegate-blocked"] == "performance"
    site.choose("accept_all")
    resp = site.client.request("POST", "/track")
    assert resp.status_code == 204
    assert "x-cookiegate-blocked" not in resp.headers


def test_home_page_embeds_the_beacon(site: Site) -> None:
    assert '<img src="/track"' in site.get("/").text


# -- both apps are the same site ------------------------------------------


_RANDOM = [
    (re.compile(r"GA1\.1\.\d+\.\d+"), "GA"),
    (re.compile(r"(cookiegate|session)=[A-Za-z0-9_.\-]+"), r"\1=X"),
    (re.compile(r"\b(Add to basket|Buy now)\b"), "BUY"),
    (re.compile(r"ab_variant=[AB]"), "ab_variant=V"),
    (re.compile(r"<td><code>[^<]*</code></td>"), "<td><code>X</code></td>"),
    (re.compile(r"(<th>consent id</th><td>)[^<]*"), r"\1X"),
    (re.compile(r"(counted with consent so far: )\d+"), r"\1N"),
    # the signed withdrawal notice carries its time (one second apart: another token)
    (re.compile(r"(withdrawn=)[A-Za-z0-9_.\-]+"), r"\1X"),
]


def _normalise(text: str) -> str:
    for pattern, repl in _RANDOM:
        text = pattern.sub(repl, text)
    return text


TRANSCRIPT: list[tuple[str, str, dict[str, str] | None]] = [
    ("GET", "/", None),
    ("GET", "/login", None),
    ("POST", "/login", {"username": ""}),
    ("POST", "/login", {"username": "bob"}),
    ("POST", "/theme", {"theme": "dark", "next": "/"}),
    ("POST", "/theme", {"theme": "sepia"}),
    ("GET", "/", None),
    ("POST", "/track", None),
    ("GET", "/whoami", None),
    ("POST", "/_cookiegate/consent", {"action": "accept_all", "next": "/"}),
    ("GET", "/", None),
    ("GET", "/track", None),
    ("GET", "/whoami.json", None),
    ("GET", "/whoami", None),
    ("POST", "/_cookiegate/withdraw", {"next": "/whoami"}),
    ("GET", "/whoami", None),
    ("GET", "/whoami.json", None),
    ("POST", "/logout", None),
    ("GET", "/", None),
]


def _transcript(name: str) -> list[tuple[object, ...]]:
    """What a visitor sees walking through the shop, random values normalised."""
    out: list[tuple[object, ...]] = []
    with _client(name) as client:
        for method, path, data in TRANSCRIPT:
            resp = client.request(method, path, data=data)
            if path == "/whoami.json":
                doc = resp.json()
                body: object = (
                    {k: v for k, v in doc["consent"].items() if not k.endswith(("_at", "_id"))},
                    sorted(doc["cookies"]),
                )
            else:
                body = _normalise(resp.text)
            cookies = set_cookies(resp)
            out.append(
                (
                    method,
                    path,
                    resp.status_code,
                    resp.headers.get("content-type"),
                    _normalise(resp.headers.get("location") or ""),
                    resp.headers.get("cache-control"),
                    resp.headers.get("vary"),
                    {n: is_expiry(v) for n, v in cookies.items()},
                    body,
                )
            )
    return out


def test_both_apps_behave_identically() -> None:
    starlette, flask = _transcript("starlette"), _transcript("flask")
    for step, a, b in zip(TRANSCRIPT, starlette, flask, strict=True):
        assert a == b, step


def test_parse_cookie_header() -> None:
    assert parse_cookie_header('a=1; b="two"; a=3; junk; =x; c=') == {"a": "1", "b": "two", "c": ""}
    assert parse_cookie_header(None) == {}


def test_safe_next() -> None:
    assert safe_next("/whoami") == "/whoami"
    for bad in ("", None, "//evil.example", "https://evil.example", "/\\evil", "/a\nb"):
        assert safe_next(bad) == "/"


# -- proof of consent (make demo turns it on with COOKIEGATE_RECORDS) ------------


def test_consent_records_follow_the_member(site: Site, tmp_path: Any) -> None:
    from cookiegate.records import Recorder

    recorder = Recorder(f"sqlite:///{tmp_path}/consent.db")
    gate = site.shop.gate
    gate.records = recorder
    try:
        site.choose("accept_all")
        login(site, "alice")
        assert recorder.flush()
        (linked,) = recorder.store.export_user("alice")["consents"]
        assert linked["consent_id"] == site.whoami()["consent"]["consent_id"]
        assert [r["source"] for r in linked["records"]] == ["banner"]
        assert linked["receipt"] is not None
        assert recorder.verify().ok
        my = site.get("/_cookiegate/my-data").json()
        assert my["recording"] is True
        assert my["account_linked"] is True
    finally:
        gate.records = None
        recorder.close()


def test_an_unknown_path_is_the_same_404_page_in_both(site: Site) -> None:
    resp = site.get("/no-such-page?x=<b>")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert "There is no page at <code>/no-such-page</code>" in resp.text
    assert "Cookie" in resp.headers["vary"]  # a page cookiegate edits: it varies
