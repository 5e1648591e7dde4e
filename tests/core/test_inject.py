"""Streaming fragment insertion before </body>."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cookiegate.inject import BodyFilter, Chain, HeadInserter, HtmlInjector, even, is_injectable

FRAG = b"<div id=cg></div>"


def run(chunks: list[bytes], max_hold: int = 64 * 1024) -> bytes:
    inj = HtmlInjector(FRAG, max_hold=max_hold)
    return b"".join(inj.feed(c) for c in chunks) + inj.close()


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(data) + 1) for p in points})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def test_before_last_body_end() -> None:
    doc = b"<html><body><p>x</p><script>'</body>'</script></BODY >\n</html>"
    assert run([doc]) == doc.replace(b"</BODY >", FRAG + b"</BODY >")


def test_a_body_end_in_a_script_or_comment_ends_nothing() -> None:
    """A page without a real ``</body>`` after a script or comment that holds
    one: the fragment is not put into the script's string (or the comment)."""
    script = b"<script>var t = '</body>';</script>"
    for doc, expected in (
        (b"<body><p>x</p>" + script, b"<body><p>x</p>" + script + FRAG),
        (b"<p>x</p><SCRIPT>'</body>'</SCRIPT>", b"<p>x</p><SCRIPT>'</body>'</SCRIPT>" + FRAG),
        (b"<p>x<!-- </body> -->", b"<p>x<!-- </body> -->" + FRAG),
        # a real one before the script: the fragment goes there
        (b"<p>x</body>" + script, b"<p>x" + FRAG + b"</body>" + script),
        (b"<p>x</BODY><!-- </body> -->", b"<p>x" + FRAG + b"</BODY><!-- </body> -->"),
    ):
        assert run([doc]) == expected, doc
        inj = HtmlInjector(FRAG)
        assert inj.finish(doc) == expected, doc
        for cut in range(len(doc)):
            assert run([doc[:cut], doc[cut:]]) == expected, (doc, cut)


def test_no_body_end_appends() -> None:
    assert run([b"<p>hello"]) == b"<p>hello" + FRAG
    assert run([b"</bodyguard>"]) == b"</bodyguard>" + FRAG


@given(
    st.lists(
        st.sampled_from([b"<p>", b"</body>", b"</BoDy>", b"</bo", b"dy>", b"x", b"\n", b"</body"])
    ),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_chunking_never_changes_the_output(parts: list[bytes], points: list[int]) -> None:
    doc = b"".join(parts)
    assert run(cuts(doc, points)) == run([doc])
    assert run([bytes([b]) for b in doc]) == run([doc])


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=5))
@example(b"\xfe\xff", [])
def test_arbitrary_bytes_keep_everything(doc: bytes, points: list[int]) -> None:
    out = run(cuts(doc, points))
    if doc[:2] in (b"\xff\xfe", b"\xfe\xff"):
        # a UTF-16 page is not edited: as many bytes of spaces at its end
        assert out[: len(doc)] == doc
        assert len(out) == len(doc) + len(FRAG) and FRAG not in out
        return
    assert out.replace(FRAG, b"", 1) == doc
    assert out.count(FRAG) >= 1


def test_hold_is_bounded() -> None:
    """Only the last max_hold bytes (whole chunks) wait for the end of the body."""
    inj = HtmlInjector(FRAG, max_hold=1024)
    sent = b"".join(inj.feed(b"<p>" + b"x" * 500) for _ in range(40))
    assert inj._held_len < 1024 + 504
    assert len(sent) >= 40 * 503 - 1024 - 503
    rest = inj.close()
    assert sent + rest == (b"<p>" + b"x" * 500) * 40 + FRAG


def test_body_end_far_from_the_end_is_not_looked_for() -> None:
    """A </body> more than max_hold bytes before the end: the fragment goes at the
    end (the browser's parser still puts it in the body), whatever the chunking."""
    doc = b"<body></body>" + b"x" * 5000
    for size in (1, 100, 4096, len(doc)):
        chunks = [doc[i : i + size] for i in range(0, len(doc), size)]
        assert run(chunks, max_hold=1024) == doc + FRAG


def test_upper_and_mixed_case_body_end() -> None:
    assert run([b"<BODY><p>x</BODY></HTML>"]) == b"<BODY><p>x" + FRAG + b"</BODY></HTML>"
    doc = b"<body>a</body><script>'</body>'</script></bOdY >"
    assert run([doc]) == doc.replace(b"</bOdY >", FRAG + b"</bOdY >")
    assert run([b"</bodyguard></body"]) == b"</bodyguard>" + FRAG + b"</body"


def test_is_injectable() -> None:
    assert is_injectable("text/html; charset=utf-8", None)
    assert is_injectable("TEXT/HTML", "identity")
    assert not is_injectable("text/html", "gzip")
    assert not is_injectable("application/json", None)
    assert not is_injectable(None, None)


# -- after <head> (Google Consent Mode's default must run before any tag) --------

HEAD = b"<script>cm()</script>"


def run_head(chunks: list[bytes]) -> bytes:
    ins = HeadInserter(HEAD)
    return b"".join(ins.feed(c) for c in chunks) + ins.close()


def test_a_meta_charset_stays_in_the_first_1024_bytes() -> None:
    """Browsers look for ``<meta charset>`` in a page's first 1024 bytes: a
    fragment that would push it out goes after it (before any script)."""
    big = b"<script>" + b"x" * 900 + b"</script>"
    head = b"<!doctype html><html><head>" + b"<!-- " + b"c" * 20 + b" -->"
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
    doc = b"<!doctype html><html><head><title>t</title>" + meta + b"<script src=/a.js>"
    ins = HeadInserter(big)
    out = ins.feed(doc) + ins.close()
    assert out == doc.replace(meta, meta + big)
    assert out.index(meta) + len(meta) <= 1024
    for cut in range(len(doc)):  # in the same chunk as <head>, or not moved
        ins = HeadInserter(big)
        got = ins.feed(doc[:cut]) + ins.feed(doc[cut:]) + ins.close()
        assert got in (out, doc.replace(b"<head>", b"<head>" + big)), cut
        if cut < len(b"<!doctype html><html>") or cut >= len(doc) - len(b"<script src=/a.js>"):
            assert got == out, cut
    # a small fragment leaves it in reach: right after <head>, as always
    assert run_head([doc]) == doc.replace(b"<head>", b"<head>" + HEAD)
    # a script before the meta runs first: the fragment stays before it
    early = b"<html><head><script>a()</script><meta charset=utf-8>"
    ins = HeadInserter(big)
    assert ins.feed(early) + ins.close() == early.replace(b"<head>", b"<head>" + big)
    # the meta already past the limit (or a comment between): not moved
    far = head.replace(b"<!-- ", b"<p>").replace(b" -->", b"</p>") + b"y" * 1000 + meta
    ins = HeadInserter(big)
    assert ins.feed(far) + ins.close() == far.replace(b"<head>", b"<head>" + big)


def test_head_candidates_cost_a_bounded_look_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``<head`` is matched as a start tag within 1 KiB of it: a page of
    ``<head `` without ``>`` is read in linear time (each look once, bounded),
    and a ``<head>`` tag longer than that counts as none (the fragment goes
    before the next tag that comes after the head)."""
    import cookiegate.inject as inject

    looks: list[int] = []
    real = inject._HEAD_TAG

    class Counting:
        def match(self, buf: bytes, pos: int, endpos: int) -> re.Match[bytes] | None:
            looks.append(endpos - pos)
            return real.match(buf, pos, endpos)

    monkeypatch.setattr(inject, "_HEAD_TAG", Counting())
    doc = b"<head " * 2000 + b"x" * 1100 + b"<body>"  # no ">" within 1 KiB of a <head
    whole = run_head([doc])
    assert whole == doc.replace(b"<body>", HEAD + b"<body>")
    assert len(looks) == 2000 and max(looks) <= inject._HEAD_HOLD
    looks.clear()
    assert run_head([doc[i : i + 4096] for i in range(0, len(doc), 4096)]) == whole
    assert len(looks) < 2100  # re-read only where a chunk cut a candidate
    long_tag = b"<head data-x='" + b"y" * 1100 + b"'><title>t</title>"
    assert run_head([long_tag]) == long_tag.replace(b"<title>", HEAD + b"<title>")
    assert run_head([b"<head", b" lang=en", b">"]) == b"<head lang=en>" + HEAD
    assert run_head([b"<head <body>"]) == b"<head <body>" + HEAD  # "<body" is an attribute


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (b"<!doctype html><html><HEAD lang='a>b'><title>x", b"<HEAD lang='a>b'>" + HEAD),
        (b"<html><head><script src=gtm.js>", b"<head>" + HEAD + b"<script"),
        (b"<html><script src=gtm.js></script>", b"<html>" + HEAD + b"<script"),
        (b"<header><p>no head</p>", b"<header><p>no head</p>" + HEAD),
        (b"<meta charset=utf-8><title>t</title>", HEAD + b"<meta"),
        (b"plain text", b"plain text" + HEAD),
        # tags in a comment are text to the browser: the default would never run there
        (b"<!doctype html><!-- <script src=/old.js></script> --><html><head>", b"<head>" + HEAD),
        (b"<html><!-- TODO: move <head> assets --><head><script>", b"<head>" + HEAD),
        (b"<!--><head>", b"<!--><head>" + HEAD),
        (b"<!---><meta x>", HEAD + b"<meta"),
        (b"<!-- a --!><head>", b"--!><head>" + HEAD),
        (b"<!-- never closed <head>", b"<head>" + HEAD),
    ],
)
def test_head_insertion(doc: bytes, expected: bytes) -> None:
    out = run_head([doc])
    assert expected in out
    assert out.replace(HEAD, b"", 1) == doc


@given(
    st.lists(
        st.sampled_from(
            [
                *(b"<head>", b"<HEAD class='<a>'>", b"<hea", b"d>", b"<script>", b"<p>", b"x"),
                *(b"<", b"<!--", b"-->", b"--!>", b"<!", b"-", b">"),
            ]
        )
    ),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_head_chunking_never_changes_the_output(parts: list[bytes], points: list[int]) -> None:
    doc = b"".join(parts)
    whole = run_head([doc])
    assert run_head(cuts(doc, points)) == whole
    assert run_head([bytes([b]) for b in doc]) == whole
    assert whole.replace(HEAD, b"", 1) == doc


def test_chain_head_then_body() -> None:
    chain = Chain(HeadInserter(HEAD), HtmlInjector(FRAG))
    doc = b"<html><head><title>t</title></head><body><p>x</p></body></html>"
    out = b"".join(chain.feed(doc[i : i + 7]) for i in range(0, len(doc), 7)) + chain.close()
    assert out == doc.replace(b"<head>", b"<head>" + HEAD).replace(b"</body>", FRAG + b"</body>")


def _filters(max_hold: int) -> list[BodyFilter]:
    return [
        HtmlInjector(FRAG, max_hold=max_hold),
        HeadInserter(HEAD),
        Chain(HeadInserter(HEAD), HtmlInjector(FRAG, max_hold=max_hold)),
    ]


@given(
    st.lists(
        st.sampled_from(
            # "</body" + "x...": "</bodyx", not a body end tag
            [b"<head>", b"<hea", b"d>", b"<p>", b"</body>", b"</body", b"</BODY", b"x" * 40, b"<"]
        )
    ),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=4),
    st.sampled_from([16, 64 * 1024]),
)
@example([b"<p>", b"</body>", b"</BODY"], [], 64 * 1024)  # another letter case after it
@example([b"<p>", b"</body", b"x" * 40, b"</body>"], [], 64 * 1024)  # "</bodyx" is no end
@example([b"</body>", b"x" * 40], [], 16)  # the end tag before the last max_hold bytes
def test_finish_is_feed_then_close(parts: list[bytes], points: list[int], max_hold: int) -> None:
    """``finish(last)`` (the adapter's call for a body's last message) gives what
    ``feed(last) + close()`` gives, after any earlier chunks, and ends the body."""
    doc = b"".join(parts)
    chunks = cuts(doc, points)
    for a, b in zip(_filters(max_hold), _filters(max_hold), strict=True):
        head_a = b"".join(a.feed(c) for c in chunks[:-1])
        head_b = b"".join(b.feed(c) for c in chunks[:-1])
        assert head_a + a.finish(chunks[-1]) == head_b + b.feed(chunks[-1]) + b.close()
        assert a.close() == b"" and a.feed(b"tail") == b"tail"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_finish_takes_any_bytes_like_body(kind: type) -> None:
    doc = b"<html><body><p>x</p></body></html>"
    out = HtmlInjector(FRAG).finish(kind(doc))
    assert bytes(out) == doc.replace(b"</body>", FRAG + b"</body>")


@pytest.mark.parametrize(("bom", "codec"), [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")])
@pytest.mark.parametrize("size", [1, 2, 7, 4096])
def test_a_utf16_body_is_not_edited_and_keeps_the_promised_length(
    bom: bytes, codec: str, size: int
) -> None:
    """A body starting with a UTF-16 byte-order mark gets, instead of the
    fragment, as many bytes of UTF-16 spaces at its end: the Content-Length a
    pure insertion promised stays exact and the page still decodes (whole
    characters for an even fragment, as the gate's are: ``even``)."""
    page = bom + "<html><head></head><body><p>héllo</p></body></html>".encode(codec)
    fragment = even(b"<div>control</div>!")
    assert len(fragment) % 2 == 0 and even(fragment) == fragment
    makers = (
        lambda: HtmlInjector(fragment),
        lambda: HeadInserter(fragment),
        lambda: Chain(HeadInserter(fragment), HtmlInjector(fragment)),
    )
    for make in makers:
        outs = [make().finish(page)]
        stage = make()
        pieces = [page[i : i + size] for i in range(0, len(page), size)]
        outs.append(b"".join(stage.feed(p) for p in pieces) + stage.close())
        for out in outs:
            assert out.startswith(page)
            added = len(out) - len(page)
            assert added in (len(fragment), 2 * len(fragment))
            assert out[len(page) :].decode(codec) == " " * (added // 2)
