"""Tracker catalogue: loading, validation and URL / signature matching."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cookiegate.errors import ConfigError
from cookiegate.trackers import (
    Tracker,
    TrackerMatcher,
    builtin_trackers,
    host_matches,
    load_trackers,
    parse_trackers,
    url_host_path,
)

MATCHER = TrackerMatcher()


def tid(url: str) -> str | None:
    found = MATCHER.match_url(url)
    return found.id if found is not None else None


def test_builtin_catalogue_has_the_vendors() -> None:
    ids = {t.id for t in builtin_trackers()}
    assert {
        "google-analytics",
        "google-tag-manager",
        "google-ads",
        "meta-pixel",
        "hotjar",
        "microsoft-clarity",
        "matomo",
        "segment",
        "mixpanel",
        "hubspot",
        "linkedin-insight",
        "tiktok-pixel",
        "bing-uet",
        "x-pixel",
        "pinterest-tag",
        "youtube",
        "vimeo",
    } <= ids
    for t in builtin_trackers():
        assert t.source
        assert t.category in ("performance", "marketing", "functional")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.google-analytics.com/g/collect?v=2", "google-analytics"),
        ("https://region1.google-analytics.com/g/collect", "google-analytics"),
        ("https://google-analytics.com/collect", "google-analytics"),
        ("//www.google-analytics.com/analytics.js", "google-analytics"),
        ("https://WWW.Google-Analytics.COM/collect", "google-analytics"),
        ("https://www.google-analytics.com.:443/collect", "google-analytics"),
        ("https://www.google-analytics.com:8443/collect", "google-analytics"),
        ("https:\\\\www.google-analytics.com\\collect", "google-analytics"),
        ("https:/www.google-analytics.com/collect", "google-analytics"),
        (" \n https://www.google-analytics.com/collect", "google-analytics"),
        ("https://www.google-analytics.c\tom/collect", "google-analytics"),
        ("https://user:pw@www.google-analytics.com/collect", "google-analytics"),
        ("https://www.google%2Danalytics.com/collect", "google-analytics"),
        # host boundaries
        ("https://google-analytics.com.evil.example/collect", None),
        ("https://notgoogle-analytics.com/collect", None),
        ("https://google-analytics.com@evil.example/collect", None),
        ("https://evil.example/google-analytics.com/collect", None),
        ("https://evil.example/?u=https://www.google-analytics.com/", None),
        ("https://example.com/google-analytics.com", None),
        ("google-analytics.com/collect", None),  # relative path on the page's host
        ("data:image/gif;base64,R0lGOD", None),
        ("javascript:void(0)", None),
        ("", None),
        # beacons on shared hosts
        ("https://www.facebook.com/tr?id=1&ev=PageView", "meta-pixel"),
        ("https://www.facebook.com/tr/?id=1", "meta-pixel"),
        ("https://www.facebook.com/tracking", None),
        ("https://www.facebook.com/examplepage", None),
        ("https://connect.facebook.net/en_US/fbevents.js", "meta-pixel"),
        ("https://t.co/i/adsct?p_id=1", "x-pixel"),
        ("https://t.co/abc", None),
        # first-party paths
        ("/matomo.php?idsite=1&rec=1", "matomo"),
        ("/stats/piwik.js", "matomo"),
        ("matomo.js", "matomo"),
        ("https://shop.example/analytics/matomo.php", "matomo"),
        ("/static/notmatomo.php", None),
        ("/gtm.js?id=GTM-1", "google-tag-manager"),
        # the others
        ("https://www.googletagmanager.com/ns.html?id=GTM-1", "google-tag-manager"),
        ("https://www.googletagmanager.com/gtag/js?id=G-1", "google-analytics"),
        ("https://googleads.g.doubleclick.net/pagead/viewthroughconversion/1/", "google-ads"),
        ("https://static.hotjar.com/c/hotjar-1.js?sv=6", "hotjar"),
        ("https://www.clarity.ms/tag/abc", "microsoft-clarity"),
        ("https://cdn.matomo.cloud/x.matomo.cloud/matomo.js", "matomo"),
        ("https://cdn.segment.com/analytics.js/v1/k/analytics.min.js", "segment"),
        ("https://cdn.mxpnl.com/libs/mixpanel-2-latest.min.js", "mixpanel"),
        ("//js.hs-scripts.com/123.js", "hubspot"),
        ("https://px.ads.linkedin.com/collect/?pid=1&fmt=gif", "linkedin-insight"),
        ("https://analytics.tiktok.com/i18n/pixel/events.js", "tiktok-pixel"),
        ("//bat.bing.com/action/0?ti=1", "bing-uet"),
        ("https://www.bing.com/search?q=x", None),
        ("https://static.ads-twitter.com/uwt.js", "x-pixel"),
        ("https://ct.pinterest.com/v3/?event=init", "pinterest-tag"),
        ("https://s.pinimg.com/ct/core.js", "pinterest-tag"),
        ("https://i.pinimg.com/originals/x.jpg", None),
        ("https://www.youtube.com/embed/abc", "youtube"),
        ("https://www.youtube-nocookie.com/embed/abc", "youtube"),
        ("https://player.vimeo.com/video/1", "vimeo"),
        ("https://vimeo.com/1", None),
    ],
)
def test_match_url(url: str, expected: str | None) -> None:
    assert tid(url) == expected
    assert tid(url) == expected  # cached answer is the same


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://plausible.io/js/script.js", "plausible"),
        ("https://cdn.usefathom.com/script.js", "fathom"),
        ("https://api2.amplitude.com/2/httpapi", "amplitude"),
        ("https://eu.i.posthog.com/e/", "posthog"),
        ("https://cdn.us.heap-api.com/config/1/heap_config.js", "heap"),
        ("https://sc-static.net/scevent.min.js", "snap-pixel"),
        ("https://alb.reddit.com/rp.gif?id=1", "reddit-pixel"),
        ("https://www.redditstatic.com/ads/pixel.js", "reddit-pixel"),
        ("https://mc.yandex.ru/metrika/tag.js", "yandex-metrica"),
        ("https://assets.adobedtm.com/launch-x.min.js", "adobe-analytics"),
        ("https://dpm.demdex.net/id", "adobe-audience-manager"),
        ("https://static.cloudflareinsights.com/beacon.min.js", "cloudflare-web-analytics"),
        ("https://shop.example/cdn-cgi/rum", "cloudflare-web-analytics"),
        ("https://t.contentsquare.net/uxa/abc.js", "contentsquare"),
        ("https://sgtm.shop.example/g/collect?v=2", "google-analytics"),  # server-side GA
        ("https://adservice.google.com/ddm/fls/z", "google-ads"),
        ("https://www.google.com/ccm/collect?en=conversion", "google-ads"),
        ("https://www.google.de/pagead/1p-user-list/1/", "google-ads"),
        ("https://js.hsleadflows.net/leadflows.js", "hubspot"),
        # not trackers
        ("https://www.redditstatic.com/shreddit/x.js", None),
        ("https://shop.example/cdn-cgi/challenge-platform/h/b", None),
        ("https://www.google.com/recaptcha/api.js", None),
        ("https://fonts.googleapis.com/css2?family=Inter", None),
    ],
)
def test_the_vendors_of_standards_6_2(url: str, expected: str | None) -> None:
    """The analytics and ad vendors standards.md 6.2 lists beyond the first 17
    (and the gaps a review found in those): their loaders and beacons."""
    assert tid(url) == expected


def test_url_host_path() -> None:
    assert url_host_path("HTTPS://A.Example.:443/P/Q?x#y") == ("a.example", "/p/q")
    assert url_host_path("//[::1]:80/x") == ("[::1]", "/x")
    assert url_host_path("/a/b?c") == (None, "/a/b")
    assert url_host_path("mailto:x@y") == (None, "")


def test_url_paths_lose_dot_segments_as_the_browser_requests_them() -> None:
    for url in (
        "https://www.facebook.com/./tr?id=1",
        "https://www.facebook.com/a/../tr",
        "https://www.facebook.com/%2e/tr",
        "https://www.facebook.com/a/%2E%2E/tr",
        "https://www.facebook.com/../../tr",
    ):
        assert url_host_path(url) == ("www.facebook.com", "/tr"), url
    assert url_host_path("https://x.example/a/b/..") == ("x.example", "/a/")
    assert url_host_path("https://x.example/a/.") == ("x.example", "/a/")
    assert url_host_path("/a/./b") == (None, "/a/b")
    assert url_host_path("https://x.example/a.b/c.") == ("x.example", "/a.b/c.")
    m = TrackerMatcher()
    found = m.match_url("https://www.facebook.com/x/../tr?id=1&ev=PageView")
    assert found is not None and found.id == "meta-pixel"


def test_hosts_are_mapped_to_ascii_as_the_browser_does() -> None:
    """UTS #46: fullwidth letters, ideographic full stops and soft hyphens map
    to the ASCII host the browser fetches."""
    for host in (
        "www.googletagmanager\u3002com",
        "www.\uff47oogletagmanager.com",
        "www.google\u00adtagmanager.com",
        "WWW.GOOGLETAGMANAGER\uff0eCOM",
        # letters Unicode added after 3.2 (IDNA 2003's version), which Python's
        # idna codec keeps as punycode and browsers map (NFKC): modifier letters
        # a and t (U+1D43, U+1D57)
        "www.googletagm\u1d43nager.com",
        "www.google\u1d57agmanager.com",
    ):
        assert url_host_path(f"https://{host}/gtag/js") == ("www.googletagmanager.com", "/gtag/js")
    assert url_host_path("https://b\u00fccher.example/") == ("xn--bcher-kva.example", "/")
    assert url_host_path("https://\udcff.example/")[0] == "\udcff.example"  # no valid IDN: as is


def test_host_matches() -> None:
    assert host_matches("a.b.example", "b.example")
    assert host_matches("b.example", "b.example")
    assert not host_matches("ab.example", "b.example")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (b"gtag('config', 'G-1');", "google-analytics"),
        (b"fbq('init', '1');", "meta-pixel"),
        (b"h._hjSettings={hjid:1,hjsv:6};", "hotjar"),
        (b"var _paq = window._paq || [];", "matomo"),
        (b'analytics.load("KEY");', "segment"),
        (b'mixpanel.init("T");', "mixpanel"),
        (b"ttq.load('X');", "tiktok-pixel"),
        (b'_linkedin_partner_id = "1";', "linkedin-insight"),
        (b"twq('config','o1');", "x-pixel"),
        (b"pintrk('load', '1');", "pinterest-tag"),
        (b"var _hsq = window._hsq = window._hsq || [];", "hubspot"),
        (
            b"(function(c,l,a,r,i,t,y){c[a]=c[a]||function(){(c[a].q=c[a].q||[]).push(arguments)};"
            b"})(window, document, 'clarity', 'script', 'x');",
            "microsoft-clarity",
        ),
        (b"document.querySelector('.menu').classList.toggle('open');", None),
        (b"window.config = {analytics: false};", None),
        # the Ads base tag has GA's gtag('js' too: Ads (marketing) comes first
        (b"gtag('js', new Date()); gtag('config', 'AW-123456789');", "google-ads"),
        (b"gtag('event', 'conversion', {'send_to': 'AW-1/abc'});", "google-ads"),
        (b"gtag('js', new Date()); gtag('config', 'G-1');", "google-analytics"),
        (b"var _mtm = window._mtm = window._mtm || []; _mtm.push({'mtm.startTime': 1});", "matomo"),
        (b"fetch('/api/matomo.json')", None),  # not the loader's 'matomo.js'
        (b"window.plausible = window.plausible || function() {};", "plausible"),
        (b"posthog.init('phc_x', {api_host: 'https://eu.i.posthog.com'});", "posthog"),
        (b"heap.load('1');", "heap"),
        (b"snaptr('init', 'x');", "snap-pixel"),
        (b"rdt('init', 't2_x');", "reddit-pixel"),
    ],
)
def test_match_script(snippet: bytes, expected: str | None) -> None:
    found = MATCHER.match_script(snippet)
    assert (found.id if found is not None else None) == expected


def _every_signature(matcher: TrackerMatcher, text: bytes) -> tuple[str, ...]:
    """What match_scripts answers, by its definition: every tracker with a
    literal in ``text`` or a pattern matching it, in catalogue order."""
    return tuple(
        t.id
        for t in matcher.trackers
        if any(s.encode() in text for s in t.signatures)
        or any(re.search(p.encode(), text) for p in t.patterns)
    )


#: literals that overlap, share prefixes, and one that another vendor also uses
_OVERLAPPING = TrackerMatcher(
    [
        Tracker(id="a", vendor="A", category="analytics", source="t", signatures=("ab", "abcd")),
        Tracker(id="b", vendor="B", category="analytics", source="t", signatures=("bc", "abc")),
        Tracker(id="c", vendor="C", category="advertising", source="t", signatures=("cd", "ab")),
        Tracker(id="d", vendor="D", category="analytics", source="t", signatures=("dab",)),
        Tracker(id="e", vendor="E", category="analytics", source="t", patterns=("c[0-9]",)),
    ]
)
_ALL_LITERALS = sorted(
    {s for t in (*builtin_trackers(), *_OVERLAPPING.trackers) for s in t.signatures}
)


@st.composite
def _script_text(draw: st.DrawFn) -> bytes:
    """Text made of signatures, their pieces and filler."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        lit = draw(st.sampled_from(_ALL_LITERALS)).encode()
        a = draw(st.integers(0, len(lit)))
        b = draw(st.integers(a, len(lit)))
        parts.append(draw(st.sampled_from([lit, lit[a:b], lit[:a], lit[b:], b" ", b"x1"])))
    return b"".join(parts)


@given(_script_text())
def test_match_scripts_finds_every_signature(text: bytes) -> None:
    """One trie-shaped scan finds what testing every signature finds,
    overlapping and prefix signatures included."""
    for matcher in (MATCHER, _OVERLAPPING):
        assert tuple(t.id for t in matcher.match_scripts(text)) == _every_signature(matcher, text)


def test_match_scripts_overlaps() -> None:
    def ids(text: bytes) -> tuple[str, ...]:
        return tuple(t.id for t in _OVERLAPPING.match_scripts(text))

    assert ids(b"abcd") == ("a", "b", "c")  # abcd, ab (a and c), bc, abc, cd
    assert ids(b"dabc") == ("a", "b", "c", "d")
    assert ids(b"xc1") == ("e",)
    assert ids(b"a b c d") == ()


def test_category_mapping() -> None:
    ga = MATCHER.match_url("https://www.google-analytics.com/x")
    fb = MATCHER.match_url("https://www.facebook.com/tr")
    assert ga is not None and fb is not None
    assert MATCHER.category(ga) == "performance"
    assert MATCHER.category(fb) == "performance"  # default: no "marketing" category
    site = TrackerMatcher(category_map={"marketing": "marketing"})
    assert site.category(fb) == "marketing"


def entry(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "x",
        "vendor": "X",
        "category": "performance",
        "hosts": ["x.example"],
        "source": "test",
    }
    base.update(over)
    return {"schema": 1, "tracker": [base]}


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"category": "ads"}, "tracker[0].category"),
        ({"hosts": ["X.example"]}, "tracker[0].hosts[0]"),
        ({"hosts": "x.example"}, "tracker[0].hosts"),
        ({"beacons": ["x.example"]}, "tracker[0].beacons[0]"),
        ({"paths": ["matomo.php"]}, "tracker[0].paths[0]"),
        ({"patterns": ["("]}, "tracker[0].patterns[0]"),
        ({"embed": "yes"}, "tracker[0].embed"),
        ({"source": ""}, "tracker[0].source"),
        ({"id": "Bad Id"}, "tracker[0].id"),
        ({"colour": "red"}, "tracker[0].colour"),
        ({"hosts": []}, "tracker[0].hosts"),
    ],
)
def test_validation_names_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trackers(entry(**over))
    assert info.value.field == field


def test_validation_of_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schema"):
        parse_trackers({"tracker": []})
    dup = entry()
    dup["tracker"].append(dict(dup["tracker"][0]))
    with pytest.raises(ConfigError) as info:
        parse_trackers(dup)
    assert info.value.field == "tracker[1].id"
    bad = tmp_path / "t.toml"
    bad.write_text("schema = [")
    with pytest.raises(ConfigError):
        load_trackers(bad)
    good = tmp_path / "g.toml"
    good.write_text(
        'schema = 1\n[[tracker]]\nid = "x"\nvendor = "X"\ncategory = "marketing"\n'
        'hosts = ["x.example"]\nsource = "s"\n'
    )
    (t,) = load_trackers(good)
    assert TrackerMatcher([t]).match_url("https://a.x.example/") == t
