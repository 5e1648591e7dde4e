"""Google Consent Mode v2: mapping, snippets, JSON safety, configuration."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cookiegate import ConfigError
from cookiegate.consent_mode import (
    DATA_ATTRIBUTE,
    SIGNALS,
    ConsentMode,
    ConsentModeConfig,
    safe_json,
)

ALL = ("strictly_necessary", "performance", "marketing", "functional")
COMMAND = re.compile(r"gtag\('consent','(default|update)',(\{.*?\})\);")


def commands(snippet: str) -> list[tuple[str, dict[str, Any]]]:
    return [(m.group(1), json.loads(m.group(2))) for m in COMMAND.finditer(snippet)]


def test_signals_for_default_mapping() -> None:
    cm = ConsentMode(categories=ALL)
    none = cm.signals_for(frozenset())
    assert list(none) == list(SIGNALS)
    assert {k for k, v in none.items() if v == "granted"} == {"security_storage"}
    perf = cm.signals_for(frozenset({"performance"}))
    assert {k for k, v in perf.items() if v == "granted"} == {
        "security_storage",
        "analytics_storage",
    }
    every = cm.signals_for(frozenset(ALL))
    assert set(every.values()) == {"granted"}
    mkt = cm.signals_for(frozenset({"marketing"}))
    assert [mkt[s] for s in ("ad_storage", "ad_user_data", "ad_personalization")] == ["granted"] * 3
    assert mkt["analytics_storage"] == "denied"


def test_default_mapping_trimmed_to_the_policy() -> None:
    cm = ConsentMode(categories=["strictly_necessary", "performance"])
    assert dict(cm.mapping) == {"performance": ("analytics_storage",)}
    assert cm.signals_for(frozenset({"marketing"}))["ad_storage"] == "denied"


def test_signals_follow_the_policys_fold_of_catalogue_categories() -> None:
    """Without a marketing category the catalogue's ads cookies are the site's
    performance ones: consenting to performance consents to storing them
    (ad_storage, personalization_storage; else Google's ads tags would run while
    told ad_storage is denied), never to sending user data for ads or to
    personalised ads: those are purposes of their own."""
    from cookiegate import Policy

    policy = Policy()  # strictly_necessary and performance only
    assert policy.catalog_categories["marketing"] == "performance"
    cm = ConsentMode(categories=policy.categories, folded=policy.catalog_categories)
    granted = cm.signals_for(frozenset({"performance"}))
    denied = {"ad_user_data", "ad_personalization"}
    assert dict(granted) == {s: "denied" if s in denied else "granted" for s in SIGNALS}
    refused = cm.signals_for(frozenset())
    assert [k for k, v in refused.items() if v == "granted"] == ["security_storage"]


def test_snippet_undecided_has_default_only() -> None:
    cm = ConsentMode()
    s = cm.default_snippet("n0nce", None)
    assert s.startswith('<script nonce="n0nce">window.dataLayer=window.dataLayer||[];')
    assert "function gtag(){dataLayer.push(arguments);}" in s
    assert s.endswith("</script>")
    got = commands(s)
    assert [c for c, _ in got] == ["default"]
    default = got[0][1]
    assert default.pop("wait_for_update") == 500
    assert default == ConsentMode().signals_for(frozenset())
    assert "gtag('set','ads_data_redaction',true);" in s
    assert "url_passthrough" not in s
    assert 'addEventListener("cookiegate:consent"' in s


def test_snippet_returning_visitor_gets_update_after_default() -> None:
    cm = ConsentMode(ConsentModeConfig(wait_for_update=None, url_passthrough=True))
    s = cm.default_snippet(None, frozenset({"performance"}))
    assert s.startswith("<script>")
    got = commands(s)
    assert [c for c, _ in got] == ["default", "update"]
    assert "wait_for_update" not in got[0][1]
    assert got[1][1] == cm.signals_for(frozenset({"performance"}))
    assert s.index("consent','default'") < s.index("url_passthrough") < s.index("'update'")


def test_region() -> None:
    cm = ConsentMode(ConsentModeConfig(region=["DE", "US-CA"]))
    assert commands(cm.default_snippet(None))[0][1]["region"] == ["DE", "US-CA"]


def test_static_snippet_and_head_fragment() -> None:
    cm = ConsentMode(categories=ALL)
    frag = cm.head_fragment(frozenset({"marketing"}), inline=False)
    text = frag.decode("ascii")
    m = re.fullmatch(
        r'<script src="/_cookiegate/static/cookiegate-consent-mode.js" '
        + DATA_ATTRIBUTE
        + r'="([^"<>]*)"></script>',
        text,
    )
    assert m is not None, text
    assert "async" not in text and "defer" not in text
    data = json.loads(html.unescape(m.group(1)))
    assert data["update"] == cm.signals_for(frozenset({"marketing"}))
    assert data["default"]["analytics_storage"] == "denied"
    assert data["mapping"]["performance"] == ["analytics_storage"]
    assert data["signals"] == list(SIGNALS)
    assert json.loads(html.unescape(_attr(cm.head_fragment(None, inline=False))))["update"] is None
    with_nonce = cm.head_fragment(None, "abc", inline=False).decode()
    assert ' nonce="abc" ' in with_nonce
    assert cm.head_fragment(None, "abc") == cm.default_snippet("abc", None).encode()


def _attr(frag: bytes) -> str:
    found = re.search(DATA_ATTRIBUTE + r'="([^"]*)"', frag.decode())
    assert found is not None
    return found.group(1)


def test_static_file_ships_and_matches_the_contract() -> None:
    js = (Path(__file__).parents[2] / "static" / "cookiegate-consent-mode.js").read_text("utf-8")
    for needle in (
        DATA_ATTRIBUTE,
        "document.currentScript",
        '"cookiegate:consent"',
        'gtag("consent", "default"',
        'gtag("consent", "update"',
        "ads_data_redaction",
        "url_passthrough",
    ):
        assert needle in js


def test_bad_nonce_refused() -> None:
    with pytest.raises(ValueError, match="nonce"):
        ConsentMode().default_snippet('x"><script>', None)


@given(st.text())
def test_safe_json_is_parseable_and_inert(text: str) -> None:
    out = safe_json({"k": text, text: [text]})
    assert json.loads(out) == {"k": text, text: [text]}
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in out
    assert out.isascii()


def test_safe_json_escapes() -> None:
    assert safe_json("</script><!--&\u2028") == '"\\u003c/script\\u003e\\u003c!--\\u0026\\u2028"'


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mapping": {"performance": ["analytic_storage"]}}, "consent_mode.mapping.performance[0]"),
        ({"mapping": {"performance": ["security_storage"]}}, "consent_mode.mapping.performance[0]"),
        ({"mapping": {"performance": "analytics_storage"}}, "consent_mode.mapping.performance"),
        ({"mapping": ["performance"]}, "consent_mode.mapping"),
        ({"wait_for_update": -1}, "consent_mode.wait_for_update"),
        ({"wait_for_update": True}, "consent_mode.wait_for_update"),
        ({"wait_for_update": 1.5}, "consent_mode.wait_for_update"),
        ({"ads_data_redaction": 1}, "consent_mode.ads_data_redaction"),
        ({"url_passthrough": "no"}, "consent_mode.url_passthrough"),
        ({"region": "DE"}, "consent_mode.region"),
        ({"region": ["de"]}, "consent_mode.region[0]"),
        ({"region": ["DE", "Germany"]}, "consent_mode.region[1]"),
        ({"script_url": '/x.js"><b>'}, "consent_mode.script_url"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        ConsentModeConfig(**kwargs)
    assert err.value.field == field


def test_custom_mapping_checked_against_the_policy() -> None:
    cfg = ConsentModeConfig(mapping={"ads": ["ad_storage"]})
    with pytest.raises(ConfigError) as err:
        ConsentMode(cfg, categories=ALL)
    assert err.value.field == "consent_mode.mapping.ads"
    cm = ConsentMode(cfg, categories=[*ALL, "ads"])
    assert cm.signals_for(frozenset({"ads"}))["ad_storage"] == "granted"
    assert cm.signals_for(frozenset({"performance"}))["analytics_storage"] == "denied"


def test_strictly_necessary_cannot_be_mapped() -> None:
    """Its storage is security_storage, always granted; a mapping of it would
    never take effect (strictly necessary is never in a state's granted set)."""
    with pytest.raises(ConfigError) as info:
        ConsentMode(ConsentModeConfig(mapping={"strictly_necessary": ["functionality_storage"]}))
    assert info.value.field == "consent_mode.mapping.strictly_necessary"


def test_inline_snippet_is_well_formed_xml() -> None:
    """An application/xhtml+xml page is parsed as XML: a raw "<" or "&" in the
    inline script would be a fatal well-formedness error (no page at all)."""
    import xml.dom.minidom

    cm = ConsentMode(categories=["strictly_necessary", "performance", "marketing"])
    for granted in (None, frozenset({"performance"})):
        snippet = cm.default_snippet("n0nce", granted)
        xml.dom.minidom.parseString(f"<head>{snippet}</head>")
