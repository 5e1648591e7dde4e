"""The banner in the app's pages and cookiegate's own pages, through both adapters."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest

from cookiegate import ConfigError, Gate

from .conftest import Client, make_gate, make_policy
from .harness import PAGE

BANNER = 'id="cookiegate-banner"'
SETTINGS = 'id="cookiegate-settings"'


def test_undecided_visitor_gets_the_banner(client_for: Callable[[Gate], Client]) -> None:
    res = client_for(make_gate())("GET", "/page")
    body = res.body.decode()
    assert BANNER in body
    assert body.index(BANNER) < body.index("</body>")
    assert body.startswith("<!doctype html><html><head><title>Shop</title></head><body><h1>Shop")
    assert res.header("content-length") is None or int(res.header("content-length") or 0) == len(
        res.body
    )
    assert "Cookie" in (res.header("vary") or "")


def test_decided_visitor_gets_only_the_settings_control(
    client_for: Callable[[Gate], Client],
) -> None:
    gate = make_gate()
    token = gate.make_token(["performance"])
    body = client_for(gate)("GET", "/page", [("cookie", f"cookiegate={token}")]).body.decode()
    assert BANNER not in body
    assert SETTINGS in body


def test_no_settings_control_leaves_an_accepted_visitors_page_as_written(
    client_for: Callable[[Gate], Client],
) -> None:
    """``settings_control=False``: a visitor who granted everything gets the app's
    page byte for byte, with its length and validators (so 304s keep working) and
    ``Vary`` (an undecided visitor gets a banner at the same URL); one who refused
    something still gets the control, whose script runs the placeholders."""
    gate = make_gate(settings_control=False)
    client = client_for(gate)
    accepted = [("cookie", f"cookiegate={gate.make_token(['performance'])}")]
    for method in ("GET", "HEAD"):
        res = client(method, "/page?etag=1", accepted)
        assert res.body == PAGE  # (for HEAD the server drops the app's body)
        assert res.header("etag") == '"v1"'
        assert res.header("last-modified") == "Tue, 01 Dec 2026 00:00:00 GMT"
        assert res.header("content-length") == str(len(PAGE))
        assert "Cookie" in (res.header("vary") or "")
    refused = client("GET", "/page", [("cookie", f"cookiegate={gate.make_token([])}")])
    assert SETTINGS in refused.body.decode()
    undecided = client("GET", "/page").body.decode()
    assert BANNER in undecided
    # the preferences page the site links to instead works without the control
    prefs = client("GET", "/_cookiegate/preferences", accepted)
    assert prefs.status == 200 and b"<form" in prefs.body


def test_settings_control_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="settings_control"):
        make_gate(settings_control="no")


def test_gpc_json_needs_gpc() -> None:
    with pytest.raises(ConfigError, match="gpc_json"):
        make_gate(gpc=False, gpc_json=True)
    assert make_gate(gpc=False).gpc_json is False


def test_no_injection_into_non_html_compressed_or_head(
    client_for: Callable[[Gate], Client],
) -> None:
    client = client_for(make_gate())
    assert client("GET", "/plain").body == b"app:/plain"
    assert client("GET", "/page-gz").body == PAGE
    head = client("HEAD", "/page")
    assert BANNER.encode() not in head.body


def test_head_gets_the_headers_of_get(client_for: Callable[[Gate], Client]) -> None:
    """A HEAD answer carries the headers the GET would (RFC 9110 9.3.2): the
    length of the page with the banner or settings control in it, no validators
    of the app's unedited page, Vary; and no fragment, as there is no body. The
    length of a rewritten or re-encoded page is known only once it is generated:
    the GET may carry it (ASGI, a body in one message), the HEAD does not (9.3.2
    lets a server omit such fields)."""
    gate = make_gate()
    client = client_for(gate)
    accepted = [("cookie", f"cookiegate={gate.make_token(['performance'])}")]
    for path in ("/page?etag=1", "/tracked", "/page-gz"):
        for cookie in ([], accepted):
            get = client("GET", path, cookie)
            head = client("HEAD", path, cookie)
            length = get.header("content-length")
            if head.header("content-length") is None and length is not None:
                assert cookie != accepted or path != "/page?etag=1", "a pure insertion"
                assert int(length) == len(get.body)
                get_headers = [h for h in get.headers if h[0].lower() != "content-length"]
                assert sorted(head.headers) == sorted(get_headers), (path, cookie)
            else:
                assert sorted(head.headers) == sorted(get.headers), (path, cookie)
            assert BANNER.encode() not in head.body
            assert SETTINGS.encode() not in head.body
    get = client("GET", "/page", accepted)
    assert int(get.header("content-length") or 0) == len(get.body)  # a pure insertion
    assert client("HEAD", "/page", accepted).header("content-length") == str(len(get.body))


def test_banner_speaks_the_visitors_language(client_for: Callable[[Gate], Client]) -> None:
    client = client_for(make_gate())
    ko = client("GET", "/page", [("accept-language", "ko-KR,ko;q=0.9,en;q=0.5")]).body.decode()
    assert 'lang="ko"' in ko
    de = client("GET", "/page", [("accept-language", "de")]).body.decode()
    assert 'lang="de"' in de


def test_pages_vary_with_what_their_inserted_bytes_depend_on(
    client_for: Callable[[Gate], Client],
) -> None:
    """The banner, the settings control and the placeholders speak the visitor's
    language: such pages vary with Accept-Language too (a shared cache must not
    hand a German banner to a Korean visitor); with ``hide_from_bots`` also with
    User-Agent (nor a crawler's banner-less copy to a person). A page sent as
    written, and a non-HTML response, vary with the consent only."""

    def vary(gate: Gate, path: str, headers: list[tuple[str, str]]) -> list[str]:
        value = client_for(gate)("GET", path, headers).header("vary") or ""
        return [t.strip() for t in value.split(",")]

    gate = make_gate()
    accepted = [("cookie", f"cookiegate={gate.make_token(['performance'])}")]
    refused = [("cookie", f"cookiegate={gate.make_token([])}")]
    assert vary(gate, "/page", []) == ["Cookie", "Sec-GPC", "Accept-Language"]
    assert vary(gate, "/page", accepted) == ["Cookie", "Sec-GPC", "Accept-Language"]
    assert vary(gate, "/tracked?status=404", refused) == ["Cookie", "Sec-GPC", "Accept-Language"]
    assert vary(gate, "/", []) == ["Cookie", "Sec-GPC"]
    own_link = make_gate(settings_control=False)
    assert vary(own_link, "/page", accepted) == ["Cookie", "Sec-GPC"]
    bots = make_gate(hide_from_bots=True)
    for headers in ([], [("user-agent", "Googlebot/2.1")], accepted):
        assert vary(bots, "/page", headers) == [
            "Cookie",
            "Sec-GPC",
            "Accept-Language",
            "User-Agent",
        ], headers
    assert vary(bots, "/", []) == ["Cookie", "Sec-GPC"]


def test_site_chooses_the_banners_language(client_for: Callable[[Gate], Client]) -> None:
    """``consent(request).use_locale(...)`` beats Accept-Language for the banner
    and the settings control; the links to the no-JS pages carry that language.
    An unsupported choice falls back to negotiation."""
    gate = make_gate()
    client = client_for(gate)
    en = [("accept-language", "en-GB")]
    ko = client("GET", "/page?lang=ko-KR", en).body.decode()
    assert 'lang="ko"' in ko
    assert "/_cookiegate/preferences?next=/page%3Flang%3Dko-KR&amp;lang=ko" in ko
    assert 'href="/_cookiegate/cookies?next=/page%3Flang%3Dko-KR&amp;lang=ko"' in ko
    assert '<input type="hidden" name="lang" value="ko">' in ko  # no-JS "Customise"
    token = gate.make_token(["performance"])
    decided = client("GET", "/page?lang=fr", [*en, ("cookie", f"cookiegate={token}")])
    assert "&amp;lang=fr" in decided.body.decode()
    unknown = client("GET", "/page?lang=xx", [("accept-language", "de")]).body.decode()
    assert 'lang="de"' in unknown
    assert "&amp;lang=" not in unknown
    assert 'name="lang"' not in unknown
    plain = client("GET", "/page", en).body.decode()
    assert 'href="/_cookiegate/cookies?next=/page"' in plain


def test_policy_change_brings_the_banner_back(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate()
    old = gate.make_token(["performance"], policy_version="2020-01-01")
    body = client_for(gate)("GET", "/page", [("cookie", f"cookiegate={old}")]).body.decode()
    assert BANNER in body


def test_pages_work_without_javascript(client_for: Callable[[Gate], Client]) -> None:
    client = client_for(make_gate())
    prefs = client("GET", "/_cookiegate/preferences?next=/cart")
    assert prefs.status == 200
    assert 'action="/_cookiegate/consent"' in prefs.body.decode()
    assert 'value="/cart"' in prefs.body.decode()
    declaration = client("GET", "/_cookiegate/cookies")
    assert declaration.status == 200
    assert "ab_variant" in declaration.body.decode()
    # cookiegate declares its own cookies too
    assert "cookiegate_theme" in declaration.body.decode()
    assert "__Host-cookiegate" in declaration.body.decode()


def test_static_assets_are_cacheable(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate()
    assert gate.ui is not None
    client = client_for(gate)
    url = gate.ui.asset_url("cookiegate.css")
    res = client("GET", url)
    assert res.status == 200
    assert "immutable" in (res.header("cache-control") or "")
    etag = res.header("etag") or ""
    assert client("GET", url, [("if-none-match", etag)]).status == 304
    assert client("GET", "/_cookiegate/static/../../pyproject.toml").status == 404


def test_theme_switch_is_a_necessary_cookie(client_for: Callable[[Gate], Client]) -> None:
    client = client_for(make_gate())
    res = client(
        "POST",
        "/_cookiegate/theme",
        [("content-type", "application/x-www-form-urlencoded")],
        b"theme=dark&next=/page",
    )
    assert res.status == 303
    assert res.header("location") == "/page"
    assert res.cookie_value("cookiegate_theme") == "dark"
    page = client("GET", "/page", [("cookie", "cookiegate_theme=dark; _ga=1")])
    assert page.app_cookie == "cookiegate_theme=dark"
    assert "cg-theme-dark" in page.body.decode()


def test_ui_can_be_turned_off(client_for: Callable[[Gate], Client]) -> None:
    gate = Gate(make_policy(), secret_keys=["k" * 32], ui=None)
    client = client_for(gate)
    assert client("GET", "/page").body == PAGE
    assert client("GET", "/_cookiegate/preferences").status == 404


def test_bots_can_be_spared_the_banner(client_for: Callable[[Gate], Client]) -> None:
    spared = client_for(make_gate(hide_from_bots=True))
    person = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0 Safari/537.36"
    )
    for bot in (
        "curl/8.5.0",
        "python-requests/2.32",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/126.0 Safari/537.36",
        "Mozilla/5.0 (Linux) Chrome-Lighthouse",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ):
        assert BANNER not in spared("GET", "/page", [("user-agent", bot)]).body.decode(), bot
    people = (
        person,
        # phones of the CUBOT brand are people ("bot" ends the brand's name)
        "Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 11; Cubot Note 20) AppleWebKit/537.36 Chrome/119.0"
        " Mobile Safari/537.36",
    )
    for ua in people:
        assert BANNER in spared("GET", "/page", [("user-agent", ua)]).body.decode(), ua
    # off by default: everybody gets the banner
    default = client_for(make_gate())
    assert BANNER in default("GET", "/page", [("user-agent", "curl/8.5.0")]).body.decode()


def test_site_texts_per_language_from_the_policy(tmp_path: object) -> None:
    from pathlib import Path

    from cookiegate import ConfigError, Policy
    from cookiegate.consent import UNDECIDED
    from cookiegate.ui import UI

    path = Path(str(tmp_path)) / "cookiegate.toml"
    path.write_text(
        'version = "2"\n[texts.ko]\npolicy_text = "<b>쿠키</b> 안내"\n'
        '[texts.en]\npolicy_text = "Our cookie notice"\n',
        "utf-8",
    )
    ui = UI(Policy.from_toml(path))
    ko = ui.banner(locale="ko", state=UNDECIDED, next_path="/")
    assert "&lt;b&gt;쿠키&lt;/b&gt; 안내" in ko and "<b>쿠키" not in ko
    assert "Our cookie notice" in ui.banner(locale="en", state=UNDECIDED, next_path="/")
    bad = Policy(texts={"en": {"no_such_key": "x"}})
    with pytest.raises(ConfigError) as exc:
        UI(bad)
    assert exc.value.field == "texts.en.no_such_key"


def test_withdrawal_takes_one_click_like_consent(client_for: Callable[[Gate], Client]) -> None:
    """A visitor who granted something finds a one-click withdraw button on every
    page (consenting took one click too); for one who granted nothing it is hidden."""
    gate = make_gate()
    client = client_for(gate)

    def quick_withdraw(token: str) -> str:
        body = client("GET", "/page", [("cookie", f"cookiegate={token}")]).body.decode()
        settings = body[body.index(SETTINGS) :].split("</div>")[0]
        form = settings[settings.index("<form") :]
        assert 'action="/_cookiegate/withdraw"' in form
        return form[: form.index(">") + 1]

    assert " hidden" not in quick_withdraw(gate.make_token(["performance"]))
    assert " hidden" in quick_withdraw(gate.make_token([]))


def test_preferences_offer_the_visitors_data(client_for: Callable[[Gate], Client]) -> None:
    """Right of access: the preference centre links the JSON download."""
    gate = make_gate()
    client = client_for(gate)
    token = gate.make_token(["performance"])
    prefs = client("GET", "/_cookiegate/preferences", [("cookie", f"cookiegate={token}")])
    assert 'href="/_cookiegate/my-data" download' in prefs.body.decode()
    data = client("GET", "/_cookiegate/my-data", [("cookie", f"cookiegate={token}")])
    assert data.status == 200
    assert "attachment" in (data.header("content-disposition") or "")
    assert data.json()["consent"]["categories"] == {"performance": True}


def test_insertion_keeps_an_exact_content_length(client_for: Callable[[Gate], Client]) -> None:
    """A pure insertion (settings control, Consent Mode) knows the new length: the
    response keeps a Content-Length (no chunked coding), and it is exact. A
    rewritten (or re-encoded) page's length is known once it is rewritten: both
    adapters hold the start of a page with a declared length and send the exact
    edited one (tests/adapters cover pages cut into pieces and the limits)."""
    for gate in (make_gate(), make_gate(consent_mode=True)):
        token = gate.make_token(["performance"])
        res = client_for(gate)("GET", "/page", [("cookie", f"cookiegate={token}")])
        assert SETTINGS in res.body.decode()
        assert res.header("content-length") == str(len(res.body))
    for path in ("/page", "/tracked", "/tracked-gz"):
        undecided = client_for(make_gate(consent_mode=True))("GET", path)
        page = gzip.decompress(undecided.body) if path.endswith("-gz") else undecided.body
        assert b"data-cg-blocked" in page or path == "/page"
        assert undecided.header("content-length") == str(len(undecided.body)), path


def test_edited_pages_lose_the_apps_validators(client_for: Callable[[Gate], Client]) -> None:
    """An ETag / Last-Modified describe the page the app wrote; after cookiegate
    edits it per visitor they would let a 304 hand one consent state's page to
    another. They go; a duplicate Content-Length is not trusted either."""
    gate = make_gate()
    client = client_for(gate)
    token = gate.make_token(["performance"])
    for cookie in ([], [("cookie", f"cookiegate={token}")]):
        res = client("GET", "/page?etag=1", cookie)
        assert res.header("etag") is None and res.header("last-modified") is None
    twice = client("GET", "/page?twice=1", [("cookie", f"cookiegate={token}")])
    lengths = [v for k, v in twice.headers if k.lower() == "content-length"]
    # the app's two values are dropped; through ASGI the exact edited length may
    # be set once the one-message body is edited
    assert lengths in ([], [str(len(twice.body))])
    plain = client("GET", "/plain", [])
    assert plain.header("etag") is None  # (the harness sends none for non-pages)


def test_fragment_caches_are_bounded_in_bytes() -> None:
    """Each page path gets its own finished banner (the path is in its links):
    random query strings must not hold more than the byte budget."""
    from cookiegate.gate import _FRAGMENT_BUDGET, RequestInfo

    gate = make_gate()
    for i in range(3000):
        d = gate.begin(RequestInfo("GET", "/p", "http", "h", f"q={i}{'x' * 1500}", None))
        assert gate.page_fragment(d, "text/html")
    held = sum(len(v) for v in gate._fragment_bytes.values())
    assert 0 < held <= _FRAGMENT_BUDGET


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/page/caf%C3%A9", "/page/caf%C3%A9"),
        ("/page/search%20results", "/page/search%20results"),
        ("/page/a%3Fb?x=1", "/page/a%3Fb?x=1"),  # a "?" in the path is not the query
        ("/page/C%23", "/page/C%23"),  # nor is a "#" a fragment
        ("/page/100%25", "/page/100%25"),
    ],
)
def test_the_banner_brings_the_visitor_back_to_the_same_url(
    client_for: Callable[[Gate], Client], target: str, expected: str
) -> None:
    """Servers give the app a percent-decoded path; the banner's ``next`` (where a
    visitor without JavaScript comes back to) encodes it again, through both
    adapters, and the consent form's 303 leads there."""
    client = client_for(make_gate())
    body = client("GET", target).body.decode()
    assert f'name="next" value="{expected}"' in body
    posted = client(
        "POST",
        "/_cookiegate/consent",
        [("content-type", "application/x-www-form-urlencoded"), ("origin", "http://shop.test")],
        body=b"action=reject_all&next=" + expected.replace("%", "%25").replace("?", "%3F").encode(),
    )
    assert posted.status == 303 and posted.header("location") == expected
