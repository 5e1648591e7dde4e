"""The tracking gate in the app's pages, through both adapters (the rewriter
itself: tests/core/test_rewrite.py; in a browser: tests/browser/)."""

from __future__ import annotations

import gzip
from collections.abc import Callable

from cookiegate import Gate
from cookiegate.csp import CspConfig

from .conftest import Client, make_gate
from .harness import TRACKED

GTAG = b' src="https://www.googletagmanager.com/gtag/js?id=G-1"'  # a live src attribute


def test_undecided_visitor_gets_trackers_neutralised(client_for: Callable[[Gate], Client]) -> None:
    res = client_for(make_gate())("GET", "/tracked")
    body = res.body
    assert GTAG not in body  # the external loader lost its src
    assert b'data-cg-src="https://www.googletagmanager.com/gtag/js?id=G-1"' in body
    assert body.count(b'type="text/plain" data-cg-blocked="performance"') == 2  # + inline gtag
    assert b'<iframe data-cg-blocked="performance"' in body
    assert b"data-cg-placeholder" in body
    assert b'<img src="/img/p.jpg" alt="product">' in body  # first party: untouched
    assert b'id="cookiegate-banner"' in body
    assert b"cookiegate-unblock." in body
    # the app's length is replaced by the rewritten page's exact one (both adapters)
    assert res.header("content-length") == str(len(body))


def test_refused_and_gpc_visitors_too(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate()
    client = client_for(gate)
    refused = client("GET", "/tracked", [("cookie", f"cookiegate={gate.make_token([])}")])
    assert GTAG not in refused.body
    gpc = client("GET", "/tracked", [("sec-gpc", "1")])
    assert GTAG not in gpc.body


def test_accepted_visitor_gets_the_page_as_written(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate()
    token = gate.make_token(["performance"])
    body = client_for(gate)("GET", "/tracked", [("cookie", f"cookiegate={token}")]).body
    settings = body.index(b"<link")
    assert body[:settings] + body[body.rindex(b"</body>") :] == TRACKED


def test_a_marker_naming_no_category_of_the_policy_stays_blocked(
    client_for: Callable[[Gate], Client],
) -> None:
    """The gate tells the rewriter the policy's categories: a script the site
    marks ``analytics`` (a category it never declared) waits for every
    category; ``Performance`` is ``performance``."""
    gate = make_gate()
    client = client_for(gate)
    body = client("GET", "/tracked?marked=analytics").body
    assert b'<script type="text/plain" data-cg-blocked="performance" data-category="an' in body
    accepted = [("cookie", f"cookiegate={gate.make_token(['performance'])}")]
    body = client("GET", "/tracked?marked=Performance", accepted).body
    assert b'<script data-category="Performance">m()</script>' in body
    body = client("GET", "/tracked?marked=Performance").body
    assert b'data-cg-blocked="performance" data-category="Performance">m()' in body


def test_error_pages_are_gated_too(client_for: Callable[[Gate], Client]) -> None:
    """A 404 or 500 page carries the site's tags as much as any page: its
    trackers are neutralised for a visitor who has not granted them, and it
    varies. The banner and the settings control go into 200 pages only."""
    gate = make_gate()
    client = client_for(gate)
    refused = [("cookie", f"cookiegate={gate.make_token([])}")]
    accepted = [("cookie", f"cookiegate={gate.make_token(['performance'])}")]
    for status in (201, 404, 410, 500, 503):
        for headers in ([], refused, [("sec-gpc", "1")]):
            res = client("GET", f"/tracked?status={status}", headers)
            assert res.status == status
            assert GTAG not in res.body and b"data-cg-blocked" in res.body, (status, headers)
            assert b"cookiegate-banner" not in res.body and b"cookiegate-settings" not in res.body
            assert "Cookie" in (res.header("vary") or "")
            assert res.header("content-length") == str(len(res.body))
        res = client("GET", f"/tracked?status={status}", accepted)
        assert res.body == TRACKED and "Cookie" in (res.header("vary") or "")


def test_placeholder_speaks_the_visitors_language(client_for: Callable[[Gate], Client]) -> None:
    body = client_for(make_gate())("GET", "/tracked", [("accept-language", "de")]).body
    assert b"Nach Einwilligung laden" in body


def test_gzip_page_is_rewritten_and_stays_valid(client_for: Callable[[Gate], Client]) -> None:
    res = client_for(make_gate())("GET", "/tracked-gz")
    assert res.header("content-encoding") == "gzip"
    body = gzip.decompress(res.body)
    assert GTAG not in body
    assert b'id="cookiegate-banner"' in body


def test_tracking_gate_can_be_turned_off(client_for: Callable[[Gate], Client]) -> None:
    body = client_for(make_gate(block_trackers=False))("GET", "/tracked").body
    assert GTAG in body
    assert b"cookiegate-unblock." not in body


def test_a_page_sent_as_written_still_varies(client_for: Callable[[Gate], Client]) -> None:
    """Without the banner (``ui=None``) or the settings control, an accepted
    visitor's page goes out as the app wrote it, while an undecided visitor's copy
    of the same URL has its trackers neutralised: the accepted copy must carry
    ``Vary: Cookie`` so that a shared cache never hands it to the other visitor."""
    for gate in (make_gate(ui=None), make_gate(settings_control=False)):
        client = client_for(gate)
        token = gate.make_token(["performance"])
        accepted = client("GET", "/tracked", [("cookie", f"cookiegate={token}")])
        assert accepted.body == TRACKED
        assert "Cookie" in (accepted.header("vary") or "")
        undecided = client("GET", "/tracked")
        assert GTAG not in undecided.body and "Cookie" in (undecided.header("vary") or "")


def test_with_a_narrowed_csp_reactivation_reloads(client_for: Callable[[Gate], Client]) -> None:
    """The CSP the page came with refuses the hosts of the categories it was
    narrowed for: granting one re-activates by reloading the page (the script
    is told by data-cg-reload); without cookiegate's CSP it re-creates in place."""
    from cookiegate.csp import CspConfig

    hosts = {"performance": ["https://www.googletagmanager.com"]}
    narrowed = make_gate(csp=CspConfig(hosts, base_policy="default-src 'self'"))
    assert b"data-cg-reload" in client_for(narrowed)("GET", "/tracked").body
    report_only = make_gate(
        csp=CspConfig(hosts, base_policy="default-src 'self'", report_only=True)
    )
    for gate in (make_gate(), report_only):
        body = client_for(gate)("GET", "/tracked").body
        assert b"cookiegate-unblock." in body and b"data-cg-reload" not in body


def test_cookiegate_scripts_carry_the_apps_csp_nonce(client_for: Callable[[Gate], Client]) -> None:
    """Without a CspConfig, the app's own strict policy (a nonce, perhaps
    'strict-dynamic') would block cookiegate's scripts: they carry its nonce."""
    csp = "script-src 'nonce-AbC123' 'strict-dynamic'; object-src 'none'"
    body = client_for(make_gate())("GET", f"/page?csp={csp}").body
    assert body.count(b'nonce="AbC123"') == 2  # cookiegate.js and cookiegate-unblock.js
    plain = client_for(make_gate())("GET", "/page").body
    assert b"nonce=" not in plain


def test_the_banner_stylesheet_carries_the_apps_style_nonce(
    client_for: Callable[[Gate], Client],
) -> None:
    """A policy that allows styles by nonce only would leave the banner
    unstyled: its stylesheet carries the app's style nonce (which may differ
    from the scripts'), with or without cookiegate's own CSP."""
    csp = "default-src 'self'; style-src 'nonce-St1'; script-src 'self'"
    for gate in (make_gate(), make_gate(csp=CspConfig())):
        body = client_for(gate)("GET", f"/page?csp={csp}").body
        assert body.count(b'<link rel="stylesheet" nonce="St1" href="') == 1, body
        assert b'<script nonce="St1"' not in body
    body = client_for(make_gate())("GET", "/page?csp=style-src 'self'").body
    assert b'<link rel="stylesheet" href="' in body


def test_utf16_pages_are_never_corrupted(client_for: Callable[[Gate], Client]) -> None:
    """A UTF-16 page cannot take ASCII bytes: declared by its charset it goes as
    written (same length); told only by its byte-order mark, where a fragment
    would have gone the same number of bytes of UTF-16 spaces go at its end, so
    the declared length stays exact and the page decodes. Through both adapters,
    for each visitor, with and without Consent Mode."""
    for consent_mode in (False, True):
        gate = make_gate(consent_mode=consent_mode)
        client = client_for(gate)
        for cookie in ([], [("cookie", f"cookiegate={gate.make_token(['performance'])}")]):
            for order in ("le", "be"):
                codec = f"utf-16-{order}"
                declared = client(
                    "GET", f"/tracked?bom={order}&ctype=text/html;+charset=utf-16", cookie
                )
                sent = {"le": b"\xff\xfe", "be": b"\xfe\xff"}[order]
                sent += TRACKED.decode().encode(codec)
                assert declared.body == sent
                assert declared.header("content-length") == str(len(sent))
                res = client("GET", f"/tracked?bom={order}&ctype=text/html", cookie)
                assert res.body.startswith(sent)
                assert res.body[len(sent) :].decode(codec).strip(" ") == ""
                assert res.header("content-length") == str(len(res.body))


def test_a_partial_content_answer_is_never_edited(client_for: Callable[[Gate], Client]) -> None:
    """A 206 body is the byte range its Content-Range names: neither the tracking
    gate nor Consent Mode may change it (cookies are still filtered)."""
    for consent_mode in (False, True):
        gate = make_gate(consent_mode=consent_mode)
        client = client_for(gate)
        for cookie in ([], [("cookie", f"cookiegate={gate.make_token(['performance'])}")]):
            res = client("GET", "/tracked?status=206&range=1", cookie)
            assert res.status == 206
            assert res.body == TRACKED[:100]
            assert res.header("content-length") == "100"


def test_several_content_encoding_lines_are_one_list(client_for: Callable[[Gate], Client]) -> None:
    """``Content-Encoding: deflate`` then ``Content-Encoding: gzip`` is
    ``deflate, gzip`` (RFC 9110): two codings, passed through untouched, not
    read as gzip alone."""
    res = client_for(make_gate())("GET", "/tracked-gz?ce=gzip", [])  # "gzip, gzip"
    assert gzip.decompress(res.body) == TRACKED  # one gzip layer: the page as written
    assert res.header("content-length") == str(len(res.body))


def test_placeholder_names_the_category_as_the_preference_centre_does(
    client_for: Callable[[Gate], Client],
) -> None:
    """A site that labels its category itself sees that label in the iframe
    placeholder too (not the built-in one the banner no longer shows)."""
    from cookiegate import Category, Policy

    policy = Policy(
        version="1", categories=[Category("performance", "Audience statistics", "Stats.")]
    )
    body = client_for(make_gate(policy))("GET", "/tracked").body
    text = body.split(b'class="cg-placeholder-text">', 1)[1].split(b"<", 1)[0]
    assert b"Audience statistics" in text


def test_a_placeholder_button_works_without_javascript(
    client_for: Callable[[Gate], Client],
) -> None:
    """The placeholder's button submits the form the gate inserts with the
    banner (or the settings control): ``action=grant`` adds its category to the
    visitor's choice and the 303 brings them back to the page."""
    import json

    from cookiegate import Category, Policy

    policy = Policy(
        version="1",
        categories=[
            Category("performance", "Performance", "Stats."),
            Category("marketing", "Marketing", "Ads."),
        ],
    )
    gate = make_gate(policy)
    client = client_for(gate)
    form = (
        b'<form id="cookiegate-load" method="post" action="/_cookiegate/consent" hidden>'
        b'<input type="hidden" name="action" value="grant">'
        b'<input type="hidden" name="next" value="/tracked?a=1&amp;b=&lt;2&gt;"></form>'
    )
    body = client("GET", "/tracked?a=1&b=<2>").body
    assert b'form="cookiegate-load" name="category" value="' in body  # the button
    assert body.count(form) == 1 and body.index(form) > body.index(b'id="cookiegate-banner"')
    marketing = [("cookie", f"cookiegate={gate.make_token(['marketing'])}")]
    assert client("GET", "/tracked?a=1&b=<2>", marketing).body.count(form) == 1  # settings
    everything = [("cookie", f"cookiegate={gate.make_token(['marketing', 'performance'])}")]
    assert b"cookiegate-load" not in client("GET", "/tracked", everything).body

    post = [("content-type", "application/x-www-form-urlencoded"), ("origin", "http://shop.test")]

    def granted(headers: list[tuple[str, str]], fields: bytes) -> dict[str, bool]:
        res = client("POST", "/_cookiegate/consent", post + headers, fields)
        assert res.status == 303, res.body
        assert res.header("location") == "/tracked?a=1&b=<2>"
        token = res.set_cookies()[0].split(";", 1)[0].split("=", 1)[1]
        state = client("GET", "/_cookiegate/consent", [("cookie", f"cookiegate={token}")])
        doc = json.loads(state.body)
        assert doc["decided"] is True
        return dict(doc["categories"])

    fields = b"action=grant&next=%2Ftracked%3Fa%3D1%26b%3D%3C2%3E&category=performance"
    # kept: what the visitor granted before; added: the placeholder's category
    assert granted(marketing, fields) == {"performance": True, "marketing": True}
    assert granted([], fields) == {"performance": True, "marketing": False}
    refused = [("cookie", f"cookiegate={gate.make_token([])}")]
    assert granted(refused, fields) == {"performance": True, "marketing": False}
    both = fields.replace(b"performance", b"performance+marketing")
    assert granted([], both) == {"performance": True, "marketing": True}

    for bad, says in (
        (b"action=grant", b"'grant' needs at least one 'category'"),
        (b"action=grant&category=ads", b"unknown category 'ads'"),
    ):
        res = client("POST", "/_cookiegate/consent", post, bad)
        assert res.status == 400 and says in res.body, res.body
