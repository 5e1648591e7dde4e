"""Gate construction and the verified-token cache."""

from __future__ import annotations

import string
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cookiegate import ConfigError, Gate, Policy, RequestInfo
from cookiegate.inject import is_injectable

from ..conftest import KEY, make_gate, make_policy


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prefix": "_cookiegate/"}, "prefix"),
        ({"prefix": "/"}, "prefix"),
        ({"cookie_name": "a b"}, "cookie_name"),
        ({"cookie_name": "__Host-x"}, "cookie_name"),
        ({"max_age": 400 * 86400}, "max_age"),
        ({"max_age": 10}, "max_age"),
        ({"max_age": True}, "max_age"),
        ({"secure": "yes"}, "secure"),
        ({"gpc_last_update": "yesterday"}, "gpc_last_update"),
        ({"clear_site_data": ["cookies"]}, "clear_site_data[0]"),
        ({"trusted_origins": ["shop.example"]}, "trusted_origins[0]"),
        ({"on_consent": 3}, "on_consent"),
        ({"max_body": 10}, "max_body"),
        ({"token_cache_size": 0}, "token_cache_size"),
        ({"secret_keys": []}, "secret_keys"),
    ],
)
def test_gate_config_errors(kwargs: dict[str, Any], field: str) -> None:
    kwargs.setdefault("secret_keys", [KEY])
    with pytest.raises(ConfigError) as exc:
        Gate(make_policy(), **kwargs)
    assert exc.value.field == field


def test_a_ui_must_share_the_gates_prefix() -> None:
    """A UI built with its default prefix under ``Gate(prefix="/cg/")`` rendered
    forms posting to /_cookiegate/consent, which reached the app: no choice
    could be saved without JavaScript."""
    from cookiegate.ui import UI

    policy = make_policy()
    with pytest.raises(ConfigError, match="prefix='/cg/'") as exc:
        Gate(policy, secret_keys=[KEY], prefix="/cg/", ui=UI(policy))
    assert exc.value.field == "ui"
    Gate(policy, secret_keys=[KEY], prefix="/cg/", ui=UI(policy, prefix="/cg/"))


def test_policy_type_checked() -> None:
    with pytest.raises(ConfigError) as exc:
        Gate({"version": 1}, secret_keys=[KEY])  # type: ignore[arg-type]
    assert exc.value.field == "policy"


def test_cached_token_expiry_checked_on_every_hit() -> None:
    gate = make_gate(max_age=3600)
    now = int(time.time())
    token = gate.make_token(["performance"], decided_at=now)
    assert gate.state_for(token, now=now + 10).decided
    assert gate._state_cached.cache_info().currsize == 1
    later = gate.state_for(token, now=now + 3601)  # same cache entry, now expired
    assert not later.decided and later.reason == "expired"
    assert later.consent_id == gate.state_for(token, now=now).consent_id


def test_cache_is_bounded() -> None:
    gate = make_gate(token_cache_size=16)
    for i in range(100):
        gate.state_for(f"junk{i}")
    assert gate._state_cached.cache_info().currsize <= 16


def test_states() -> None:
    gate = make_gate()
    assert gate.state_for(None).reason == "none"
    assert gate.state_for("x.y").reason == "invalid"
    assert gate.state_for(gate.make_token([], policy_version="0")).reason == "stale"
    gpc = gate.state_for(None, gpc=True)
    assert gpc.decided and gpc.gpc and gpc.method == "gpc" and not gpc.allows("performance")
    assert gpc.allows("strictly_necessary")


def test_begin_never_raises_on_odd_input() -> None:
    gate = make_gate()
    for info in (
        RequestInfo("GET", "/", cookie="\x00\xff;;==", sec_gpc=["", "1,0", "\x00"]),
        RequestInfo("POST", "/_cookiegate/consent", origin="http://[::1", host=""),
        RequestInfo("POST", "/_cookiegate/consent", origin="%%%", sec_fetch_site=""),
        RequestInfo("BREW", "/_cookiegate/consent"),
    ):
        gate.begin(info)


def test_large_cookie_headers_are_not_cached() -> None:
    gate = make_gate()
    refused = gate.make_token([])
    for i in range(50):
        big = f"cookiegate={refused}; " + "; ".join(f"c{i}_{j}=1" for j in range(400))
        decision = gate.begin(RequestInfo("GET", "/", cookie=big))
        assert decision.cookie_header is not None
        assert len(decision.expire) <= 50
    assert gate._plan_cached.cache_info().currsize == 0


def test_reissued_cookie_never_outlives_max_age() -> None:
    gate = make_gate(max_age=3600)
    state = gate.state_for(gate.make_token(["performance"]))
    value = gate.consent_cookie(state, RequestInfo("GET", "/"))
    max_age = int(value.split("Max-Age=")[1].split(";")[0])
    assert 0 < max_age <= 3600


def test_beacon_under_the_gates_prefix_is_a_config_error() -> None:
    from cookiegate import Policy

    policy = Policy(beacons=[{"path": "/_cookiegate/track", "category": "performance"}])
    with pytest.raises(ConfigError) as exc:
        Gate(policy, secret_keys=["k" * 32])
    assert exc.value.field == "beacons[0].path"
    with pytest.raises(ConfigError):
        Gate(Policy(beacons=[{"path": "/*", "category": "performance"}]), secret_keys=["k" * 32])


def test_negotiated_locale_follows_a_later_use_locale() -> None:
    """The banner and the tracking gate share one negotiation per response; a
    site that picks the language afterwards still gets its choice."""
    gate = make_gate()
    info = RequestInfo("GET", "/", host="shop.test", accept_language="de-DE,de;q=0.9")
    decision = gate.begin(info)
    assert gate._locale(decision) == "de"
    decision.use_locale("ko")
    assert gate._locale(decision) == "ko"
    decision.use_locale(None)
    assert gate._locale(decision) == "de"


def _allowed(gate: Gate, granted: list[str], raw: bytes, path: str = "/") -> bool:
    state = gate.state_for(gate.make_token(granted))
    return gate.set_cookie_allowed(state, raw, RequestInfo("GET", path, host="shop.test"))


def test_blocked_set_cookie_values_remembered_per_value_not_per_visitor() -> None:
    """A refused visitor's pages send the same Set-Cookie values again and again:
    the verdict's parts (category, deletion) are kept per raw value, the verdict
    itself still follows each visitor's consent."""
    gate = make_gate()
    ga = b"ab_variant=B; Max-Age=100; Path=/"
    gone = b"ab_variant=; Max-Age=0; Path=/"
    for _ in range(2):  # the second round answers from the cache
        assert not _allowed(gate, [], ga)
        assert _allowed(gate, ["performance"], ga)
        assert _allowed(gate, [], gone)  # deletions always pass
        assert _allowed(gate, [], b"session=s1; Path=/")
    assert ga in gate._set_cookie_raw and gone in gate._set_cookie_raw


def test_expires_based_values_are_read_with_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Expires date in the future blocks; once the clock passes it the same
    value deletes the cookie and passes (so it is never remembered)."""
    gate = make_gate()
    when = time.time() + 100
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
    raw = f"ab_variant=B; Expires={date}; Path=/".encode()
    assert not _allowed(gate, [], raw)
    assert not _allowed(gate, [], raw)
    later = when + 60
    monkeypatch.setattr(time, "time", lambda: later)
    assert _allowed(gate, [], raw)


def test_set_cookie_classified_by_path_is_never_remembered_by_value() -> None:
    """A rule narrowed to a path classifies the same value differently by where
    it is set: no value cache may carry one answer to the other."""
    from cookiegate import CookieRule

    rules = [
        CookieRule("pref", "strictly_necessary", path="/admin"),
        CookieRule("pref", "performance"),
    ]
    gate = make_gate(make_policy(cookies=rules))
    raw = b"pref=1; Max-Age=100"
    for _ in range(2):
        assert not _allowed(gate, [], raw, "/shop")
        assert _allowed(gate, [], raw, "/admin")


# -- consent ids --------------------------------------------------------------


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**48 - 1))
def test_consent_ids_sort_by_their_time(a: int, b: int) -> None:
    from cookiegate.consent import _SORTABLE, new_consent_id

    ia, ib = new_consent_id(a), new_consent_id(b)
    assert len(ia) == len(ib) == 24
    # the prefix: the 48-bit time in seconds as 8 digits of 6 bits in the sortable alphabet
    assert ia[:8] == "".join(_SORTABLE[(a >> shift) & 63] for shift in range(42, -1, -6))
    assert set(ia + ib) <= set(string.ascii_letters + string.digits + "-_")
    if a != b:
        assert (ia[:8] < ib[:8]) == (a < b)
    else:
        assert ia[:8] == ib[:8] and ia != ib  # the random part differs


def test_new_consent_ids_are_random_after_the_time_and_check_their_range() -> None:
    from cookiegate.consent import new_consent_id

    ids = {new_consent_id(1_796_000_000) for _ in range(1000)}
    assert len(ids) == 1000 and len({i[:8] for i in ids}) == 1
    # by default the time is now, in whole seconds (not ms: the id tells no more)
    before = int(time.time())
    made = new_consent_id()[:8]
    after = int(time.time())
    assert made in {new_consent_id(before)[:8], new_consent_id(after)[:8]}
    with pytest.raises(ValueError):
        new_consent_id(-1)
    with pytest.raises(ValueError):
        new_consent_id(2**48)


def test_a_new_decision_gets_a_time_ordered_id_and_keeps_it_on_update() -> None:
    gate = Gate(Policy(version="1"), secret_keys=["k" * 32])
    first = gate.state_for(gate.make_token(["performance"]))
    assert first.consent_id is not None and len(first.consent_id) == 24
    later = gate.state_for(gate.make_token([], consent_id=first.consent_id))
    assert later.consent_id == first.consent_id


@given(
    st.binary(max_size=40)
    | st.sampled_from(
        [
            b"text/html",
            b"TEXT/HTML; charset=x",
            b"application/xhtml+xml",
            b"text/plain",
            b"text/htmlx",
        ]
    )
)
def test_content_kind_is_the_plain_definition(content_type: bytes) -> None:
    """The memoised Content-Type test gives what the direct tests give, first
    call and memoised, and the memo stays bounded."""
    from cookiegate import gate as gate_module

    text = content_type.decode("latin-1")
    want = (b"htm" in content_type.lower(), text if is_injectable(text, None) else None)
    assert gate_module._content_kind(content_type) == want
    assert gate_module._CONTENT_KINDS.get(content_type) == want
    for i in range(300):
        gate_module._content_kind(b"text/x-%d" % i)
    assert len(gate_module._CONTENT_KINDS) <= 256


def test_a_nameless_cookie_passes_only_if_its_value_read_as_a_name_would() -> None:
    """``_ga`` without ``=`` is a nameless cookie to a browser and to cookiegate,
    but werkzeug (Flask) and PHP read it as a cookie named ``_ga``: it reaches
    the app only when both readings are allowed."""
    from cookiegate import Category

    policy = make_policy(
        categories=[Category("performance", "P", "p"), Category("functional", "F", "f")],
        unknown_category="functional",
    )
    gate = make_gate(policy)
    functional = gate.make_token(["functional"])
    decision = gate.begin(RequestInfo("GET", "/", cookie=f"_ga; cookiegate={functional}; mine"))
    assert decision.cookie_header is not None
    assert "_ga" not in decision.cookie_header and "mine" in decision.cookie_header
    everything = gate.make_token(["functional", "performance"])
    decision = gate.begin(RequestInfo("GET", "/", cookie=f"_ga; cookiegate={everything}"))
    assert decision.cookie_header is None  # all kept: the header goes as it came


def test_trusted_origins_keep_their_scheme_and_the_old_host_view() -> None:
    gate = make_gate(trusted_origins=["https://Partner.example", "http://shop.test:8080"])
    assert gate.trusted_origins == {"https://partner.example", "http://shop.test:8080"}
    assert gate.trusted_hosts == {"partner.example", "shop.test:8080"}
