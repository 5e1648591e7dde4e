"""EncodedHtmlRewriter: what follows a compressed stream, and bodies that fail to decode."""

from __future__ import annotations

import gzip
import importlib
import sys
import types
import zlib

import pytest

from cookiegate.rewrite import EncodedHtmlRewriter, HtmlRewriter

FRAG = b"<div id=cg-banner-x></div>"
PERF = frozenset({"performance"})
GTAG = b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
PAGE = b"<html><head>" + GTAG + b"</head><body><p>" + b"x" * 3000 + b"</p></body></html>"


def rewritten(doc: bytes) -> bytes:
    r = HtmlRewriter(PERF, FRAG)
    return r.feed(doc) + r.close()


def encode(r: EncodedHtmlRewriter, chunks: list[bytes]) -> bytes:
    return b"".join(r.feed(c) for c in chunks) + r.close()


def decode(body: bytes, wbits: int) -> bytes:
    """Decode strictly: one complete stream, nothing after it."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(body)
    assert d.eof, "the stream is not finished"
    assert not d.unused_data, "bytes after the stream"
    return out


def splits(body: bytes) -> list[list[bytes]]:
    """The body in one piece, and in two at a sample of cuts (all near the end)."""
    cuts = sorted(
        {*range(0, len(body) + 1, max(1, len(body) // 13)), *range(len(body) - 12, len(body) + 1)}
    )
    return [[body]] + [[body[:c], body[c:]] for c in cuts if 0 <= c <= len(body)]


@pytest.mark.parametrize("trailer", [b"\x00" * 8, b"\x00", b"garbage\n", b"\x1f", b"\x1f\x00\x00"])
def test_bytes_after_a_gzip_stream_are_dropped(trailer: bytes) -> None:
    """Zero padding (or other bytes) after the last gzip member, which gzip -d
    and browsers ignore, were read as a new member: the decode error then made
    the rewriter append raw bytes to its re-encoded ones (an undecodable
    stream), or send a body in one piece raw with its trackers live."""
    body = gzip.compress(PAGE) + trailer
    for chunks in splits(body):
        inner = HtmlRewriter(PERF, FRAG)
        r = EncodedHtmlRewriter(inner, "gzip")
        out = encode(r, chunks)
        assert decode(out, 31) == rewritten(PAGE), [len(c) for c in chunks]
        assert b"data-cg-src" in decode(out, 31)
        assert any("after the end of the gzip stream" in w for w in inner.warnings)


def test_a_second_gzip_member_cut_after_its_first_magic_byte() -> None:
    first, second = b"<html><body><p>one</p>", b"<p>two</p>" + GTAG + b"</body></html>"
    a, b = gzip.compress(first), gzip.compress(second)
    for chunks in ([a + b[:1], b[1:]], [a, b[:1], b[1:2], b[2:]]):
        inner = HtmlRewriter(PERF, FRAG)
        out = encode(EncodedHtmlRewriter(inner, "gzip"), chunks)
        assert decode(out, 31) == rewritten(first + second)
        assert not inner.warnings


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
@pytest.mark.parametrize("trailer", [b"\x00" * 4, gzip.compress(b"<p>more</p>" + GTAG)])
def test_bytes_after_a_deflate_stream_are_dropped(wbits: int, trailer: bytes) -> None:
    """After a zlib or raw deflate stream a gzip decompressor was started on
    what followed (deflate has no members): a gzip member there was decoded
    into the page, zero padding broke it."""
    enc = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = enc.compress(PAGE) + enc.flush() + trailer
    for chunks in splits(body):
        inner = HtmlRewriter(PERF, FRAG)
        out = encode(EncodedHtmlRewriter(inner, "deflate"), chunks)
        assert decode(out, wbits) == rewritten(PAGE), [len(c) for c in chunks]
        assert any("after the end of the deflate stream" in w for w in inner.warnings)


def test_a_decode_failure_after_output_ends_the_encoded_stream() -> None:
    """Once re-encoded bytes went out, a corrupt rest of the body is dropped and
    the encoded stream finished: no raw byte is appended to re-encoded ones."""
    good = gzip.compress(PAGE, mtime=0)
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "gzip")
    first = r.feed(good[:-20])
    assert first  # output went out
    rest = r.feed(b"\xff" * 64) + r.feed(b"more garbage") + r.close()
    out = decode(first + rest, 31)
    assert PAGE.startswith(out[: len(b"<html><head>")])
    assert b"data-cg-src" in out and out.endswith(FRAG)
    assert any("does not decode" in w and "dropped" in w for w in inner.warnings)
    assert r.close() == b""


def test_a_decode_failure_before_any_output_passes_the_body_as_it_came() -> None:
    """Nothing sent yet: the whole body goes out as the app sent it, also the
    chunks already read that produced no output (a gzip header alone)."""
    good = gzip.compress(PAGE)
    bad = good[:10] + b"\xff" * 40 + good[50:]
    for cut in (1, 10, 30, len(bad)):
        inner = HtmlRewriter(PERF, FRAG)
        r = EncodedHtmlRewriter(inner, "gzip")
        out = r.feed(bad[:cut]) + r.feed(bad[cut:]) + r.feed(b"tail") + r.close()
        assert out == bad + b"tail", cut
        assert any("passed through" in w for w in inner.warnings)


def test_a_body_decoded_piecewise_with_a_small_inflate_limit() -> None:
    """A tiny ``max_inflate`` (the limit reached again and again, also with all
    of a chunk read) loses no output."""
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS, 31):
        enc = zlib.compressobj(9, zlib.DEFLATED, wbits)
        body = enc.compress(PAGE + b"a" * 100_000) + enc.flush()
        coding = "gzip" if wbits == 31 else "deflate"
        r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), coding, max_inflate=7)
        out = b"".join(r.feed(body[i : i + 3]) for i in range(0, len(body), 3)) + r.close()
        assert decode(out, wbits) == rewritten(PAGE + b"a" * 100_000)


# -- br (the brotli module is optional: a stand-in with its API, and the real one if installed)


class _BrotliError(Exception):
    pass


class _FakeDecompressor:
    """brotli.Decompressor's API (>= 1.2: output_buffer_limit), on raw deflate."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        self._tail = b""
        self.sizes: list[int] = []

    def process(self, data: bytes, output_buffer_limit: int = 0) -> bytes:
        if self._tail and data:
            raise _BrotliError("more input before can_accept_more_data()")
        if self._d.eof and data:
            raise _BrotliError("bytes after the end of the stream")
        try:
            out = self._d.decompress(self._tail + data, output_buffer_limit)
        except zlib.error as exc:
            raise _BrotliError(str(exc)) from None
        self._tail = self._d.unconsumed_tail
        self.sizes.append(len(out))
        return out

    def can_accept_more_data(self) -> bool:
        return not self._tail

    def is_finished(self) -> bool:
        return self._d.eof


class _OldFakeDecompressor:
    """brotli.Decompressor before 1.2: process(data) inflates all of it."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)

    def process(self, data: bytes) -> bytes:
        try:
            return self._d.decompress(data)
        except zlib.error as exc:
            raise _BrotliError(str(exc)) from None

    def is_finished(self) -> bool:
        return self._d.eof


class _FakeCompressor:
    def __init__(self, quality: int = 11) -> None:
        assert 0 <= quality <= 11
        self._c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)

    def process(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._c.flush(zlib.Z_FINISH)


def _fake_brotli(monkeypatch: pytest.MonkeyPatch, decompressor: type) -> None:
    mod = types.ModuleType("brotli")
    mod.error = _BrotliError  # type: ignore[attr-defined]
    mod.Decompressor = decompressor  # type: ignore[attr-defined]
    mod.Compressor = _FakeCompressor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "brotli", mod)


def _fake_br(doc: bytes) -> bytes:
    c = _FakeCompressor()
    return c.process(doc) + c.finish()


@pytest.mark.parametrize("decompressor", [_FakeDecompressor, _OldFakeDecompressor])
def test_a_corrupt_br_body_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, decompressor: type
) -> None:
    """brotli.error was not caught: a corrupt br body raised out of both adapters."""
    _fake_brotli(monkeypatch, decompressor)
    good = _fake_br(PAGE)
    corrupt = b"\xff" * 8 + good
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "br")
    assert r.feed(corrupt) + r.close() == corrupt
    assert inner.warnings
    # after output went out: the encoded stream is finished, the rest dropped
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "br")
    if r.passthrough:  # a brotli without bounded decoding: passed through
        assert r.feed(good[:-10]) + r.feed(b"\xff" * 9) + r.close() == good[:-10] + b"\xff" * 9
        return
    first = r.feed(good[:-10])
    assert first
    out = first + r.feed(b"\xff" * 9) + r.feed(b"x") + r.close()
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    assert b"data-cg-src" in d.decompress(out) and d.eof


def test_real_brotli_corrupt_body() -> None:
    brotli = importlib.import_module("brotli")  # a dev dependency: runs, never skips
    good = brotli.compress(PAGE)
    corrupt = good[:5] + b"\x00garbage\xff" * 4 + good[5:]
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "br")
    assert r.feed(corrupt) + r.close() == corrupt
    assert inner.warnings


class _Recorder:
    """A body stage that records the size of each piece it is fed."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.total = 0

    def feed(self, chunk: bytes) -> bytes:
        self.sizes.append(len(chunk))
        self.total += len(chunk)
        return b""

    def close(self) -> bytes:
        return b""

    def finish(self, chunk: bytes) -> bytes:
        return self.feed(chunk) + self.close()


def test_a_br_bomb_is_decoded_in_bounded_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decompressor.process(chunk) inflated a whole chunk at once: a br body of a
    few hundred bytes took hundreds of MB. It is decoded max_inflate bytes at a
    time now (output_buffer_limit, can_accept_more_data: brotli >= 1.2)."""
    _fake_brotli(monkeypatch, _FakeDecompressor)
    size = 8 * 1024 * 1024
    body = _fake_br(b"<p>" + b" " * size + b"</p>")
    assert len(body) < 16 * 1024
    rec = _Recorder()
    r = EncodedHtmlRewriter(rec, "br", max_inflate=64 * 1024)
    assert not r.passthrough
    r.feed(body[:100])
    r.feed(body[100:])
    r.close()
    assert rec.total == size + 7
    assert max(rec.sizes) <= 64 * 1024


def test_br_passes_through_when_brotli_cannot_decode_in_bounded_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A brotli module older than 1.2 has no output limit: br is then treated
    as not decodable (passed through untouched, with the warning)."""
    _fake_brotli(monkeypatch, _OldFakeDecompressor)
    body = _fake_br(PAGE)
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "br")
    assert r.passthrough
    assert r.feed(body[:10]) + r.feed(body[10:]) + r.close() == body


def test_br_after_the_end_of_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_brotli(monkeypatch, _FakeDecompressor)
    body = _fake_br(PAGE)
    inner = HtmlRewriter(PERF, FRAG)
    r = EncodedHtmlRewriter(inner, "br")
    out = r.feed(body) + r.feed(b"\x00\x00") + r.close()
    assert decode(out, -zlib.MAX_WBITS) == rewritten(PAGE)
    assert any("after the end of the br stream" in w for w in inner.warnings)


def test_real_brotli_bomb_in_bounded_steps() -> None:
    brotli = importlib.import_module("brotli")  # a dev dependency (>= 1.2): runs, never skips
    assert hasattr(brotli.Decompressor(), "can_accept_more_data")
    c = brotli.Compressor(quality=5)
    block = b" " * (1 << 20)
    body = c.process(b"<p>") + b"".join(c.process(block) for _ in range(16)) + c.finish()
    rec = _Recorder()
    r = EncodedHtmlRewriter(rec, "br", max_inflate=64 * 1024)
    r.feed(body)
    r.close()
    assert rec.total == 3 + 16 * (1 << 20)
    assert max(rec.sizes) <= 2 * 64 * 1024  # the buffer stops growing past the limit
    good = brotli.compress(PAGE)
    r = EncodedHtmlRewriter(HtmlRewriter(PERF, FRAG), "br", max_inflate=256)
    out = b"".join(r.feed(good[i : i + 7]) for i in range(0, len(good), 7)) + r.close()
    assert brotli.decompress(out) == rewritten(PAGE)
