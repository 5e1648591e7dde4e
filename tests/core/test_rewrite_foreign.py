"""Foreign content (SVG / MathML) in the rewriter: where a browser reads HTML
again inside ``<svg>`` / ``<math>`` (breakouts, HTML integration points), CDATA
sections, SVG scripts' ``href``, and the safety net of raw-text end tags. The
same pages are checked in Chromium in ``tests/browser/test_tracking_browser.py``
(``test_foreign_content_hides_no_tracker``)."""

from __future__ import annotations

import pytest

from cookiegate.rewrite import HtmlRewriter
from tests.browser.test_tracking_browser import FOREIGN_CASES
from tests.core.test_rewrite import FRAG, PERF, run

GA = b'<script src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
PIXEL = b'<img src="https://www.facebook.com/tr?id=1">'
#: a page script whose string holds markup: to a browser reading HTML it is
#: script text, never to be edited
PAGE_SCRIPT = b"<script>var s = \"<img src='https://www.facebook.com/tr?id=9'>\";</script>"


def every_cut(doc: bytes) -> list[bytes]:
    outs = {run([doc], PERF)}
    for i in range(len(doc) + 1):
        outs.add(run([doc[:i], doc[i:]], PERF))
    outs.add(run([doc[i : i + 1] for i in range(len(doc))], PERF))
    assert len(outs) == 1, "the output depends on where the body is cut"
    return list(outs)


@pytest.mark.parametrize(("name", "markup", "host"), FOREIGN_CASES)
def test_foreign_content_hides_no_tracker(name: str, markup: str, host: str) -> None:
    doc = b"<body>" + markup.encode() + b"<p>end</p></body>"
    (out,) = every_cut(doc)
    assert b"data-cg-blocked" in out, name
    for attr in (b' src="https://', b' href="https://'):
        assert attr + host.encode() not in out, name


@pytest.mark.parametrize(
    "doc",
    [
        b"<body><svg><p>" + PAGE_SCRIPT + b"</p></svg></body>",  # <p> breaks out
        b"<body><svg><g><div>" + PAGE_SCRIPT + b"</div></svg></body>",
        b"<body><svg><foreignObject>" + PAGE_SCRIPT + b"</foreignObject></svg></body>",
        b"<body><svg><desc>" + PAGE_SCRIPT + b"</desc><circle/></svg></body>",
        b"<body><math><mi>" + PAGE_SCRIPT + b"</mi></math></body>",
        b"<body><svg><title>" + PAGE_SCRIPT + b"</title></svg></body>",
        b'<body><svg><font color="red">' + PAGE_SCRIPT + b"</font></svg></body>",
        b"<body><svg><circle/></svg>" + PAGE_SCRIPT + b"</body>",
    ],
)
def test_html_again_is_read_as_html(doc: bytes) -> None:
    """Where a browser reads HTML again, a script is script text: its string is
    not taken for a pixel (the page comes out as written, banner added)."""
    (out,) = every_cut(doc)
    assert out == doc.replace(b"</body>", FRAG + b"</body>")


def test_foreign_content_stays_foreign_where_a_browser_keeps_it() -> None:
    """In SVG a ``<font>`` without color/face/size, ``<g>``, an SVG ``<title>``
    that is self-closing, and an integration point's name in the other namespace
    (``<mi>`` in SVG, ``<desc>`` in MathML) leave foreign content: a ``<style>``
    there holds markup, so a pixel in it is neutralised."""
    for opener in (b"<svg><font>", b"<svg><g>", b"<svg><title/>", b"<svg><mi>", b"<math><desc>"):
        (out,) = every_cut(b"<body>" + opener + b"<style>" + PIXEL + b"</style></body>")
        assert b"data-cg-blocked" in out, opener


def test_the_body_end_leaves_an_open_svg_open() -> None:
    """``</body>`` pops nothing: a browser still reads SVG after it, where a
    ``<style>`` holds markup (and an ``<img>`` in it breaks out and loads)."""
    (out,) = every_cut(b"<body><svg><circle></body><style>" + PIXEL + b"</style>")
    assert b"data-cg-blocked" in out


def test_a_comment_in_foreign_content_ends_at_raw_text_end_tags() -> None:
    """The safety net: where the model of the tree and a browser's differ
    (``</math>`` closes no ``<svg>``), a raw text end tag ends what seems to be a
    comment or an attribute value in foreign content."""
    for doc in (
        b"<body><svg></math><style><!--</style>" + GA + b"--></body>",
        b'<body><svg></math><style><a title="</style>' + GA + b'"></body>',
        b"<body><svg></math><script><!--</script>" + GA + b"--></body>",
    ):
        (out,) = every_cut(doc)
        assert b"data-cg-blocked" in out, doc


def test_cdata_is_text_in_foreign_content_only() -> None:
    # in SVG, up to "]]>": the pixel after it is markup
    (out,) = every_cut(b"<body><svg><![CDATA[ a > b ]]>" + PIXEL + b"</svg></body>")
    assert b"data-cg-blocked" in out
    # in CDATA, a pixel is text: left as written
    doc = b"<body><svg><![CDATA[ " + PIXEL + b" ]]></svg></body>"
    (out,) = every_cut(doc)
    assert out == doc.replace(b"</body>", FRAG + b"</body>")
    # lower case is no CDATA (a bogus comment, to its first ">")
    (out,) = every_cut(b"<body><svg><![cdata[ > " + PIXEL + b" ]]></svg></body>")
    assert b"data-cg-blocked" in out


def test_an_svg_script_href_is_renamed() -> None:
    doc = b'<body><svg><script xlink:href="https://www.googletagmanager.com/gtag/js"></script></svg></body>'
    (out,) = every_cut(doc)
    assert b"data-cg-xlink:href=" in out and b' xlink:href="' not in out
    # a first-party one runs
    own = b'<body><svg><script href="/app.js"></script></svg></body>'
    assert run([own], PERF) == own.replace(b"</body>", FRAG + b"</body>")


def test_integration_points_nest_within_a_bound() -> None:
    """Deeply nested integration points are held up to a bound; past it, foreign
    content is read (which only neutralises more), and nothing grows."""
    deep = b"<svg><foreignObject>" * 100 + b"<style>" + PIXEL + b"</style>"
    r = HtmlRewriter(PERF, FRAG)
    out = r.feed(b"<body>" + deep) + r.close()
    assert b"data-cg-blocked" in out
    assert len(r._ips) <= 16


def test_an_unfinished_cdata_section_is_text_to_the_end() -> None:
    """Found by hypothesis: at the end of the body an open CDATA section is
    text, not unfinished markup; finish() and feed() + close() agree."""
    for doc in (b"<svg><![CDATA[", b"<svg><![CDATA[ <img src=x", b"<svg><![CDATA[ ]"):
        whole = HtmlRewriter(PERF, FRAG).finish(doc)
        assert whole == doc + FRAG
        assert run([doc], PERF) == whole
        assert run([doc[i : i + 1] for i in range(len(doc))], PERF) == whole
