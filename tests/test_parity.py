"""One scenario table, run through both the ASGI and the WSGI adapter.

Every bullet of "The gate" (issue 2) has rows here. Cookie headers may use
placeholders filled per gate: ``{accepted}`` (performance granted), ``{refused}``,
``{tampered}``, ``{expired}``, ``{foreign}`` (signed with another key),
``{stale}`` (older policy version), ``{oldkey}`` (signed with the previous key).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cookiegate import ConsentChange, Gate
from cookiegate.gate import MAX_EXPIRE

from .conftest import KEY, KEY_OLD, Client, make_gate, make_policy
from .harness import Result, make_asgi

FORM = ("content-type", "application/x-www-form-urlencoded")
JSON = ("content-type", "application/json")
SAME = ("sec-fetch-site", "same-origin")


def tokens(gate: Gate) -> dict[str, str]:
    accepted = gate.make_token(["performance"], method="banner")
    # flip one character in the middle of the signature
    sig_at = accepted.rindex(".") + 3
    flipped = "A" if accepted[sig_at] != "A" else "B"
    old_gate = Gate(make_policy(), secret_keys=[KEY_OLD])
    foreign = Gate(make_policy(), secret_keys=["someone-elses-key-0123456789"])
    return {
        "accepted": accepted,
        "refused": gate.make_token([], method="banner"),
        "tampered": accepted[:sig_at] + flipped + accepted[sig_at + 1 :],
        "expired": gate.make_token(["performance"], decided_at=int(time.time()) - gate.max_age - 5),
        "foreign": foreign.make_token(["performance"]),
        "stale": gate.make_token(["performance"], policy_version="2020-01-01"),
        "oldkey": old_gate.make_token(["performance"], consent_id="rotated-consent-id"),
        "future": gate.make_token(["performance"], decided_at=int(time.time()) + 3600),
    }


@dataclass
class Row:
    id: str
    method: str = "GET"
    path: str = "/"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    scheme: str = "http"
    gate: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    # expectations
    status: int = 200
    app_called: bool = True
    app_cookies: set[str] | None = None  # names the app must receive (exactly)
    sets: set[str] = field(
        default_factory=set
    )  # Set-Cookie names that must be sent (not deletions)
    not_sets: set[str] = field(default_factory=set)  # names that must not be sent at all
    expires: set[str] = field(default_factory=set)  # names that must be expired (Max-Age=0)
    not_expires: set[str] = field(default_factory=set)
    headers_have: dict[str, str] = field(default_factory=dict)  # header -> substring
    headers_lack: set[str] = field(default_factory=set)
    json_has: dict[str, Any] = field(default_factory=dict)
    body_has: str = ""
    check: Callable[[Result, Gate], None] | None = None


def _reissued(res: Result, gate: Gate) -> None:
    token = res.cookie_value("cookiegate")
    assert token, "the consent cookie must be re-issued"
    # the new token verifies with the newest key alone
    only_new = Gate(make_policy(), secret_keys=[KEY])
    state = only_new.state_for(token)
    assert state.decided and state.allows("performance")
    assert state.consent_id == "rotated-consent-id"


def _secure_cookie(res: Result, gate: Gate) -> None:
    (value,) = [v for v in res.set_cookies() if v.startswith("__Host-cookiegate=")]
    attrs = [a.strip() for a in value.split(";")]
    assert (
        "Secure" in attrs and "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs
    )
    assert not any(a.lower().startswith("domain=") for a in attrs)
    max_age = int(next(a for a in attrs if a.startswith("Max-Age="))[8:])
    assert 0 < max_age <= gate.max_age < 400 * 86400


def _http_cookie(res: Result, gate: Gate) -> None:
    (value,) = [v for v in res.set_cookies() if v.startswith("cookiegate=")]
    assert "HttpOnly" in value and "SameSite=Lax" in value and "Secure" not in value


def _expired_on_domain(res: Result, gate: Gate) -> None:
    ga = [v for v in res.set_cookies() if v.startswith("_ga=;")]
    assert any("Domain=example.com" in v for v in ga) and any("Domain" not in v for v in ga)


def _vary_merged(res: Result, gate: Gate) -> None:
    assert res.header("vary") == "Accept-Encoding, Cookie, Sec-GPC"


def _clear_site_data(res: Result, gate: Gate) -> None:
    assert res.header("clear-site-data") == '"storage"'


ROWS: list[Row] = [
    # -- request side: the app sees only consented cookies ------------------
    Row(
        "undecided: app never sees _ga",
        headers=[("cookie", "_ga=GA1.1.1; session=s")],
        app_cookies={"session"},
        sets={"session"},
        not_sets={"_ga", "ab_variant"},
        not_expires={"_ga"},
        headers_have={"vary": "Cookie"},
    ),
    Row(
        "accepted: app sees _ga and it is set",
        headers=[("cookie", "cookiegate={accepted}; _ga=GA1.1.1")],
        app_cookies={"cookiegate", "_ga"},
        sets={"session", "_ga", "ab_variant"},
        headers_have={"vary": "Cookie"},
    ),
    Row(
        "refused: _ga stripped both ways and expired",
        headers=[("cookie", "cookiegate={refused}; _ga=GA1.1.1; _ga_ABC123=x; session=s")],
        app_cookies={"cookiegate", "session"},
        sets={"session"},
        not_sets={"ab_variant"},
        expires={"_ga", "_ga_ABC123"},
        not_expires={"session"},
    ),
    Row(
        "refused: expired on declared domains too",
        policy={"expire_domains": ["example.com"]},
        headers=[("cookie", "cookiegate={refused}; _ga=GA1.1.1")],
        expires={"_ga"},
        check=_expired_on_domain,
    ),
    Row(
        "unknown cookie blocked until everything is accepted",
        path="/unknown",
        headers=[("cookie", "mystery=1")],
        app_cookies=set(),
        not_sets={"mystery"},
    ),
    Row(
        "unknown cookie passes after accept_all",
        path="/unknown",
        headers=[("cookie", "cookiegate={accepted}; mystery=1")],
        app_cookies={"cookiegate", "mystery"},
        sets={"mystery"},
    ),
    Row(
        "unknown_category routes undeclared cookies",
        path="/unknown",
        policy={"unknown_category": "performance"},
        headers=[("cookie", "cookiegate={accepted}; mystery=1")],
        sets={"mystery"},
    ),
    Row(
        "malformed Cookie header never fails",
        headers=[("cookie", ';;=; "\x7f;_ga;==;x=\x01')],
        status=200,
    ),
    # -- response side -------------------------------------------------------
    Row(
        "any attribute order, Domain on the cookie",
        path="/attr-order",
        sets={"theme"},
        not_sets={"_ga"},
    ),
    Row("deletion cookies always pass", path="/delete", expires={"_ga", "ab_variant"}),
    Row(
        "Set-Cookie and Vary in any letter case",
        path="/?case=1&vary=Accept-Encoding",
        headers=[("cookie", "session=s")],
        sets={"session"},
        not_sets={"_ga", "ab_variant"},
        check=lambda r, g: _one_vary(r, "Accept-Encoding, Cookie, Sec-GPC"),
    ),
    Row(
        "a huge or vertical-tab Max-Age is not a deletion, and raises nothing",
        path="/odd-max-age",
        not_sets={"_ga", "ab_variant", "_gid"},
    ),
    Row(
        "an impossible Expires date is not a deletion",
        path="/bad-date",
        not_sets={"_ga", "ab_variant"},
    ),
    Row("Vary merged with the app's", path="/?vary=Accept-Encoding", check=_vary_merged),
    Row(
        "asking the state makes the response vary",
        path="/plain?ask=1",
        headers_have={"vary": "Cookie"},
    ),
    Row("nothing consent-dependent: no Vary", path="/plain", headers_lack={"vary"}),
    # -- consent cookie validity ---------------------------------------------
    Row(
        "tampered token is undecided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate={tampered}")],
        app_called=False,
        json_has={"decided": False, "categories": {"performance": False}},
    ),
    Row(
        "tampered token strips _ga",
        headers=[("cookie", "cookiegate={tampered}; _ga=1")],
        app_cookies={"cookiegate"},
        not_sets={"_ga"},
    ),
    Row(
        "expired token is undecided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate={expired}")],
        app_called=False,
        json_has={"decided": False},
    ),
    Row(
        "foreign-key token is undecided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate={foreign}")],
        app_called=False,
        json_has={"decided": False},
    ),
    Row(
        "stale policy version is undecided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate={stale}")],
        app_called=False,
        json_has={"decided": False},
    ),
    Row(
        "oversized token is undecided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate=" + "a" * 5000)],
        app_called=False,
        json_has={"decided": False},
    ),
    Row(
        "garbage token is undecided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate=%%%.\xff.x")],
        app_called=False,
        json_has={"decided": False},
    ),
    Row(
        "valid token is decided",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate={accepted}")],
        app_called=False,
        json_has={
            "decided": True,
            "categories": {"performance": True},
            "gpc": False,
            "policy_version": "2026-11-01",
        },
    ),
    Row(
        "key rotation: old key accepted and re-issued",
        gate={"secret_keys": [KEY_OLD, KEY]},
        headers=[("cookie", "cookiegate={oldkey}; _ga=1")],
        app_cookies={"cookiegate", "_ga"},
        sets={"_ga"},
        check=_reissued,
    ),
    Row(
        "https uses __Host- prefix and Secure",
        method="POST",
        path="/_cookiegate/consent",
        scheme="https",
        headers=[FORM],
        body=b"action=accept_all",
        status=303,
        app_called=False,
        check=_secure_cookie,
    ),
    Row(
        "http consent cookie is HttpOnly, Lax",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=reject_all",
        status=303,
        app_called=False,
        check=_http_cookie,
    ),
    # -- own endpoints -------------------------------------------------------
    Row(
        "accept_all form answers 303 to next",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, SAME, ("origin", "http://shop.test")],
        body=b"action=accept_all&next=%2Fcart%3Fx%3D1",
        status=303,
        app_called=False,
        sets={"cookiegate"},
        headers_have={"location": "/cart?x=1", "cache-control": "no-store"},
    ),
    Row(
        "reject_all expires refused cookies the browser sends",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, ("cookie", "cookiegate={accepted}; _ga=1; session=s")],
        body=b"action=reject_all",
        status=303,
        app_called=False,
        sets={"cookiegate"},
        expires={"_ga"},
        not_expires={"session"},
    ),
    Row(
        "save with a category",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, ("accept", "application/json")],
        body=b"action=save&category=performance",
        status=303,
        app_called=False,
        sets={"cookiegate"},
    ),
    Row(
        "JSON choice answers JSON",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b'{"categories": {"performance": true}}',
        app_called=False,
        json_has={"decided": True, "categories": {"performance": True}, "method": "api"},
    ),
    Row(
        "JSON action",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b'{"action": "reject_all"}',
        json_has={"decided": True, "categories": {"performance": False}},
        app_called=False,
    ),
    Row(
        "withdraw (JSON) tells what was destroyed",
        method="POST",
        path="/_cookiegate/withdraw",
        headers=[JSON, ("cookie", "cookiegate={accepted}; _ga=1; ab_variant=A")],
        app_called=False,
        json_has={
            "withdrawn": True,
            "method": "withdraw",
            "categories": {"performance": False},
            "expired_cookies": ["_ga", "ab_variant"],
        },
        expires={"_ga", "ab_variant"},
        headers_lack={"clear-site-data"},
    ),
    Row(
        "withdraw (form) redirects",
        method="POST",
        path="/_cookiegate/withdraw",
        headers=[FORM],
        body=b"next=/account",
        status=303,
        headers_have={"location": "/account"},
        app_called=False,
    ),
    Row(
        "withdraw sends Clear-Site-Data when configured (https)",
        method="POST",
        path="/_cookiegate/withdraw",
        scheme="https",
        headers=[JSON],
        gate={"clear_site_data": ['"storage"']},
        app_called=False,
        check=_clear_site_data,
    ),
    Row(
        "GET consent without cookie",
        path="/_cookiegate/consent",
        app_called=False,
        json_has={"decided": False, "consent_id": None, "gpc": False},
        headers_have={"cache-control": "no-store", "content-type": "application/json"},
    ),
    Row(
        "HEAD consent has no body",
        method="HEAD",
        path="/_cookiegate/consent",
        app_called=False,
        check=lambda r, g: _empty_body(r),
    ),
    Row(
        "unknown endpoint under the prefix", path="/_cookiegate/nope", status=404, app_called=False
    ),
    Row(
        "GET withdraw is 405",
        path="/_cookiegate/withdraw",
        status=405,
        app_called=False,
        headers_have={"allow": "POST"},
    ),
    Row(
        "PUT consent is 405",
        method="PUT",
        path="/_cookiegate/consent",
        status=405,
        app_called=False,
    ),
    # -- cross-site protection and redirects ---------------------------------
    Row(
        "cross-site Origin is 403",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, ("origin", "https://evil.example")],
        body=b"action=accept_all",
        status=403,
        app_called=False,
        not_sets={"cookiegate"},
        body_has="cross-site",
    ),
    Row(
        "Sec-Fetch-Site cross-site is 403",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, ("sec-fetch-site", "cross-site")],
        body=b"action=accept_all",
        status=403,
        app_called=False,
        not_sets={"cookiegate"},
    ),
    Row(
        "Sec-Fetch-Site same-site is 403",
        method="POST",
        path="/_cookiegate/withdraw",
        headers=[FORM, ("sec-fetch-site", "same-site")],
        status=403,
        app_called=False,
    ),
    Row(
        "Origin null is 403",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, ("origin", "null")],
        body=b"action=accept_all",
        status=403,
        app_called=False,
    ),
    Row(
        "trusted origin allowed",
        method="POST",
        path="/_cookiegate/consent",
        gate={"trusted_origins": ["https://www.shop.test"]},
        headers=[FORM, ("origin", "https://www.shop.test")],
        body=b"action=accept_all",
        status=303,
        app_called=False,
    ),
    Row(
        "off-site next is refused",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_all&next=https%3A%2F%2Fevil.example%2F",
        status=303,
        headers_have={"location": "/"},
        sets={"cookiegate"},
        app_called=False,
    ),
    Row(
        "protocol-relative next is refused",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_all&next=%2F%2Fevil.example",
        status=303,
        app_called=False,
        check=lambda r, g: _location(r, "/"),
    ),
    Row(
        "backslash next is refused",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_all&next=%2F%5Cevil.example",
        status=303,
        app_called=False,
        check=lambda r, g: _location(r, "/"),
    ),
    Row(
        "token decided in the future is refused",
        path="/_cookiegate/consent",
        headers=[("cookie", "cookiegate={future}")],
        app_called=False,
        json_has={"decided": False},
    ),
    Row(
        "key rotation: GET consent re-issues too",
        path="/_cookiegate/consent",
        gate={"secret_keys": [KEY_OLD, KEY]},
        headers=[("cookie", "cookiegate={oldkey}")],
        app_called=False,
        json_has={"decided": True},
        check=_reissued,
    ),
    Row(
        "refused: at most 50 expiries per response",
        headers=[("cookie", "cookiegate={refused}; " + "; ".join(f"x{i}=1" for i in range(300)))],
        app_cookies={"cookiegate"},
        check=lambda r, g: _at_most_expiries(r, 50),
    ),
    Row(
        "Origin null with Sec-Fetch-Site same-origin is allowed (no-referrer pages)",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, SAME, ("origin", "null")],
        body=b"action=accept_all",
        status=303,
        app_called=False,
        sets={"cookiegate"},
    ),
    Row(
        "trusted origin allowed with Sec-Fetch-Site same-site",
        method="POST",
        path="/_cookiegate/consent",
        gate={"trusted_origins": ["https://www.shop.test"]},
        headers=[FORM, ("sec-fetch-site", "same-site"), ("origin", "https://www.shop.test")],
        body=b"action=accept_all",
        status=303,
        app_called=False,
    ),
    Row(
        "a trusted origin counts with its scheme: its plain-http page is 403",
        method="POST",
        path="/_cookiegate/consent",
        gate={"trusted_origins": ["https://www.shop.test"]},
        headers=[FORM, ("sec-fetch-site", "cross-site"), ("origin", "http://www.shop.test")],
        body=b"action=accept_all",
        status=403,
        app_called=False,
    ),
    Row(
        "this host's plain-http page posting to it over https is 403",
        method="POST",
        path="/_cookiegate/consent",
        scheme="https",
        headers=[FORM, ("origin", "http://shop.test")],
        body=b"action=accept_all",
        status=403,
        app_called=False,
    ),
    Row(
        "an https page posting to this host over http (a TLS proxy) is accepted",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM, ("origin", "https://shop.test")],
        body=b"action=accept_all",
        status=303,
        app_called=False,
        sets={"cookiegate"},
    ),
    Row(
        "untrusted same-site origin is 403",
        method="POST",
        path="/_cookiegate/consent",
        gate={"trusted_origins": ["https://www.shop.test"]},
        headers=[FORM, ("sec-fetch-site", "same-site"), ("origin", "https://blog.shop.test")],
        body=b"action=accept_all",
        status=403,
        app_called=False,
    ),
    Row(
        "non-ASCII next is refused",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body="action=accept_all&next=/café".encode(),
        status=303,
        app_called=False,
        check=lambda r, g: _location(r, "/"),
    ),
    Row(
        "CR/LF in next is refused",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_all&next=%2Fa%0D%0ASet-Cookie%3A%20x%3D1",
        status=303,
        app_called=False,
        check=lambda r, g: _location(r, "/"),
    ),
    Row(
        "percent-encoded next stays as sent",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_all&next=%2Fcaf%25E2%2582%25AC",
        status=303,
        app_called=False,
        check=lambda r, g: _location(r, "/caf%E2%82%AC"),
    ),
    # -- malformed bodies ----------------------------------------------------
    Row(
        "deeply nested JSON is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b"[" * 100000,
        status=400,
        app_called=False,
        gate={"max_body": 200000},
        body_has="malformed JSON",
    ),
    Row(
        "malformed JSON is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b'{"categories": ',
        status=400,
        app_called=False,
        json_has={"status": 400},
        body_has="malformed JSON",
    ),
    Row(
        "JSON array is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b"[1, 2]",
        status=400,
        app_called=False,
    ),
    Row(
        "unknown category is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b'{"categories": {"marketing": true}}',
        status=400,
        app_called=False,
        body_has="marketing",
    ),
    Row(
        "non-boolean category is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[JSON],
        body=b'{"categories": {"performance": "yes"}}',
        status=400,
        app_called=False,
    ),
    Row(
        "missing action is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"foo=bar",
        status=400,
        app_called=False,
        body_has="action",
    ),
    Row(
        "unknown action is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_everything",
        status=400,
        app_called=False,
    ),
    Row(
        "non-UTF-8 form is 400",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=\xff\xfe",
        status=400,
        app_called=False,
    ),
    Row(
        "unsupported content type is 415",
        method="POST",
        path="/_cookiegate/consent",
        headers=[("content-type", "text/xml")],
        body=b"<a/>",
        status=415,
        app_called=False,
    ),
    Row(
        "oversized body is 413",
        method="POST",
        path="/_cookiegate/consent",
        headers=[FORM],
        body=b"action=accept_all&pad=" + b"x" * 20000,
        status=413,
        app_called=False,
    ),
    # -- GPC -----------------------------------------------------------------
    Row(
        "GPC with no choice refuses everything",
        path="/_cookiegate/consent",
        headers=[("sec-gpc", "1")],
        app_called=False,
        json_has={
            "decided": True,
            "gpc": True,
            "method": "gpc",
            "categories": {"performance": False},
        },
    ),
    Row(
        "GPC strips and expires _ga",
        headers=[("sec-gpc", "1"), ("cookie", "_ga=1; session=s")],
        app_cookies={"session"},
        not_sets={"_ga", "ab_variant"},
        expires={"_ga"},
        headers_have={"vary": "Sec-GPC"},
    ),
    Row(
        "GPC value other than 1 is ignored",
        path="/_cookiegate/consent",
        headers=[("sec-gpc", "true")],
        app_called=False,
        json_has={"decided": False, "gpc": False},
    ),
    Row(
        "GPC 0 is ignored",
        path="/_cookiegate/consent",
        headers=[("sec-gpc", "0")],
        app_called=False,
        json_has={"gpc": False},
    ),
    Row(
        "GPC: one of several headers is 1",
        path="/_cookiegate/consent",
        headers=[("sec-gpc", "0"), ("sec-gpc", "1")],
        app_called=False,
        json_has={"gpc": True},
    ),
    Row(
        "explicit choice wins over GPC",
        headers=[("sec-gpc", "1"), ("cookie", "cookiegate={accepted}; _ga=1")],
        app_cookies={"cookiegate", "_ga"},
        sets={"_ga"},
    ),
    Row(
        "explicit choice with GPC reports gpc",
        path="/_cookiegate/consent",
        headers=[("sec-gpc", "1"), ("cookie", "cookiegate={accepted}")],
        app_called=False,
        json_has={"gpc": True, "method": "banner", "categories": {"performance": True}},
    ),
    Row(
        "GPC can be turned off",
        path="/_cookiegate/consent",
        gate={"gpc": False},
        headers=[("sec-gpc", "1")],
        app_called=False,
        json_has={"decided": False, "gpc": False},
    ),
    Row(
        "gpc.json served",
        path="/.well-known/gpc.json",
        app_called=False,
        gate={"gpc_last_update": "2026-11-01"},
        json_has={"gpc": True, "lastUpdate": "2026-11-01"},
        headers_have={"content-type": "application/json"},
    ),
    Row(
        "gpc.json can be turned off",
        path="/.well-known/gpc.json",
        gate={"gpc_json": False},
        app_called=True,
    ),
    Row(
        "no gpc.json when GPC is not honoured (it would claim it is)",
        path="/.well-known/gpc.json",
        gate={"gpc": False},
        app_called=True,
    ),
]


BEACONS = {
    "beacons": [
        {"path": "/track", "category": "performance"},
        {"path": "/gtm/*", "category": "performance"},
    ]
}
SLASHED_BEACON = {"beacons": [{"path": "/collect/", "category": "performance"}]}
ROWS += [
    *(
        Row(
            f"beacon declared with a trailing slash, {path!r}: 204 (frameworks route it there)",
            path=path,
            policy=SLASHED_BEACON,
            status=204,
            app_called=False,
        )
        for path in ("/collect/", "/collect", "//collect/", "/collect//")
    ),
    Row(
        "beacon route, undecided: 204 without calling the app",
        path="/track",
        policy=BEACONS,
        status=204,
        app_called=False,
        headers_have={"x-cookiegate-blocked": "performance", "vary": "Cookie"},
        headers_lack={"content-length", "set-cookie"},
        check=lambda res, gate: _empty_body(res),
    ),
    Row(
        "beacon route, refused: 204 and the refused cookie it still sends is expired",
        method="POST",
        path="/track",
        headers=[("cookie", "cookiegate={refused}; _ga=GA1.1.1.1; session=s")],
        policy=BEACONS,
        status=204,
        app_called=False,
        expires={"_ga"},
        not_expires={"session"},
    ),
    Row(
        "beacon route, GPC: 204",
        path="/track",
        headers=[("sec-gpc", "1")],
        policy=BEACONS,
        status=204,
        app_called=False,
    ),
    Row(
        "beacon prefix route, undecided: 204",
        path="/gtm/g/collect",
        policy=BEACONS,
        status=204,
        app_called=False,
    ),
    *(
        Row(
            f"beacon prefix route, its directory {path!r}: 204 (frameworks route it there)",
            path=path,
            policy=BEACONS,
            status=204,
            app_called=False,
        )
        for path in ("/gtm/", "/gtm", "//gtm/", "/gtm//", "//gtm//g")
    ),
    Row(
        "a path that only starts like a beacon prefix reaches the app",
        path="/gtmx",
        policy=BEACONS,
        app_called=True,
        headers_lack={"x-cookiegate-blocked"},
    ),
    Row(
        "beacon route, consented: the app answers",
        path="/track",
        headers=[("cookie", "cookiegate={accepted}")],
        policy=BEACONS,
        app_called=True,
        headers_lack={"x-cookiegate-blocked"},
    ),
    Row(
        "beacon route with a trailing or doubled slash: still blocked",
        path="//track/",
        policy=BEACONS,
        status=204,
        app_called=False,
    ),
    Row(
        "a path that only starts like a beacon is not one",
        path="/tracker",
        policy=BEACONS,
        app_called=True,
    ),
]


def _one_vary(res: Result, expected: str) -> None:
    varies = [v for k, v in res.headers if k.lower() == "vary"]
    assert varies == [expected]


def _at_most_expiries(res: Result, limit: int) -> None:
    expired = [v for v in res.set_cookies() if "Max-Age=0" in v]
    assert 0 < len(expired) <= limit


def _empty_body(res: Result) -> None:
    assert res.body == b""


def _location(res: Result, expected: str) -> None:
    assert res.header("location") == expected


def _fill(text: str, toks: dict[str, str]) -> str:
    for key, value in toks.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_gate(row: Row, client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate(make_policy(**row.policy), **row.gate)
    toks = tokens(gate)
    client = client_for(gate)
    headers = [(k, _fill(v, toks)) for k, v in row.headers]
    res = client(row.method, row.path, headers, row.body, scheme=row.scheme)
    _check(row, res, gate)


SAFE_ROWS = [r for r in ROWS if r.method in ("GET", "HEAD")]


@pytest.mark.parametrize("row", SAFE_ROWS, ids=[r.id for r in SAFE_ROWS])
def test_gate_warm(row: Row) -> None:
    """The same table through ASGI for a visitor's second request: caches are
    warm and :meth:`Gate.quick` answers whatever it may (a cold gate answers the
    first). Both answers must be the same."""
    gate = make_gate(make_policy(**row.policy), **row.gate)
    toks = tokens(gate)
    client = make_asgi(gate)
    headers = [(k, _fill(v, toks)) for k, v in row.headers]
    first = client(row.method, row.path, headers, row.body, scheme=row.scheme)
    second = client(row.method, row.path, headers, row.body, scheme=row.scheme)
    _check(row, second, gate)
    assert _comparable(second) == _comparable(first)


_TOKEN_KINDS = ["accepted", "refused", "oldkey", "stale", "expired", "tampered", None]
_EXTRA_COOKIES = [
    "",
    "_ga=GA1.1.1",
    "session=s1",
    "_ga=1; session=s1; ab_variant=B",
    "mystery=1",
    "cookiegate_theme=dark",
]
_VISITORS = st.tuples(
    st.sampled_from(_TOKEN_KINDS),
    st.sampled_from(_EXTRA_COOKIES),
    st.sampled_from([None, "1", "0", "1, 1"]),
    st.sampled_from(["http", "https"]),
)
_VISITS = st.tuples(
    st.integers(0, 2),
    st.sampled_from(
        [
            "/",
            "/page",
            "/page?lang=de",
            "/page?etag=1",
            "/page?twice=1",
            "/page-gz",
            "/tracked",
            "/plain",
            "/delete",
            "/unknown",
            "/?ask=1",
            "/track",
            "/track/",
            "//track",
            "/gtm/x",
            "/_cookiegate/consent",
            "/.well-known/gpc.json",
        ]
    ),
    st.sampled_from(["GET", "HEAD"]),
    # the page's fragment follows these too (language, bots spared)
    st.sampled_from([None, "de", "fr-CH, fr;q=0.9", "en"]),
    st.sampled_from([None, "Mozilla/5.0 (compatible; Googlebot/2.1)", "Mozilla/5.0 Firefox/140"]),
)


@settings(max_examples=80, deadline=None)
@given(
    visitors=st.lists(_VISITORS, min_size=3, max_size=3),
    visits=st.lists(_VISITS, min_size=1, max_size=12),
    hide_from_bots=st.booleans(),
)
def test_quick_path_answers_as_begin_would(
    visitors: list[tuple[Any, ...]],
    visits: list[tuple[int, str, str, str | None, str | None]],
    hide_from_bots: bool,
) -> None:
    """Any sequence of visits by a few visitors, through a gate that remembers
    plans (Gate.quick), gets what a gate that never does gets: the same
    responses (pages with the same banner or settings control), the same
    cookies for the app."""
    policy = make_policy(**BEACONS)
    options: dict[str, Any] = {"secret_keys": [KEY_OLD, KEY], "gpc_json": True}
    options["hide_from_bots"] = hide_from_bots
    warm_gate = make_gate(policy, **options)
    cold_gate = make_gate(policy, **options)
    cold_gate.quick = lambda key, path: None  # type: ignore[method-assign]
    toks = tokens(warm_gate)
    warm, cold = make_asgi(warm_gate), make_asgi(cold_gate)
    for who, path, method, language, agent in visits:
        kind, extra, gpc, scheme = visitors[who]
        name = "__Host-cookiegate" if scheme == "https" else "cookiegate"
        parts = [f"{name}={toks[kind]}"] if kind else []
        parts += [extra] if extra else []
        headers = [("cookie", "; ".join(parts))] if parts else []
        headers += [("sec-gpc", gpc)] if gpc is not None else []
        headers += [("accept-language", language)] if language is not None else []
        headers += [("user-agent", agent)] if agent is not None else []
        a = warm(method, path, headers, scheme=scheme)
        b = cold(method, path, headers, scheme=scheme)
        assert _comparable(a) == _comparable(b), (visitors[who], path, method)
        assert a.app_state == b.app_state


def _comparable(res: Result) -> tuple[Any, ...]:
    """A result without what differs per response anyway (nonces, new consent ids
    and tokens, dates, and the consent cookie's Max-Age: the remaining validity,
    one second less when the clock ticks between the two requests)."""

    def clean(text: str) -> str:
        text = re.sub(r"nonce-[A-Za-z0-9+/=_-]+|nonce=\"[^\"]*\"", "nonce", text)
        text = re.sub(r"^((?:__Host-)?cookiegate=[^;]*; Max-Age=)\d+", r"\1N", text)
        return re.sub(r"(cookiegate[^=;\s]*=)[^;\s]+", r"\1token", text)

    headers = sorted((k.lower(), clean(v)) for k, v in res.headers if k.lower() != "date")
    return res.status, headers, clean(res.body.decode("latin-1")), res.app_called, res.app_cookie


def _check(row: Row, res: Result, gate: Gate) -> None:
    assert res.status == row.status, res.body
    assert res.app_called is row.app_called
    if row.app_cookies is not None:
        got = set()
        for part in (res.app_cookie or "").split(";"):
            if part.strip():
                got.add(part.split("=", 1)[0].strip())
        assert got == row.app_cookies
    deletions = {n for v in res.set_cookies() if "Max-Age=0" in v for n in [v.split("=", 1)[0]]}
    live = {
        n
        for v in res.set_cookies()
        if "Max-Age=0" not in v and not _past(v)
        for n in [v.split("=", 1)[0]]
    }
    assert row.sets <= live, res.set_cookies()
    assert not (row.not_sets & (live | deletions) - row.expires), res.set_cookies()
    assert row.expires <= deletions | {
        n for v in res.set_cookies() if _past(v) for n in [v.split("=", 1)[0]]
    }, res.set_cookies()
    assert not (row.not_expires & deletions), res.set_cookies()
    for name, part in row.headers_have.items():
        value = res.header(name)
        assert value is not None and part in value, (name, value)
    for name in row.headers_lack:
        assert res.header(name) is None, name
    if row.json_has:
        doc = res.json()
        for key, value in row.json_has.items():
            assert doc[key] == value, (key, doc)
    if row.body_has:
        assert row.body_has in res.body.decode()
    if row.check:
        row.check(res, gate)


def _past(set_cookie: str) -> bool:
    return "1970" in set_cookie


# -- flows: a decision, then the next request with the cookie it set ----------


def _consent_cookie(res: Result) -> str:
    value = res.cookie_value("cookiegate")
    assert value
    return value


def test_flow_accept_then_refuse(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate()
    client = client_for(gate)
    first = client("GET", "/", [("cookie", "_ga=GA1.1.1")])
    assert "_ga" not in first.set_cookie_names()

    accepted = client("POST", "/_cookiegate/consent", [FORM], b"action=accept_all&next=/")
    token = _consent_cookie(accepted)
    second = client("GET", "/", [("cookie", f"cookiegate={token}; _ga=GA1.1.1")])
    assert "_ga" in second.set_cookie_names()
    assert "_ga=GA1.1.1" in (second.app_cookie or "")

    refused = client(
        "POST",
        "/_cookiegate/consent",
        [FORM, ("cookie", f"cookiegate={token}")],
        b"action=reject_all",
    )
    token2 = _consent_cookie(refused)
    third = client("GET", "/", [("cookie", f"cookiegate={token2}; _ga=GA1.1.1")])
    assert "_ga" not in (third.app_cookie or "")
    assert any(v.startswith("_ga=;") and "Max-Age=0" in v for v in third.set_cookies())
    # the consent id survives the change of mind
    assert gate.state_for(token).consent_id == gate.state_for(token2).consent_id


def test_flow_on_consent_listener(client_for: Callable[[Gate], Client]) -> None:
    changes: list[ConsentChange] = []
    gate = make_gate(on_consent=changes.append)
    client = client_for(gate)
    client(
        "POST",
        "/_cookiegate/consent",
        [JSON],
        json.dumps({"categories": {"performance": True}}).encode(),
    )
    assert len(changes) == 1
    assert changes[0].current.allows("performance") and not changes[0].previous.decided
    assert changes[0].source == "api"


def test_listener_failure_keeps_the_choice(client_for: Callable[[Gate], Client]) -> None:
    def boom(change: ConsentChange) -> None:
        raise RuntimeError("listener down")

    gate = make_gate(on_consent=boom)
    res = client_for(gate)("POST", "/_cookiegate/consent", [FORM], b"action=accept_all")
    assert res.status == 303 and res.cookie_value("cookiegate")


def test_unknown_cookie_logged_once(
    client_for: Callable[[Gate], Client], caplog: pytest.LogCaptureFixture
) -> None:
    gate = make_gate()
    client = client_for(gate)
    with caplog.at_level(logging.WARNING, logger="cookiegate"):
        for _ in range(3):
            client("GET", "/unknown", [("cookie", "mystery=1")])
    hits = [r for r in caplog.records if "mystery" in r.getMessage()]
    assert len(hits) == 1


def test_a_decision_expires_a_bounded_number_of_refused_cookies(
    client_for: Callable[[Gate], Client],
) -> None:
    """POST consent / withdraw expire the refused cookies the browser sends, at
    most MAX_EXPIRE names (as on app responses), each once: a 12 KB Cookie
    header of distinct names made 4,501 Set-Cookie headers."""
    gate = make_gate()
    names = [f"u{i}" for i in range(1500)]
    cookie = "; ".join(f"{n}=1" for n in ["_ga", "_ga", *names])
    for path in ("/_cookiegate/consent", "/_cookiegate/withdraw"):
        res = client_for(gate)(
            "POST",
            path,
            [
                ("cookie", cookie),
                ("origin", "http://shop.test"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body=b"action=reject_all",
        )
        assert res.status in (200, 303), res.body
        expired = [n for n in res.set_cookie_names() if n != "cookiegate"]
        assert 0 < len(set(expired)) <= MAX_EXPIRE
        assert expired.count("_ga") == 1
