"""Server-side rendering of cookiegate's visitor-facing UI.

Everything a visitor sees comes from here: the first-layer banner (with the
preference centre's dialog markup, hidden until opened), the small "Cookie
settings" control for visitors who already decided, the full preferences page
(works without JavaScript) and the cookie declaration (HTML and Markdown).

Design notes:

* **Three equal choices.** "Accept all", "Reject all" and "Customise" are sibling
  ``<button>`` elements of one form with the same class list. Without JavaScript,
  "Customise" submits the form with ``formmethod="get"`` to
  ``{prefix}preferences``; the only field is the hidden ``next``, so the browser
  lands on ``{prefix}preferences?next=<path>``. With JavaScript it opens the
  preference centre as a modal dialog instead.
* **First layer is a non-modal region** (``<section role="region">`` labelled by
  its heading and described by the policy text): it neither blocks the page
  (no cookie wall) nor traps focus. The preference centre is a modal
  ``role="dialog"`` with ``aria-modal="true"`` whose focus trap, Escape handling
  and focus return live in ``static/cookiegate.js``.
* **Safety.** Jinja2 autoescapes everything; no template emits an inline
  ``<script>`` body, an ``on*=`` handler or a ``style=`` attribute, so a
  Content-Security-Policy without ``'unsafe-inline'`` works. ``next`` paths that
  are not same-origin paths are replaced by ``/`` and the site's ``privacy_url``
  must be ``http(s)`` or relative.
* **Texts.** UI strings live in ``locales/<locale>.toml``. The site may override
  any key per locale through ``texts``, and also ``cat_<category>_label`` /
  ``cat_<category>_description`` for each of its categories. The site-only keys
  (``privacy_url``, ``changes_text``, ``changes_date``) fall back to the site's
  text for the default locale, then English, when missing for a locale.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import markupsafe

from cookiegate.consent import ConsentState
from cookiegate.errors import ConfigError, check_format_fields
from cookiegate.policy import DEFAULT_CATEGORIES, NECESSARY, Category, CookieRule, Policy
from cookiegate.signals import LANGUAGE_TAG

__all__ = ["LOCALES", "RTL_LOCALES", "UI"]

#: The locales cookiegate ships translations for.
LOCALES: tuple[str, ...] = ("en", "ko", "de", "fr", "es")
#: Locales written right to left (none shipped yet; the layout is RTL-safe).
RTL_LOCALES: frozenset[str] = frozenset({"ar", "fa", "he", "ur"})
#: Keys the site is expected to fill in; they fall back across locales.
SITE_KEYS: tuple[str, ...] = ("privacy_url", "changes_text", "changes_date")
THEMES: tuple[str, ...] = ("light", "dark")

_ASSETS = {
    "cookiegate.css": "text/css; charset=utf-8",
    "cookiegate.js": "text/javascript; charset=utf-8",
    "cookiegate-consent-mode.js": "text/javascript; charset=utf-8",
    "cookiegate-unblock.js": "text/javascript; charset=utf-8",
}
_ASSET_NAME = re.compile(r"(cookiegate(?:-[a-z]+(?:-[a-z]+)*)?)(?:\.([0-9a-f]{8}))?\.(css|js)")
#: stand-ins rendered into cached fragments: unchanged by HTML escaping and
#: URL quoting, impossible in a real path or nonce of ours
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x20\x7f\\]")
_NEXT_STANDIN = "/__cookiegate_next__"
_NONCE_STANDIN = "cookiegateNonceStandin"
_STANDINS = re.compile(
    "("
    + "|".join(re.escape(x) for x in ("next=" + _NEXT_STANDIN, _NEXT_STANDIN, _NONCE_STANDIN))
    + ")"
)
_LANG_TAG = re.compile(LANGUAGE_TAG.pattern + r"|\*")  # "*": any language
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_DEFAULT_TEXTS = {c.name: (c.label, c.description) for c in DEFAULT_CATEGORIES}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


#: the texts filled in with ``str.format``, and the fields each may use
_FORMATTED = {
    "withdrawn_status": {"telemetry", "cookies"},
    "withdrawn_status_failed": {"cookies"},
    "placeholder_text": {"vendor", "category"},
}


@cache
def _load_locale(locale: str) -> dict[str, str]:
    text = resources.files("cookiegate.ui").joinpath("locales", f"{locale}.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {str(k): str(v) for k, v in data.items()}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cookiegate.ui", "templates"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _static_dir() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "static", here.parents[3] / "static"):
        if (candidate / "cookiegate.css").is_file():
            return candidate
    return None


def _escape(text: str) -> str:
    """HTML-escape exactly as Jinja2's autoescape does."""
    return str(markupsafe.escape(text))


def _safe_next(value: str) -> str:
    """``value`` if it is a same-origin path, else ``/``."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.startswith("//")
        or len(value) > 2048
        or _UNSAFE_IN_PATH.search(value) is not None
    ):
        return "/"
    return value


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    pattern: bool
    provider: str
    purpose: str
    lifetime: str


@dataclass(frozen=True, slots=True)
class _Cat:
    name: str
    label: str
    description: str
    necessary: bool
    checked: bool
    rows: tuple[_Row, ...]


class UI:
    """Renders cookiegate's banner, preference centre and cookie declaration.

    :param policy: the site's :class:`~cookiegate.Policy`.
    :param prefix: URL prefix of cookiegate's endpoints (as given to the gate).
    :param default_locale: the language used when the visitor's cannot be served.
    :param texts: site texts per locale, e.g. ``{"en": {"policy_text": "...",
        "changes_text": "...", "changes_date": "2026-11-01", "privacy_url": "/privacy"}}``.
        Any key of ``locales/en.toml`` may be overridden, plus
        ``cat_<category>_label`` and ``cat_<category>_description``. Texts are
        plain text: they are always HTML-escaped.
    :param static_url: where the CSS and JS are served from; defaults to
        ``{prefix}static/``.
    :raises ConfigError: for an unknown locale, an unknown text key, a text that
        is not a string or an unsafe ``privacy_url``.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        prefix: str = "/_cookiegate/",
        default_locale: str = "en",
        texts: Mapping[str, Mapping[str, str]] | None = None,
        static_url: str | None = None,
        own_cookies: Sequence[CookieRule] = (),
    ) -> None:
        if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.endswith("/"):
            raise ConfigError("prefix", "must start and end with '/', e.g. '/_cookiegate/'")
        if default_locale not in LOCALES:
            raise ConfigError(
                "default_locale", f"unknown locale {default_locale!r} (known: {', '.join(LOCALES)})"
            )
        if static_url is None:
            static_url = prefix + "static/"
        if not isinstance(static_url, str) or not static_url.endswith("/"):
            raise ConfigError("static_url", "must be a URL ending with '/'")
        self.policy = policy
        #: cookiegate's own cookies (consent, theme), listed as strictly necessary
        self.own_cookies = tuple(own_cookies)
        self.prefix = prefix
        self.default_locale = default_locale
        self.static_url = static_url

        english = _load_locale("en")
        allowed = set(english)
        for name in policy.categories:
            allowed.update((f"cat_{name}_label", f"cat_{name}_description"))
        site: dict[str, dict[str, str]] = {}
        for locale, values in (policy.texts if texts is None else texts).items():
            if locale not in LOCALES:
                raise ConfigError(
                    f"texts.{locale}", f"unknown locale (known: {', '.join(LOCALES)})"
                )
            if not isinstance(values, Mapping):
                raise ConfigError(f"texts.{locale}", "must be a mapping of text keys to strings")
            for key, value in values.items():
                if key not in allowed:
                    raise ConfigError(f"texts.{locale}.{key}", "unknown text key")
                if not isinstance(value, str):
                    raise ConfigError(f"texts.{locale}.{key}", "must be a string")
                if key == "privacy_url" and value:
                    scheme = urlsplit(value).scheme.lower()
                    # no control character or space anywhere: browsers drop them
                    # (a leading "\x01javascript:" is javascript:), whatever
                    # this Python's urlsplit does
                    if scheme not in ("", "http", "https") or any(
                        ord(c) <= 0x20 or ord(c) == 0x7F for c in value
                    ):
                        raise ConfigError(
                            f"texts.{locale}.{key}", "must be an http(s) URL or a path"
                        )
                if key in _FORMATTED:
                    check_format_fields(f"texts.{locale}.{key}", value, _FORMATTED[key])
            site[locale] = dict(values)
        self._site = site
        self._strings: dict[str, dict[str, str]] = {}
        self._assets: dict[str, tuple[bytes, str, str]] | None = None
        #: rendered fragments per (template, locale, theme, consent shape...), with
        #: stand-ins for the per-request ``next`` path and nonce (bounded)
        self._fragments: dict[tuple[Any, ...], list[str]] = {}
        self._negotiated: dict[tuple[Any, Any], str] = {}

    # -- language -------------------------------------------------------

    def negotiate(self, accept_language: str | None, override: str | None = None) -> str:
        """Pick a shipped locale: ``override`` (e.g. ``?lang=ko``) if supported,
        else the best match of an ``Accept-Language`` header (RFC 9110 q-values,
        ``ko-KR`` serves ``ko``), else the default locale. Never raises. Results
        are remembered per header value (browsers send a handful of them)."""
        key = (accept_language, override)
        found = self._negotiated.get(key)
        if found is None:
            found = self._negotiate(accept_language, override)
            if len(self._negotiated) >= 1024:
                self._negotiated.clear()
            self._negotiated[key] = found
        return found

    def _negotiate(self, accept_language: str | None, override: str | None) -> str:
        if isinstance(override, str):
            primary = override.strip().split("-", 1)[0].split("_", 1)[0].lower()
            if primary in LOCALES:
                return primary
        if not isinstance(accept_language, str) or not accept_language:
            return self.default_locale
        ranked: list[tuple[float, int, str]] = []
        for index, item in enumerate(accept_language[:4096].split(",")[:64]):
            tag, _, params = item.strip().partition(";")
            tag = tag.strip()
            if not _LANG_TAG.fullmatch(tag):
                continue
            q = 1.0
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key.strip().lower() == "q":
                    value = value.strip()
                    q = float(value) if _QVALUE.fullmatch(value) else -1.0
            if q <= 0:
                continue
            ranked.append((-q, index, tag.lower()))
        ranked.sort()
        for _, _, tag in ranked:
            primary = self.default_locale if tag == "*" else tag.split("-", 1)[0]
            if primary in LOCALES:
                return primary
        return self.default_locale

    def strings(self, locale: str) -> Mapping[str, str]:
        """All UI strings for ``locale`` (site texts applied)."""
        locale = locale if locale in LOCALES else self.default_locale
        found = self._strings.get(locale)
        if found is not None:
            return found
        merged = dict(_load_locale(locale))
        merged.update(self._site.get(locale, {}))
        for key in SITE_KEYS:
            if not merged.get(key):
                for other in (self.default_locale, "en"):
                    if self._site.get(other, {}).get(key):
                        merged[key] = self._site[other][key]
                        break
        self._strings[locale] = merged
        return merged

    # -- fragments ------------------------------------------------------

    def banner(
        self,
        *,
        locale: str,
        state: ConsentState,
        next_path: str,
        nonce: str | None = None,
        changed: bool = False,
        theme: str | None = None,
        pin_locale: bool = False,
    ) -> str:
        """The first layer, the (hidden) preference centre and the (hidden)
        settings control, with the stylesheet link and the deferred script tag:
        the fragment to insert before ``</body>`` for an undecided visitor.
        ``pin_locale`` makes the links to cookiegate's pages carry ``lang=``
        (the site chose the language, not ``Accept-Language``)."""
        shape = (state.decided, state.granted, state.gpc)  # all the fragment depends on
        key = ("banner", locale, theme, shape, bool(changed), pin_locale, nonce is not None)
        return self._fragment(key, next_path, nonce)

    def settings_control(
        self,
        *,
        locale: str,
        next_path: str,
        nonce: str | None = None,
        theme: str | None = None,
        state: ConsentState | None = None,
        pin_locale: bool = False,
    ) -> str:
        """The small persistent "Cookie settings" control for visitors who
        decided. Without JavaScript it is a link to the preferences page; with
        it, the page's preference centre opens as a modal dialog. ``state``
        (optional) exposes the visitor's choice as ``window.cookiegate.state``."""
        shape = None if state is None else (state.decided, state.granted, state.gpc)
        key = ("settings", locale, theme, shape, False, pin_locale, nonce is not None)
        return self._fragment(key, next_path, nonce)

    def _fragment(self, key: tuple[Any, ...], next_path: str, nonce: str | None) -> str:
        """Render a fragment once per key (Jinja2 costs ~0.5 ms a page) with
        stand-ins for the request's ``next`` path and nonce, kept split at them;
        a request only joins the pieces with its own values."""
        pieces = self._fragments.get(key)
        if pieces is None:
            template, locale, theme, state, changed, pin_locale, has_nonce = key
            state = (
                None if state is None else ConsentState(state[0], granted=state[1], gpc=state[2])
            )
            nonce_standin = _NONCE_STANDIN if has_nonce else None
            ctx = self._context(locale, _NEXT_STANDIN, nonce_standin, theme, state)
            if template == "banner":
                ctx["changed"] = changed
            if pin_locale:
                self._pin_locale(ctx)
            html = _environment().get_template(f"{template}.html").render(ctx)
            pieces = _STANDINS.split(html)  # literal, kind, literal, kind, ..., literal
            if len(self._fragments) >= 512:
                self._fragments.clear()  # bounded: the shapes are few, locales x themes
            self._fragments[key] = pieces
        target = _safe_next(next_path)
        # in links the path is URL-quoted, elsewhere (form fields) as is; both
        # HTML-escaped as autoescape would have done
        values = {
            "next=" + _NEXT_STANDIN: "next=" + _escape(quote(target, safe="/")),
            _NEXT_STANDIN: _escape(target),
            _NONCE_STANDIN: nonce or "",
        }
        out = pieces[:]
        for i in range(1, len(out), 2):
            out[i] = values[out[i]]
        return "".join(out)

    @staticmethod
    def _pin_locale(ctx: dict[str, Any]) -> None:
        lang = "lang=" + ctx["lang"]
        ctx["pinned_lang"] = True
        ctx["preferences_link"] += "&" + lang
        ctx["declaration_link"] += "&" + lang
        ctx["declaration_url"] += "?" + lang

    # -- pages ----------------------------------------------------------

    def preferences_page(
        self,
        *,
        locale: str,
        state: ConsentState,
        next_path: str,
        nonce: str | None = None,
        theme: str | None = None,
        withdrawn: tuple[int | None, int] | None = None,
    ) -> str:
        """The preference centre as a full HTML document (no JavaScript needed),
        with the withdraw form for visitors who decided. ``withdrawn``:
        ``(telemetry, cookies)`` destroyed by the withdrawal that led here, shown
        as a status message (the no-JavaScript withdrawal lands on this page);
        ``telemetry`` ``None``: erasing it failed (the visitor is asked to retry)."""
        ctx = self._context(locale, next_path, nonce, theme, state)
        ctx["withdrawn_status"] = None
        if withdrawn is not None:
            counts = {"telemetry": withdrawn[0], "cookies": withdrawn[1]}
            key = "withdrawn_status" if withdrawn[0] is not None else "withdrawn_status_failed"
            try:
                text = ctx["t"][key].format(**counts)
            except (KeyError, IndexError, ValueError):  # a site text with bad braces
                text = _load_locale("en")[key].format(**counts)
            ctx["withdrawn_status"] = text
        return _environment().get_template("preferences.html").render(ctx)

    def declaration_page(
        self,
        *,
        locale: str,
        nonce: str | None = None,
        theme: str | None = None,
        include_catalog: bool = False,
        next_path: str = "/",
    ) -> str:
        """The cookie declaration as a full HTML document: per category its
        label, the reasons for using its cookies and a table of them; its links
        lead back to ``next_path`` (the page the visitor came from)."""
        ctx = self._context(locale, next_path, nonce, theme, None, include_catalog=include_catalog)
        return _environment().get_template("declaration.html").render(ctx)

    def declaration_markdown(self, *, locale: str, include_catalog: bool = False) -> str:
        """The cookie declaration as Markdown (GitHub-flavoured tables)."""
        locale = locale if locale in LOCALES else self.default_locale
        t = self.strings(locale)
        cats = self._categories(locale, None, include_catalog)
        out = [f"# {_md(t['declaration_title'])}", "", _md(t["declaration_intro"]), ""]
        meta = f"{_md(t['policy_version'])}: {_md(self.policy.version)}"
        if t["changes_date"]:
            meta += f" · {_md(t['changes_date_label'])} {_md(t['changes_date'])}"
        out += [meta, ""]
        for cat in cats:
            out += [f"## {_md(cat.label)}", ""]
            if cat.description:
                out += [f"**{_md(t['reasons_label'])}**", "", _md(cat.description), ""]
            if not cat.rows:
                out += [f"_{_md(t['no_cookies'])}_", ""]
                continue
            cols = (t["col_name"], t["col_provider"], t["col_purpose"], t["col_lifetime"])
            out.append("| " + " | ".join(_cell(c) for c in cols) + " |")
            out.append("| --- | --- | --- | --- |")
            for row in cat.rows:
                name = _code(row.name) + (f" ({_cell(t['name_pattern'])})" if row.pattern else "")
                cells = (name, _cell(row.provider), _cell(row.purpose), _cell(row.lifetime))
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        return "\n".join(out)

    # -- static assets --------------------------------------------------

    def static_file(self, name: str) -> tuple[bytes, str, str] | None:
        """``(content, content_type, etag)`` of ``cookiegate.css`` /
        ``cookiegate.js`` or a cache-busted alias ``cookiegate.<hash8>.css``;
        ``None`` for any other name. An alias with a stale hash still gets the
        current file (an old cached page keeps its styling)."""
        if not isinstance(name, str):
            return None
        m = _ASSET_NAME.fullmatch(name)
        if m is None:
            return None
        return self._load_assets().get(f"{m.group(1)}.{m.group(3)}")

    def asset_url(self, name: str) -> str:
        """The content-addressed URL of an asset, e.g.
        ``/_cookiegate/static/cookiegate.1a2b3c4d.css``, safe to cache forever."""
        found = self._load_assets().get(name)
        if found is None:
            raise ValueError(f"unknown asset {name!r} (known: {', '.join(_ASSETS)})")
        stem, ext = name.rsplit(".", 1)
        return f"{self.static_url}{stem}.{_short_hash(found[0])}.{ext}"

    def _load_assets(self) -> dict[str, tuple[bytes, str, str]]:
        if self._assets is None:
            assets: dict[str, tuple[bytes, str, str]] = {}
            folder = _static_dir()
            if folder is not None:
                for asset, ctype in _ASSETS.items():
                    path = folder / asset
                    if path.is_file():
                        content = path.read_bytes()
                        etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
                        assets[asset] = (content, ctype, etag)
            self._assets = assets
        return self._assets

    # -- helpers --------------------------------------------------------

    def _context(
        self,
        locale: str,
        next_path: str,
        nonce: str | None,
        theme: str | None,
        state: ConsentState | None,
        *,
        include_catalog: bool = False,
    ) -> dict[str, Any]:
        locale = locale if locale in LOCALES else self.default_locale
        t = self.strings(locale)
        next_path = _safe_next(next_path)
        theme = theme if theme in THEMES else None
        cats = self._categories(locale, state, include_catalog)
        decided = bool(state is not None and state.decided)
        state_doc = {
            "decided": decided,
            "categories": {c.name: c.checked for c in cats if not c.necessary},
        }
        privacy_url = t["privacy_url"]
        changes_date = t["changes_date"]
        try:
            changes_iso: str | None = date.fromisoformat(changes_date).isoformat()
        except ValueError:
            changes_iso = None
        return {
            "t": t,
            "lang": locale,
            "dir": "rtl" if locale in RTL_LOCALES else "ltr",
            "theme": theme,
            "theme_class": f"cg-theme-{theme}" if theme else "",
            "nonce": nonce or None,
            "next_path": next_path,
            "prefix": self.prefix,
            "consent_url": self.prefix + "consent",
            "withdraw_url": self.prefix + "withdraw",
            "my_data_url": self.prefix + "my-data",
            "theme_url": self.prefix + "theme",
            "preferences_url": self.prefix + "preferences",
            "preferences_link": self.prefix + "preferences?next=" + quote(next_path, safe="/"),
            "declaration_url": self.prefix + "cookies",
            "declaration_link": self.prefix + "cookies?next=" + quote(next_path, safe="/"),
            "css_url": self.asset_url("cookiegate.css") if self._has("cookiegate.css") else None,
            "js_url": self.asset_url("cookiegate.js") if self._has("cookiegate.js") else None,
            "privacy_url": privacy_url or None,
            "categories": cats,
            "optional": [c.name for c in cats if not c.necessary],
            "decided": decided,
            "pinned_lang": False,
            "can_withdraw": decided and any(c.checked for c in cats if not c.necessary),
            "gpc": bool(state is not None and state.gpc),
            "state_json": json.dumps(state_doc, separators=(",", ":"), sort_keys=True),
            "changed": False,
            "changes_text": t["changes_text"] or t["changes_generic"],
            "changes_date": changes_date or None,
            "changes_iso": changes_iso,
            "policy_version": self.policy.version,
            "state_known": state is not None,
        }

    def _has(self, name: str) -> bool:
        return name in self._load_assets()

    def _categories(
        self, locale: str, state: ConsentState | None, include_catalog: bool
    ) -> list[_Cat]:
        t = self.strings(locale)
        rows: dict[str, list[_Row]] = {name: [] for name in self.policy.categories}
        seen: set[tuple[str, str]] = set()
        for rule in (*self.own_cookies, *self.policy.rules):
            if rule.origin != "site" and not (include_catalog and rule.match == "exact"):
                continue
            if rule.category not in rows or (rule.category, rule.name) in seen:
                continue
            seen.add((rule.category, rule.name))
            rows[rule.category].append(self._row(rule, t))
        granted = state.granted if state is not None and state.decided else frozenset()
        return [
            _Cat(
                name=name,
                label=self._cat_text(locale, t, cat, "label")
                or name.replace("_", " ").capitalize(),
                description=self._cat_text(locale, t, cat, "description"),
                necessary=cat.necessary or name == NECESSARY,
                checked=cat.necessary or name in granted,
                rows=tuple(rows[name]),
            )
            for name, cat in self.policy.categories.items()
        ]

    def category_label(self, locale: str, t: Mapping[str, str], name: str) -> str:
        """A category's label as the banner and preference centre show it."""
        return self._cat_text(locale, t, self.policy.categories[name], "label")

    def _cat_text(self, locale: str, t: Mapping[str, str], cat: Category, field: str) -> str:
        """The site's text for this locale, else the translated built-in text when
        the policy kept the built-in (English) one or gave none, else the policy's."""
        key = f"cat_{cat.name}_{field}"
        override = self._site.get(locale, {}).get(key)
        if override:
            return override
        value: str = getattr(cat, field)
        default = _DEFAULT_TEXTS.get(cat.name, ("", ""))[0 if field == "label" else 1]
        if (not value or value == default) and t.get(key):
            return t[key]
        return value

    @staticmethod
    def _row(rule: CookieRule, t: Mapping[str, str]) -> _Row:
        if rule.lifetime:
            lifetime = rule.lifetime
        elif rule.lifetime_seconds is not None:
            lifetime = _format_seconds(rule.lifetime_seconds, t)
        else:
            lifetime = t["lifetime_unknown"]
        return _Row(
            name=rule.name,
            pattern=rule.match != "exact",
            provider=rule.vendor or t["provider_site"],
            purpose=rule.purpose,
            lifetime=lifetime,
        )


def _format_seconds(seconds: int, t: Mapping[str, str]) -> str:
    if seconds >= 86400:
        return t["lifetime_days"].replace("{n}", str(round(seconds / 86400)))
    if seconds >= 3600:
        return t["lifetime_hours"].replace("{n}", str(round(seconds / 3600)))
    return t["lifetime_minutes"].replace("{n}", str(max(1, math.ceil(seconds / 60))))


def _short_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:8]


def _md(text: str) -> str:
    """Plain text made inert for Markdown (no markup, no raw HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _cell(text: str) -> str:
    return _md(text) or " "


def _code(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
