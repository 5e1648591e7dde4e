"""The Cookie / Set-Cookie parser: robustness and the RFC 6265 subtleties."""

from __future__ import annotations

import calendar
import time

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cookiegate.cookies import (
    cookie_values,
    deletion_verdict,
    expire_cookie,
    is_deletion_header,
    parse_cookie_date,
    parse_cookie_header,
    parse_set_cookie,
    serialize_set_cookie,
    set_cookie_name,
)

token_chars = st.text(
    st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.!#$%&'*+^`|~"
    ),
    min_size=1,
    max_size=20,
)
value_chars = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-.!#$%&'()*+/:<>?@[]^`{|}~"), max_size=30
)


@given(st.text(max_size=500))
def test_parsers_never_raise(text: str) -> None:
    parse_cookie_header(text)
    cookie_values(text)
    sc = parse_set_cookie(text)
    assert sc.is_deletion() == is_deletion_header(text.encode("utf-8", "surrogatepass"))
    _ = sc.domain, sc.path
    set_cookie_name(text)
    parse_cookie_date(text)


@given(st.binary(max_size=300))
def test_parsers_never_raise_on_latin1_bytes(raw: bytes) -> None:
    text = raw.decode("latin-1")
    parse_cookie_header(text)
    parse_set_cookie(text).is_deletion()


@given(st.dictionaries(token_chars, value_chars, max_size=8))
def test_cookie_header_round_trip(cookies: dict[str, str]) -> None:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    pairs = parse_cookie_header(header)
    assert [n for n, _ in pairs] == list(cookies)
    assert "; ".join(seg for _, seg in pairs) == header
    assert cookie_values(header) == cookies


@given(token_chars, value_chars, st.integers(-10, 10**8), st.sampled_from(["/", "/a", "/a/b"]))
def test_set_cookie_round_trip(name: str, value: str, max_age: int, path: str) -> None:
    header = serialize_set_cookie(
        name, value, max_age=max_age, path=path, secure=True, samesite="Lax"
    )
    sc = parse_set_cookie(header)
    assert (sc.name, sc.value, sc.path) == (name, value, path)
    assert set_cookie_name(header) == name
    assert sc.is_deletion() is (max_age <= 0)
    assert is_deletion_header(header.encode()) is (max_age <= 0)


def test_expires_with_commas_stays_whole() -> None:
    sc = parse_set_cookie(
        "_ga=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/; Domain=.Example.com"
    )
    assert sc.attrs["expires"] == "Wed, 21 Oct 2037 07:28:00 GMT"
    assert sc.domain == "example.com"
    assert not sc.is_deletion()
    assert parse_set_cookie("_ga=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT").is_deletion()


def test_max_age_wins_over_expires() -> None:
    for raw in (b"a=1; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT", b"a=1; Max-Age=abc"):
        assert not is_deletion_header(raw)
    for raw in (
        b"a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; max-age=0",
        b"a=1; MAX-AGE = -5",
    ):
        assert is_deletion_header(raw)
    # a Max-Age browsers read otherwise than RFC 6265 (Chromium "+N" as N, Firefox
    # "Ns" as N and "forever" as a session cookie) is never taken for a deletion
    past = b"; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    for ma in (b"+31536000", b"31536000s", b"forever", b"x", b""):
        for raw in (b"_ga=1" + past + b"; Max-Age=" + ma, b"_ga=1; Max-Age=" + ma + past):
            assert not is_deletion_header(raw), raw
            assert not parse_set_cookie(raw.decode()).is_deletion(), raw
    assert not is_deletion_header(b"_ga=1; Max-Age" + past)
    assert not parse_set_cookie(
        "a=1; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    ).is_deletion()
    assert parse_set_cookie("a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; max-age=0").is_deletion()
    assert not parse_set_cookie("a=1; Max-Age=abc").is_deletion()


def test_cookie_dates() -> None:
    expected = calendar.timegm((2015, 10, 21, 7, 28, 0, 0, 0, 0))
    for text in (
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Wednesday, 21-Oct-15 07:28:00 GMT",
        "Wed Oct 21 07:28:00 2015",
        "21 oct 2015 07:28:00",
    ):
        assert parse_cookie_date(text) == expected, text
    for bad in (
        "",
        "tomorrow",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 25:00:00",
        "Thu, 31 Feb 2000 00:00:00 GMT",  # no such date: RFC 6265 says the parse fails
        "Mon, 31 Apr 2030 00:00:00 GMT",
    ):
        assert parse_cookie_date(bad) is None, bad


def test_nameless_and_odd_segments() -> None:
    assert parse_cookie_header("a=1;; b ; =c; d==e") == (
        ("a", "a=1"),
        ("", "b"),
        ("", "=c"),
        ("d", "d==e"),
    )
    assert set_cookie_name("justavalue; Path=/") == ""
    assert cookie_values('q="quoted"') == {"q": "quoted"}


def test_expire_cookie_prefixes() -> None:
    assert expire_cookie("_ga", domain="example.com") == (
        "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Path=/"
    )
    host = expire_cookie("__Host-x", path="/a", domain="example.com")
    assert "Secure" in host and "Domain" not in host and "Path=/;" in host + ";"
    assert "Secure" in expire_cookie("__Secure-x")


def _deletion_reference(raw: bytes) -> bool:
    """The plain reading of :func:`is_deletion_header`: split on ``;``, trim space
    and tab (RFC 6265 5.2's WSP, as browsers do); any Max-Age that is not an
    optional minus and digits: no deletion; else the last Max-Age wins, else the
    last Expires (an invalid one: no deletion)."""
    attrs = raw.lower().split(b";")[1:]
    for part in attrs:  # any Max-Age that is not -?digits: no deletion
        key, _, value = part.partition(b"=")
        if key.strip(b" \t") == b"max-age":
            value = value.strip(b" \t")
            if not (value[1:] if value[:1] == b"-" else value).isdigit():
                return False
    for part in reversed(attrs):
        key, _, value = part.partition(b"=")
        if key.strip(b" \t") == b"max-age":
            value = value.strip(b" \t")
            digits = value[1:] if value[:1] == b"-" else value
            if digits.isdigit():
                return value[:1] == b"-" or set(digits) == {ord("0")}
    for part in reversed(attrs):  # the last Expires: invalid, a session cookie
        key, _, value = part.partition(b"=")
        if key.strip(b" \t") == b"expires":
            ts = parse_cookie_date(value.strip(b" \t").decode("latin-1"))
            return ts is not None and ts <= time.time()
    return False


_WS = st.sampled_from([b"", b" ", b"\t", b"\x0b", b"  ", b"\n"])
_ATTR = st.tuples(
    _WS,
    st.sampled_from([b"max-age", b"Max-Age", b"MAX-AGE", b"expires", b"Expires", b"path", b"x"]),
    _WS,
    st.sampled_from([b"=", b"", b"=="]),
    _WS,
    st.sampled_from(
        [
            b"0",
            b"-1",
            b"00",
            b"7",
            b"63072000",
            b"-0",
            b"--5",
            b"0x",
            b"-3y",
            b"5x",
            b"x5",
            b"1 2",
            b"",
            b"Thu, 01 Jan 1970 00:00:00 GMT",
            b"Wed, 21 Oct 2037 07:28:00 GMT",
            b"\xff",
        ]
    ),
    _WS,
).map(b"".join)
_ATTR_BYTES = st.lists(_ATTR, max_size=5).map(lambda attrs: b";".join([b"a=1", *attrs]))


@settings(max_examples=500)
@given(st.one_of(_ATTR_BYTES, st.binary(max_size=60)))
def test_deletion_check_matches_the_plain_reading(raw: bytes) -> None:
    assert is_deletion_header(raw) is _deletion_reference(raw)


@settings(max_examples=500)
@given(st.one_of(_ATTR_BYTES, st.binary(max_size=60)))
def test_a_timeless_deletion_verdict_holds_at_any_time(raw: bytes) -> None:
    """``deletion_verdict`` says "timeless" only when the answer is the same for
    any clock (the gate caches those answers by the raw value)."""
    deletion, timeless = deletion_verdict(raw)
    assert deletion is is_deletion_header(raw)
    if timeless:
        for now in (0.0, 1e9, 2.2e9, 4e9):
            assert is_deletion_header(raw, now) is deletion


def test_max_age_of_thousands_of_digits_does_not_raise() -> None:
    big = "9" * 5000
    assert not is_deletion_header(f"_ga=1; Max-Age={big}".encode())
    assert not parse_set_cookie(f"_ga=1; Max-Age={big}").is_deletion()
    assert is_deletion_header(f"_ga=; Max-Age=-{big}".encode())
    assert is_deletion_header(b"_ga=; Max-Age=" + b"0" * 5000)
    assert parse_set_cookie("_ga=; Max-Age=" + "0" * 5000).is_deletion()


def test_only_space_and_tab_are_trimmed_around_attributes() -> None:
    """RFC 6265 5.2 trims WSP (space, tab), as browsers do: behind a vertical tab,
    form feed or no-break space ``Max-Age`` / ``Expires`` are other attributes,
    so the cookie is set, not deleted."""
    past = "Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    for text in (
        "_ga=1; Max-Age=\x0b0",
        "_ga=1;\x0bMax-Age=0",
        "_ga=1; Max-Age=0\x0c",
        "_ga=1;\xa0Max-Age=0",
        f"_ga=1;\x0b{past}",
    ):
        assert not is_deletion_header(text.encode("latin-1")), text
        assert not parse_set_cookie(text).is_deletion(), text
    for text in ("_ga=1;\tMax-Age=0 ", "_ga=1; \tMax-Age\t=\t-1", f"_ga=1;\t{past}\t"):
        assert is_deletion_header(text.encode("latin-1")), text
        assert parse_set_cookie(text).is_deletion(), text


@settings(max_examples=500)
@given(_ATTR_BYTES)
@example(b"a=1; expires=Thu, 01 Jan 1970 00:00:00 GMT; expires=x5")
@example(b"a=1; Max-Age=+5; Max-Age=0")
@example(b"a=1; Max-Age=0; Max-Age=x")
def test_a_parsed_set_cookie_and_the_raw_check_agree_on_deletion(raw: bytes) -> None:
    """``SetCookie.is_deletion`` (the API) and ``is_deletion_header`` (the gate's
    hot path) give one answer, also with several Max-Age / Expires attributes."""
    for now in (0.0, 2.2e9):
        assert parse_set_cookie(raw.decode("latin-1")).is_deletion(now) is is_deletion_header(
            raw, now
        ), raw
