"""Google Consent Mode v2 (sans-IO, stdlib only).

cookiegate's categories are mapped to Google's seven consent signals. The
``default`` command (everything denied except ``security_storage``) must run
before any Google tag, so :meth:`ConsentMode.head_fragment` is meant to be
inserted right after the page's ``<head>`` opening tag. A returning visitor's
stored decision follows immediately as an ``update`` in the same script, and a
decision made in the page (the ``cookiegate:consent`` event of the banner) is
turned into another ``update``.

Two forms, because cookiegate never relies on inline script without a nonce:

* inline: ``<script nonce="…">`` with the commands (needs the CSP nonce, see
  :mod:`cookiegate.csp`);
* static: ``<script src="/_cookiegate/static/cookiegate-consent-mode.js"
  data-cookiegate-consent-mode="{json}">``, synchronous (no ``async``/``defer``)
  so that it runs before the tags, reading its configuration from its own
  ``data-`` attribute. Works under ``script-src 'self'``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .errors import ConfigError
from .policy import NECESSARY

__all__ = [
    "DEFAULT_MAPPING",
    "SIGNALS",
    "ConsentMode",
    "ConsentModeConfig",
    "safe_json",
]

#: Google Consent Mode v2 consent types, in Google's order
SIGNALS = (
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)
#: always granted: storage for authentication and fraud prevention is strictly necessary
ALWAYS_GRANTED = "security_storage"

DEFAULT_MAPPING: Mapping[str, tuple[str, ...]] = {
    "performance": ("analytics_storage",),
    "marketing": ("ad_storage", "ad_user_data", "ad_personalization"),
    "functional": ("functionality_storage", "personalization_storage"),
}

DATA_ATTRIBUTE = "data-cookiegate-consent-mode"
_REGION = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?")
_NONCE = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")
_JSON_UNSAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")

Value = Literal["granted", "denied"]


def safe_json(value: object) -> str:
    """JSON that is safe inside a ``<script>`` element or an HTML attribute
    (after attribute escaping): ``<``, ``>``, ``&``, U+2028 and U+2029 are
    written as ``\\uXXXX`` escapes, so ``</script>`` or ``<!--`` cannot appear."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=False)
    return _JSON_UNSAFE_RE.sub(lambda m: _JSON_UNSAFE[m.group(0)], text)


@dataclass(frozen=True, slots=True)
class ConsentModeConfig:
    """How cookiegate drives Google Consent Mode v2.

    :param mapping: cookiegate category -> Consent Mode signals it grants.
        Default: ``performance`` -> ``analytics_storage``; ``marketing`` ->
        ``ad_storage``, ``ad_user_data``, ``ad_personalization``; ``functional``
        -> ``functionality_storage``, ``personalization_storage``. A signal no
        granted category maps to stays ``denied``; ``security_storage`` is always
        ``granted`` and cannot be mapped.
    :param wait_for_update: milliseconds Google tags wait for an ``update``
        (0..60000) or ``None`` to leave it out.
    :param ads_data_redaction: ``gtag('set', 'ads_data_redaction', true)``:
        redact ad identifiers while ``ad_storage`` is denied.
    :param url_passthrough: ``gtag('set', 'url_passthrough', true)``.
    :param region: ISO 3166-1/2 codes (``"DE"``, ``"US-CA"``) the default
        applies to; ``None`` (the default): everywhere.
    :param script_url: where ``static/cookiegate-consent-mode.js`` is served.
    """

    mapping: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_MAPPING))
    wait_for_update: int | None = 500
    ads_data_redaction: bool = True
    url_passthrough: bool = False
    region: Sequence[str] | None = None
    script_url: str = "/_cookiegate/static/cookiegate-consent-mode.js"

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, Mapping):
            raise ConfigError("consent_mode.mapping", "must map a category to signals")
        for cat, signals in self.mapping.items():
            where = f"consent_mode.mapping.{cat}"
            if not isinstance(cat, str) or not cat:
                raise ConfigError("consent_mode.mapping", "keys must be category names")
            if isinstance(signals, str) or not isinstance(signals, Sequence):
                raise ConfigError(where, "must be a list of Consent Mode signals")
            for i, sig in enumerate(signals):
                if sig == ALWAYS_GRANTED:
                    raise ConfigError(
                        f"{where}[{i}]", "security_storage is always granted; do not map it"
                    )
                if sig not in SIGNALS:
                    raise ConfigError(
                        f"{where}[{i}]",
                        f"unknown signal {sig!r} (known: {', '.join(SIGNALS[:-1])})",
                    )
        w = self.wait_for_update
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 60000):
            raise ConfigError("consent_mode.wait_for_update", "must be 0..60000 ms or None")
        for flag in ("ads_data_redaction", "url_passthrough"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"consent_mode.{flag}", "must be true or false")
        if self.region is not None:
            if isinstance(self.region, str) or not isinstance(self.region, Sequence):
                raise ConfigError("consent_mode.region", "must be a list of ISO 3166 codes")
            for i, code in enumerate(self.region):
                if not isinstance(code, str) or not _REGION.fullmatch(code):
                    raise ConfigError(
                        f"consent_mode.region[{i}]", f"{code!r} is not an ISO 3166-1/2 code"
                    )
        url = self.script_url
        if not isinstance(url, str) or not url or any(c in url for c in "\"'<> \t\n"):
            raise ConfigError("consent_mode.script_url", "must be a URL")


#: the page-side listener, shared by the inline snippet; the same logic lives in
#: static/cookiegate-consent-mode.js
#: (written without "<" and "&", so that the inline snippet is well-formed XML
#: too, in an application/xhtml+xml page)
_LISTENER = (
    'document.addEventListener("cookiegate:consent",function(e){'
    "var d=e.detail||{},c=d.categories||{},u={},k,i;"
    "for(i=0;S.length>i;i++)u[S[i]]=S[i]==='security_storage'?'granted':'denied';"
    "for(k in M)if(Object.prototype.hasOwnProperty.call(M,k))if(c[k]===true)"
    "for(i=0;M[k].length>i;i++)u[M[k][i]]='granted';"
    "gtag('consent','update',u);});"
)


class ConsentMode:
    """Consent Mode output for a consent state. Build it once.

    :param config: the :class:`ConsentModeConfig` (default mapping if omitted).
    :param categories: the policy's category names; when given, a category of a
        custom mapping that the policy lacks is a ``ConfigError`` (the default
        mapping's ``marketing`` / ``functional`` are skipped when absent).
    """

    def __init__(
        self,
        config: ConsentModeConfig | None = None,
        *,
        categories: Iterable[str] | None = None,
        folded: Mapping[str, str] | None = None,
    ) -> None:
        """``folded``: where the site's policy puts the catalogue's categories it
        does not have (``Policy.catalog_categories``: without a ``marketing``
        category, ads cookies are ``performance``). With the default mapping, the
        signals of such a category then go with the category it is folded into:
        consenting to the cookies consents to their storage signals (never to
        ``ad_user_data`` or ``ad_personalization``)."""
        config = ConsentModeConfig() if config is None else config
        if not isinstance(config, ConsentModeConfig):
            raise ConfigError("consent_mode", "must be a ConsentModeConfig")
        mapping = {cat: tuple(sigs) for cat, sigs in config.mapping.items()}
        if NECESSARY in mapping:
            raise ConfigError(
                f"consent_mode.mapping.{NECESSARY}",
                "strictly necessary storage is security_storage, always granted;"
                " map optional categories only",
            )
        if categories is not None:
            known = set(categories)
            is_default = mapping == dict(DEFAULT_MAPPING)
            for cat in list(mapping):
                if cat not in known:
                    if is_default:
                        signals = mapping.pop(cat)
                        into = (folded or {}).get(cat)
                        if into in known and into is not None:
                            # only the storage signals go with the cookies: sending
                            # user data for ads (ad_user_data) and personalised ads
                            # (ad_personalization) are purposes of their own, which
                            # consenting to, say, anonymous statistics does not cover
                            have = mapping.get(into, ())
                            mapping[into] = (
                                *have,
                                *(s for s in signals if s not in have and s.endswith("_storage")),
                            )
                        continue
                    raise ConfigError(
                        f"consent_mode.mapping.{cat}",
                        f"unknown category {cat!r} (known: {', '.join(sorted(known))})",
                    )
        self.config = config
        self.mapping: Mapping[str, tuple[str, ...]] = mapping
        default: dict[str, object] = dict(self.signals_for(frozenset()))
        if config.wait_for_update is not None:
            default["wait_for_update"] = config.wait_for_update
        if config.region is not None:
            default["region"] = list(config.region)
        self._default = default
        sets = []
        if config.ads_data_redaction:
            sets.append("gtag('set','ads_data_redaction',true);")
        if config.url_passthrough:
            sets.append("gtag('set','url_passthrough',true);")
        self._prelude = (
            "window.dataLayer=window.dataLayer||[];"
            "function gtag(){dataLayer.push(arguments);}"
            f"gtag('consent','default',{safe_json(default)});" + "".join(sets)
        )
        self._listener = (
            f"(function(){{var M={safe_json(mapping)},S={safe_json(list(SIGNALS))};"
            f"{_LISTENER}}})();"
        )

    def signals_for(self, granted: frozenset[str]) -> dict[str, Value]:
        """The seven signals for the granted categories, in Google's order."""
        on = {sig for cat in granted for sig in self.mapping.get(cat, ())}
        on.add(ALWAYS_GRANTED)
        return {sig: "granted" if sig in on else "denied" for sig in SIGNALS}

    def default_snippet(self, nonce: str | None, granted: frozenset[str] | None = None) -> str:
        """An inline ``<script>``: ``default`` (all denied but security_storage),
        the ``set`` options, then, when the visitor has decided (``granted`` is
        not ``None``), ``update`` with the stored choice, and a listener that
        sends ``update`` on each ``cookiegate:consent`` event of the page."""
        update = ""
        if granted is not None:
            update = f"gtag('consent','update',{safe_json(self.signals_for(granted))});"
        return f"<script{_nonce_attr(nonce)}>{self._prelude}{update}{self._listener}</script>"

    def static_snippet(self, nonce: str | None, granted: frozenset[str] | None = None) -> str:
        """The same without inline script: a synchronous ``<script src>`` of
        ``cookiegate-consent-mode.js`` carrying its configuration as JSON in
        ``data-cookiegate-consent-mode``."""
        data: dict[str, object] = {
            "default": self._default,
            "update": None if granted is None else self.signals_for(granted),
            "mapping": dict(self.mapping),
            "signals": list(SIGNALS),
            "ads_data_redaction": self.config.ads_data_redaction,
            "url_passthrough": self.config.url_passthrough,
        }
        attr = html.escape(safe_json(data), quote=True)
        src = html.escape(self.config.script_url, quote=True)
        return f'<script src="{src}"{_nonce_attr(nonce)} {DATA_ATTRIBUTE}="{attr}"></script>'

    def head_fragment(
        self,
        granted: frozenset[str] | None,
        nonce: str | None = None,
        *,
        inline: bool = True,
    ) -> bytes:
        """The bytes to insert right after ``<head …>``: the inline snippet
        (``inline=True``) or the static one. ``granted`` is ``None`` for an
        undecided visitor, else ``ConsentState.granted``. Use the inline form
        only where the response's CSP lets the nonce run
        (``cookiegate.csp.allows_inline_script``)."""
        make = self.default_snippet if inline else self.static_snippet
        return make(nonce, granted).encode("utf-8")


def _nonce_attr(nonce: str | None) -> str:
    if nonce is None:
        return ""
    if not _NONCE.fullmatch(nonce):
        raise ValueError("a CSP nonce must be base64 (see cookiegate.csp.new_nonce())")
    return f' nonce="{nonce}"'
