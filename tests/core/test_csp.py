"""CSP: parser/serialiser, URL matching model, CspBuilder (never loosens)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cookiegate import ConfigError
from cookiegate.csp import (
    CSP_HEADER,
    CSP_REPORT_ONLY_HEADER,
    CspBuilder,
    CspConfig,
    allows_inline_script,
    allows_url,
    new_nonce,
    parse_csp,
    script_nonce,
    serialize_csp,
    style_nonce,
)

GA = ["https://www.googletagmanager.com", "https://*.google-analytics.com"]
FB = ["https://connect.facebook.net", "https://www.facebook.com/tr"]
ALLOWED = {"performance": GA, "marketing": FB}
SELF = "https://shop.example"
DIRECTIVES = ("script-src", "img-src", "connect-src", "frame-src")
#: the same and script-src-elem, which governs <script src> where a policy has it
CHECKED = (*DIRECTIVES, "script-src-elem")
TRACKER_URLS = {
    "performance": [
        "https://www.googletagmanager.com/gtag/js?id=G-1",
        "https://region1.google-analytics.com/g/collect",
    ],
    "marketing": ["https://connect.facebook.net/en_US/fbevents.js", "https://www.facebook.com/tr"],
}


def builder(**kwargs: object) -> CspBuilder:
    kwargs.setdefault("allowed_by_category", ALLOWED)
    return CspBuilder(CspConfig(**kwargs))  # type: ignore[arg-type]


# -- parser ---------------------------------------------------------------------


def test_parse_basic_and_case() -> None:
    got = parse_csp("Default-SRC 'self';  IMG-src  https://a.example data: ;;")
    assert got == [{"default-src": ["'self'"], "img-src": ["https://a.example", "data:"]}]


def test_duplicates_first_wins_and_several_policies() -> None:
    got = parse_csp("script-src 'self'; script-src *, img-src 'none' ,, ")
    assert got == [{"script-src": ["'self'"]}, {"img-src": ["'none'"]}]


def test_non_ascii_tokens_skipped_and_ascii_whitespace_only() -> None:
    # \u00a0 and \x0b are not ASCII whitespace to the browser: one token
    got = parse_csp("img-src a\u00a0b; script-src x\x0by; connect-src é")
    assert got == [{"script-src": ["x\x0by"]}]


def test_every_comma_splits_as_in_browsers() -> None:
    """CSP3 splits a header on every comma, quotes or not (Chromium and Gecko do):
    reading ``"a,b"`` as one source would read another policy than the browser."""
    got = parse_csp('img-src "a,b" c, script-src d')
    assert got == [{"img-src": ['"a']}, {'b"': ["c"]}, {"script-src": ["d"]}]
    assert serialize_csp(got[:1]) == "img-src 'none'"  # '"a' matches nothing
    # a stray quote cannot swallow the next header line's frame-ancestors
    got = parse_csp("script-src 'self' \"https://cdn.example, frame-ancestors 'none'")
    assert {"frame-ancestors": ["'none'"]} in got


def test_serialize() -> None:
    assert serialize_csp([{"img-src": []}, {"script-src": ["'self'", '"x"']}]) == (
        "img-src 'none', script-src 'self'"
    )
    assert serialize_csp([]) == ""
    assert parse_csp(None) == [] and parse_csp("") == []


HEADERISH = st.text(
    alphabet=st.sampled_from(list("abc-*:/.'; ,\"\t\n\x0b\u00a0\u2028é0123456789\\")), max_size=80
)


@given(st.one_of(st.text(max_size=200), HEADERISH))
def test_parse_never_raises_and_round_trips(header: str) -> None:
    policies = parse_csp(header)
    once = serialize_csp(policies)
    assert serialize_csp(parse_csp(once)) == once
    for policy in policies:
        assert policy  # empty policies are dropped
        for name in policy:
            assert name == name.lower()


# -- the URL matching model ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "url", "expected"),
    [
        ("'self'", "https://shop.example/x", True),
        ("'self'", "http://shop.example/x", False),
        ("'self'", "https://cdn.shop.example/x", False),
        ("*", "https://anything.example/", True),
        ("*", "data:text/plain,hi", False),
        ("https:", "https://a.example/", True),
        ("http:", "https://a.example/", True),
        ("https:", "http://a.example/", False),
        ("a.example", "https://a.example/p", True),  # scheme of the page
        ("a.example", "http://a.example/p", False),
        ("https://*.a.example", "https://x.y.a.example/", True),
        ("https://*.a.example", "https://a.example/", False),
        ("https://a.example", "https://a.example:8443/", False),
        ("https://a.example:443", "https://a.example/", True),
        ("https://a.example:*", "https://a.example:8443/", True),
        ("https://a.example/tr", "https://a.example/tr?x=1", True),
        ("https://a.example/tr", "https://a.example/tr/x", False),
        ("https://a.example/js/", "https://a.example/js/x.js", True),
        ("https://a.example/js/", "https://a.example/css/x", False),
        ("https://*", "https://any.example/x", True),  # a host-source with host "*"
        ("https://*", "http://any.example/x", False),
        ("*:443", "https://any.example/x", True),
        ("*:8443", "https://any.example/x", False),
        ("*/img/", "https://any.example/img/a.gif", True),
        ("*/img/", "https://any.example/tr", False),
        ("'none'", "https://shop.example/", False),
        ("'strict-dynamic' https:", "https://a.example/", False),
        ("'nonce-x' 'unsafe-inline'", "https://a.example/", False),
    ],
)
def test_allows_url(sources: str, url: str, expected: bool) -> None:
    directive = "script-src" if "strict-dynamic" in sources else "img-src"
    assert allows_url(f"{directive} {sources}", directive, url, SELF) is expected


def test_allows_url_fallback_and_intersection() -> None:
    csp = "default-src 'self'; frame-src https://f.example"
    assert allows_url(csp, "img-src", "https://shop.example/a.png", SELF)
    assert not allows_url(csp, "img-src", "https://f.example/a.png", SELF)
    assert allows_url(csp, "frame-src", "https://f.example/", SELF)
    assert allows_url(None, "img-src", "https://f.example/", SELF)
    both = "img-src https:, img-src 'self'"
    assert not allows_url(both, "img-src", "https://f.example/", SELF)
    assert allows_url(both, "img-src", "https://shop.example/", SELF)


def test_allows_inline_script() -> None:
    assert allows_inline_script(None)
    assert allows_inline_script("img-src 'self'")
    assert allows_inline_script("script-src 'unsafe-inline'")
    assert not allows_inline_script("script-src 'unsafe-inline' 'nonce-a'")
    assert allows_inline_script("script-src 'unsafe-inline' 'nonce-a'", "a")
    assert not allows_inline_script("default-src 'self'", "a")
    assert allows_inline_script("default-src 'self' 'nonce-a'", "a")
    assert not allows_inline_script("script-src 'nonce-a', script-src 'self'", "a")


# -- the builder: app policy -------------------------------------------------------------


APP = (
    "default-src 'self' https://www.googletagmanager.com; "
    "img-src 'self' https://*.google-analytics.com https://www.facebook.com/tr data:; "
    "connect-src 'self' https://*.google-analytics.com; "
    "script-src 'self' https://www.googletagmanager.com https://connect.facebook.net"
)


def test_refused_hosts_removed_consented_kept() -> None:
    b = builder()
    name, value = b.header_for(frozenset({"performance"}), APP) or ("", "")
    assert name == CSP_HEADER
    for url in TRACKER_URLS["marketing"]:
        for d in DIRECTIVES:
            assert not allows_url(value, d, url, SELF), (d, url)
    assert allows_url(value, "script-src", TRACKER_URLS["performance"][0], SELF)
    assert allows_url(value, "img-src", TRACKER_URLS["performance"][1], SELF)
    assert allows_url(value, "img-src", "data:image/png;base64,AA", SELF)
    _, none = b.header_for(frozenset(), APP) or ("", "")
    assert parse_csp(none) == [
        {
            "default-src": ["'self'"],
            "img-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "script-src": ["'self'"],
        }
    ]


def test_emptied_list_becomes_none() -> None:
    b = builder()
    _, value = b.header_for(frozenset(), "img-src https://www.facebook.com/tr") or ("", "")
    assert value == "img-src 'none'"


def test_host_under_two_categories_allowed_when_one_granted() -> None:
    b = builder(allowed_by_category={"performance": GA, "marketing": [GA[0], *FB]})
    _, value = b.header_for(frozenset({"performance"}), APP) or ("", "")
    assert allows_url(value, "script-src", TRACKER_URLS["performance"][0], SELF)
    _, value = b.header_for(frozenset({"marketing"}), APP) or ("", "")
    assert allows_url(value, "script-src", TRACKER_URLS["performance"][0], SELF)
    assert not allows_url(value, "img-src", TRACKER_URLS["performance"][1], SELF)


def test_nothing_sent_without_app_csp_or_base() -> None:
    assert builder().header_for(frozenset(), None) is None
    assert builder().header_for(frozenset(), "   ") is None


def test_nonce_rules() -> None:
    b = builder()
    g = frozenset({"performance"})
    nonce = new_nonce()
    assert len(nonce) >= 22
    # restricts scripts: nonce added (to script-src, materialised from default-src)
    _, v = b.header_for(g, "default-src 'self'", nonce) or ("", "")
    assert parse_csp(v) == [
        {"default-src": ["'self'"], "script-src": ["'self'", f"'nonce-{nonce}'"]}
    ]
    assert allows_inline_script(v, nonce)
    # 'unsafe-inline' works today: a nonce would switch it off, so none is added
    _, v = b.header_for(g, "script-src 'self' 'unsafe-inline'", nonce) or ("", "")
    assert "nonce" not in v and allows_inline_script(v, nonce)
    # no script restriction: none is created
    _, v = b.header_for(g, "img-src 'self'", nonce) or ("", "")
    assert v == "img-src 'self'"
    # scripts forbidden altogether: stays so
    _, v = b.header_for(g, "script-src 'none'", nonce) or ("", "")
    assert v == "script-src 'none'"
    # script-src-elem governs elements
    _, v = b.header_for(g, "script-src 'self'; script-src-elem 'self'", nonce) or ("", "")
    assert parse_csp(v)[0]["script-src-elem"] == ["'self'", f"'nonce-{nonce}'"]
    assert parse_csp(v)[0]["script-src"] == ["'self'"]
    with pytest.raises(ValueError, match="nonce"):
        b.header_for(g, "default-src 'self'", "bad nonce'")


def test_app_nonces_survive_and_share_the_cache() -> None:
    b = builder()
    g = frozenset({"performance"})
    for app_nonce in ("AAA", "BBB"):
        _, v = b.header_for(g, f"script-src 'self' 'nonce-{app_nonce}'", "ours") or ("", "")
        assert v == f"script-src 'self' 'nonce-{app_nonce}' 'nonce-ours'"
    assert b._plan.cache_info().currsize == 1


def test_cached_per_state() -> None:
    b = builder()
    for _ in range(3):
        b.header_for(frozenset({"performance"}), APP, new_nonce())
        b.header_for(frozenset(), APP, new_nonce())
    info = b._plan.cache_info()
    assert (info.currsize, info.misses) == (2, 2)


def test_leaks_reported_and_guarded_by_base(caplog: pytest.LogCaptureFixture) -> None:
    app = "img-src https:; script-src 'self'"
    b = builder()
    leaks = b.leaks(frozenset({"performance"}), app)
    assert {(lk.directive, lk.source) for lk in leaks} == {
        ("img-src", "https:"),
        ("connect-src", None),
        ("frame-src", None),
    }
    assert {lk.tracker for lk in leaks} == set(FB)
    with caplog.at_level(logging.WARNING, "cookiegate"):
        _, v = b.header_for(frozenset({"performance"}), app) or ("", "")
    assert "still admits refused trackers" in caplog.text
    assert allows_url(v, "img-src", "https://www.facebook.com/tr", SELF)  # no base: a leak
    guarded = builder(base_policy="default-src 'self'")
    _, v = guarded.header_for(frozenset({"performance"}), app) or ("", "")
    assert len(parse_csp(v)) == 2
    for url in TRACKER_URLS["marketing"]:
        for d in DIRECTIVES:
            assert not allows_url(v, d, url, SELF)
    assert allows_url(v, "img-src", TRACKER_URLS["performance"][1], SELF)
    off = builder(base_policy="default-src 'self'", base_for_leaks=False)
    _, v = off.header_for(frozenset({"performance"}), app) or ("", "")
    assert len(parse_csp(v)) == 1


def test_script_src_elem_is_narrowed_and_checked() -> None:
    """CSP3's script-src-elem governs <script src> where a policy has it: refused
    trackers leave it as they leave script-src, and what still admits them there
    is a leak."""
    b = builder()
    app = "default-src 'self'; script-src-elem 'self' https://www.googletagmanager.com"
    _, value = b.header_for(frozenset(), app) or ("", "")
    assert value == "default-src 'self'; script-src-elem 'self'"
    assert not allows_url(value, "script-src-elem", TRACKER_URLS["performance"][0], SELF)
    _, value = b.header_for(frozenset({"performance"}), app) or ("", "")
    assert allows_url(value, "script-src-elem", TRACKER_URLS["performance"][0], SELF)
    leaks = b.leaks(frozenset(), "script-src-elem https: 'strict-dynamic'; script-src 'self'")
    assert {("script-src-elem", "https:"), ("script-src-elem", "'strict-dynamic'")} <= {
        (lk.directive, lk.source) for lk in leaks
    }


def test_wider_wildcard_and_strict_dynamic_are_leaks() -> None:
    b = builder(allowed_by_category={"performance": ["https://*.analytics.google.com"]})
    leaks = b.leaks(frozenset(), "default-src *.google.com; script-src 'strict-dynamic' 'nonce-a'")
    assert ("img-src", "*.google.com") in {(lk.directive, lk.source) for lk in leaks}
    assert ("script-src", "'strict-dynamic'") in {(lk.directive, lk.source) for lk in leaks}
    # "*" as the host of a host-source admits every host: a leak, kept
    for wide in ("https://*", "*:443", "*/", "http://*:*"):
        app = f"default-src 'self' {wide}"
        assert ("img-src", wide) in {(lk.directive, lk.source) for lk in b.leaks(frozenset(), app)}
        _, value = b.header_for(frozenset(), app) or ("", "")
        assert wide in value
    with pytest.raises(ConfigError):
        builder(allowed_by_category={"performance": ["https://*"]})  # names no tracker
    # a narrower app source on the tracker's host is removed, not reported
    leaks = b.leaks(frozenset(), "default-src 'self' https://x.analytics.google.com")
    assert leaks == []


# -- base policy, report-only -------------------------------------------------------------


def test_base_policy_gets_granted_hosts() -> None:
    b = builder(base_policy="default-src 'self'; img-src 'self' data:", report_uri="/csp-report")
    _, v = b.header_for(frozenset({"performance"}), None) or ("", "")
    for d in DIRECTIVES:
        assert allows_url(v, d, "https://region1.google-analytics.com/g/collect", SELF)
        assert not allows_url(v, d, "https://www.facebook.com/tr", SELF)
    assert allows_url(v, "img-src", "data:image/gif;base64,AA", SELF)
    assert not allows_url(v, "style-src", "https://www.googletagmanager.com/x.css", SELF)
    assert parse_csp(v)[0]["report-uri"] == ["/csp-report"]
    _, v = b.header_for(frozenset(), None) or ("", "")
    assert v == "default-src 'self'; img-src 'self' data:; report-uri /csp-report"


def test_base_none_replaced_when_granted() -> None:
    b = builder(base_policy="default-src 'none'; script-src 'none'")
    _, v = b.header_for(frozenset({"marketing"}), None) or ("", "")
    assert parse_csp(v)[0]["script-src"] == FB


def test_report_only() -> None:
    b = builder(report_only=True, report_to="csp", base_policy="default-src 'self'")
    name, v = b.header_for(frozenset(), APP) or ("", "")
    assert name == CSP_REPORT_ONLY_HEADER
    policy = parse_csp(v)[0]
    assert policy["report-to"] == ["csp"]
    assert not allows_url(v, "script-src", TRACKER_URLS["performance"][0], SELF)
    # the app's own reporting is not replaced
    _, v = b.header_for(frozenset(), "img-src 'self'; report-to app") or ("", "")
    assert parse_csp(v)[0]["report-to"] == ["app"]
    name, _ = b.header_for(frozenset(), None) or ("", "")
    assert name == CSP_REPORT_ONLY_HEADER


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"allowed_by_category": {"performance": ["https:"]}},
            "csp.allowed_by_category.performance[0]",
        ),
        ({"allowed_by_category": {"performance": ["*"]}}, "csp.allowed_by_category.performance[0]"),
        (
            {"allowed_by_category": {"performance": ["'self'"]}},
            "csp.allowed_by_category.performance[0]",
        ),
        (
            {"allowed_by_category": {"performance": "https://a.example"}},
            "csp.allowed_by_category.performance",
        ),
        ({"allowed_by_category": {"markting": GA}}, "csp.allowed_by_category.markting"),
        ({"base_policy": " ; "}, "csp.base_policy"),
        ({"base_policy": 3}, "csp.base_policy"),
        ({"report_uri": "a b"}, "csp.report_uri"),
        ({"report_to": "a,b"}, "csp.report_to"),
        ({"report_only": "yes"}, "csp.report_only"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], field: str) -> None:
    kwargs.setdefault("allowed_by_category", ALLOWED)
    known = ["strictly_necessary", "performance", "marketing"]
    with pytest.raises(ConfigError) as err:
        CspBuilder(CspConfig(**kwargs), categories=known)
    assert err.value.field == field


def test_from_trackers() -> None:
    cfg = CspConfig.from_trackers(
        [
            {"vendor": "GA", "category": "performance", "hosts": GA},
            {"vendor": "GTM", "category": "performance", "hosts": GA[:1]},
            {"vendor": "Meta", "category": "marketing", "hosts": FB},
        ],
        report_only=True,
    )
    assert dict(cfg.allowed_by_category) == {"performance": GA, "marketing": FB}
    assert cfg.report_only
    with pytest.raises(ConfigError) as err:
        CspConfig.from_trackers([{"category": "performance", "hosts": "x"}])
    assert err.value.field == "trackers[0].hosts"


# -- properties: never loosens; refused trackers never admitted ---------------------------


HOSTS = [
    "shop.example",
    "cdn.example",
    "www.googletagmanager.com",
    "region1.google-analytics.com",
    "connect.facebook.net",
    "www.facebook.com",
    "x.y.example",
]
SOURCE = st.one_of(
    st.sampled_from(
        [
            "'self'",
            "*",
            "https:",
            "http:",
            "data:",
            "'none'",
            "'unsafe-inline'",
            "'nonce-abc'",
            "'strict-dynamic'",
            "*.example",
            "https://*.google-analytics.com",
            "https://www.facebook.com/tr",
            "https://www.facebook.com/",
            "blob:",
        ]
    ),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
        st.sampled_from(["", "https://", "http://", "wss://"]),
        st.sampled_from([*HOSTS, "*.google-analytics.com", "*.facebook.com", "*.example"]),
        st.sampled_from(["", ":443", ":8443", ":*"]),
        st.sampled_from(["", "/", "/tr", "/g/", "/gtag/js"]),
    ),
)
DIRECTIVE = st.sampled_from(
    ["default-src", *DIRECTIVES, "child-src", "script-src-elem", "style-src"]
)
POLICY = st.dictionaries(DIRECTIVE, st.lists(SOURCE, max_size=5), min_size=1, max_size=4)
URL = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["https", "http", "wss"]),
    st.sampled_from(HOSTS),
    st.sampled_from(["", ":443", ":8443"]),
    st.sampled_from(["/", "/tr", "/g/collect", "/gtag/js"]),
)
GRANTED = st.frozensets(st.sampled_from(["performance", "marketing"]))
BASE = st.sampled_from([None, "default-src 'self'", "img-src 'self' data:; script-src 'self'"])


@settings(max_examples=300)
@given(st.lists(POLICY, min_size=1, max_size=2), GRANTED, URL, BASE, st.booleans())
def test_never_allows_what_the_app_did_not(
    app_policies: list[dict[str, list[str]]],
    granted: frozenset[str],
    url: str,
    base: str | None,
    report_only: bool,
) -> None:
    app = serialize_csp(app_policies)
    b = builder(base_policy=base, report_only=report_only)
    result = b.header_for(granted, app, new_nonce())
    assert result is not None
    name, value = result
    assert name == (CSP_REPORT_ONLY_HEADER if report_only else CSP_HEADER)
    for directive in (*DIRECTIVES, "style-src"):
        if allows_url(value, directive, url, SELF):
            assert allows_url(app, directive, url, SELF), (directive, value)
    # and no refused tracker gets through unless the app policy leaks it
    refused = [u for cat, urls in TRACKER_URLS.items() if cat not in granted for u in urls]
    leaking = {lk.directive for lk in b.leaks(granted, app)}
    if "script-src" in leaking:  # script-src-elem falls back to it where absent
        leaking.add("script-src-elem")
    for directive in CHECKED:
        if directive in leaking and base is not None:
            continue  # guarded by the base policy, checked below
        if directive not in leaking:
            for u in refused:
                assert not allows_url(value, directive, u, SELF), (directive, u, value)


@settings(max_examples=200)
@given(st.lists(POLICY, min_size=1, max_size=2), GRANTED)
def test_strict_base_blocks_every_refused_tracker(
    app_policies: list[dict[str, list[str]]], granted: frozenset[str]
) -> None:
    app = serialize_csp(app_policies)
    b = builder(base_policy="default-src 'self'")
    value = (b.header_for(granted, app) or ("", ""))[1]
    for cat, urls in TRACKER_URLS.items():
        for u in urls:
            for d in CHECKED:
                if cat not in granted:
                    assert not allows_url(value, d, u, SELF)
                elif allows_url(app, d, u, SELF):
                    # consented and allowed by the app: still allowed
                    assert allows_url(value, d, u, SELF), (d, u, value)


def test_script_nonce_is_one_every_restricting_policy_admits() -> None:
    assert script_nonce("script-src 'nonce-abc' 'strict-dynamic'") == "abc"
    assert script_nonce("default-src 'self' 'nonce-abc'") == "abc"
    assert script_nonce("script-src-elem 'nonce-e'; script-src 'nonce-s'") == "e"
    # several policies: a nonce all of them admit, else none
    assert script_nonce("script-src 'nonce-a' 'nonce-b', script-src 'nonce-b'") == "b"
    assert script_nonce("script-src 'nonce-a', script-src 'nonce-b'") is None
    # a policy that does not restrict scripts does not count
    assert script_nonce("img-src 'self', script-src 'nonce-a'") == "a"
    for none in (None, "", "img-src 'self'", "script-src 'self'", "script-src 'nonce-a\"b'"):
        assert script_nonce(none) is None, none


def test_style_nonce_is_the_one_governing_stylesheets() -> None:
    assert style_nonce("style-src 'nonce-st'; script-src 'nonce-sc'") == "st"
    assert style_nonce("style-src-elem 'nonce-e'; style-src 'nonce-s'") == "e"
    assert style_nonce("default-src 'nonce-d'; script-src 'nonce-sc'") == "d"
    assert style_nonce("script-src 'nonce-sc'") is None
    assert style_nonce("style-src 'nonce-a', style-src 'nonce-b'") is None


@given(st.text(max_size=200))
def test_script_nonce_never_raises(header: str) -> None:
    found = script_nonce(header)
    assert found is None or allows_inline_script(header, found)


def test_an_invalid_nonce_or_hash_does_not_switch_unsafe_inline_off() -> None:
    """Browsers ignore ``'nonce-'`` (an empty template) or ``'sha256-'``, so the
    app's ``'unsafe-inline'`` still runs its inline scripts: cookiegate must not
    add a nonce there (a valid one would switch ``'unsafe-inline'`` off)."""
    builder = CspBuilder(CspConfig({"performance": ["https://www.google-analytics.com"]}))
    for token in ("'nonce-'", "'nonce-{{nonce}}'", "'sha256-'", "'sha384-!!'"):
        app = f"script-src 'self' 'unsafe-inline' {token}"
        assert allows_inline_script(app)
        made = builder.header_for(frozenset(), app, "Cg0nce")
        assert made is not None and "Cg0nce" not in made[1], (token, made)
    # a valid app nonce does switch it off: cookiegate's own nonce goes in
    made = builder.header_for(frozenset(), "script-src 'unsafe-inline' 'nonce-AppN0nce'", "Cg0nce")
    assert made is not None and "'nonce-Cg0nce'" in made[1] and "'nonce-AppN0nce'" in made[1]
    assert not allows_inline_script("script-src 'unsafe-inline' 'nonce-AppN0nce'")


def test_valueless_directives_are_written_as_they_came() -> None:
    got = serialize_csp(parse_csp("upgrade-insecure-requests; sandbox; img-src"))
    assert got == "upgrade-insecure-requests; sandbox; img-src 'none'"
