"""cookiegate.ui: the banner, preference centre, declaration and static assets."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cookiegate import Category, ConfigError, ConsentState, CookieRule, Policy
from cookiegate.ui import LOCALES, UI

LOCALE_DIR = Path(__file__).resolve().parents[2] / "src" / "cookiegate" / "ui" / "locales"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'

SITE_RULES = [
    CookieRule("session", "strictly_necessary", vendor="Shop", purpose="Login", lifetime="session"),
    CookieRule(
        "ab_variant", "performance", vendor="Shop", purpose="Design testing", lifetime="30 days"
    ),
    CookieRule("_exp_*", "performance", match="glob", purpose="Experiments", lifetime_seconds=7200),
]

UNDECIDED = ConsentState(False)
GRANTED = ConsentState(True, granted=frozenset({"performance"}), method="banner")
REFUSED = ConsentState(True, method="banner")


def make_ui(**kwargs: object) -> UI:
    return UI(Policy(version="2026-11-01", cookies=SITE_RULES), **kwargs)  # type: ignore[arg-type]


# -- a tiny DOM, enough to check structure ------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()


_VOID = {"input", "link", "meta", "br", "img", "hr", "source", "area", "base", "col", "wbr"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.current = self.root
        self.nodes: list[Node] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        self.nodes.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        node: Node | None = self.current
        while node is not None:
            node.text += data
            node = node.parent


def parse(html: str) -> list[Node]:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree.nodes


def by_id(nodes: list[Node], ident: str) -> Node:
    found = [n for n in nodes if n.attrs.get("id") == ident]
    assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
    return found[0]


def all_outputs(ui: UI) -> list[str]:
    out = []
    for locale in LOCALES:
        for theme in (None, "dark", "light"):
            for state in (UNDECIDED, GRANTED, ConsentState(True, method="gpc", gpc=True)):
                out.append(
                    ui.banner(
                        locale=locale, state=state, next_path="/a", nonce="n0nce", changed=True
                    )
                )
                out.append(ui.preferences_page(locale=locale, state=state, next_path="/a"))
            out.append(ui.settings_control(locale=locale, next_path="/", theme=theme))
            out.append(ui.declaration_page(locale=locale, theme=theme, include_catalog=True))
    return out


# -- escaping ------------------------------------------------------------


def test_hostile_site_texts_are_escaped_everywhere() -> None:
    policy = Policy(
        version="1",
        categories=[
            Category("strictly_necessary", HOSTILE, HOSTILE, necessary=True),
            Category("performance", HOSTILE, HOSTILE),
        ],
        cookies=[
            CookieRule(HOSTILE, "performance", match="regex", vendor=HOSTILE, purpose=HOSTILE)
        ],
        use_catalog=False,
    )
    texts = dict.fromkeys(("banner_title", "policy_text", "changes_text", "save"), HOSTILE)
    ui = UI(policy, texts={"en": texts, "ko": {"changes_date": HOSTILE}})
    hostile_next = '/"><script>alert(1)</script>'
    outputs = [
        ui.banner(locale="en", state=UNDECIDED, next_path=hostile_next, changed=True),
        ui.banner(locale="ko", state=UNDECIDED, next_path="/", changed=True),
        ui.preferences_page(locale="en", state=GRANTED, next_path=hostile_next),
        ui.settings_control(locale="en", next_path=hostile_next),
        ui.declaration_page(locale="en"),
    ]
    for html in outputs:
        assert "<script>" not in html
        assert "<img" not in html
        assert "&lt;script&gt;" in html or html is outputs[3]
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    md = ui.declaration_markdown(locale="en")
    outside_code = re.sub(r"`[^`]*`", "", md)  # code spans show their content literally
    assert not re.search(r"(?<!\\)<", outside_code)  # every "<" is backslash-escaped
    assert "\\<script\\>" in outside_code


def test_unsafe_next_paths_become_root() -> None:
    ui = make_ui()
    for bad in ("javascript:alert(1)", "//evil.example/", "https://evil.example/", "/a\\b", ""):
        html = ui.preferences_page(locale="en", state=UNDECIDED, next_path=bad)
        nodes = parse(html)
        nexts = {n.attrs["value"] for n in nodes if n.attrs.get("name") == "next"}
        # the theme switch returns to this page, which then leads to "/"
        assert nexts == {"/", "/_cookiegate/preferences?next=/"}
        assert "evil" not in html and "javascript:" not in html


def test_privacy_url_must_be_http_or_a_path() -> None:
    with pytest.raises(ConfigError) as info:
        make_ui(texts={"en": {"privacy_url": "javascript:alert(1)"}})
    assert info.value.field == "texts.en.privacy_url"
    ui = make_ui(texts={"en": {"privacy_url": "https://example.com/privacy"}})
    html = ui.banner(locale="en", state=UNDECIDED, next_path="/")
    assert 'href="https://example.com/privacy"' in html
    # a site text given for one language is used for the others too
    assert 'href="https://example.com/privacy"' in ui.banner(
        locale="de", state=UNDECIDED, next_path="/"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"default_locale": "xx"}, "default_locale"),
        ({"texts": {"xx": {}}}, "texts.xx"),
        ({"texts": {"en": {"no_such_key": "x"}}}, "texts.en.no_such_key"),
        ({"texts": {"ko": {"cat_unknown_label": "x"}}}, "texts.ko.cat_unknown_label"),
        ({"texts": {"en": {"policy_text": 3}}}, "texts.en.policy_text"),
        ({"prefix": "nope"}, "prefix"),
    ],
)
def test_configuration_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_ui(**kwargs)
    assert info.value.field == field


# -- CSP: no inline code or style ----------------------------------------------


def test_no_inline_script_handlers_or_styles() -> None:
    ui = make_ui(texts={"en": {"privacy_url": "/privacy", "changes_date": "2026-11-01"}})
    for html in all_outputs(ui):
        nodes = parse(html)
        for node in nodes:
            assert "style" not in node.attrs, node
            assert not [a for a in node.attrs if a.lower().startswith("on")], node
            if node.tag == "script":
                assert node.attrs.get("src"), "inline <script>"
                assert "defer" in node.attrs
                assert not node.text.strip()
            if node.tag == "a":
                assert not (node.attrs.get("href") or "").lower().startswith("javascript:")
        assert "<style" not in html
        assert "javascript:" not in html


def test_script_gets_the_nonce() -> None:
    ui = make_ui()
    html = ui.banner(locale="en", state=UNDECIDED, next_path="/", nonce="r4nd0m")
    scripts = [n for n in parse(html) if n.tag == "script"]
    assert len(scripts) == 1
    assert scripts[0].attrs["nonce"] == "r4nd0m"
    assert scripts[0].attrs["src"] == ui.asset_url("cookiegate.js")
    no_nonce = ui.banner(locale="en", state=UNDECIDED, next_path="/")
    assert "nonce" not in no_nonce


# -- the first layer ------------------------------------------------------------


def test_first_layer_buttons_are_equal_siblings() -> None:
    ui = make_ui()
    for locale in LOCALES:
        nodes = parse(ui.banner(locale=locale, state=UNDECIDED, next_path="/shop?x=1"))
        banner = by_id(nodes, "cookiegate-banner")
        buttons = [n for n in nodes if n.tag == "button" and _inside(n, banner)]
        assert len(buttons) == 3
        parent = buttons[0].parent
        assert all(b.parent is parent for b in buttons)
        assert len({tuple(b.classes()) for b in buttons}) == 1
        assert all(b.attrs.get("type") == "submit" for b in buttons)
        assert parent is not None and parent.tag == "form"
        assert parent.attrs["method"] == "post"
        assert parent.attrs["action"] == "/_cookiegate/consent"
        accept, reject, customise = buttons
        assert (accept.attrs["name"], accept.attrs["value"]) == ("action", "accept_all")
        assert (reject.attrs["name"], reject.attrs["value"]) == ("action", "reject_all")
        # without JavaScript "Customise" lands on {prefix}preferences?next=<path>
        assert customise.attrs["formaction"] == "/_cookiegate/preferences"
        assert customise.attrs["formmethod"] == "get"
        assert "name" not in customise.attrs
        fields = [n for n in parent.children if n.tag == "input"]
        assert [(f.attrs["type"], f.attrs["name"], f.attrs["value"]) for f in fields] == [
            ("hidden", "next", "/shop?x=1")
        ]


def _inside(node: Node, ancestor: Node) -> bool:
    current = node.parent
    while current is not None:
        if current is ancestor:
            return True
        current = current.parent
    return False


def test_banner_region_is_labelled_and_localised() -> None:
    ui = make_ui()
    html = ui.banner(locale="ko", state=UNDECIDED, next_path="/")
    nodes = parse(html)
    root = by_id(nodes, "cookiegate")
    assert root.attrs["lang"] == "ko"
    assert root.attrs["dir"] == "ltr"
    banner = by_id(nodes, "cookiegate-banner")
    assert banner.attrs["role"] == "region"
    assert by_id(nodes, banner.attrs["aria-labelledby"] or "").text.strip() == "이 사이트의 쿠키"
    assert by_id(nodes, banner.attrs["aria-describedby"] or "")
    assert "모두 허용" in html and "모두 거부" in html and "맞춤 설정" in html
    dialog = next(n for n in nodes if n.attrs.get("role") == "dialog")
    assert dialog.attrs["aria-modal"] == "true"
    assert by_id(nodes, dialog.attrs["aria-labelledby"] or "")
    assert "hidden" in by_id(nodes, "cookiegate-preferences").attrs
    assert "hidden" in by_id(nodes, "cookiegate-settings").attrs
    assert 'href="/_cookiegate/cookies?next=/"' in html


def test_declaration_leads_back_to_where_the_visitor_was() -> None:
    """The banner's declaration link carries the page, and the declaration's
    links lead back there (directly, and through the preferences)."""
    ui = make_ui()
    banner = ui.banner(locale="en", state=UNDECIDED, next_path="/shop?page=2")
    assert 'href="/_cookiegate/cookies?next=/shop%3Fpage%3D2"' in banner
    page = ui.declaration_page(locale="en", next_path="/shop?page=2")
    hrefs = {n.attrs.get("href") for n in parse(page) if n.tag == "a"}
    assert {"/shop?page=2", "/_cookiegate/preferences?next=/shop%3Fpage%3D2"} <= hrefs
    assert 'href="//evil' not in ui.declaration_page(locale="en", next_path="//evil.example")


def test_theme_class_only_when_chosen() -> None:
    ui = make_ui()
    for theme, cls in (("dark", "cg-theme-dark"), ("light", "cg-theme-light")):
        html = ui.banner(locale="en", state=UNDECIDED, next_path="/", theme=theme)
        assert cls in by_id(parse(html), "cookiegate").classes()
    auto = ui.banner(locale="en", state=UNDECIDED, next_path="/", theme="bogus")
    assert by_id(parse(auto), "cookiegate").classes() == ["cg-root"]
    page = ui.preferences_page(locale="en", state=UNDECIDED, next_path="/", theme="dark")
    body = next(n for n in parse(page) if n.tag == "body")
    assert "cg-theme-dark" in body.classes()
    forms = [n for n in parse(page) if n.attrs.get("action") == "/_cookiegate/theme"]
    assert len(forms) == 1
    pressed = [n for n in parse(page) if n.attrs.get("aria-pressed") == "true"]
    assert [n.attrs["value"] for n in pressed] == ["dark"]


def test_policy_change_notice() -> None:
    ui = make_ui(texts={"en": {"changes_text": "New A/B cookie.", "changes_date": "2026-11-01"}})
    html = ui.banner(locale="en", state=UNDECIDED, next_path="/", changed=True)
    assert "What changed" in html
    assert "New A/B cookie." in html
    assert '<time datetime="2026-11-01">2026-11-01</time>' in html
    assert "What changed" not in ui.banner(locale="en", state=UNDECIDED, next_path="/")
    # another language: its own heading, the site's text and date
    de = ui.banner(locale="de", state=UNDECIDED, next_path="/", changed=True)
    assert "Was sich geändert hat" in de and "2026-11-01" in de
    # no site text: a generic notice
    generic = make_ui().banner(locale="fr", state=UNDECIDED, next_path="/", changed=True)
    assert "Ce qui a changé" in generic and "a changé depuis votre dernier choix" in generic


# -- the preference centre ------------------------------------------------------


def _boxes(html: str) -> dict[str, Node]:
    return {
        (n.attrs.get("id") or ""): n
        for n in parse(html)
        if n.tag == "input" and n.attrs.get("type") == "checkbox"
    }


@pytest.mark.parametrize("page", [True, False])
def test_optional_categories_are_never_pre_ticked(page: bool) -> None:
    ui = make_ui()

    def render(state: ConsentState) -> str:
        if page:
            return ui.preferences_page(locale="en", state=state, next_path="/")
        return ui.banner(locale="en", state=state, next_path="/")

    for state in (UNDECIDED, REFUSED, ConsentState(True, method="gpc", gpc=True)):
        boxes = _boxes(render(state))
        assert "checked" not in boxes["cg-cat-performance"].attrs
        assert boxes["cg-cat-performance"].attrs["name"] == "category"
        assert boxes["cg-cat-performance"].attrs["value"] == "performance"
        necessary = boxes["cg-cat-strictly_necessary"]
        assert "checked" in necessary.attrs and "disabled" in necessary.attrs
        assert "name" not in necessary.attrs
    assert "checked" in _boxes(render(GRANTED))["cg-cat-performance"].attrs


def test_every_checkbox_has_a_label_and_description() -> None:
    html = make_ui().preferences_page(locale="en", state=UNDECIDED, next_path="/")
    nodes = parse(html)
    for box_id, box in _boxes(html).items():
        labels = [n for n in nodes if n.tag == "label" and n.attrs.get("for") == box_id]
        assert len(labels) == 1 and labels[0].text.strip()
        assert by_id(nodes, box.attrs["aria-describedby"] or "").text.strip()


def test_preferences_page_works_without_javascript() -> None:
    ui = make_ui()
    html = ui.preferences_page(locale="en", state=GRANTED, next_path="/cart")
    assert html.lstrip().lower().startswith("<!doctype html>")
    nodes = parse(html)
    assert not [n for n in nodes if n.tag == "script"]
    forms = {n.attrs["action"]: n for n in nodes if n.tag == "form"}
    assert set(forms) == {"/_cookiegate/consent", "/_cookiegate/withdraw", "/_cookiegate/theme"}
    for action, form in forms.items():
        assert form.attrs["method"] == "post"
        # a choice returns to the page the visitor came from; the theme switch
        # to this page (unsaved ticks are not lost, the visitor stays here)
        back = (
            "/_cookiegate/preferences?next=/cart" if (action or "").endswith("theme") else "/cart"
        )
        assert any(
            c.attrs.get("name") == "next" and c.attrs.get("value") == back
            for c in parse_children(form)
        ), action
    actions = [
        n.attrs["value"] for n in nodes if n.tag == "button" and n.attrs.get("name") == "action"
    ]
    # "save" first: Enter in a checkbox submits the first button, never "accept all"
    assert actions == ["save", "reject_all", "accept_all"]
    buttons = [n for n in nodes if n.tag == "button" and n.attrs.get("name") == "action"]
    assert len({tuple(b.classes()) for b in buttons}) == 1
    # no withdraw form before a decision
    undecided = ui.preferences_page(locale="en", state=UNDECIDED, next_path="/")
    assert "/_cookiegate/withdraw" not in undecided
    assert "Ihre Auswahl ist gespeichert" in ui.preferences_page(
        locale="de", state=GRANTED, next_path="/"
    )


def parse_children(node: Node) -> list[Node]:
    out = []
    for child in node.children:
        out.append(child)
        out.extend(parse_children(child))
    return out


def test_gpc_is_explained() -> None:
    html = make_ui().preferences_page(
        locale="en", state=ConsentState(True, method="gpc", gpc=True), next_path="/"
    )
    assert "Global Privacy Control" in html


def test_settings_control() -> None:
    ui = make_ui()
    html = ui.settings_control(locale="es", next_path="/shop?a=1&b=2")
    nodes = parse(html)
    link = next(n for n in nodes if "data-cg-open" in n.attrs)
    assert link.tag == "a"
    assert link.attrs["href"] == "/_cookiegate/preferences?next=/shop%3Fa%3D1%26b%3D2"
    assert link.text.strip() == "Configuración de cookies"
    assert "hidden" not in by_id(nodes, "cookiegate-settings").attrs
    assert "data-cg-state" not in by_id(nodes, "cookiegate").attrs
    known = ui.settings_control(locale="en", next_path="/", state=GRANTED)
    state = by_id(parse(known), "cookiegate").attrs["data-cg-state"]
    assert state == '{"categories":{"performance":true},"decided":true}'


def test_close_button_name_contains_its_visible_text() -> None:
    ui = make_ui()
    for locale in LOCALES:
        nodes = parse(ui.banner(locale=locale, state=UNDECIDED, next_path="/"))
        close = next(n for n in nodes if "data-cg-close" in n.attrs)
        visible = close.text.replace("\u00d7", "").strip()  # the x icon
        assert visible and visible in (close.attrs["aria-label"] or "")


# -- locales ----------------------------------------------------------------------


def _locale(name: str) -> dict[str, str]:
    with open(LOCALE_DIR / f"{name}.toml", "rb") as fh:
        return tomllib.load(fh)


def test_every_locale_has_exactly_the_english_keys() -> None:
    en = _locale("en")
    assert sorted(p.stem for p in LOCALE_DIR.glob("*.toml")) == sorted(LOCALES)
    for name in LOCALES:
        data = _locale(name)
        assert set(data) == set(en), name
        for key, value in data.items():
            assert isinstance(value, str)
            if key in ("privacy_url", "changes_text", "changes_date"):
                assert value == "", (name, key)
            else:
                assert value.strip(), (name, key)
            assert ("{n}" in value) == ("{n}" in en[key]), (name, key)
            assert "<" not in value and ">" not in value, (name, key)


def test_translations_differ_from_english() -> None:
    en = _locale("en")
    for name in LOCALES:
        if name == "en":
            continue
        data = _locale(name)
        same = [k for k in en if en[k] and data[k] == en[k]]
        # brand-ish words may coincide ("Marketing", "Name")
        assert len(same) <= 4, (name, same)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
        ("de-CH", "de"),
        ("fr-CA;q=0.5, es;q=0.8", "es"),
        ("pt-BR, fr;q=0.3", "fr"),
        ("ja, zh;q=0.9", "en"),
        ("*", "en"),
        ("ko;q=0, de", "de"),
        ("EN-gb", "en"),
        ("es;q=1.0, ko;q=1.000", "es"),
        ("ko;q=1.5, de;q=0.1", "de"),  # an invalid q-value drops that entry
        ("ko;q=abc", "en"),
        (";;;,,,", "en"),
        ("\x00\xff", "en"),
    ],
)
def test_negotiate(header: str | None, expected: str) -> None:
    assert make_ui().negotiate(header) == expected


def test_negotiate_override_and_default() -> None:
    ui = make_ui(default_locale="de")
    assert ui.negotiate("ja") == "de"
    assert ui.negotiate("en", override="ko") == "ko"
    assert ui.negotiate("en", override="fr-FR") == "fr"
    assert ui.negotiate("es", override="xx") == "es"
    assert ui.negotiate("es", override="") == "es"


@given(st.one_of(st.none(), st.text(max_size=300)), st.one_of(st.none(), st.text(max_size=20)))
def test_negotiate_never_raises(header: str | None, override: str | None) -> None:
    assert make_ui().negotiate(header, override) in LOCALES


def test_negotiate_long_header_is_cheap() -> None:
    assert make_ui().negotiate("xx;q=0.5," * 100_000 + "ko") == "en"


def test_unknown_locale_falls_back_when_rendering() -> None:
    html = make_ui().banner(locale="xx", state=UNDECIDED, next_path="/")
    assert 'lang="en"' in html


def test_site_can_translate_its_own_categories() -> None:
    policy = Policy(
        version="1",
        categories=[Category("performance", "Analytics", "Counting visits.")],
        use_catalog=False,
    )
    ui = UI(policy, texts={"ko": {"cat_performance_label": "분석 쿠키"}})
    assert "분석 쿠키" in ui.preferences_page(locale="ko", state=UNDECIDED, next_path="/")
    # the site's own English label is kept where no translation was given
    assert "Analytics" in ui.preferences_page(locale="de", state=UNDECIDED, next_path="/")
    # built-in categories get the built-in translation
    assert "필수 쿠키" in ui.preferences_page(locale="ko", state=UNDECIDED, next_path="/")


# -- declaration ------------------------------------------------------------------


def test_declaration_lists_site_cookies() -> None:
    ui = make_ui()
    html = ui.declaration_page(locale="en")
    nodes = parse(html)
    rows = [
        [c.text.strip() for c in row.children if c.tag in ("th", "td")]
        for row in nodes
        if row.tag == "tr" and row.parent is not None and row.parent.tag == "tbody"
    ]
    assert ["session", "Shop", "Login", "session"] in rows
    assert ["ab_variant", "Shop", "Design testing", "30 days"] in rows
    assert ["_exp_* (pattern)", "This website", "Experiments", "2 hours"] in rows
    assert "Reasons for using these cookies" in html
    assert "Web analytics" in html  # the category's description
    assert "_ga" not in html  # catalogue entries only on request
    assert 'href="/_cookiegate/preferences?next=/"' in html
    ko = ui.declaration_page(locale="ko")
    assert "쿠키 사용 목적" in ko and "보관 기간" in ko and "2시간" in ko


def test_declaration_can_include_exact_catalogue_entries() -> None:
    ui = make_ui()
    policy = ui.policy
    exact = [r for r in policy.rules if r.origin == "catalog" and r.match == "exact"]
    patterns = [r for r in policy.rules if r.origin == "catalog" and r.match != "exact"]
    assert exact and patterns
    html = ui.declaration_page(locale="en", include_catalog=True)
    md = ui.declaration_markdown(locale="en", include_catalog=True)
    for rule in exact[:20]:
        assert f'<code class="cg-code">{rule.name}</code>' in html or "&" in rule.name
    pattern_only = [
        r for r in patterns if all(r.name not in e.name for e in exact) and "*" in r.name
    ]
    for rule in pattern_only[:5]:
        assert f">{rule.name}<" not in html
    assert md.count("\n|") > len(exact)


def test_declaration_markdown() -> None:
    md = make_ui().declaration_markdown(locale="en")
    assert md.startswith("# Cookie declaration\n")
    assert "## Strictly necessary" in md and "## Performance" in md
    assert "| Name | Provider | Purpose | Lifetime |" in md
    assert "| `session` | Shop | Login | session |" in md
    assert "| `ab_variant` | Shop | Design testing | 30 days |" in md
    assert "| `_exp_*` (pattern) | This website | Experiments | 2 hours |" in md
    assert "Policy version: 2026\\-11\\-01" in md or "Policy version: 2026-11-01" in md


def test_markdown_cells_cannot_break_the_table() -> None:
    policy = Policy(
        version="1",
        cookies=[CookieRule("a|b", "performance", match="regex", purpose="x | y\nz `q`")],
        use_catalog=False,
    )
    md = UI(policy).declaration_markdown(locale="en")
    row = next(line for line in md.splitlines() if "a\\|b" in line)
    assert row.count(" | ") == 3  # four cells, the pipes inside are escaped
    assert "\n" not in row


# -- static assets ------------------------------------------------------------------


def test_static_files() -> None:
    ui = make_ui()
    css = ui.static_file("cookiegate.css")
    js = ui.static_file("cookiegate.js")
    assert css is not None and js is not None
    assert css[0] == (STATIC_DIR / "cookiegate.css").read_bytes()
    assert css[1] == "text/css; charset=utf-8"
    assert js[1] == "text/javascript; charset=utf-8"
    assert css[2].startswith('"') and css[2].endswith('"') and css[2] != js[2]
    for bad in (
        "../pyproject.toml",
        "../../pyproject.toml",
        "/etc/passwd",
        "README.md",
        "cookiegate.css/../../pyproject.toml",
        "cookiegate.CSS",
        "cookiegate.1234.css",
        "cookiegate.zzzzzzzz.css",
        "",
        "cookiegate.css\x00",
    ):
        assert ui.static_file(bad) is None, bad


def test_asset_url_hash_matches_content() -> None:
    ui = make_ui()
    for name in ("cookiegate.css", "cookiegate.js"):
        url = ui.asset_url(name)
        content = (STATIC_DIR / name).read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:8]
        stem, ext = name.rsplit(".", 1)
        assert url == f"/_cookiegate/static/{stem}.{digest}.{ext}"
        served = ui.static_file(url.rsplit("/", 1)[1])
        assert served is not None and served[0] == content
    assert (
        make_ui(static_url="https://cdn.example/cg/")
        .asset_url("cookiegate.css")
        .startswith("https://cdn.example/cg/cookiegate.")
    )
    with pytest.raises(ValueError, match="unknown asset"):
        ui.asset_url("other.css")
    custom = UI(Policy(), prefix="/consent/")
    assert custom.asset_url("cookiegate.js").startswith("/consent/static/cookiegate.")
    banner = custom.banner(locale="en", state=UNDECIDED, next_path="/")
    assert 'action="/consent/consent"' in banner
    assert custom.asset_url("cookiegate.css") in banner


# -- CSS: contrast and targets --------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(a: str, b: str, share_a: float) -> str:
    out = "#"
    for i in (1, 3, 5):
        out += (
            f"{round(int(a[i : i + 2], 16) * share_a + int(b[i : i + 2], 16) * (1 - share_a)):02x}"
        )
    return out


def test_default_colours_meet_wcag_aa() -> None:
    css = (STATIC_DIR / "cookiegate.css").read_text()
    defaults = dict(re.findall(r"var\(--cg-([a-z-]+), (#[0-9a-f]{6})\)", css))
    for prefix in ("", "dark-"):
        c = {
            k: defaults[prefix + k]
            for k in ("bg", "fg", "muted", "accent", "accent-fg", "border", "focus")
        }
        subtle = _mix(c["fg"], c["bg"], 0.06)
        assert _contrast(c["fg"], c["bg"]) >= 7, prefix
        assert _contrast(c["fg"], subtle) >= 4.5, prefix
        assert _contrast(c["muted"], c["bg"]) >= 4.5, prefix
        assert _contrast(c["muted"], subtle) >= 4.5, prefix
        assert _contrast(c["accent-fg"], c["accent"]) >= 4.5, prefix
        # non-text contrast (WCAG 1.4.11): borders, focus ring, buttons against the page
        assert _contrast(c["border"], c["bg"]) >= 3, prefix
        assert _contrast(c["focus"], c["bg"]) >= 3, prefix
        assert _contrast(c["accent"], c["bg"]) >= 3, prefix


def test_css_uses_logical_properties_and_44px_targets() -> None:
    css = (STATIC_DIR / "cookiegate.css").read_text()
    physical = re.findall(
        r"(?<![-\w])(?:margin|padding|border)-(?:left|right)\b|(?<![-\w])(?:left|right)\s*:|text-align:\s*(?:left|right)",
        css,
    )
    assert physical == []
    for cls in (".cg-btn", ".cg-chip", ".cg-close", ".cg-settings__btn"):
        block = css[css.index(cls + " {") :]
        block = block[: block.index("}")]
        assert "min-block-size: 2.75rem" in block, cls
    assert "prefers-color-scheme: dark" in css
    assert ".cg-root.cg-theme-dark" in css
    assert ":focus-visible" in css


def test_javascript_contract() -> None:
    js = (STATIC_DIR / "cookiegate.js").read_text()
    assert '"cookiegate:consent"' in js
    assert "application/x-www-form-urlencoded" in js
    assert 'credentials: "same-origin"' in js
    assert "window.cookiegate = api" in js
    for name in ("open:", "onConsent:", "state:"):
        assert name in js
    assert "eval(" not in js and "innerHTML" not in js


# -- cached fragments ---------------------------------------------------------------


def _uncached(ui: UI, template: str, **kw: object) -> str:
    """What the fragment was before caching: the template rendered for the request."""
    from cookiegate.ui.render import _environment

    ctx = ui._context(kw["locale"], kw["next_path"], kw.get("nonce"), kw.get("theme"), kw["state"])  # type: ignore[arg-type]
    if template == "banner":
        ctx["changed"] = bool(kw.get("changed"))
    else:
        ctx["state_known"] = True
    if kw.get("pin_locale"):
        ui._pin_locale(ctx)
    return _environment().get_template(f"{template}.html").render(ctx)


@given(
    next_path=st.one_of(
        st.sampled_from(
            [
                "/",
                "/shop?a=1&b=2",
                '/x"y<z>',
                "/caf\u00e9",
                "//evil",
                "/a b",
                "/__cookiegate_next__?a=1&b",
                "/p?next=/__cookiegate_next__",
            ]
        ),
        st.text(min_size=0, max_size=40).map(lambda t: "/" + t),
    ),
    nonce=st.sampled_from([None, "abc123", "Zm9vYmFyYmF6cXV4"]),
    state=st.sampled_from([UNDECIDED, GRANTED, REFUSED]),
    locale=st.sampled_from(["en", "ko"]),
    theme=st.sampled_from([None, "dark"]),
    pin=st.booleans(),
    changed=st.booleans(),
)
def test_cached_fragments_equal_a_fresh_render(
    next_path: str,
    nonce: str | None,
    state: ConsentState,
    locale: str,
    theme: str | None,
    pin: bool,
    changed: bool,
) -> None:
    ui = CACHED_UI
    kw = {
        "locale": locale,
        "next_path": next_path,
        "nonce": nonce,
        "theme": theme,
        "state": state,
        "pin_locale": pin,
    }
    banner = ui.banner(changed=changed, **kw)  # type: ignore[arg-type]
    assert banner == _uncached(ui, "banner", changed=changed, **kw)
    settings = ui.settings_control(**kw)  # type: ignore[arg-type]
    assert settings == _uncached(ui, "settings", **kw)


CACHED_UI = make_ui()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("placeholder_text", "Blocked {see policy}"),
        ("placeholder_text", "Blocked { until you allow {category}"),
        ("placeholder_text", "{vendor} {0}"),
        ("withdrawn_status", "Done: {records} records"),
        ("withdrawn_status_failed", "{telemetry} failed"),
    ],
)
def test_formatted_texts_may_use_only_their_own_fields(key: str, value: str) -> None:
    """A site text filled in with str.format that would fail on every page that
    shows it (a stray brace, an unknown field) is refused when the UI is built."""
    with pytest.raises(ConfigError) as info:
        make_ui(texts={"en": {key: value}})
    assert info.value.field == f"texts.en.{key}"
    # braces written as {{ }} and the known fields are fine
    make_ui(texts={"en": {"placeholder_text": "{{Blocked}} {vendor}: allow {category}"}})


def test_rewriter_profile_checks_its_placeholder_text() -> None:
    from cookiegate.rewrite import RewriterProfile

    with pytest.raises(ConfigError):
        RewriterProfile(frozenset({"performance"}), placeholder_text="{oops")
    RewriterProfile(frozenset({"performance"}), placeholder_text="{vendor} / {category}")


@pytest.mark.parametrize(
    "url", ["\x01javascript:alert(1)", " https://example.com/", "/pri vacy", "/p\x7f", "/p\t"]
)
def test_privacy_url_refuses_control_characters_anywhere(url: str) -> None:
    """Browsers drop leading controls and tabs/newlines inside a URL, so such a
    value could read as javascript: whatever this Python's urlsplit does."""
    with pytest.raises(ConfigError):
        make_ui(texts={"en": {"privacy_url": url}})
