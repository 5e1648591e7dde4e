"""CSP per consent state and Google Consent Mode in the app's pages, through both
adapters (the modules themselves: tests/core/test_csp.py, test_consent_mode.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import quote

from cookiegate import Gate
from cookiegate.consent_mode import ConsentModeConfig
from cookiegate.csp import CspConfig, allows_url

from .conftest import Client, make_gate, make_policy
from .harness import Result

GA = "https://www.google-analytics.com"
CSP = CspConfig({"performance": [GA]})
APP_CSP = f"default-src 'self'; script-src 'self' {GA}; img-src 'self' {GA}"


def page(client: Client, csp: str | None = None, cookie: str | None = None) -> Result:
    path = "/page" + (f"?csp={quote(csp)}" if csp else "")
    headers = [("cookie", cookie)] if cookie else []
    return client("GET", path, headers)


def csp_headers(res: Result, name: str = "content-security-policy") -> list[str]:
    return [v for k, v in res.headers if k.lower() == name]


def test_refused_tracker_hosts_leave_the_apps_policy(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate(csp=CSP)
    client = client_for(gate)
    (undecided,) = csp_headers(page(client, APP_CSP))
    assert not allows_url(undecided, "script-src", GA + "/analytics.js", "http://shop.test")
    assert not allows_url(undecided, "img-src", GA + "/collect", "http://shop.test")
    assert allows_url(undecided, "script-src", "http://shop.test/app.js", "http://shop.test")
    accepted = gate.make_token(["performance"])
    (granted,) = csp_headers(page(client, APP_CSP, f"cookiegate={accepted}"))
    assert allows_url(granted, "script-src", GA + "/analytics.js", "http://shop.test")
    refused = gate.make_token([])
    (no,) = csp_headers(page(client, APP_CSP, f"cookiegate={refused}"))
    assert not allows_url(no, "script-src", GA + "/analytics.js", "http://shop.test")


def test_banner_scripts_carry_the_policys_nonce(client_for: Callable[[Gate], Client]) -> None:
    res = page(client_for(make_gate(csp=CSP)), APP_CSP)
    (value,) = csp_headers(res)
    nonces = re.findall(r"'nonce-([^']+)'", value)
    assert len(nonces) == 1
    body = res.body.decode()
    assert f'nonce="{nonces[0]}"' in body
    # a fresh nonce per response
    (again,) = csp_headers(page(client_for(make_gate(csp=CSP)), APP_CSP))
    assert re.findall(r"'nonce-([^']+)'", again) != nonces
    assert "Cookie" in (res.header("vary") or "")


def test_report_only_leaves_the_enforced_policy_alone(
    client_for: Callable[[Gate], Client],
) -> None:
    gate = make_gate(csp=CspConfig({"performance": [GA]}, report_only=True))
    res = page(client_for(gate), APP_CSP)
    assert csp_headers(res) == [APP_CSP]
    (report,) = csp_headers(res, "content-security-policy-report-only")
    assert not allows_url(report, "script-src", GA + "/analytics.js", "http://shop.test")


def test_non_html_and_no_app_policy(client_for: Callable[[Gate], Client]) -> None:
    client = client_for(make_gate(csp=CSP))
    res = client("GET", "/plain?csp=" + quote(APP_CSP))
    assert csp_headers(res) == [APP_CSP]  # not a page: untouched
    assert csp_headers(page(client)) == []  # no app CSP and no base policy: nothing sent
    base = make_gate(csp=CspConfig({"performance": [GA]}, base_policy="default-src 'self'"))
    (made,) = csp_headers(page(client_for(base)))
    assert made.startswith("default-src 'self'")
    assert not allows_url(made, "script-src", GA + "/a.js", "http://shop.test")


def _head_script(res: Result) -> str:
    body = res.body.decode()
    start = body.index("<head>") + len("<head>")
    assert body[start:].startswith("<script"), body[start : start + 80]
    return body[start : body.index("</script>", start) + len("</script>")]


def test_consent_mode_default_comes_first_in_head(client_for: Callable[[Gate], Client]) -> None:
    gate = make_gate(consent_mode=True)
    client = client_for(gate)
    snippet = _head_script(page(client))
    assert "gtag('consent','default'" in snippet
    assert "gtag('consent','update',{" not in snippet  # undecided: nothing to announce
    accepted = gate.make_token(["performance"])
    snippet = _head_script(page(client, cookie=f"cookiegate={accepted}"))
    update = json.loads(snippet.split("gtag('consent','update',", 1)[1].split(");", 1)[0])
    assert update["analytics_storage"] == "granted"
    # this policy has no marketing category: ads cookies are performance ones,
    # and their signals follow (with a marketing category they would not)
    assert update["ad_storage"] == "granted"
    from cookiegate import Category

    split = make_policy(
        categories=[
            Category("performance", "Performance", "Analytics."),
            Category("marketing", "Marketing", "Ads."),
        ]
    )
    gate = make_gate(split, consent_mode=True)
    token = gate.make_token(["performance"])
    snippet = _head_script(page(client_for(gate), cookie=f"cookiegate={token}"))
    update = json.loads(snippet.split("gtag('consent','update',", 1)[1].split(");", 1)[0])
    assert (update["analytics_storage"], update["ad_storage"]) == ("granted", "denied")


def test_consent_mode_without_inline_script(client_for: Callable[[Gate], Client]) -> None:
    """Where the app's CSP forbids inline script and cookiegate does not manage
    the CSP, the static script form is used (its URL is content-hashed)."""
    client = client_for(make_gate(consent_mode=True))
    snippet = _head_script(page(client, "script-src 'self'"))
    assert re.search(r'src="/_cookiegate/static/cookiegate-consent-mode\.[0-9a-f]{8}\.js"', snippet)
    url = re.search(r'src="([^"]+)"', snippet)
    assert url is not None
    served = client("GET", url.group(1))
    assert served.status == 200
    assert b"cookiegate:consent" in served.body


def test_consent_mode_inline_with_the_managed_nonce(
    client_for: Callable[[Gate], Client],
) -> None:
    gate = make_gate(csp=CSP, consent_mode=ConsentModeConfig(wait_for_update=250))
    res = page(client_for(gate), "script-src 'self'")
    (value,) = csp_headers(res)
    (nonce,) = re.findall(r"'nonce-([^']+)'", value)
    snippet = _head_script(res)
    assert snippet.startswith(f'<script nonce="{nonce}">')
    assert "250" in snippet


def test_consent_mode_under_the_apps_strict_policy_carries_its_nonce(
    client_for: Callable[[Gate], Client],
) -> None:
    """With Consent Mode on and no CSP of cookiegate's own (or a report-only one),
    the enforced policy stays the app's: the Consent Mode default and
    cookiegate's scripts carry the app's nonce, or its strict policy blocks them
    and the app's tags run with no default at all."""
    strict = "script-src 'nonce-AppNonce123' 'strict-dynamic'; object-src 'none'"
    for gate in (
        make_gate(consent_mode=True),
        make_gate(consent_mode=True, csp=CspConfig({"performance": [GA]}, report_only=True)),
    ):
        res = page(client_for(gate), strict)
        assert csp_headers(res) == [strict]  # enforced: the app's, unchanged
        body = res.body.decode()
        tags = re.findall(r"<script\b[^>]*>", body)
        assert tags and all('nonce="AppNonce123"' in t for t in tags), tags
