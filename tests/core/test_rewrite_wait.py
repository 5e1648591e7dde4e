"""HtmlRewriter: a long held tag or inline script is examined again only with a
chunk that may end it; every feed returns what it returned before."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import cookiegate.rewrite as rewrite
from cookiegate.rewrite import HtmlRewriter
from tests.core.test_rewrite import IN_VALUES, PIECES, TRACKERS, cuts

FRAG = b"<div id=cg-banner-x></div>"
PERF = frozenset({"performance"})

#: pieces that open long holds: tags with long attributes, inline scripts, and
#: what ends or seems to end them
LONG = [
    b'<div title="' + b"t" * 40,
    b"<img alt='" + b"a>b" * 10,
    b"<script>" + b"var a = 1; " * 6,
    b"<script type=module>if (a > b) { c = '<\\/script>' }",
    b"</scr",
    b"ipt>",
    b"</script ",
    b"</SCRIPT>",
    b"<\\script>",
    b"&#47;script",
    b"<!-- <script> ",
    b" --> ",
    b"</noscript ",
    b"</noscript>",
    b"x" * 30,
    b"/",
    b">",
    b"<",
    b"'",
    b'"',
]
docs = st.lists(st.sampled_from(PIECES + TRACKERS + IN_VALUES + LONG), max_size=40).map(b"".join)
limits = st.sampled_from(
    [{}, {"max_tag": 24}, {"max_script": 20}, {"max_tag": 40, "max_script": 33}]
)


@contextmanager
def wait_min(size: int) -> Iterator[None]:
    saved = rewrite._WAIT_MIN
    rewrite._WAIT_MIN = size
    try:
        yield
    finally:
        rewrite._WAIT_MIN = saved


def per_feed(chunks: list[bytes], size: int, kw: dict[str, int]) -> list[bytes]:
    with wait_min(size):
        r = HtmlRewriter(PERF, FRAG, **kw)  # type: ignore[arg-type]
        return [r.feed(c) for c in chunks] + [r.close()]


@settings(max_examples=500, deadline=None)
@given(docs, st.lists(st.integers(0, 10_000), max_size=30), limits, st.sampled_from([8, 16, 64]))
# an inline script in SVG is held too; a comment or <plaintext> held as
# unfinished markup (around a later token) is streamed once read from its "<"
@example(b"<svg><script/><script>var a = '</body>'; if (a < b) {}</script><p>", [], {}, 8)
@example(b'<i title="<!-- </body> <script> -->', [], {"max_tag": 24}, 8)
@example(b'<i title="x <b <plaintext title=' + b"p" * 30 + b"<script>", [], {"max_tag": 24}, 8)
@example(b"<noscript><i title='" + b"n" * 30 + b"</noscript x", [], {}, 8)
# a CDATA section in SVG is streamed once read, not held to a ">"
@example(b"<svg><![CDATA[", [], {}, 8)
def test_waiting_changes_no_feed(
    doc: bytes, points: list[int], kw: dict[str, int], size: int
) -> None:
    """With waiting from 8, 16 or 64 held bytes, each feed returns exactly what
    it returns when every chunk is examined (limits reached or not)."""
    for chunks in (cuts(doc, points), [doc[i : i + 1] for i in range(len(doc))]):
        assert per_feed(chunks, size, kw) == per_feed(chunks, 1 << 40, kw)


def test_waiting_on_real_pages_changes_no_feed() -> None:
    page = (
        b"<html><head><script>"
        + b"window.dataLayer = window.dataLayer || []; if (a > b) { x = '/'; }\n" * 200
        + b"gtag('config', 'G-1');</script>"
        + b'<div title="'
        + b"x > y " * 300
        + b'"><img src="https://www.facebook.com/tr?id=1"></div>'
        + b"<noscript><img alt='"
        + b"q" * 900
        + b"</noscript ' src=//www.facebook.com/tr></noscript>"
        + b"</body></html>"
    )
    rng = random.Random(7)
    for kw in ({}, {"max_tag": 1000, "max_script": 2000}):
        for sizes in ([1], [3], [1, 2, 50], [700]):
            chunks, i = [], 0
            while i < len(page):
                n = rng.choice(sizes)
                chunks.append(page[i : i + n])
                i += n
            assert per_feed(chunks, 512, kw) == per_feed(chunks, 1 << 40, kw)


@pytest.mark.parametrize(
    "doc",
    [
        b"<html><body><script>" + b"var a=1;" * 8000 + b"</script></body></html>",
        b"<html><body><div title='" + b"a" * 65000 + b"'></div></body></html>",
        b"<html><body><script>" + b"if(a>b)c();" * 6000 + b"</script></body></html>",
        # in <noscript> a tag also ends at "</noscript": it waited for nothing
        b"<html><body><noscript><img alt='" + b"a" * 30000 + b"'></noscript></body></html>",
        b"<body><noscript><img alt='" + b"a" * 30000 + b"</noscript>'>x</body>",
    ],
)
def test_one_byte_chunks_are_linear(monkeypatch: pytest.MonkeyPatch, doc: bytes) -> None:
    """Each feed examined all that was held: a 64 KB inline script (or tag) in
    1-byte chunks read ~2 GB (19 s). The bytes examined now stay within a few
    times the body."""
    scanned = 0
    run = HtmlRewriter._run

    def counting(self: HtmlRewriter, buf: bytes, final: bool) -> list[bytes]:
        nonlocal scanned
        scanned += len(buf)
        return run(self, buf, final)

    monkeypatch.setattr(HtmlRewriter, "_run", counting)
    r = HtmlRewriter(PERF, FRAG)
    out = b"".join(r.feed(doc[i : i + 1]) for i in range(len(doc))) + r.close()
    monkeypatch.undo()
    assert out == HtmlRewriter(PERF, FRAG).finish(doc)
    assert scanned < 10 * len(doc), scanned


def test_memoryview_chunks_end_a_wait() -> None:
    doc = b"<p><img alt='" + b"a" * 2000 + b"' src=https://www.facebook.com/tr?id=1></p>"
    r = HtmlRewriter(PERF, FRAG)
    out = [r.feed(memoryview(doc[i : i + 100])) for i in range(0, len(doc), 100)]  # type: ignore[arg-type]
    assert b"".join(out) + r.close() == HtmlRewriter(PERF, FRAG).finish(doc)
    assert out[-1]  # the last chunk ends the tag: it is sent at once
