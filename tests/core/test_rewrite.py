"""Streaming HTML tracking rewriter."""

from __future__ import annotations

import gzip
import logging
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cookiegate.inject import HtmlInjector
from cookiegate.rewrite import EncodedHtmlRewriter, HtmlRewriter, is_ascii_compatible
from cookiegate.trackers import TrackerMatcher, default_matcher

FRAG = b"<div id=cg-banner-x></div>"
PERF = frozenset({"performance"})
ALL = frozenset({"performance", "marketing", "functional"})
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "trackers"


def run(
    chunks: list[bytes],
    blocked: frozenset[str] = PERF,
    fragment: bytes | None = FRAG,
    **kw: object,
) -> bytes:
    r = HtmlRewriter(blocked, fragment, **kw)  # type: ignore[arg-type]
    return b"".join(r.feed(c) for c in chunks) + r.close()


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    pts = sorted({p % (len(data) + 1) for p in points})
    out, prev = [], 0
    for p in pts:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def inject(doc: bytes) -> bytes:
    inj = HtmlInjector(FRAG)
    return inj.feed(doc) + inj.close()


# -- the neutralised format ------------------------------------------------------


def test_external_script() -> None:
    doc = b'<script async src="https://www.google-analytics.com/analytics.js"></script>'
    assert run([doc], fragment=None) == (
        b'<script type="text/plain" data-cg-blocked="performance" '
        b'data-cg-tracker="google-analytics" async '
        b'data-cg-src="https://www.google-analytics.com/analytics.js"></script>'
    )


def test_external_script_keeps_type_and_other_attributes() -> None:
    doc = b"<SCRIPT Type='text/javascript' SRC=//static.hotjar.com/c/h.js defer id=x></SCRIPT>"
    assert run([doc], fragment=None) == (
        b'<SCRIPT type="text/plain" data-cg-blocked="performance" data-cg-tracker="hotjar" '
        b"data-cg-type='text/javascript' data-cg-src=//static.hotjar.com/c/h.js defer id=x>"
        b"</SCRIPT>"
    )


def test_inline_script() -> None:
    doc = b"<script>fbq('init', '1'); fbq('track', 'PageView');</script><p>x</p>"
    assert run([doc], fragment=None) == (
        b'<script type="text/plain" data-cg-blocked="performance" data-cg-tracker="meta-pixel">'
        b"fbq('init', '1'); fbq('track', 'PageView');</script><p>x</p>"
    )


def test_an_inline_bundle_of_several_vendors_waits_for_all_their_categories() -> None:
    """A tag bundle loading Google Analytics (performance) and the Meta Pixel
    (marketing) is blocked while either is refused, whichever comes first in
    the script or the catalogue, and names every refused category."""
    matcher = TrackerMatcher(category_map={"marketing": "marketing"})
    for body in (
        b"gtag('config', 'G-1'); fbq('init', '1');",
        b"fbq('init', '1'); gtag('config', 'G-1');",
    ):
        doc = b"<script>" + body + b"</script>"
        out = run([doc], frozenset({"marketing"}), fragment=None, trackers=matcher)
        assert out == (
            b'<script type="text/plain" data-cg-blocked="marketing" '
            b'data-cg-tracker="meta-pixel">' + body + b"</script>"
        )
        out = run([doc], frozenset({"performance"}), fragment=None, trackers=matcher)
        assert out.startswith(b'<script type="text/plain" data-cg-blocked="performance" ')
        out = run([doc], frozenset({"performance", "marketing"}), fragment=None, trackers=matcher)
        assert out.startswith(b'<script type="text/plain" data-cg-blocked="performance marketing" ')
        assert run([doc], frozenset(), fragment=None, trackers=matcher) == doc


def test_img_pixel_and_srcset() -> None:
    doc = (
        b'<noscript><img height="1" width="1" src="https://www.facebook.com/tr?id=1&amp;ev=P"'
        b' srcset="https://www.facebook.com/tr?id=1 2x"/></noscript>'
    )
    assert run([doc], fragment=None) == (
        b'<noscript><img data-cg-blocked="performance" data-cg-tracker="meta-pixel" height="1" '
        b'width="1" data-cg-src="https://www.facebook.com/tr?id=1&amp;ev=P" '
        b'data-cg-srcset="https://www.facebook.com/tr?id=1 2x"/></noscript>'
    )


@pytest.mark.parametrize(
    ("doc", "renamed"),
    [
        (b'<svg><image href="https://www.facebook.com/tr?id=1"/></svg>', b"data-cg-href="),
        (b'<svg><image xlink:href="//www.facebook.com/tr"></image></svg>', b"data-cg-xlink:href="),
        (
            b'<picture><source srcset="/a.webp 1x, //www.facebook.com/tr 2x"><img src=/a.png>'
            b"</picture>",
            b'data-cg-srcset="/a.webp',
        ),
        (b'<input type=image src="https://www.facebook.com/tr?ev=1">', b"data-cg-src="),
        (
            b'<video poster="https://www.facebook.com/tr?p=1" src="/v.mp4"></video>',
            b'data-cg-poster="https://www.facebook.com/tr?p=1" data-cg-src="/v.mp4"',
        ),
        (b'<audio src="https://www.facebook.com/tr"></audio>', b"data-cg-src="),
        (b'<embed src="https://www.facebook.com/tr?e=1">', b"data-cg-src="),
        (b'<object data="https://www.facebook.com/tr?o=1"></object>', b"data-cg-data="),
    ],
)
def test_other_elements_loading_a_tracker_url(doc: bytes, renamed: bytes) -> None:
    """Every element that loads a URL without script is neutralised like an
    image: all its URL attributes are renamed, and it is marked."""
    out = run([doc], fragment=None)
    assert b'data-cg-blocked="performance" data-cg-tracker="meta-pixel"' in out, out
    assert renamed in out, out
    assert (
        out.replace(b"data-cg-", b"").replace(b'blocked="performance" tracker="meta-pixel" ', b"")
        == doc
    )
    assert run([doc], frozenset(), None) == doc
    first_party = doc.replace(b"www.facebook.com/tr", b"shop.example/p.png")
    assert run([first_party], fragment=None) == first_party


def test_iframe_placeholder() -> None:
    doc = b'<p>v</p><iframe src="https://www.youtube.com/embed/x" width=560></iframe>'
    out = run([doc], fragment=None)
    assert out == (
        b'<p>v</p><span class="cg-placeholder" data-cg-placeholder="performance" '
        b'data-cg-tracker="youtube"><span class="cg-placeholder-text">This content from YouTube '
        b"embeds is blocked until you allow performance cookies.</span> "
        b'<button type="submit" form="cookiegate-load" name="category" value="performance" '
        b'class="cg-placeholder-button" data-cg-load="performance">'
        b"Load after consent</button></span>"
        b'<iframe data-cg-blocked="performance" data-cg-tracker="youtube" hidden data-cg-unhide '
        b'data-cg-src="https://www.youtube.com/embed/x" width=560></iframe>'
    )


def test_iframe_placeholder_text_is_configurable_and_escaped() -> None:
    doc = b'<iframe src="https://player.vimeo.com/video/1" hidden></iframe>'
    out = run(
        [doc],
        frozenset({"functional"}),
        None,
        trackers=TrackerMatcher(category_map={"functional": "functional"}),
        placeholder_text="Vidéo {vendor} <{category}>",
        placeholder_button="Charger",
        category_labels={"functional": "Fonctionnels"},
    )
    assert b"Vid&#233;o Vimeo embeds &lt;Fonctionnels&gt;" in out
    assert b">Charger</button>" in out
    assert b"data-cg-unhide" not in out  # it was hidden already


def test_noscript_iframe_has_no_placeholder() -> None:
    doc = b'<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe>'
    out = run([doc + b"</noscript>"], fragment=None)
    assert b"cg-placeholder" not in out
    assert b'data-cg-src="https://www.googletagmanager.com/ns.html?id=GTM-1"' in out


def test_a_base_on_a_tracker_host_is_neutralised() -> None:
    """Relative URLs after a ``<base href>`` load from its host: on a refused
    tracker's host (or a host with a beacon path) it loses its href, so they
    stay on the page's host; any other base, or a granted tracker's, is kept."""
    doc = b'<base href="https://www.facebook.com/"><img src="tr?id=1">'
    assert run([doc], fragment=None) == (
        b'<base data-cg-blocked="performance" data-cg-tracker="meta-pixel" '
        b'data-cg-href="https://www.facebook.com/"><img src="tr?id=1">'
    )
    assert run([b"<BASE target=_top HREF=//sub.connect.facebook.net/x/>"], fragment=None) == (
        b'<BASE data-cg-blocked="performance" data-cg-tracker="meta-pixel" target=_top '
        b"data-cg-href=//sub.connect.facebook.net/x/>"
    )
    # google.com holds Google Ads' beacon paths (pagead/...)
    assert b"data-cg-href" in run([b'<base href="https://www.google.com/">'], fragment=None)
    for kept in (
        b'<base href="https://cdn.example.com/assets/">',
        b'<base href="/app/">',
        b'<base target="_blank">',
        b'<base href="https://notfacebook.com/">',
    ):
        assert run([kept], fragment=None) == kept
    assert run([doc], frozenset(), fragment=None) == doc


def test_ping_and_hints() -> None:
    doc = (
        b'<a href="/x" ping="https://www.google-analytics.com/p">x</a>'
        b'<a href="https://example.org/" ping="/local">y</a>'
        b'<link rel="preconnect" href="https://www.googletagmanager.com">'
        b'<link rel="dns-prefetch" href="//connect.facebook.net">'
        b'<link rel="stylesheet" href="https://fonts.googleapis.com/css">'
        b'<link rel="preload" href="/app.js" as="script">'
    )
    assert run([doc], fragment=None) == (
        b'<a data-cg-blocked="performance" data-cg-tracker="google-analytics" href="/x" '
        b'data-cg-ping="https://www.google-analytics.com/p">x</a>'
        b'<a href="https://example.org/" ping="/local">y</a>'
        b'<link data-cg-blocked="performance" data-cg-tracker="google-tag-manager" '
        b'rel="preconnect" data-cg-href="https://www.googletagmanager.com">'
        b'<link data-cg-blocked="performance" data-cg-tracker="meta-pixel" rel="dns-prefetch" '
        b'data-cg-href="//connect.facebook.net">'
        b'<link rel="stylesheet" href="https://fonts.googleapis.com/css">'
        b'<link rel="preload" href="/app.js" as="script">'
    )


# -- site markers -----------------------------------------------------------------


def test_site_markers() -> None:
    marked = b'<script data-category="performance" src="/js/ab-test.js"></script>'
    assert run([marked], fragment=None) == (
        b'<script type="text/plain" data-cg-blocked="performance" data-category="performance" '
        b'data-cg-src="/js/ab-test.js"></script>'
    )
    assert run([marked], frozenset(), None) == marked
    # the site's word wins over the catalogue when the category is granted
    granted = b'<script data-cookiecategory="functional" src="https://static.hotjar.com/h.js">'
    assert run([granted], PERF, None) == granted
    # the opt-in convention of other consent tools is left to the re-activation script
    plain = b'<script type="text/plain" data-category="performance">gtag("js")</script>'
    assert run([plain], fragment=None) == plain
    assert run([plain], frozenset(), None) == plain
    iframe = b'<iframe data-category="performance" src="https://maps.example/embed"></iframe>'
    out = run([iframe], fragment=None)
    assert b'data-cg-placeholder="performance"' in out
    assert b'data-cg-src="https://maps.example/embed"' in out


def test_site_markers_are_read_case_insensitively_and_unknown_ones_fail_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``Performance`` is ``performance``; with the policy's categories known, a
    marker naming another (``statistics``) waits for every category, and the
    placeholder's markup stays well-formed whatever the marker holds."""
    upper = b'<script data-category=" Performance " src="/js/ab.js"></script>'
    assert run([upper], fragment=None).startswith(
        b'<script type="text/plain" data-cg-blocked="performance" '
    )
    known = ("strictly_necessary", "performance", "marketing")
    assert run([upper], frozenset({"marketing"}), None, known=known) == upper
    unknown = b'<script data-category="statistics">track()</script>'
    with caplog.at_level(logging.WARNING, logger="cookiegate.rewrite"):
        out = run([unknown], frozenset({"marketing"}), None, known=known)
    assert out == (
        b'<script type="text/plain" data-cg-blocked="performance marketing" '
        b'data-category="statistics">track()</script>'
    )
    assert "'statistics'" in caplog.text
    assert run([unknown], frozenset(), None, known=known) == unknown  # all granted
    # without ``known`` (a rewriter used on its own) a marker outside ``blocked`` is granted
    assert run([unknown], PERF, None) == unknown
    necessary = b'<script data-category="strictly_necessary">login()</script>'
    assert run([necessary], PERF, None, known=known) == necessary
    evil = b'<iframe data-category="x&quot;&gt;&lt;b&gt;" src="https://maps.example/e"></iframe>'
    out = run([evil], PERF, None, known=known)
    assert b'data-cg-placeholder="performance marketing"' in out
    assert b"<b>" not in out
    assert b'data-category="x&quot;&gt;&lt;b&gt;"' in out  # as written


def test_non_javascript_scripts_are_not_inspected() -> None:
    doc = b'<script type="application/ld+json">{"x": "gtag(\'config\'"}</script>'
    assert run([doc], fragment=None) == doc
    doc = b'<script type="text/template"><img src="https://www.facebook.com/tr"></script>'
    assert run([doc], fragment=None) == doc


# -- hard cases -------------------------------------------------------------------


def test_body_end_in_script_comment_and_attribute() -> None:
    doc = (
        b"<body><script>var s = '</body>'; // <script src=//cdn.example/x.js>\n</script>"
        b"<!-- </body> <img src=https://www.facebook.com/tr> -->"
        b'<div title="</body>" data-x=\'<script src="//static.hotjar.com/y.js">\'>d</div>'
        b"<textarea></body><img src=//www.facebook.com/tr></textarea>"
        b"<title><script src=//static.hotjar.com/z.js></title>"
        b"</body></html>"
    )
    out = run([doc])
    assert out == doc.replace(b"</body></html>", FRAG + b"</body></html>")


def test_markup_inside_attribute_values_at_any_depth() -> None:
    """Attribute values are read as the HTML tokenizer reads them, however many
    tags are written inside one (no look-back limit): a tracker after them is
    still found, and markup inside a value is never taken for a tag."""
    pixel = b"https://www.facebook.com/tr?id=1"
    doc = b'<img alt="<a><b><c><d>" src=' + pixel + b">"
    out = run([doc], fragment=None)
    assert b"data-cg-src=" + pixel in out and b' src="' not in out
    doc = b"<img alt=a<b<c<d src=" + pixel + b">"  # "<" in an unquoted value
    assert b"data-cg-src=" + pixel in run([doc], fragment=None)
    inside = (
        b"<i title=\"<a><b><c><script>fbq('init','1')</script>\">t</i>",
        b"<div data-x='<a><b><c><d><img src=" + pixel + b">'>z</div>",
        b'<p title="<a><b><c><d></body>">x</p>',
    )
    for doc in inside:
        assert run([doc], fragment=None) == doc
    doc = b'<div title="<a><b><c><script>">x</div><p>y</p></body>'
    assert run([doc]) == doc.replace(b"</body>", FRAG + b"</body>")
    # an "=" only opens a value after an attribute name: these end at the first ">"
    fbq = b"<script>fbq('init','1')</script>"
    for doc in (b'<p ="><' + fbq[1:] + b'">', b'<p=">' + fbq + b'">'):
        assert b"data-cg-blocked" in run([doc], fragment=None)
    # after an unquoted value "=" is part of it; the quote opens nothing
    doc = b'<p a=b=">' + fbq + b'">'
    assert b"data-cg-blocked" in run([doc], fragment=None)
    doc = b'<p a = ">' + fbq + b'">'  # spaces around "=": a value
    assert run([doc], fragment=None) == doc


def test_tag_names_ended_by_backslash_ampersand_or_semicolon() -> None:
    """The lower-cased copy reads ``\\``, ``&`` and ``;`` as ``/``; a browser reads
    them as part of the tag name (``<img\\=...`` is no image, ``<script\\`` no
    script): the real markup after such a tag is still examined."""
    fbq = b"<script>fbq('init','1')</script>"
    pixel = b"<img src=https://www.facebook.com/tr?id=1>"
    for doc in (
        b'<body><img\\="//x>" ' + fbq + b"</body>",
        b'<img&="//x>" ' + fbq,
        b"<a;='//x>' " + pixel,
        b"<script\\ x>" + pixel,
        b"<iframe& x>" + pixel,
    ):
        assert b"data-cg-blocked" in run([doc], fragment=None), doc


def test_end_tags_with_names_run_on_by_backslash_ampersand_or_semicolon() -> None:
    """``</script\\``, ``</script&`` and ``</script;`` do not end a script (nor
    ``</title\\`` a title): the script's signature after one is still read,
    and markup in a title after one is text, left alone."""
    for odd in (b"\\", b"&", b";"):
        doc = b'<script>var s = "</script' + odd + b'"; fbq("init", "1")</script>'
        out = run([doc], fragment=None)
        assert out.startswith(b'<script type="text/plain" data-cg-blocked="performance"'), doc
        for cut in range(len(doc)):
            assert run([doc[:cut], doc[cut:]], fragment=None) == out
        doc = b"<title>a</title" + odd + b"<img src=https://www.facebook.com/tr></title><p>x"
        assert run([doc], fragment=None) == doc
        doc = b"<script><!--<script" + odd + b"></script><img src=https://www.facebook.com/tr>"
        assert b"data-cg-blocked" in run([doc], fragment=None), doc  # no double escape


def test_noscript_end_tag_inside_a_value_ends_it() -> None:
    """With scripts on, a browser reads <noscript> as raw text: its end tag counts
    even where, read as markup, it would be inside an attribute value."""
    doc = (
        b'<body><noscript><p title="</noscript>'
        b'<img src=https://www.facebook.com/tr?id=1>"></noscript></body>'
    )
    assert b"data-cg-src=https://www.facebook.com/tr" in run([doc], fragment=None)


GA = b"<script src=https://www.google-analytics.com/analytics.js></script>"


@pytest.mark.parametrize(
    "opening",
    [b"<!-- ", b"<script>", b"<script src=/own.js>", b"<style>", b"<textarea>", b"<title>",
     b"<xmp>", b"<iframe>", b"<noembed>", b"<noframes>", b"<plaintext>", b"<!-- </noscript\\"],
)  # fmt: skip
def test_noscript_end_tag_ends_any_raw_text_inside_it(opening: bytes) -> None:
    """A browser running scripts reads <noscript> as raw text up to </noscript>,
    whatever looks like a comment, a script or a style inside: what follows is
    markup to it, and a tracker there runs. It is neutralised, however the body
    is cut; after the noscript a comment is a comment again."""
    doc = b"<body><noscript>" + opening + b"</noscript>" + GA + b" --></style></noscript><p>"
    out = run([doc], fragment=None)
    assert b"data-cg-src=https://www.google-analytics.com" in out, out
    assert b"<script src=https" not in out
    for cut in range(len(doc)):
        assert run([doc[:cut], doc[cut:]], fragment=None) == out, cut
    assert run([doc[i : i + 1] for i in range(len(doc))], fragment=None) == out
    after = b"<noscript><!-- x --></noscript><!-- </noscript>" + GA + b" -->"
    assert run([after], fragment=None) == after  # outside <noscript>: a comment
    assert run([b"<script>/*</noscript>*/</script>" + GA], fragment=None).count(b"data-cg") == 3


@pytest.mark.parametrize(
    "tail",
    [
        b"<img src=https://www.facebook.com/tr?id=1 ",
        b"<script src=https://www.google-analytics.com/analytics.js",
        b"<img alt='>' src=//www.facebook.com/tr </body ",
        b"<img src=/own.gif",
    ],
)
def test_markup_left_unfinished_stays_last(tail: bytes) -> None:
    """A body that ends inside a tag (a truncated page): a browser drops that
    tag, but the banner after it would finish it (its first ">" ends the tag,
    which would then load its tracker). The banner goes before it, whatever the
    chunks; the unfinished bytes stay last, as written."""
    doc = b"<p>shop</p>" + tail
    frag = b"<div id=cg>banner</div>"
    expected = b"<p>shop</p>" + frag + tail
    assert run([doc], fragment=frag) == expected
    for cut in range(len(doc)):
        assert run([doc[:cut], doc[cut:]], fragment=frag) == expected, cut
    assert HtmlRewriter(PERF, frag).finish(doc) == expected
    # a page of open tags (no ">" anywhere) is read once, not once per tag
    many = b"<img src=//a " * 3000
    assert run([many], fragment=frag) == frag + many


def test_reading_between_tokens_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte is read a bounded number of times, whatever the page: no run is
    re-read from the same start for each later ``//`` or token (one chunk)."""
    import cookiegate.rewrite as rw

    read = [0]
    real = rw._enclosing

    def counting(buf: bytes, start: int, t: int) -> tuple[int, int]:
        read[0] += t - start
        return real(buf, start, t)

    monkeypatch.setattr(rw, "_enclosing", counting)
    pages = (
        b'<span class="c">// increment the counter</span>\n<span class="k">i</span>++;\n' * 400,
        b"<p>see https://example.com/page for more</p>\n" * 400,
        b"<div title='oops>" + b'<p>text</p><link rel="stylesheet" href="/a.css">' * 1500,
        # structural tokens inside one long attribute value (a reflected search
        # query): read once, not from the tag's start for each (32 KB of "<!--"
        # took 3 s)
        b'<div title="' + b"<!--<script><svg><iframe " * 1200 + b'">x</div>',
        b'<noscript><p title="' + b"<!--<script></a>" * 1500 + b'">x</p></noscript>',
        b'<svg><g title="' + b"<!--<script><p " * 1500 + b'"/></svg>',
        b'<img alt="' + b"<script>" * 3000 + b'" src="//www.facebook.com/tr">',
    )
    for doc in pages:
        read[0] = 0
        run([doc], fragment=None, max_tag=1024)
        assert read[0] <= 3 * len(doc), (doc[:40], read[0], len(doc))
        read[0] = 0
        run([doc], fragment=None)
        assert read[0] <= 3 * len(doc), (doc[:40], read[0], len(doc))


def test_tokens_in_a_long_attribute_value_hide_no_tracker() -> None:
    """Reading on after the tag that holds a token keeps what the tag and the
    bytes after it say: its own tracker URL, the end tags that count inside a
    value in <noscript> and foreign content."""
    many = b"<!--<script><svg>" * 200
    assert b"data-cg-src" in run([b'<img alt="' + many + b'" src=//www.facebook.com/tr>'])
    assert b"data-cg-src" in run([b'<img alt="' + many + b'">x<img src=//www.facebook.com/tr>'])
    # <noscript>: its end tag inside the value ends it (scripts are on)
    doc = b'<noscript><p title="' + many + b"</noscript><script src=//static.hotjar.com/c/h.js>"
    assert b"data-cg-src=//static.hotjar.com" in run([doc])
    # foreign content: </style> in a value ends the raw text a browser may see
    doc = b'<svg><g title="' + many + b"</style><script src=//static.hotjar.com/c/h.js>"
    assert b"data-cg-src=//static.hotjar.com" in run([doc])


def test_an_end_tag_counting_inside_a_value_is_read_after_a_url_before_it() -> None:
    """In <noscript> (scripts on: raw text) and in foreign content (raw-text
    end tags, the safety net), an end tag inside what looks like one tag's
    attribute value ends it: a "//" earlier in that tag does not make the
    rewriter jump past it, and the tag's own tracker URL is still neutralised."""
    gtag = b"<script src=https://www.googletagmanager.com/gtag/js></script>"
    for doc in (
        b"<noscript><img src=//cdn.example/a.png alt='</noscript>" + gtag + b"'>",
        b"<noscript><b title=//x alt='</noscript>" + gtag + b"'>",
        b"<svg><style><g title=//x alt='</style>" + gtag + b"'>",
    ):
        out = run([doc], fragment=None)
        assert b'data-cg-tracker="google-analytics"' in out, doc
        assert (
            out.replace(b'<script type="text/plain" ', b"<script ").replace(
                b' data-cg-blocked="performance" data-cg-tracker="google-analytics" data-cg-src=',
                b" src=",
            )
            == doc
        )
    doc = b"<noscript><img src=//www.facebook.com/tr alt='</noscript>" + gtag + b"'>"
    out = run([doc], fragment=None)
    assert out.startswith(
        b'<noscript><img data-cg-blocked="performance" data-cg-tracker="meta-pixel" '
    )
    assert b'data-cg-tracker="google-analytics"' in out


def test_a_noscript_end_inside_an_end_tag_counts() -> None:
    """``</script </noscript>``: to a browser running scripts the <noscript>
    (raw text) ends there, so the script after it runs and is neutralised,
    in one chunk as in 1-byte chunks; the same after </style and </title."""
    after = b"<script>gtag('config', 'G-1')</script><p>x</p>"
    for inner in (b"<script></script ", b"<style></style x=", b"<title></title "):
        doc = b"<noscript>" + inner + b"</noscript>" + after
        out = run([doc], fragment=None)
        assert b'<script type="text/plain" data-cg-blocked="performance"' in out, inner
        assert run([doc[i : i + 1] for i in range(len(doc))], fragment=None) == out


@pytest.mark.parametrize(
    "inner",
    [b'<noscript title="', b'<svg title="', b'<math title="', b'</body title="', b'</p title="',
     b'<math><mi><script></script p="', b'<math><mi></div title="', b'<svg><title></title x="'],
)  # fmt: skip
def test_a_noscript_end_in_a_structural_tag_counts(inner: bytes) -> None:
    """The tags that change the rewriter's depth (<noscript>, <svg>, </body>,
    end tags in an integration point...) are acted on once whole; a
    ``</noscript`` inside one, before its end, ends the <noscript> to a browser
    running scripts: the tag is text, and the script after it runs. It is
    neutralised in one chunk, cut anywhere, and in 1-byte chunks."""
    doc = b"<noscript>" + inner + b'</noscript>"><script>fbq("init", "1")</script><p>x'
    out = run([doc], fragment=None)
    assert b'<script type="text/plain" data-cg-blocked="performance"' in out, out
    for cut in range(len(doc)):
        assert run([doc[:cut], doc[cut:]], fragment=None) == out, cut
    assert run([doc[i : i + 1] for i in range(len(doc))], fragment=None) == out


def test_upper_case_and_quoted_gt() -> None:
    doc = (
        b'<IMG ALT="a > b <script>" SRC="https://www.facebook.com/tr?id=1">'
        b"<ScRiPt>GTAG = 1; gtag('config', 'G-1')</sCrIpT >"
    )
    out = run([doc], fragment=None)
    assert out == (
        b'<IMG data-cg-blocked="performance" data-cg-tracker="meta-pixel" ALT="a > b <script>" '
        b'data-cg-src="https://www.facebook.com/tr?id=1">'
        b'<ScRiPt type="text/plain" data-cg-blocked="performance" '
        b"data-cg-tracker=\"google-analytics\">GTAG = 1; gtag('config', 'G-1')</sCrIpT >"
    )


def test_entity_encoded_and_protocol_relative_urls() -> None:
    for src in (
        b"https:&#x2F;&#x2F;www.facebook.com/tr",
        b"https:&sol;&sol;www.facebook.com/tr",
        b"&#47;&#47;www.facebook.com/tr",
        b"//www.facebook.com/tr",
        b"https:\\\\www.facebook.com\\tr",
        b"https://www&#46;facebook&period;com/tr",
        b"HTTPS://WWW.FACEBOOK.COM/TR",
        # numeric references without ";" (browsers decode them in attributes too)
        b"https:&#47&#47www.facebook.com/tr",
        b"https:&#x2F&#X2fwww.facebook.com/tr",
        b"https:&#0047/www.facebook.com/tr",
        b"https:/&#x002Fwww.facebook.com/tr",
    ):
        out = run([b'<img src="' + src + b'">'], fragment=None)
        assert (
            out
            == b'<img data-cg-blocked="performance" data-cg-tracker="meta-pixel" data-cg-src="'
            + src
            + b'">'
        ), src
    for src in (
        b"https://www.facebook.com.evil.example/tr",
        b"https://notfacebook.com/tr",
        b"https://www.facebook.com@evil.example/tr",
    ):
        doc = b'<img src="' + src + b'">'
        assert run([doc], fragment=None) == doc


def test_image_and_ping_with_references_without_semicolons() -> None:
    # a browser builds an <img> from <image>
    out = run([b'<image src="https://www.facebook.com/tr?id=1">'], fragment=None)
    assert out == (
        b'<image data-cg-blocked="performance" data-cg-tracker="meta-pixel" '
        b'data-cg-src="https://www.facebook.com/tr?id=1">'
    )
    doc = b'<a href="/" ping="https:&#47&#47www.google-analytics.com/collect">x</a>'
    assert b'data-cg-ping="https:&#47&#47www.google-analytics.com/collect"' in run(
        [doc], fragment=None
    )
    # another number is another character: nothing to examine, the page as written
    for doc in (b'<img src="https:&#470&#47x.example/a">', b'<img src="/a&#x2fa">'):
        assert run([doc], fragment=None) == doc


def test_svg_and_mathml_hold_markup_not_raw_text() -> None:
    """In SVG and MathML a browser reads <style>, <title>, <script>... as
    elements holding markup, and <title/> closes itself: a tracker after (or in)
    them is still found, and the page outside is read as HTML again."""
    gtm = b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    pixel = b'<img src="https://www.facebook.com/tr?id=1">'
    for before in (
        b"<svg><title/></svg>",
        b"<svg><style/></svg>",
        b"<svg viewBox='0 0 1 1'><script/></svg>",
        b"<math><style/></math>",
        b"<svg><style>" + pixel + b"</style></svg>",
        b"<svg><title>a < b</title><path d='M0 0'/></svg>",
    ):
        for tracker in (gtm, pixel):
            out = run([before + b"<p>x</p>" + tracker + b"</body>"], fragment=None)
            assert tracker not in out and out.count(b"data-cg-blocked") >= 1, (before, tracker)
    # an SVG element that closes itself opens no SVG: the <style> after it is CSS
    out = run([b"<svg/><style>p{content:'" + pixel + b"'}</style>"], fragment=None)
    assert pixel in out
    # a "/" in an unquoted value does not close the tag: the SVG is open
    out = run([b"<svg a=b/><style>" + pixel + b"</style></svg>"], fragment=None)
    assert pixel not in out


def test_script_escape_states() -> None:
    # "<!-- <script>" inside a script: the first </script> does not end it
    doc = (
        b"<script>document.write('<!-- <script>x</script> -->');</script>"
        b"<img src=https://www.facebook.com/tr>"
    )
    out = run([doc], fragment=None)
    assert out.startswith(doc[: doc.index(b"<img")])
    assert b"data-cg-src=https://www.facebook.com/tr" in out
    doc = b"<script><!--</script><img src=//www.facebook.com/tr>"
    assert b"data-cg-src=//www.facebook.com/tr" in run([doc], fragment=None)


def test_comment_forms() -> None:
    for c in (b"<!---->", b"<!-->", b"<!--->", b"<!-- x --!>", b"<!-- a -- b -->"):
        doc = c + b"<img src=//www.facebook.com/tr>"
        assert b"data-cg-src" in run([doc], fragment=None), c
    doc = b"<!-- <img src=//www.facebook.com/tr> --><p>"
    assert run([doc], fragment=None) == doc


def test_bom_and_charsets() -> None:
    doc = (
        b"\xef\xbb\xbf<html><body>caf\xc3\xa9<script src=//static.hotjar.com/h.js></script></body>"
    )
    out = run([doc])
    assert out.startswith(b"\xef\xbb\xbf<html><body>caf\xc3\xa9<script type=")
    latin1 = "<p>café</p><img src=//www.facebook.com/tr></body>".encode("latin-1")
    assert b"caf\xe9</p><img data-cg-blocked" in run([latin1])
    sjis = '<p>表示</p><img alt="表" src=//www.facebook.com/tr>'.encode("shift_jis")
    assert "表示".encode("shift_jis") in run([sjis]) and b"data-cg-src" in run([sjis])
    utf16 = "<html><body><img src=//www.facebook.com/tr></body>".encode("utf-16")
    r = HtmlRewriter(PERF, FRAG)
    assert r.feed(utf16[:1]) + r.feed(utf16[1:]) + r.close() == utf16
    assert r.warnings
    assert run([b"<img src=//www.facebook.com/tr>"], charset="UTF-16LE") == (
        b"<img src=//www.facebook.com/tr>"
    )
    assert is_ascii_compatible("utf-8") and is_ascii_compatible("Shift_JIS")
    assert not is_ascii_compatible("iso-2022-jp") and not is_ascii_compatible("utf-32")


def test_plaintext() -> None:
    doc = b"<plaintext><img src=//www.facebook.com/tr></body>"
    assert run([doc]) == doc + FRAG


def test_limits_are_documented_behaviour(caplog: pytest.LogCaptureFixture) -> None:
    long_tag = b'<img alt="' + b"x" * 200 + b'" src="//www.facebook.com/tr">'
    r = HtmlRewriter(PERF, None, max_tag=64)
    with caplog.at_level(logging.WARNING, "cookiegate.rewrite"):
        out = b"".join(r.feed(long_tag[i : i + 16]) for i in range(0, len(long_tag), 16))
        out += r.close()
    assert out == long_tag
    assert "max_tag" in caplog.text
    # a long inline script is decided on its first max_script bytes
    script = b"<script>" + b"/*" + b"x" * 300 + b"*/ fbq('init', '1')</script>"
    for tail in (b"", b"\n<p>more</p>"):  # its end near the end of the body, or not
        assert run([script + tail], max_script=100, fragment=None) == script + tail
        assert b"text/plain" in run([script + tail], max_script=1000, fragment=None)
        # a signature within the first max_script bytes counts, whatever follows
        early = b"<script>fbq('init', '1');/*" + b"x" * 300 + b"*/</script>" + tail
        assert b"text/plain" in run([early], max_script=100, fragment=None)
    # after max_hold bytes past </body>, the banner moves to the end
    doc = b"<body></body>" + b"y" * 500
    assert run(cuts(doc, [20, 200, 400]), max_hold=100) == doc + FRAG


def test_banner_goes_before_the_last_body_end() -> None:
    doc = b"<body>a</body>b</BODY >c"
    assert run([doc]) == b"<body>a</body>b" + FRAG + b"</BODY >c"
    assert run([b"<p>no body end"]) == b"<p>no body end" + FRAG
    assert run([b"x</body"]) == b"x" + FRAG + b"</body"
    assert run([b"x"], fragment=None) == b"x"


def test_after_close() -> None:
    r = HtmlRewriter(PERF, FRAG)
    assert r.feed(b"<p>") + r.close() == b"<p>" + FRAG
    assert r.close() == b""


# -- properties -------------------------------------------------------------------

PIECES = [
    b"<p>",
    b"</p>",
    b"text ",
    b"a < b > c ",
    b"<br/>",
    b"<div class=\"c\" title='x > y'>",
    b"</div>",
    b"<!-- c -->",
    b"<!-- </body> <script> -->",
    b"<!-->",
    b"<!--",
    b"-->",
    b"<script>var a = '</body>'; if (a < b) {}</script>",
    b"<script src=/js/app.js></script>",
    b"<script><!-- <script></script> --></script>",
    b"<script>",
    b"</script>",
    b"<style>p > a { color: red } </body></style>",
    b"<textarea><script></textarea>",
    b"<title>x</title>",
    b'<img src="/static/a.png" alt="a">',
    b'<img src="//cdn.example/a.png">',
    b'<a href="https://example.org/">l</a>',
    b"<noscript>",
    b"</noscript>",
    b'<iframe src="/embed"></iframe>',
    b"<link rel=preconnect href=https://fonts.gstatic.com>",
    b'<input value="<script>">',
    b"</body>",
    b"</BODY>",
    b"\xef\xbb\xbf",
    b"caf\xc3\xa9",
    b"<",
    b"/",
    b'"',
    b"'",
    b"=",
    b">",
    b"&amp;",
    b"<!DOCTYPE html>",
    b"<svg>",
    b"</svg>",
    b"<svg a=b/>",
    b"<MATH/>",
    b"<title/>",
    b"<style/>",
    b"<svg><script/>",
    # end tags with attributes, a value left open (what a </noscript> may end)
    b"</script ",
    b"</style x=",
    b'<p title="',
    # foreign content: breakouts, integration points, CDATA
    b"<foreignObject>",
    b"</foreignObject>",
    b"<desc>",
    b"</desc>",
    b"<math><mi>",
    b"</mi>",
    b"<![CDATA[",
    b"]]>",
    b"<font color=red>",
    b"<font>",
    b"<span>",
    b"</br>",
    b"<svg><g><title>",
    b"</title>",
]
TRACKERS = [
    b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>',
    b"<script>gtag('config', 'G-1');</script>",
    b"<SCRIPT>fbq('init','1')</SCRIPT>",
    b'<noscript><img height="1" src="https://www.facebook.com/tr?id=1&amp;ev=PageView"/>',
    b'<iframe src="https://www.youtube.com/embed/x"></iframe>',
    b"<a href=/ ping=https://www.google-analytics.com/p>l</a>",
    b"<link rel=dns-prefetch href=//connect.facebook.net>",
    b"<img src=https:&#x2F;&#x2F;px.ads.linkedin.com/collect>",
    b'<script data-category="performance">x()</script>',
    b"<base href=https://www.facebook.com/>",
]


def _not_utf16(doc: bytes) -> bool:
    return not doc.startswith((b"\xff\xfe", b"\xfe\xff"))  # those pass through (tested above)


safe_docs = (
    st.lists(st.sampled_from(PIECES) | st.binary(max_size=8), max_size=40)
    .map(b"".join)
    .filter(_not_utf16)
)
any_docs = (
    st.lists(st.sampled_from(PIECES + TRACKERS) | st.binary(max_size=8), max_size=40)
    .map(b"".join)
    .filter(_not_utf16)
)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)
#: pieces that put markup inside attribute values (opened and closed by
#: separate pieces, so any number of tags can land inside one value)
IN_VALUES = [
    b'<i title="',
    b"<b title='",
    b'">',
    b"'>",
    b"<a><b><c>",
    b"<img alt=x<y src=https://www.facebook.com/tr?id=1>",
    b"<img src=https://www.facebook.com/tr?id=2>",
    b"<script>fbq('init','1')</script>",
    b"<!-- x -->",
    b'<p a=b="',
    b'<p ="',
]
nested_docs = (
    st.lists(st.sampled_from(PIECES + TRACKERS + IN_VALUES), max_size=40)
    .map(b"".join)
    .filter(_not_utf16)
)


@settings(max_examples=400, deadline=None)
@given(any_docs, cut_points, st.sampled_from([PERF, frozenset(), ALL]))
def test_chunking_does_not_change_the_output(
    doc: bytes, points: list[int], blocked: frozenset[str]
) -> None:
    assert run(cuts(doc, points), blocked) == run([doc], blocked)


@settings(max_examples=400, deadline=None)
@given(nested_docs, cut_points, st.sampled_from([PERF, ALL]))
def test_chunking_with_markup_inside_attribute_values(
    doc: bytes, points: list[int], blocked: frozenset[str]
) -> None:
    whole = run([doc], blocked)
    assert run(cuts(doc, points), blocked) == whole
    assert run([doc[i : i + 1] for i in range(len(doc))], blocked) == whole


@settings(max_examples=400, deadline=None)
@given(any_docs | nested_docs | st.binary(max_size=64), st.sampled_from([PERF, frozenset(), ALL]))
def test_finish_in_one_pass_equals_feed_and_close(doc: bytes, blocked: frozenset[str]) -> None:
    """finish() reads a body given in one piece in a single pass, as its end; the
    output is what feed() then close() give (and, by the chunking properties,
    what any cutting of the body gives)."""
    assert HtmlRewriter(blocked, FRAG).finish(doc) == run([doc], blocked)
    second = HtmlRewriter(blocked, FRAG)  # finish after earlier chunks
    head = second.feed(doc[: len(doc) // 2])
    assert head + second.finish(doc[len(doc) // 2 :]) == run([doc], blocked)


@settings(max_examples=400, deadline=None)
@given(nested_docs, cut_points, st.integers(min_value=1, max_value=48))
def test_long_inline_scripts_are_decided_alike_however_cut(
    doc: bytes, points: list[int], max_script: int
) -> None:
    """An inline script longer than max_script is decided on its first max_script
    bytes: the same with its end in the buffer or not, at the end of the body
    or not, through finish() or feed() + close(), however the body is cut."""
    doc = doc + b"<script>" + b"x" * (max_script // 2) + b"fbq('init','1')</script>"
    doc = doc + b"<p>after</p>"
    whole = run([doc], max_script=max_script)
    assert run(cuts(doc, points), max_script=max_script) == whole
    assert HtmlRewriter(PERF, FRAG, max_script=max_script).finish(doc) == whole
    unfinished = doc + b"<script>" + b"y" * max_script + b"fbq('init','1')"
    whole = run([unfinished], max_script=max_script)
    assert run(cuts(unfinished, points), max_script=max_script) == whole
    assert HtmlRewriter(PERF, FRAG, max_script=max_script).finish(unfinished) == whole


@settings(max_examples=300, deadline=None)
@given(any_docs, cut_points)
def test_one_byte_chunks(doc: bytes, points: list[int]) -> None:
    assert run([doc[i : i + 1] for i in range(len(doc))]) == run([doc])


@settings(max_examples=400, deadline=None)
@given(any_docs, cut_points)
def test_granted_everything_is_byte_identical(doc: bytes, points: list[int]) -> None:
    out = run(cuts(doc, points), frozenset(), b"\x00FRAG\x00")
    assert out.count(b"\x00FRAG\x00") >= 1
    head, _, tail = out.rpartition(b"\x00FRAG\x00")  # the fragment is added last or before </body
    assert (head + tail) == doc or out.replace(b"\x00FRAG\x00", b"", 1) == doc


@settings(max_examples=400, deadline=None)
@given(safe_docs, cut_points)
def test_nothing_to_block_is_byte_identical(doc: bytes, points: list[int]) -> None:
    out = run(cuts(doc, points), ALL, b"\x00FRAG\x00")
    assert out.replace(b"\x00FRAG\x00", b"", 1) == doc


#: markup with nothing to block, in which every "</body>" is a real end tag
PLAIN = [
    b"<p>",
    b"</p>",
    b"text ",
    b"\n",
    b"<br/>",
    b"<div class=\"c\" title='x > y'>",
    b"</div>",
    b"<!-- c -->",
    b"<script>var a = 1; if (a < b) {}</script>",
    b"<script src=/js/app.js defer></script>",
    b"<style>p > a { color: red }</style>",
    b'<img src="/static/a.png" alt="a">',
    b'<img src="https://cdn.example/a.png" srcset="//cdn.example/b.png 2x">',
    b'<a href="https://example.org/" ping="/ping">l</a>',
    b'<link rel="preconnect" href="https://fonts.gstatic.com">',
    b'<iframe src="https://maps.example/embed"></iframe>',
    b"<noscript>",
    b"</noscript>",
    b"</body>",
    b"</BODY >",
    b"caf\xc3\xa9",
    b"&amp;",
    b"<!DOCTYPE html>",
    b"<svg>",
    b"</svg>",
    b"<svg a=b/>",
    b"<MATH/>",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PLAIN), max_size=40).map(b"".join), cut_points)
def test_nothing_to_block_matches_the_injector(doc: bytes, points: list[int]) -> None:
    assert run(cuts(doc, points), ALL) == inject(doc)


def test_nothing_to_block_shop_page_matches_the_injector() -> None:
    doc = b"<html><body>" + b"".join(PIECES[:7]) * 20 + b"<img src=/a.png></body></html>\n"
    for size in (1, 7, 4096):
        chunks = [doc[i : i + size] for i in range(0, len(doc), size)]
        assert run(chunks, ALL) == inject(doc)


# -- the corpus of real snippets --------------------------------------------------


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[str, dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self._script = a
            self.items.append((tag, a, ""))
        else:
            self.items.append((tag, a, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            tag, a, text = self.items[-1]
            self.items[-1] = (tag, a, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None


def tracking_elements(doc: bytes) -> list[str]:
    """What in ``doc`` would still contact a tracker."""
    matcher = default_matcher()
    parser = _Elements()
    parser.feed(doc.decode("utf-8"))
    parser.close()
    live = []
    for tag, a, text in parser.items:
        if tag == "script":
            if (a.get("type") or "").lower() == "text/plain":
                continue
            if a.get("src") and matcher.match_url(a["src"] or ""):
                live.append(f"script src {a['src']}")
            if not a.get("src") and matcher.match_script(text.encode()):
                live.append("inline script")
        for attr in ("src", "href", "ping"):
            value = a.get(attr)
            if value and tag != "a" and matcher.match_url(value):
                live.append(f"{tag} {attr} {value}")
        if tag == "a" and a.get("ping") and matcher.match_url(a["ping"] or ""):
            live.append("ping")
    return live


CORPUS_FILES = sorted(CORPUS.glob("*.html"))


def test_corpus_has_the_vendors() -> None:
    assert len(CORPUS_FILES) >= 12


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus_snippet_neutralised_when_refused(path: Path) -> None:
    doc = path.read_bytes()
    assert tracking_elements(doc), "the corpus page should contact its tracker"
    for size in (len(doc), 4096, 100, 7):
        chunks = [doc[i : i + size] for i in range(0, len(doc), size)]
        out = run(chunks, ALL)
        assert tracking_elements(out) == [], size
        assert path.stem.encode() in out  # data-cg-tracker="<vendor id>"
        assert out.count(FRAG) == 1


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus_snippet_untouched_when_granted(path: Path) -> None:
    doc = path.read_bytes()
    assert run([doc], frozenset()) == inject(doc)
    matcher = TrackerMatcher(category_map={"marketing": "marketing", "functional": "functional"})
    assert run([doc], frozenset({"nothing"}), trackers=matcher) == inject(doc)


# -- memoised decisions ------------------------------------------------------------

#: documents whose second reading goes through the memo shortcuts: a tag looked up
#: by its first ">" (which may be inside a quoted value), the bytes between two
#: tokens remembered as enclosing nothing, inline scripts memoised per (tag, content)
MEMO_DOCS = [
    b'<link rel=preconnect href=//www.google-analytics.com><link title="'
    b'<link rel=preconnect href=//www.google-analytics.com>" rel=preconnect href=/a.css>',
    b'<script data-x="a>b" src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    b'<script data-x="a>b" src="/app.js"></script>',
    b"<p><b>x</b><script>fbq('init','1')</script>"
    b"<i title=\"<b>x</b><script>fbq('init','1')</script>\">"
    b"<!--c--><p><b>x</b><script>fbq('init','1')</script>",
    b"<script>var a = 1;</script><script>fbq('init','1')</script><script>var a = 1;</script>"
    b"<script type=module>fbq('init','1')</script><script>fbq('init','1')</script>",
    b'<iframe src="https://www.youtube.com/embed/x"></iframe><noscript>'
    b'<iframe src="https://www.youtube.com/embed/x"></iframe></noscript>'
    b'<iframe src="https://www.youtube.com/embed/x"></iframe>',
    b'<noscript><img src="https://www.facebook.com/tr?id=1"></noscript>'
    b'<img alt="<noscript>" src="https://www.facebook.com/tr?id=1">',
    b"<title>a</title><style>p{}</style><STYLE a='>'>p{}</STYLE><title x=\"</title>\">t</title>",
]


@pytest.mark.parametrize("doc", MEMO_DOCS)
def test_memoised_reading_is_the_first_reading(doc: bytes) -> None:
    matcher = TrackerMatcher()
    for size in (len(doc), 13, 5, 1):
        chunks = [doc[i : i + size] for i in range(0, len(doc), size)]
        cold = run(chunks, ALL, trackers=TrackerMatcher())
        for _ in range(2):  # the second pass finds everything memoised
            assert run(chunks, ALL, trackers=matcher) == cold, size


def test_memoised_pages_match_cold_pages() -> None:
    docs = [p.read_bytes() for p in CORPUS_FILES] + MEMO_DOCS
    matcher = TrackerMatcher()
    colds = [run([d], ALL, trackers=TrackerMatcher()) for d in docs]
    for _ in range(2):
        for doc, cold in zip(docs, colds, strict=True):
            assert (
                run([doc[i : i + 4096] for i in range(0, len(doc), 4096)], ALL, trackers=matcher)
                == cold
            )


def test_memoised_img_whose_name_ends_in_a_folded_byte() -> None:
    # "&" ends the name for the "//" trigger but not for the look-back: the tag
    # memoised from the first page is not taken as complete in the second
    tag = b'<img&a="b c=\'x" src=https://www.facebook.com/tr>'
    matcher = TrackerMatcher()
    run([tag + b"'>"], ALL, None, trackers=matcher)
    assert run([tag], ALL, None, trackers=matcher) == run(
        [tag], ALL, None, trackers=TrackerMatcher()
    )


# -- compressed bodies -----------------------------------------------------------


def test_gzip_decode_rewrite_encode() -> None:
    doc = (CORPUS / "meta-pixel.html").read_bytes()
    body = gzip.compress(doc)
    r = EncodedHtmlRewriter(HtmlRewriter(ALL, FRAG), "gzip")
    out = b"".join(r.feed(body[i : i + 50]) for i in range(0, len(body), 50)) + r.close()
    assert gzip.decompress(out) == run([doc], ALL)
    assert not r.passthrough


def test_deflate_and_identity() -> None:
    doc = b"<img src=//www.facebook.com/tr></body>"
    r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), "deflate")
    out = r.feed(zlib.compress(doc)) + r.close()
    assert zlib.decompress(out) == run([doc])
    r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), None)
    assert r.feed(doc) + r.close() == run([doc])


@given(st.integers(0, 6), st.integers(1, 9), st.booleans())
def test_raw_deflate_is_decoded_and_encoded_as_raw(cut: int, level: int, raw: bool) -> None:
    """``Content-Encoding: deflate`` in the raw format (no zlib header), which
    browsers read too: rewritten, and sent back in the format it came in, also
    when the first chunk holds a single byte."""
    doc = b"<p>x</p><img src=//www.facebook.com/tr></body>" * 3
    enc = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    body = enc.compress(doc) + enc.flush()
    r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), "deflate")
    cut = min(cut, len(body))
    out = r.feed(body[:cut]) + r.feed(body[cut:]) + r.close()
    assert zlib.decompress(out, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS) == run([doc])
    assert not r.passthrough


def test_a_deflate_body_of_one_byte_passes_as_it_came() -> None:
    r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), "deflate")
    assert r.feed(b"x") + r.close() == b"x"


def test_br_and_unknown_codings_pass_through(caplog: pytest.LogCaptureFixture) -> None:
    import cookiegate.rewrite

    cookiegate.rewrite._WARNED.clear()  # logged once per process: make this the first time
    with caplog.at_level(logging.WARNING, "cookiegate.rewrite"):
        for coding in ("br", "zstd", "gzip, br"):
            r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), coding)
            if coding == "br" and not r.passthrough:
                continue  # brotli happens to be installed: it is then rewritten
            assert r.passthrough
            assert r.feed(b"\x1b\x02abc") + r.close() == b"\x1b\x02abc"
    assert "passed through" in caplog.text


def test_corrupt_gzip_passes_the_rest_through() -> None:
    good = gzip.compress(b"<p>hello</p>" * 100)
    bad = good[:20] + b"\x00garbage" * 10
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "gzip")
    out = r.feed(bad[:10]) + r.feed(bad[10:])
    assert out.endswith(bad[10:]) or inner.warnings
    assert r.close() == b"" or inner.warnings


def test_gzip_bomb_is_inflated_in_bounded_steps() -> None:
    body = gzip.compress(b"<p>" + b"a" * 5_000_000 + b"</p>")
    r = EncodedHtmlRewriter(HtmlRewriter(PERF, None), "gzip", max_inflate=64 * 1024)
    out = r.feed(body) + r.close()
    assert len(gzip.decompress(out)) == 5_000_007


def test_noscript_state_survives_held_tags() -> None:
    doc = (
        b'<noscript class="a"><iframe src=//www.googletagmanager.com/ns.html></iframe></noscript >'
        b"<iframe src=https://www.youtube.com/embed/x></iframe></body>"
    )
    whole = run([doc])
    assert whole.count(b"data-cg-placeholder") == 1
    for i in range(len(doc) + 1):
        assert run([doc[:i], doc[i:]]) == whole, i


def test_multi_member_gzip_keeps_every_member() -> None:
    """RFC 1952 allows several gzip members one after the other: none is lost."""
    first, second = b"<html><body><p>one</p>", b"<p>two</p></body></html>"
    body = gzip.compress(first) + gzip.compress(second)
    for cut in (len(body) // 3, len(gzip.compress(first)), len(body) - 3):
        r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), "gzip")
        out = gzip.decompress(r.feed(body[:cut]) + r.feed(body[cut:]) + r.close())
        assert out == first + second.replace(b"</body>", FRAG + b"</body>")


# -- prepared configuration (RewriterProfile) ---------------------------------

_PROFILE_PAGE = (
    b"<html><head><script async src='https://www.googletagmanager.com/gtag/js?id=G-1'></script>"
    b"<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
    b"gtag('config','G-1');</script></head><body>"
    b"<iframe src='https://www.youtube.com/embed/x'></iframe>"
    b"<img src='https://www.facebook.com/tr?id=1&ev=PageView'></body></html>"
)


def test_a_profile_gives_what_the_arguments_give() -> None:
    from cookiegate.rewrite import RewriterProfile

    options = {
        "placeholder_text": "Blocked: {vendor} ({category})",
        "placeholder_button": "Load",
        "category_labels": {"performance": "Statistics", "marketing": "Ads"},
        "marker_attrs": ("data-category", "data-consent"),
    }
    blocked = frozenset({"performance", "marketing"})
    matcher = TrackerMatcher()
    direct = HtmlRewriter(blocked, b"<p>banner</p>", trackers=matcher, **options)  # type: ignore[arg-type]
    expected = direct.feed(_PROFILE_PAGE) + direct.close()
    assert b"Blocked: YouTube" in expected and b"data-cg-blocked" in expected
    profile = RewriterProfile(blocked, trackers=matcher, **options)  # type: ignore[arg-type]
    for _ in range(3):  # the same profile, body after body
        rw = HtmlRewriter(blocked, b"<p>banner</p>", profile=profile)
        assert rw.feed(_PROFILE_PAGE) + rw.close() == expected
        assert rw._memo is profile.memo


def test_a_profile_from_before_clear_caches_is_renewed() -> None:
    from cookiegate.rewrite import RewriterProfile

    matcher = TrackerMatcher()
    blocked = frozenset({"performance", "marketing"})
    profile = RewriterProfile(blocked, trackers=matcher, placeholder_button="Load")
    first = HtmlRewriter(blocked, None, profile=profile)
    out = first.feed(_PROFILE_PAGE) + first.close()
    assert profile.memo  # decisions were memoised
    matcher.clear_caches()
    assert not profile.current()
    again = HtmlRewriter(blocked, None, profile=profile)
    assert again._memo is not profile.memo  # the matcher's new memo, not the dropped one
    assert again.feed(_PROFILE_PAGE) + again.close() == out
    assert b"Load</button>" in out


def _slash_refs_as_slashes(fold: bytes) -> bytes:
    """Reference for the second step of ``_fold``: every ``/#`` + decimal 47 or
    hex 2f (any leading zeros, any case: the fold is lower-case already) that the
    number does not go on after becomes as many ``/``."""
    out = bytearray(fold)
    i = 0
    while (i := fold.find(b"/#", i)) != -1:
        j = i + 2
        hexa = fold[j : j + 1] == b"x"
        j += hexa
        digits = b"0123456789abcdef" if hexa else b"0123456789"
        k = j
        while k < len(fold) and fold[k] in digits:
            k += 1
        number = fold[j:k]
        if number.lstrip(b"0") == (b"2f" if hexa else b"47"):
            out[i:k] = b"/" * (k - i)
            i = k
        else:
            i += 1
    return bytes(out)


@given(
    st.binary(max_size=300)
    | st.text("aZ/\\&;<>!-: \u00e9\u0130", max_size=300).map(str.encode)
    | st.lists(
        st.sampled_from(["&#", "&#x", "&#X", "47", "047", "2F", "2f", "0", "1", "a", "/", ";"]),
        max_size=30,
    ).map(lambda parts: "".join(parts).encode())
)
def test_fold_is_the_fold_table(data: bytes) -> None:
    from cookiegate.rewrite import _FOLD, _fold

    assert _fold(data) == _slash_refs_as_slashes(data.translate(_FOLD))
    assert len(_fold(data)) == len(data)
    assert _fold(bytes(range(256))) == _FOLD


def test_fold_reads_slash_references_as_slashes() -> None:
    from cookiegate.rewrite import _fold

    assert _fold(b"https:&#47&#47h") == b"https:////////h"
    assert _fold(b"https:&#X2F;&#x002f/h") == b"https:" + b"/" * 14 + b"h"
    assert _fold(b"&#470 &#x2fa &#4") == b"/#470 /#x2fa /#4"


def test_placeholder_carries_the_language_of_its_wording() -> None:
    doc = b'<iframe src="https://www.youtube.com/embed/x"></iframe>'
    rw = HtmlRewriter(PERF | {"marketing"}, None, placeholder_lang="de-AT")
    out = rw.feed(doc) + rw.close()
    assert b'<span class="cg-placeholder" data-cg-placeholder=' in out
    assert b' lang="de-AT"><span class="cg-placeholder-text">' in out
    plain = HtmlRewriter(PERF | {"marketing"}, None)
    assert b"lang=" not in plain.feed(doc) + plain.close()
    with pytest.raises(ValueError, match="language tag"):
        HtmlRewriter(PERF, None, placeholder_lang='en" onload="x')


def test_a_utf8_host_a_browser_maps_to_a_tracker_is_one() -> None:
    for host in ("www.googletagmanager\u3002com", "www.\uff47oogletagmanager.com"):
        doc = f'<script async src="https://{host}/gtag/js?id=G-1"></script>'.encode()
        assert b"data-cg-blocked" in run([doc], fragment=None), host
        pixel = '<img src="https://www.facebook\u3002com/tr?id=1">'.encode()
        assert b"data-cg-blocked" in run([pixel], fragment=None)
