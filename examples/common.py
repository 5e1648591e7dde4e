"""Everything the two demo shops share: policy, gate, products, cookies and HTML.

``examples/starlette_app/app.py`` and ``examples/flask_app/app.py`` only translate
between their framework and :class:`Shop`, so both sites behave identically.
Nothing in here imports a web framework.

The shop itself is deliberately naive: it sets the analytics cookie ``_ga`` and
the A/B-test cookie ``ab_variant`` on every visit of the home page without asking.
cookiegate's middleware removes them from the response until the visitor consents
to "performance", and hides them from the app once the visitor refuses. Only the
``/track`` beacon asks for consent itself, because it stores data on the server
where no middleware can see it.
"""

from __future__ import annotations

import html
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from cookiegate import Gate, Policy, RequestConsent
from cookiegate.cookies import cookie_values
from cookiegate.gate import safe_next as gate_safe_next

log = logging.getLogger("examples")

POLICY_FILE = Path(__file__).with_name("cookiegate.toml")

#: DEMO ONLY - NOT A SECRET. Anyone can forge consent cookies signed with it.
#: Set COOKIEGATE_SECRET in the environment for anything but local testing.
DEMO_ONLY_SECRET = "cookiegate-demo-only-insecure-key-DO-NOT-DEPLOY"

THEMES = ("light", "dark")
VARIANTS = ("A", "B")
SESSION_COOKIE = "session"
THEME_COOKIE = "theme"
GA_COOKIE = "_ga"
VARIANT_COOKIE = "ab_variant"

_GA_VALUE = re.compile(r"GA1\.1\.\d{1,12}\.\d{1,12}")
_TWO_YEARS = 2 * 365 * 24 * 3600
_MAX_SESSIONS = 10_000
_MAX_USERNAME = 40

#: Headers for every page and JSON document the shop produces.
PAGE_HEADERS: Mapping[str, str] = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": (
        # No inline script anywhere: cookiegate's banner script and stylesheet are
        # same-origin files, so 'self' is all they need.
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


def secret_keys() -> list[str]:
    """Consent-cookie signing keys from ``COOKIEGATE_SECRET`` (one key, or several
    separated by commas, oldest first), else the demo-only key."""
    keys = [k.strip() for k in os.environ.get("COOKIEGATE_SECRET", "").split(",") if k.strip()]
    if keys:
        return keys
    log.warning("COOKIEGATE_SECRET is not set: using the demo-only key; never deploy this")
    return [DEMO_ONLY_SECRET]


def load_policy() -> Policy:
    """The shop's consent policy, from ``examples/cookiegate.toml``."""
    return Policy.from_toml(POLICY_FILE)


def make_gate(policy: Policy | None = None) -> Gate:
    """The configured gate both demo apps wrap themselves in. With
    ``COOKIEGATE_RECORDS`` set to a database URL (``make demo`` uses a SQLite file
    in ``.demo/``) every consent event is recorded there as proof of consent."""
    records = None
    url = os.environ.get("COOKIEGATE_RECORDS")
    if url:
        from cookiegate.records import Recorder

        records = Recorder(url)
    return Gate(policy or load_policy(), secret_keys=secret_keys(), records=records)


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    price_cents: int
    blurb: str

    @property
    def price(self) -> str:
        return f"{self.price_cents // 100}.{self.price_cents % 100:02d} EUR"


PRODUCTS: tuple[Product, ...] = (
    Product("Oatmeal cookies", 450, "Twelve chewy oat cookies, baked this morning."),
    Product("Chocolate chip cookies", 520, "The classic, with dark chocolate chunks."),
    Product("Fortune cookies", 380, "Twenty crisp cookies with a message inside."),
    Product("Cookie jar", 1990, "Glazed stoneware jar that keeps cookies crisp."),
)

#: What the A/B test varies: the label of the product button.
BUY_LABELS: Mapping[str, str] = {"A": "Add to basket", "B": "Buy now"}


@dataclass(frozen=True, slots=True)
class CookieSpec:
    """A cookie the shop sets; the apps hand these to their framework's
    ``response.set_cookie(...)``."""

    key: str
    value: str
    max_age: int | None = None
    httponly: bool = True
    samesite: Literal["lax"] = "lax"
    path: str = "/"


@dataclass(frozen=True, slots=True)
class Redirect:
    """A 303 See Other to a same-site path."""

    location: str
    status: int = 303


@dataclass(slots=True)
class Visit:
    """One request as the shop sees it, whatever the framework.

    :param path: the request path.
    :param cookies: the cookies the app received (after cookiegate's filtering).
    :param consent: the visitor's consent from cookiegate.
    :param cookie_header: the raw ``Cookie`` header the app received.
    """

    path: str
    cookies: dict[str, str]
    consent: RequestConsent
    cookie_header: str = ""


def parse_cookie_header(header: str | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header, exactly as received (first of a name wins).

    Both apps use cookiegate's parser instead of their framework's, so both report
    the very same cookies on ``/whoami``.
    """
    return cookie_values(header or "")


def parse_form(body: bytes) -> dict[str, str]:
    """Fields of an ``application/x-www-form-urlencoded`` body (first value wins).

    Used by both apps: Starlette's ``request.form()`` needs the optional
    ``python-multipart`` package, which cookiegate does not depend on.
    """
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        return {}
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site, else ``default`` (no open redirect);
    the same rule cookiegate applies to its own ``next``."""
    return gate_safe_next(value) or default


def to_json(doc: Any) -> str:
    """JSON text, the same from both apps."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


class Shop:
    """State and behaviour of the demo shop, shared by both apps.

    Holds the gate, the in-memory login sessions and the in-memory beacon
    counter. Thread-safe (Flask's development server is threaded).
    """

    def __init__(self, gate: Gate | None = None) -> None:
        self.gate = gate or make_gate()
        self.policy = self.gate.policy
        self._lock = threading.Lock()
        self._hits = 0
        self._sessions: dict[str, str] = {}
        self._random = random.SystemRandom()

    # -- the beacon ------------------------------------------------------

    @property
    def hits(self) -> int:
        """Beacon hits counted so far (only visitors who allowed performance)."""
        with self._lock:
            return self._hits

    def count_hit(self) -> int:
        """Count one ``/track`` hit. The apps call it only when
        ``consent(...).allows("performance")``."""
        with self._lock:
            self._hits += 1
            return self._hits

    # -- login -------------------------------------------------------------

    def user(self, visit: Visit) -> str | None:
        token = visit.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        with self._lock:
            return self._sessions.get(token)

    def login(
        self, form: Mapping[str, str], visit: Visit | None = None
    ) -> tuple[CookieSpec, Redirect] | str:
        """Sign in (demo: any name, no password). Returns the session cookie and
        the redirect, or an error message for the login form. With consent
        records on, the visitor's consent is linked to the account name, so
        ``cookiegate records export --user NAME`` finds it."""
        name = form.get("username", "").strip()
        if not name:
            return "Please enter a name."
        if len(name) > _MAX_USERNAME:
            return f"Names are at most {_MAX_USERNAME} characters."
        token = secrets.token_urlsafe(24)
        with self._lock:
            if len(self._sessions) >= _MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))  # forget the oldest
            self._sessions[token] = name
        records = self.gate.records
        if records is not None and visit is not None and visit.consent.consent_id:
            from cookiegate.records import Recorder

            if isinstance(records, Recorder):
                records.link_account(visit.consent.consent_id, name)
        return CookieSpec(SESSION_COOKIE, token), Redirect("/")

    def logout(self, visit: Visit) -> tuple[str, Redirect]:
        """End the session. Returns the cookie to delete and the redirect."""
        token = visit.cookies.get(SESSION_COOKIE)
        if token:
            with self._lock:
                self._sessions.pop(token, None)
        return SESSION_COOKIE, Redirect("/")

    # -- cookies -----------------------------------------------------------

    def _lifetime(self, name: str, default: int) -> int:
        rule = self.policy.rule_for(name)
        if rule is not None and rule.lifetime_seconds is not None:
            return rule.lifetime_seconds
        return default

    def theme(self, visit: Visit) -> str:
        value = visit.cookies.get(THEME_COOKIE, "")
        return value if value in THEMES else THEMES[0]

    def set_theme(self, form: Mapping[str, str]) -> tuple[CookieSpec, Redirect] | str:
        """The theme cookie and the redirect back, or an error message."""
        theme = form.get("theme", "")
        if theme not in THEMES:
            return f"theme must be one of {', '.join(THEMES)}"
        max_age = self._lifetime(THEME_COOKIE, 365 * 24 * 3600)
        return CookieSpec(THEME_COOKIE, theme, max_age), Redirect(safe_next(form.get("next")))

    def variant(self, visit: Visit) -> str:
        """The visitor's design variant: the one the app received, else a new one."""
        value = visit.cookies.get(VARIANT_COOKIE, "")
        return value if value in VARIANTS else self._random.choice(VARIANTS)

    def tracking_cookies(self, visit: Visit, variant: str) -> list[CookieSpec]:
        """What the naive shop sets on every home-page visit, consent or not.
        cookiegate strips these unless the visitor allowed performance."""
        ga = visit.cookies.get(GA_COOKIE, "")
        if not _GA_VALUE.fullmatch(ga):
            ga = f"GA1.1.{self._random.randrange(10**9, 10**10)}.{int(time.time())}"
        return [
            CookieSpec(GA_COOKIE, ga, self._lifetime(GA_COOKIE, _TWO_YEARS), httponly=False),
            CookieSpec(VARIANT_COOKIE, variant, self._lifetime(VARIANT_COOKIE, 30 * 24 * 3600)),
        ]

    # -- pages -------------------------------------------------------------

    def consent_json(self, consent: RequestConsent) -> dict[str, object]:
        """The consent state, in the shape of ``GET /_cookiegate/consent``."""
        return consent.state.as_json(self.policy.optional)

    def whoami_json(self, visit: Visit) -> dict[str, object]:
        return {"consent": self.consent_json(visit.consent), "cookies": visit.cookies}

    def _layout(self, visit: Visit, title: str, main: str) -> str:
        user = self.user(visit)
        nxt = esc(visit.path)
        if user is None:
            account = '<a href="/login">Sign in</a>'
        else:
            account = (
                f"<span>Signed in as <strong>{esc(user)}</strong></span> "
                '<form class="inline" method="post" action="/logout">'
                '<button type="submit">Sign out</button></form>'
            )
        theme = self.theme(visit)
        pressed = ' aria-pressed="true"'
        switches = "".join(
            f'<button type="submit" name="theme" value="{esc(t)}"{pressed if t == theme else ""}>'
            f"{esc(t.title())}</button>"
            for t in THEMES
        )
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} - cookiegate demo shop</title>
<style>{_CSS}</style>
</head>
<body class="theme-{esc(theme)}">
<header>
<nav>
<a href="/">Home</a>
<a href="/whoami">Who am I?</a>
<a href="/whoami.json">whoami.json</a>
<a href="/_cookiegate/consent">Consent (JSON)</a>
{account}
</nav>
<form class="inline" method="post" action="/theme" aria-label="Theme">
<input type="hidden" name="next" value="{nxt}">
Theme: {switches}
</form>
</header>
<main>
<h1>{esc(title)}</h1>
{main}
</main>
<footer><p>cookiegate demo shop. Nothing here is for sale.</p></footer>
</body>
</html>
"""

    def home_page(self, visit: Visit, variant: str) -> str:
        label = esc(BUY_LABELS[variant])
        items = "\n".join(
            f"<li><h2>{esc(p.name)}</h2><p>{esc(p.blurb)}</p>"
            f'<p class="price">{esc(p.price)} <button type="button" disabled>{label}</button>'
            "</p></li>"
            for p in PRODUCTS
        )
        main = f"""<p>Fresh cookies, and the other kind: this page sets an analytics cookie and a
design-test cookie on every visit. cookiegate keeps them away until you allow
"performance".</p>
<ul class="products">
{items}
</ul>
<img src="/track" alt="" width="1" height="1" hidden>
{self.consent_forms(visit)}"""
        return self._layout(visit, "Demo shop", main)

    def not_found_page(self, visit: Visit) -> str:
        """The page of an unknown path (both apps answer 404 with it)."""
        main = f'<p>There is no page at <code>{esc(visit.path)}</code>. <a href="/">Home</a></p>'
        return self._layout(visit, "Not found", main)

    def consent_forms(self, visit: Visit) -> str:
        """What the visitor chose, and a plain link to change it (cookiegate's
        banner, injected into every page, offers the choice itself)."""
        nxt = esc(visit.path)
        state = visit.consent.state
        if not state.decided:
            current = "You have not made a choice yet."
        else:
            allowed = [
                self.policy.categories[n].label or n
                for n in self.policy.optional
                if n in state.granted
            ]
            current = "You allowed: " + (
                ", ".join(allowed) if allowed else "strictly necessary only"
            )
            if state.method == "gpc":
                current += " (from your browser's Global Privacy Control signal)"
        return f"""<section class="consent" aria-labelledby="consent-title">
<h2 id="consent-title">Your cookie choice</h2>
<p>{esc(current)}</p>
<p><a href="/_cookiegate/preferences?next={nxt}">Change it</a> ·
<a href="/_cookiegate/cookies">Cookie declaration</a></p>
</section>"""

    def login_page(self, visit: Visit, error: str = "") -> str:
        err = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        main = f"""{err}<form method="post" action="/login">
<p><label>Name <input name="username" maxlength="{_MAX_USERNAME}" required
autocomplete="username"></label></p>
<p>Demo login: no password; your name is kept in memory until the server stops.</p>
<p><button type="submit">Sign in</button></p>
</form>"""
        return self._layout(visit, "Sign in", main)

    def whoami_page(self, visit: Visit) -> str:
        state = visit.consent.state
        cats = "".join(
            f"<tr><th>{esc(n)}</th><td>{'allowed' if n in state.granted else 'refused'}</td></tr>"
            for n in self.policy.optional
        )
        rows = [
            ("decided", "yes" if state.decided else "no"),
            ("method", state.method or "-"),
            ("gpc", "yes" if state.gpc else "no"),
            ("consent id", state.consent_id or "-"),
            ("policy version", state.policy_version or "-"),
        ]
        facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
        if visit.cookies:
            cookies = "".join(
                f"<tr><th><code>{esc(k)}</code></th><td><code>{esc(v)}</code></td></tr>"
                for k, v in visit.cookies.items()
            )
            cookie_table = f"<table>{cookies}</table>"
        else:
            cookie_table = "<p>None.</p>"
        main = f"""<h2>Consent</h2>
<table>{facts}</table>
<h3>Categories</h3>
<table>{cats}</table>
<h2>Cookies this app received</h2>
{cookie_table}
<p>Raw <code>Cookie</code> header: <code>{esc(visit.cookie_header or "(none)")}</code></p>
<p>Beacon hits counted with consent so far: {self.hits}</p>"""
        return self._layout(visit, "Who am I?", main)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 0 auto; padding: 1rem; }
body.theme-light { background: #fff; color: #1a1a1a; }
body.theme-dark { background: #161616; color: #eee; }
body.theme-dark a { color: #8cf; }
nav a, nav span { margin-right: 1rem; }
form.inline { display: inline; }
.products { list-style: none; padding: 0; display: grid; gap: 1rem;
  grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); }
.products li { border: 1px solid #8884; border-radius: .5rem; padding: .75rem; }
.consent { border-top: 1px solid #8886; margin-top: 2rem; }
.consent .buttons button { min-width: 9rem; padding: .5rem; }
.error { color: #c00; }
th { text-align: left; padding-right: 1rem; }
"""
