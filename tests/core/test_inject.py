"""Streaming fragment insertion before </body>."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cookiegate.inject import HtmlInjector, is_injectable

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
def test_arbitrary_bytes_keep_everything(doc: bytes, points: list[int]) -> None:
    out = run(cuts(doc, points))
    assert out.replace(FRAG, b"", 1) == doc
    assert out.count(FRAG) >= 1


def test_hold_is_bounded() -> None:
    inj = HtmlInjector(FRAG, max_hold=1024)
    sent = inj.feed(b"<body></body>" + b"x" * 10_000)
    assert len(inj._buf) < 1024
    rest = inj.close()
    assert sent + rest == b"<body></body>" + b"x" * 10_000 + FRAG


def test_is_injectable() -> None:
    assert is_injectable("text/html; charset=utf-8", None)
    assert is_injectable("TEXT/HTML", "identity")
    assert not is_injectable("text/html", "gzip")
    assert not is_injectable("application/json", None)
    assert not is_injectable(None, None)
