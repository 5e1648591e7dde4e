"""Policy: validation, classification order, the catalogue, TOML loading."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cookiegate import Category, ConfigError, CookieRule, Policy
from cookiegate.policy import catalog


def test_defaults() -> None:
    p = Policy()
    assert list(p.categories) == ["strictly_necessary", "performance"]
    assert p.optional == ("performance",)
    assert p.categories["strictly_necessary"].necessary


def test_catalogue_size_and_shape() -> None:
    rules = catalog()
    assert len(rules) >= 80
    raw = tomllib.loads(
        (Path(__file__).parents[2] / "src/cookiegate/catalog/cookies.toml").read_text("utf-8")
    )
    for entry in raw["cookie"]:
        assert entry["source"], entry["name"]
        assert "lifetime" in entry, entry["name"]
        if entry["category"] == "strictly_necessary":
            assert entry.get("justification"), entry["name"]
    pairs = [(e["name"], e["match"]) for e in raw["cookie"]]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("_ga", "performance"),
        ("_ga_ABC123XYZ", "performance"),
        ("_gid", "performance"),
        ("_fbp", "performance"),  # marketing folds into performance by default
        ("_hjSessionUser_123456", "performance"),
        ("_pk_id.1.1fff", "performance"),
        ("_clck", "performance"),
        ("ajs_anonymous_id", "performance"),
        ("hubspotutk", "performance"),
        ("sessionid", "strictly_necessary"),
        ("csrftoken", "strictly_necessary"),
        ("AWSALB", "strictly_necessary"),
        ("__cf_bm", "strictly_necessary"),
        ("euconsent-v2", "strictly_necessary"),
        ("totally_unknown_cookie", None),
    ],
)
def test_catalogue_classification(name: str, category: str | None) -> None:
    assert Policy().category_of(name) == category


def test_marketing_category_receives_marketing_cookies() -> None:
    p = Policy(categories=[Category("performance"), Category("marketing")])
    assert p.category_of("_fbp") == "marketing"
    assert p.category_of("_ga") == "performance"


def test_site_rules_win_over_catalogue() -> None:
    p = Policy(cookies=[CookieRule("_ga", "strictly_necessary")])
    assert p.category_of("_ga") == "strictly_necessary"
    assert p.rule_for("_ga") is not None and p.rule_for("_ga").origin == "site"  # type: ignore[union-attr]


def test_match_kinds_and_priority() -> None:
    p = Policy(
        use_catalog=False,
        cookies=[
            CookieRule("exp_*", "performance", match="glob"),
            CookieRule(r"exp_keep", "strictly_necessary"),
            CookieRule(r"mp_[0-9a-f]+_mixpanel", "performance", match="regex"),
        ],
    )
    assert p.category_of("exp_1") == "performance"
    assert p.category_of("exp_keep") == "strictly_necessary"  # exact beats pattern
    assert p.category_of("mp_abc123_mixpanel") == "performance"
    assert p.category_of("mp_xyz_mixpanel") is None  # fullmatch, not search


def test_domain_and_path_constraints() -> None:
    p = Policy(
        use_catalog=False,
        cookies=[
            CookieRule("pref", "strictly_necessary", domain="shop.example", path="/account"),
            CookieRule("pref", "performance"),
        ],
    )
    assert p.category_of("pref", "shop.example", "/account/orders") == "strictly_necessary"
    assert p.category_of("pref", "www.shop.example", "/account") == "strictly_necessary"
    assert p.category_of("pref", "evilshop.example", "/account") == "performance"
    assert p.category_of("pref", "shop.example", "/accounts") == "performance"


def test_classification_cache_is_bounded() -> None:
    p = Policy(use_catalog=False)
    for i in range(20000):
        p.category_of(f"random{i}")
    assert len(p._fast) <= 8192 and len(p._candidates_cache) <= 8192


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version": ""}, "version"),
        ({"version": True}, "version"),
        ({"categories": [Category("Bad Name")]}, "categories[0].name"),
        ({"categories": [Category("performance"), Category("performance")]}, "categories[1].name"),
        ({"categories": [Category("performance", necessary=True)]}, "categories[0].necessary"),
        ({"categories": [Category("analytics")]}, "catalog_categories.performance"),
        ({"cookies": [CookieRule("x", "marketting")]}, "cookies[0].category"),
        ({"cookies": [CookieRule("x(", "performance", match="regex")]}, "cookies[0].name"),
        ({"cookies": [CookieRule("x", "performance", match="fuzzy")]}, "cookies[0].match"),  # type: ignore[arg-type]
        ({"cookies": [CookieRule("x", "performance", path="nope")]}, "cookies[0].path"),
        ({"cookies": [{"name": "x"}]}, "cookies[0].category"),
        ({"cookies": [{"name": "x", "category": "performance", "colour": 1}]}, "cookies[0].colour"),
        ({"unknown_category": "nope"}, "unknown_category"),
        (
            {"cookies": [CookieRule("x", "performance", lifetime_seconds=True)]},
            "cookies[0].lifetime_seconds",
        ),
        (
            {"cookies": [{"name": "x", "category": "performance", "justification": 1}]},
            "cookies[0].justification",
        ),
        ({"catalog_categories": {"marketing": "nope"}}, "catalog_categories.marketing"),
        ({"expire_domains": [""]}, "expire_domains[0]"),
        ({"beacons": [{"path": "track", "category": "performance"}]}, "beacons[0].path"),
        ({"beacons": [{"path": "/a*b", "category": "performance"}]}, "beacons[0].path"),
        ({"beacons": [{"path": "/t", "category": "nope"}]}, "beacons[0].category"),
        ({"beacons": [{"path": "/t", "category": "strictly_necessary"}]}, "beacons[0].category"),
        ({"beacons": [{"path": "/t"}]}, "beacons[0].category"),
        ({"beacons": [{"path": "/t", "category": "performance", "x": 1}]}, "beacons[0].x"),
        ({"beacons": ["/t"]}, "beacons[0]"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Policy(**kwargs)
    assert exc.value.field == field
    assert str(exc.value).startswith(field + ": ")


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "cookiegate.toml"
    path.write_text(
        """
version = "7"
expire_domains = ["example.com"]

[categories.performance]
label = "Performance"
description = "Analytics"

[categories.marketing]
label = "Marketing"

[[cookies]]
name = "ab_*"
match = "glob"
category = "performance"
vendor = "Shop"
""",
        "utf-8",
    )
    p = Policy.from_toml(path)
    assert p.version == "7"
    assert p.optional == ("performance", "marketing")
    assert p.category_of("ab_test") == "performance"
    assert p.category_of("_fbp") == "marketing"
    assert p.expire_domains == ("example.com",)


def test_beacons_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "cookiegate.toml"
    path.write_text(
        '[[beacons]]\npath = "/track"\ncategory = "performance"\n'
        '[[beacons]]\npath = "/gtm/*"\ncategory = "performance"\nvendor = "Google"\n',
        "utf-8",
    )
    p = Policy.from_toml(path)
    assert [(b.path, b.category) for b in p.beacons] == [
        ("/track", "performance"),
        ("/gtm/*", "performance"),
    ]
    assert p.beacons[1].matches("/gtm/js") and not p.beacons[1].matches("/gtmx")
    assert all(p.beacons[1].matches(x) for x in ("/gtm/", "/gtm", "//gtm//js", "/gtm//"))
    assert p.beacons[0].matches("/track") and not p.beacons[0].matches("/track/x")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version = ", None),
        ("colour = 1", "colour"),
        ("[categories.performance]\nlabel = 3", "categories.performance.label"),
        ("[[cookies]]\nname = 'x'\ncategory = 'nope'", "cookies[0].category"),
        ("cookies = 3", "cookies"),
        ("use_catalog = 'yes'", "use_catalog"),
        ("beacons = 3", "beacons"),
        ("[[beacons]]\npath = 1\ncategory = 'performance'", "beacons[0].path"),
        # [[cookies]] after [policy] is a top-level table in TOML: it was dropped
        ("[policy]\nversion = '2'\n[[cookies]]\nname = 'x'\ncategory = 'nope'", "cookies"),
        ("version = '2'\n[policy]\nunknown_category = 'performance'", "version"),
        ("policy = 3", "policy"),
    ],
)
def test_from_toml_errors(tmp_path: Path, text: str, field: str | None) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as exc:
        Policy.from_toml(path)
    assert exc.value.field == (field or str(path))


def test_missing_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Policy.from_toml(tmp_path / "nope.toml")


def test_unreadable_toml_files_are_config_errors(tmp_path: Path) -> None:
    """A directory, a path through a file, a non-UTF-8 file: one ConfigError
    naming the path (the CLI printed tracebacks); a UTF-8 BOM is read past."""
    (tmp_path / "latin1.toml").write_bytes(b'version = "caf\xe9"\n')
    (tmp_path / "file.toml").write_text('version = "1"\n', "utf-8")
    for path, says in (
        (tmp_path, "directory"),
        (tmp_path / "file.toml" / "x", "directory"),
        (tmp_path / "latin1.toml", "not UTF-8"),
    ):
        with pytest.raises(ConfigError, match=says) as exc:
            Policy.from_toml(path)
        assert exc.value.field == str(path)
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b'\xef\xbb\xbfversion = "7"\n')
    assert Policy.from_toml(bom).version == "7"
    nested = tmp_path / "nested.toml"
    nested.write_text(
        '[policy]\nversion = "3"\n[[policy.cookies]]\nname = "x"\ncategory = "performance"\n',
        "utf-8",
    )
    assert [r.name for r in Policy.from_toml(nested).rules if r.origin == "site"] == ["x"]


def test_unreadable_catalogue_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cookiegate import policy as policy_module

    def broken() -> object:
        raise FileNotFoundError("cookies.toml")

    monkeypatch.setattr("importlib.resources.files", lambda pkg: broken())
    with pytest.raises(ConfigError) as exc:
        policy_module.load_catalog()
    assert exc.value.field == "use_catalog"


def test_core_does_not_import_frameworks() -> None:
    code = (
        "import sys, cookiegate, cookiegate.gate, cookiegate.policy, cookiegate.cookies;"
        "bad = [m for m in ('starlette', 'flask', 'werkzeug', 'django') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "pattern",
    [
        *("([a-z0-9]+_?)+_id", "(a+)+", "(a*)*b", r"(\w+\s?)*$", "(a{1,3})+", "(x|y|xy)+"),
        "(?:(a+))*",
        # three (or more) in a row that trade characters: n**3 ways to split a name
        *(".*_.*_.*_.*_x", "a*a*a*a*a*b", r"\w+_\w+_\w+", "a.*?b.*?c.*?d", ".+-.+-.+"),
    ],
)
def test_a_regex_that_can_backtrack_exponentially_is_refused(pattern: str) -> None:
    """Site regexes run on every visitor's cookie names: one with nested or
    overlapping repetition would let a crafted name pin a CPU (ReDoS)."""
    with pytest.raises(ConfigError, match="exponential") as info:
        Policy(cookies=[CookieRule(pattern, "performance", match="regex")])
    assert info.value.field == "cookies[0].name"


@pytest.mark.parametrize(
    "pattern",
    [
        *("_ga_.*", r"_pk_id\..*", "mp_[0-9a-f]+_mixpanel"),
        *("([a-z0-9]++_?)++_id", "(?>a+)+b", "(a{3})+"),
        # a separator the repetitions cannot take keeps them linear; two stay quadratic
        *(r"_ga_[A-Z0-9]+\.[0-9]+\.[0-9]+", r"_pk_id\.\d+\.[0-9a-f]+", "[a-z]+_[a-z]+_[a-z]+"),
        *(".*_.*", r"x\d+y\d+z\d+", "[^_]+_[^_]+_[^_]+", ".*+_.*+_.*+_x", "(?>.*)_.*_.*"),
    ],
)
def test_safe_regexes_are_accepted(pattern: str) -> None:
    Policy(cookies=[CookieRule(pattern, "performance", match="regex")])


def test_patterns_are_not_tried_on_absurdly_long_names() -> None:
    from cookiegate.policy import MAX_PATTERN_NAME

    rule = Policy(cookies=[CookieRule("x.*", "performance", match="regex")]).rules[0]
    assert rule.matches_name("x" * MAX_PATTERN_NAME)
    assert not rule.matches_name("x" * (MAX_PATTERN_NAME + 1))  # undeclared: non-necessary
    exact = CookieRule("y" * 300, "performance")
    assert exact.matches_name("y" * 300)  # exact names have no such bound


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        (
            {"catalog_categories": {"marketing": "strictly_necessary"}},
            "catalog_categories.marketing",
            "cannot be strictly necessary",
        ),
        (
            {"catalog_categories": {"marketting": "performance"}},
            "catalog_categories.marketting",
            "not a catalogue category",
        ),
        (
            {"catalog_categories": {"marketing": ["performance"]}},
            "catalog_categories.marketing",
            "unknown category",
        ),
        ({"catalog_categories": "performance"}, "catalog_categories", "must map"),
        (
            {"unknown_category": "strictly_necessary"},
            "unknown_category",
            "cannot be strictly necessary",
        ),
        ({"unknown_category": ["performance"]}, "unknown_category", "unknown category"),
        ({"expire_domains": ["https://example.com"]}, "expire_domains[0]", "host name"),
        ({"expire_domains": "example.com"}, "expire_domains", "list of host names"),
        (
            {"cookies": [CookieRule("ab variant;", "performance")]},
            "cookies[0].name",
            "not a cookie name",
        ),
        (
            {"cookies": [CookieRule("ab_*", "performance")]},
            "cookies[0].name",
            'match = "glob"',
        ),
        (
            {"cookies": [{"name": "_pk_id.*", "category": "performance"}]},
            "cookies[0].name",
            "exact name",
        ),
        (
            {"cookies": [CookieRule("x", "performance", domain="example.com:8000")]},
            "cookies[0].domain",
            "host name",
        ),
        (
            {"cookies": [CookieRule("x", "performance", domain="https://example.com/")]},
            "cookies[0].domain",
            "host name",
        ),
        (
            {"beacons": [{"path": "/track?x=1", "category": "performance"}]},
            "beacons[0].path",
            "no query",
        ),
        (
            {"beacons": [{"path": "/track", "category": ["performance"]}]},
            "beacons[0].category",
            "must be a string",
        ),
    ],
)
def test_config_mistakes_are_config_errors_naming_the_field(
    options: dict[str, object], field: str, says: str
) -> None:
    """Every one of these was accepted (or raised a TypeError) and then never
    worked; two made tracking cookies pass without consent."""
    with pytest.raises(ConfigError, match=says) as info:
        Policy(**options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_valid_domains_and_catalogue_maps_still_pass() -> None:
    Policy(
        cookies=[CookieRule("x", "performance", domain=".Shop.Example.com")],
        expire_domains=["example.com", ".example.org"],
        catalog_categories={"marketing": "performance", "functional": "performance"},
        unknown_category="performance",
        beacons=[
            {"path": "/track/", "category": "performance"},
            {"path": "/gtm/*", "category": "performance"},
        ],
    )


def test_a_gate_table_in_the_policy_file_is_not_silently_ignored() -> None:
    with pytest.raises(ConfigError, match="Gate") as info:
        Policy.from_dict({"version": "1", "gate": {"gpc": False}})
    assert info.value.field == "gate"


def test_long_names_are_not_remembered() -> None:
    """The per-name caches are bounded in entries; names longer than the pattern
    bound are not kept at all, so long random names cannot fill memory."""
    from cookiegate.policy import MAX_PATTERN_NAME

    policy = Policy()
    for i in range(50):
        name = f"{i}" + "x" * 30_000
        assert policy.category_of(name) is None
    assert policy._candidates_cache == {} and policy._fast == {}
    assert policy.category_of("_ga") == "performance"
    assert "_ga" in policy._fast
    short = "y" * MAX_PATTERN_NAME
    policy.category_of(short)
    assert short in policy._fast
