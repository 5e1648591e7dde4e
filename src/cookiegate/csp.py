"""Content-Security-Policy per consent state (sans-IO, stdlib only).

Two jobs:

* a CSP parser and serialiser that follow CSP Level 3 ("parse a serialized
  CSP") and Fetch's header-list splitting, so that a policy read and written
  back means exactly what the browser would have understood;
* :class:`CspBuilder`, built once from a :class:`CspConfig`, which turns the
  app's own CSP (or a configured base policy) into the policy for one consent
  state: tracker hosts of refused categories are taken out, nothing is ever
  loosened (apart from a per-response nonce for cookiegate's own script, see
  below).

Why the app's policy is rewritten instead of a second policy being added: CSP
is the *intersection* of every policy a response carries, so an added policy
can only restrict, but CSP has no deny-list; a second policy that allows
"everything except refused tracker hosts" cannot be written. Removing source
expressions from the app's lists, on the other hand, can only ever restrict.
When that is not enough (the app allows ``https:`` or ``*``, or has no
``img-src``/``default-src`` at all) the configured base policy is *added* as a
second policy, which again can only restrict. See
``docs/csp-and-consent-mode.md``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from .entropy import token_urlsafe
from .errors import ConfigError

log = logging.getLogger("cookiegate")

__all__ = [
    "CSP_HEADER",
    "CSP_REPORT_ONLY_HEADER",
    "CspBuilder",
    "CspConfig",
    "CspLeak",
    "CspPolicy",
    "allows_inline_script",
    "allows_url",
    "new_nonce",
    "parse_csp",
    "script_nonce",
    "serialize_csp",
    "style_nonce",
]

CSP_HEADER = "Content-Security-Policy"
CSP_REPORT_ONLY_HEADER = "Content-Security-Policy-Report-Only"

#: One policy: directive name (lower case) -> source list, in header order.
CspPolicy = dict[str, list[str]]

#: the directives cookiegate restricts for refused categories
TARGETS = ("script-src", "img-src", "connect-src", "frame-src")

#: how the names of source-list directives end (``script-src``, and CSP3's
#: ``script-src-elem`` / ``style-src-attr``...)
_SOURCE_LIST_ENDINGS = ("-src", "-src-elem", "-src-attr")

#: CSP3 fallback lists (the first directive present governs)
_FALLBACK: dict[str, tuple[str, ...]] = {
    "script-src-elem": ("script-src-elem", "script-src", "default-src"),
    "script-src": ("script-src", "default-src"),
    "img-src": ("img-src", "default-src"),
    "connect-src": ("connect-src", "default-src"),
    "frame-src": ("frame-src", "child-src", "default-src"),
    "child-src": ("child-src", "default-src"),
    "worker-src": ("worker-src", "child-src", "script-src", "default-src"),
    "style-src": ("style-src", "default-src"),
    "style-src-elem": ("style-src-elem", "style-src", "default-src"),
    "font-src": ("font-src", "default-src"),
    "media-src": ("media-src", "default-src"),
    "object-src": ("object-src", "default-src"),
    "manifest-src": ("manifest-src", "default-src"),
}

# WHATWG "ASCII whitespace" (not Python's str.split(), which also splits on
# \x0b, \x1c-\x1f and Unicode spaces: a different reading than the browser's)
_ASCII_WS = re.compile(r"[\t\n\f\r ]+")
_HTTP_WS = " \t"
_SCHEME_SOURCE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:")
_HOST_SOURCE = re.compile(
    r"(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://)?"
    r"(?P<host>\*|(?:\*\.)?[a-zA-Z0-9\-]+(?:\.[a-zA-Z0-9\-]+)*)"
    r"(?::(?P<port>[0-9]+|\*))?"
    r"(?P<path>/[^\s;,]*)?"
)
_NONCE_VALUE = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
#: a valid nonce source of the app's (an invalid one is left as it is: browsers
#: ignore it, so it must not read as a nonce from the cache)
_APP_NONCE = re.compile(r"'nonce-[A-Za-z0-9+/_\-]+={0,2}'", re.IGNORECASE)
_APP_NONCE_MARK = re.compile(r"'nonce-\x01([0-9]+)\x01'")
_NONCE_MARK = "\x00nonce\x00"  # never survives parsing, so it cannot collide


# -- parsing and serialising ---------------------------------------------------


def _split_header_list(value: str) -> list[str]:
    """CSP3's "parse a serialized CSP list": split on *every* comma (browsers do;
    a comma inside a ``"quoted string"`` splits too, unlike Fetch's generic
    header-list rule), values stripped of HTTP tab/space."""
    return [part.strip(_HTTP_WS) for part in value.split(",")]


def _parse_one(serialized: str) -> CspPolicy:
    policy: CspPolicy = {}
    for token in serialized.split(";"):
        token = token.strip("\t\n\f\r ")
        if not token or not token.isascii():
            continue
        parts = _ASCII_WS.split(token)
        name = parts[0].lower()
        if name in policy:
            continue  # duplicate directive: the first one wins
        # (NUL is never valid in a header; dropping such tokens keeps our
        # internal nonce marker unambiguous)
        policy[name] = [p for p in parts[1:] if p and "\x00" not in p]
    return policy


def parse_csp(header: str | None) -> list[CspPolicy]:
    """Parse a ``Content-Security-Policy`` header value into its policies.

    A header may hold several comma-separated policies (and a response several
    headers: join their values with ``", "``); the browser enforces all of
    them. Each policy maps lower-cased directive names to their source lists,
    in header order; of duplicated directives the first wins, tokens that are
    not ASCII are skipped and empty policies are dropped, as in CSP Level 3.
    Never raises: garbage gives garbage directives, which browsers ignore.
    """
    if not header:
        return []
    policies = []
    for raw in _split_header_list(header):
        policy = _parse_one(raw)
        if policy:
            policies.append(policy)
    return policies


def _serializable(token: str) -> bool:
    # a token with a quote or comma would change how the header is split
    return bool(token) and '"' not in token and "," not in token and ";" not in token


def serialize_csp(policies: Iterable[Mapping[str, Sequence[str]]]) -> str:
    """Write policies back as one header value (policies joined with ``", "``).

    An empty source list is written ``'none'`` (it means the same). Tokens that
    could not survive a round trip (containing ``"``, ``,`` or ``;``; they are
    not valid CSP anyway and match nothing) are left out.
    """
    out = []
    for policy in policies:
        directives = []
        for name, sources in policy.items():
            if not _serializable(name) or not name.isascii() or _ASCII_WS.search(name):
                continue
            kept = [s for s in sources if _serializable(s) and s.isascii()]
            if kept or name.lower() in _NOT_SOURCE_LISTS:
                directives.append(" ".join([name, *kept]))
            else:  # an empty source list matches nothing: said the canonical way
                directives.append(f"{name} 'none'")
        if directives:
            out.append("; ".join(directives))
    return ", ".join(out)


def new_nonce() -> str:
    """A fresh CSP nonce (128 bits, URL-safe base64). One per response."""
    return token_urlsafe(16)


# -- source expressions ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Host:
    """A host-source expression, split up. ``host`` is lower case and may start
    with ``*.``, or be ``*`` (``https://*``, ``*:443``, ``*/img/``: any host, as
    CSP3's grammar allows); ``path`` is empty when absent."""

    scheme: str | None
    host: str
    port: str | None
    path: str

    @classmethod
    def parse(cls, expression: str) -> _Host | None:
        m = _HOST_SOURCE.fullmatch(expression)
        if m is None or expression == "*":
            return None  # the bare "*" is its own expression
        scheme = m.group("scheme")
        return cls(
            scheme.lower() if scheme else None,
            m.group("host").lower(),
            m.group("port"),
            m.group("path") or "",
        )

    def host_within(self, other: _Host) -> bool:
        """Every host this one matches, ``other`` matches too."""
        mine, theirs = self.host, other.host
        if theirs == "*":
            return True
        if mine == "*":
            return False
        if theirs.startswith("*."):
            suffix = theirs[1:]  # ".example.com"
            if mine.startswith("*."):
                return mine[1:] == suffix or mine[1:].endswith(suffix)
            return mine.endswith(suffix)
        return mine == theirs

    def path_within(self, other: _Host) -> bool:
        if not other.path:
            return True
        if not self.path:
            return False
        if other.path.endswith("/"):
            return self.path.startswith(other.path)
        return self.path == other.path

    def within(self, other: _Host) -> bool:
        """Every URL this expression admits is on ``other``'s host (and path).
        Scheme and port are ignored on purpose: a tracker host is a tracker
        host on any scheme or port."""
        return self.host_within(other) and self.path_within(other)

    def overlaps(self, other: _Host) -> bool:
        return self.host_within(other) or other.host_within(self)


def _is_keyword(source: str) -> bool:
    return len(source) >= 2 and source[0] == "'" and source[-1] == "'"


def _keyword(source: str) -> str:
    return source.lower() if _is_keyword(source) else ""


def _scheme_match(a: str, b: str) -> bool:
    """CSP3 "scheme-part match": ``a`` (expression) admits ``b`` (URL)."""
    a, b = a.lower(), b.lower()
    return (
        a == b
        or (a == "http" and b == "https")
        or (a == "ws" and b in ("wss", "http", "https"))
        or (a == "wss" and b == "https")
    )


class _Url(NamedTuple):
    scheme: str
    host: str
    port: int | None  # None when it is the scheme's default
    path: str


def _parse_url(url: str) -> _Url | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or (not host and "//" in url):
        return None  # data:, blob: ... have no host; only scheme sources match them
    if port is not None and _DEFAULT_PORTS.get(scheme) == port:
        port = None
    return _Url(scheme, host, port, parts.path)


def _path_match(expr_path: str, url_path: str) -> bool:
    if not expr_path or (expr_path == "/" and not url_path):
        return True
    exact = not expr_path.endswith("/")
    a = expr_path.split("/")
    b = url_path.split("/")
    if len(a) > len(b):
        return False
    if exact and len(a) != len(b):
        return False
    if not exact:
        a.pop()  # the empty piece after the final "/"
    return all(unquote(x) == unquote(y) for x, y in zip(a, b, strict=False))


def _expression_matches(expression: str, url: _Url, origin: _Url | None) -> bool:
    """CSP3 "does url match expression in origin" (no redirects)."""
    if expression == "*":
        return url.scheme in ("http", "https", "ws", "wss") or (
            origin is not None and url.scheme == origin.scheme
        )
    kw = _keyword(expression)
    if kw:
        if kw != "'self'" or origin is None or not url.host or origin.host != url.host:
            return False
        if origin.scheme == url.scheme and origin.port == url.port:
            return True
        # 'self' also admits the secure variants of the page's own origin
        return (
            origin.port is None
            and url.port is None
            and (
                url.scheme in ("https", "wss")
                or (origin.scheme == "http" and url.scheme in ("http", "ws"))
            )
        )
    if _SCHEME_SOURCE.fullmatch(expression):
        return _scheme_match(expression[:-1], url.scheme)
    host = _Host.parse(expression)
    if host is None or not url.host:
        return False
    if host.scheme is None:
        if origin is None or not _scheme_match(origin.scheme, url.scheme):
            return False
    elif not _scheme_match(host.scheme, url.scheme):
        return False
    if host.host == "*":
        pass  # any host ("https://*")
    elif host.host.startswith("*."):
        if not url.host.endswith(host.host[1:]):
            return False
    elif host.host != url.host:
        return False
    if host.port != "*":
        wanted = int(host.port) if host.port is not None else None
        if wanted is not None and _DEFAULT_PORTS.get(url.scheme) == wanted:
            wanted = None
        if wanted != url.port:
            return False
    return _path_match(host.path, url.path)


def _effective(policy: Mapping[str, Sequence[str]], directive: str) -> Sequence[str] | None:
    """The source list governing ``directive`` (after fallback), or ``None``
    when the policy does not restrict it."""
    for name in _FALLBACK.get(directive, (directive, "default-src")):
        if name in policy:
            return policy[name]
    return None


def _list_allows(sources: Sequence[str], url: _Url, origin: _Url | None, directive: str) -> bool:
    lowered = [_keyword(s) for s in sources]
    if directive.startswith("script-src") and "'strict-dynamic'" in lowered:
        # host and scheme sources are ignored for parser-inserted scripts
        return False
    return any(_expression_matches(s, url, origin) for s in sources)


def allows_url(
    csp: str | Sequence[Mapping[str, Sequence[str]]] | None,
    directive: str,
    url: str,
    self_origin: str | None = None,
) -> bool:
    """Whether a response carrying ``csp`` may load ``url`` for ``directive``
    (e.g. ``"img-src"``), with the page at ``self_origin``
    (``"https://shop.example"``). Every policy must allow it (intersection).

    A model of CSP Level 3 URL matching (``*``, ``'self'``, scheme-sources,
    host-sources with wildcards, ports and paths; ``'strict-dynamic'`` makes a
    script list admit no URL by itself), used by the tests to prove cookiegate
    never loosens a policy. Not a security boundary of its own.
    """
    policies = parse_csp(csp) if csp is None or isinstance(csp, str) else csp
    target = _parse_url(url)
    if target is None:
        return not any(_effective(p, directive) is not None for p in policies)
    origin = _parse_url(self_origin) if self_origin else None
    for policy in policies:
        sources = _effective(policy, directive)
        if sources is not None and not _list_allows(sources, target, origin, directive):
            return False
    return True


def _inline_allowed_by(sources: Sequence[str] | None, nonce: str | None) -> bool:
    if sources is None:
        return True
    lowered = [_keyword(s) for s in sources]
    if nonce is not None and f"'nonce-{nonce}'".lower() in lowered:
        return True
    disables_inline = any(_nonce_or_hash(k) or k == "'strict-dynamic'" for k in lowered)
    return "'unsafe-inline'" in lowered and not disables_inline


#: directives whose value is not a source list: written without one as they came
#: (``'none'`` there is not their grammar, and browsers log an error for it)
_NOT_SOURCE_LISTS = frozenset(
    (
        "upgrade-insecure-requests",
        "block-all-mixed-content",
        "sandbox",
        "trusted-types",
        "require-trusted-types-for",
        "report-uri",
        "report-to",
        "plugin-types",
    )
)
_INLINE_KEYS = ("'nonce-", "'sha256-", "'sha384-", "'sha512-")
_MARK_VALUE = re.compile("\x01[0-9]+\x01")  # see CspBuilder.header_for


def _nonce_or_hash(keyword: str) -> bool:
    """Whether ``keyword`` is a *valid* nonce or hash source (only those switch
    ``'unsafe-inline'`` off: a browser ignores ``'nonce-'`` or
    ``'nonce-{{nonce}}'`` from an empty template, and ``'unsafe-inline'`` still
    works there)."""
    if not keyword.endswith("'"):
        return False
    for prefix in _INLINE_KEYS:
        if keyword.startswith(prefix):
            value = keyword[len(prefix) : -1]  # or an app nonce's cache marker
            return (
                _NONCE_VALUE.fullmatch(value) is not None
                or _MARK_VALUE.fullmatch(value) is not None
            )
    return False


def allows_inline_script(csp: str | None, nonce: str | None = None) -> bool:
    """Whether an inline ``<script nonce="{nonce}">`` would run under ``csp``
    (every policy of it). Use it to choose between the inline Consent Mode
    snippet and the static script (``consent_mode.head_fragment``)."""
    return all(_inline_allowed_by(_effective(p, "script-src-elem"), nonce) for p in parse_csp(csp))


def script_nonce(csp: str | None) -> str | None:
    """A nonce of the app's own that lets a ``<script>`` element run under every
    policy of ``csp`` that restricts scripts (``None``: none does, or no nonce
    serves them all). cookiegate puts it on its own script tags when it does
    not build the page's CSP itself, so a strict policy (``'nonce-...'
    'strict-dynamic'``) does not block the banner's script."""
    return _element_nonce(csp, "script-src-elem")


def style_nonce(csp: str | None) -> str | None:
    """:func:`script_nonce` for ``<link rel=stylesheet>`` (``style-src-elem``,
    ``style-src``, ``default-src``): cookiegate puts it on the banner's
    stylesheet, so a policy allowing styles by nonce only does not leave the
    banner unstyled."""
    return _element_nonce(csp, "style-src-elem")


def _element_nonce(csp: str | None, directive: str) -> str | None:
    common: set[str] | None = None
    for policy in parse_csp(csp):
        sources = _effective(policy, directive)
        if sources is None:
            continue
        found = {
            s[7:-1]
            for s in sources
            if s.lower().startswith("'nonce-")
            and s.endswith("'")
            and _NONCE_VALUE.fullmatch(s[7:-1])
        }
        common = found if common is None else common & found
        if not common:
            return None
    return min(common) if common else None


# -- configuration and the builder ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CspLeak:
    """A refused tracker that a policy still admits and that cookiegate cannot
    take out by removing sources: ``source`` is the app's expression that
    admits it (``"https:"``, ``"*"``, ``"*.google.com"``, ``"'strict-dynamic'"``)
    or ``None`` when the directive is not restricted at all."""

    directive: str
    source: str | None
    tracker: str


@dataclass(frozen=True, slots=True)
class CspConfig:
    """How cookiegate shapes the Content-Security-Policy.

    :param allowed_by_category: category -> tracker source expressions (host
        sources such as ``"https://www.googletagmanager.com"`` or
        ``"https://*.google-analytics.com"``, optionally with a path) that may
        be loaded when the category is granted. Refused categories' hosts are
        removed from the policy; a host listed under several categories stays
        as soon as one of them is granted.
    :param base_policy: the site's own CSP *without* any tracker host (e.g.
        ``"default-src 'self'; img-src 'self' data:"``). Sent when the app sends
        no CSP, with the granted categories' hosts added to ``script-src``,
        ``img-src``, ``connect-src`` and ``frame-src``. ``None`` (the default):
        without an app CSP nothing is sent.
    :param base_for_leaks: when the app's CSP admits a refused tracker in a way
        that removing sources cannot fix (``https:``, ``*``, a wider wildcard,
        no such directive at all), also send ``base_policy`` as a second
        policy. A second policy only restricts; it also restricts what the app
        did not, so it may break pages: it is the site's own base policy.
    :param report_only: send the result as ``Content-Security-Policy-Report-Only``
        and leave the app's enforced header alone.
    :param report_uri: added as ``report-uri`` to the base policy and, in
        report-only mode, to every policy (never replacing the app's).
    :param report_to: added as ``report-to`` likewise (the app declares the
        endpoint group with ``Reporting-Endpoints``).
    """

    allowed_by_category: Mapping[str, Sequence[str]] = field(default_factory=dict)
    base_policy: str | None = None
    base_for_leaks: bool = True
    report_only: bool = False
    report_uri: str | None = None
    report_to: str | None = None

    @classmethod
    def from_trackers(
        cls, trackers: Iterable[Mapping[str, object]], **options: object
    ) -> CspConfig:
        """Build the category map from tracker data, e.g. rows of a TOML file::

        [[tracker]]
        vendor = "Google Analytics"
        category = "performance"
        hosts = ["https://www.googletagmanager.com", "https://*.google-analytics.com"]
        """
        by_cat: dict[str, list[str]] = {}
        for i, row in enumerate(trackers):
            where = f"trackers[{i}]"
            if not isinstance(row, Mapping):
                raise ConfigError(where, "must be a table")
            cat = row.get("category")
            hosts = row.get("hosts")
            if not isinstance(cat, str) or not cat:
                raise ConfigError(f"{where}.category", "must be a category name")
            if not isinstance(hosts, list | tuple) or not all(isinstance(h, str) for h in hosts):
                raise ConfigError(f"{where}.hosts", "must be a list of host sources")
            bucket = by_cat.setdefault(cat, [])
            bucket.extend(h for h in hosts if h not in bucket)
        return cls(by_cat, **options)  # type: ignore[arg-type]


def _validate_policy(text: object, where: str) -> list[CspPolicy]:
    if not isinstance(text, str):
        raise ConfigError(where, "must be a CSP string")
    policies = parse_csp(text)
    if not policies:
        raise ConfigError(where, "holds no directive")
    return policies


def _validate_report(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or _ASCII_WS.search(value) or ";" in value:
        raise ConfigError(where, "must be one URL / endpoint name without spaces or ';'")
    if "," in value or not value.isascii():
        raise ConfigError(where, "must be ASCII without ','")
    return value


class _Plan(NamedTuple):
    name: str
    pieces: tuple[str, ...]  # the value, split where the nonce goes
    plain: str  # the value without a nonce


class CspBuilder:
    """Computes the CSP header for a consent state. Build it once; the result
    for each ``(granted, app_csp)`` is cached, so the request path is a dict
    lookup plus joining the nonce in.

    :param config: the :class:`CspConfig`.
    :param categories: the policy's category names; when given, unknown
        category names in ``config.allowed_by_category`` are a ``ConfigError``.
    :param cache_size: distinct ``(granted, app_csp)`` results kept.
    """

    def __init__(
        self,
        config: CspConfig,
        *,
        categories: Iterable[str] | None = None,
        cache_size: int = 512,
    ) -> None:
        if not isinstance(config, CspConfig):
            raise ConfigError("csp", "must be a CspConfig")
        known = set(categories) if categories is not None else None
        if not isinstance(config.allowed_by_category, Mapping):
            raise ConfigError("csp.allowed_by_category", "must map a category to host sources")
        allowed: dict[str, tuple[tuple[str, _Host], ...]] = {}
        for cat, sources in config.allowed_by_category.items():
            where = f"csp.allowed_by_category.{cat}"
            if not isinstance(cat, str) or not cat:
                raise ConfigError("csp.allowed_by_category", "keys must be category names")
            if known is not None and cat not in known:
                raise ConfigError(
                    where, f"unknown category {cat!r} (known: {', '.join(sorted(known))})"
                )
            if isinstance(sources, str) or not isinstance(sources, Sequence):
                raise ConfigError(where, "must be a list of host sources")
            parsed = []
            for i, src in enumerate(sources):
                host = _Host.parse(src) if isinstance(src, str) else None
                if host is None or host.host == "*":
                    raise ConfigError(
                        f"{where}[{i}]",
                        f"{src!r} is not a host source (like 'https://*.example.com'); "
                        "keywords, '*' and scheme sources cannot name a tracker",
                    )
                parsed.append((src, host))
            allowed[cat] = tuple(parsed)
        self._allowed = allowed
        self.base: list[CspPolicy] | None = (
            None
            if config.base_policy is None
            else _validate_policy(config.base_policy, "csp.base_policy")
        )
        for flag in ("base_for_leaks", "report_only"):
            if not isinstance(getattr(config, flag), bool):
                raise ConfigError(f"csp.{flag}", "must be true or false")
        self._report: list[tuple[str, str]] = []
        uri = _validate_report(config.report_uri, "csp.report_uri")
        if uri is not None:
            self._report.append(("report-uri", uri))
        to = _validate_report(config.report_to, "csp.report_to")
        if to is not None:
            self._report.append(("report-to", to))
        self.config = config
        self.header_name = CSP_REPORT_ONLY_HEADER if config.report_only else CSP_HEADER
        self._plan = functools.lru_cache(maxsize=cache_size)(self._compute)

    # -- public ----------------------------------------------------------

    def header_for(
        self, granted: frozenset[str], app_csp: str | None = None, nonce: str | None = None
    ) -> tuple[str, str] | None:
        """The ``(header name, value)`` to send for a visitor who granted
        ``granted``, or ``None`` when there is nothing to send.

        :param granted: the granted categories (``ConsentState.granted``).
        :param app_csp: the app's ``Content-Security-Policy`` (several header
            lines joined with ``", "``), or ``None``.
        :param nonce: the nonce of cookiegate's own inline script on this
            response (:func:`new_nonce`), or ``None``.

        Enforcing mode: the value *replaces* the app's ``Content-Security-Policy``
        header(s): it is the app's policies with refused tracker hosts removed
        (plus the nonce, plus the base policy for leaks). Report-only mode: the
        name is ``Content-Security-Policy-Report-Only``; *add* it and leave the
        app's headers as they are.
        """
        if nonce is not None and not _NONCE_VALUE.fullmatch(nonce):
            raise ValueError("a CSP nonce must be base64 (see new_nonce())")
        app_nonces: list[str] = []
        if app_csp and "'nonce-" in app_csp.lower() and "\x01" not in app_csp:
            # the app's own per-response nonces would defeat the cache: stand
            # numbered markers in for them and put them back afterwards
            def mark(m: re.Match[str]) -> str:
                app_nonces.append(m.group(0))
                return f"'nonce-\x01{len(app_nonces) - 1}\x01'"

            app_csp = _APP_NONCE.sub(mark, app_csp)
        plan = self._plan(frozenset(granted), app_csp or None)
        if plan is None:
            return None
        if nonce is None or len(plan.pieces) == 1:
            value = plan.plain
        else:
            value = f"'nonce-{nonce}'".join(plan.pieces)
        if app_nonces:
            value = _APP_NONCE_MARK.sub(lambda m: app_nonces[int(m.group(1))], value)
        return plan.name, value

    def leaks(self, granted: frozenset[str], app_csp: str | None) -> list[CspLeak]:
        """Refused trackers that ``app_csp`` (after cookiegate's removals) still
        admits in ``script-src``, ``img-src``, ``connect-src`` or ``frame-src``."""
        refused = self._refused(frozenset(granted))
        out: list[CspLeak] = []
        for policy in parse_csp(app_csp):
            out.extend(self._leaks_of(self._remove(policy, refused), refused))
        return out

    # -- the computation (cached) ----------------------------------------

    def _refused(self, granted: frozenset[str]) -> tuple[_Host, ...]:
        kept = {
            src for cat, entries in self._allowed.items() if cat in granted for src, _ in entries
        }
        seen: dict[str, _Host] = {}
        for cat, entries in self._allowed.items():
            if cat in granted or cat == "strictly_necessary":
                continue
            for src, host in entries:
                if src not in kept:
                    seen.setdefault(src, host)
        return tuple(seen.values())

    def _granted_sources(self, granted: frozenset[str]) -> list[str]:
        out: list[str] = []
        for cat, entries in self._allowed.items():
            if cat in granted or cat == "strictly_necessary":
                out.extend(src for src, _ in entries if src not in out)
        return out

    @staticmethod
    def _remove(policy: CspPolicy, refused: tuple[_Host, ...]) -> CspPolicy:
        """Drop every source expression whose URLs all lie on refused tracker
        hosts, from every source-list directive. Removing only restricts."""
        if not refused:
            return {name: list(srcs) for name, srcs in policy.items()}
        out: CspPolicy = {}
        for name, sources in policy.items():
            if not (name.endswith(_SOURCE_LIST_ENDINGS) or name == "form-action"):
                out[name] = list(sources)
                continue
            kept = []
            for src in sources:
                host = None if _is_keyword(src) else _Host.parse(src)
                if host is not None and any(host.within(t) for t in refused):
                    continue
                kept.append(src)
            out[name] = kept
        return out

    @staticmethod
    def _leaks_of(policy: CspPolicy, refused: tuple[_Host, ...]) -> list[CspLeak]:
        leaks: list[CspLeak] = []
        # script-src-elem governs <script src> where present (else script-src)
        checked = (*TARGETS, "script-src-elem") if "script-src-elem" in policy else TARGETS
        for directive in checked:
            sources = _effective(policy, directive)
            for tracker in refused:
                label = _describe(tracker)
                schemes = (tracker.scheme,) if tracker.scheme else ("http", "https")
                if sources is None:
                    leaks.append(CspLeak(directive, None, label))
                    continue
                for src in sources:
                    kw = _keyword(src)
                    host = None if kw else _Host.parse(src)
                    if (
                        src == "*"
                        or (
                            not kw
                            and _SCHEME_SOURCE.fullmatch(src) is not None
                            and any(_scheme_match(src[:-1], s) for s in schemes)
                        )
                        or (host is not None and host.overlaps(tracker))
                        or (directive.startswith("script-src") and kw == "'strict-dynamic'")
                    ):
                        leaks.append(CspLeak(directive, src, label))
        return leaks

    def _with_granted(self, policy: CspPolicy, granted: frozenset[str]) -> CspPolicy:
        """The base policy plus the granted categories' hosts in the target
        directives (materialised from their fallback when absent)."""
        extra = self._granted_sources(granted)
        out = {name: list(srcs) for name, srcs in policy.items()}
        if not extra:
            return out
        for directive in (*TARGETS, "script-src-elem"):
            if directive == "script-src-elem" and directive not in out:
                continue
            sources = _effective(out, directive)
            if sources is None:
                continue  # not restricted: nothing to add
            merged = [s for s in sources if _keyword(s) != "'none'"]
            merged.extend(s for s in extra if s not in merged)
            out[directive] = merged
        return out

    def _add_nonce_slot(self, policy: CspPolicy) -> CspPolicy:
        """Mark where cookiegate's nonce goes: the list governing ``<script>``
        elements, when it restricts inline scripts and allows some script. Never
        where ``'unsafe-inline'`` currently works (a nonce would switch it off)
        and never by creating a restriction the policy did not have."""
        for directive in ("script-src-elem", "script-src", "default-src"):
            if directive in policy:
                sources = policy[directive]
                break
        else:
            return policy
        lowered = [_keyword(s) for s in sources]
        if not sources or lowered == ["'none'"] or _inline_allowed_by(sources, None):
            return policy
        out = dict(policy)
        target = "script-src" if directive == "default-src" else directive
        out[target] = [*sources, _NONCE_MARK]
        return out

    def _compute(self, granted: frozenset[str], app_csp: str | None) -> _Plan | None:
        refused = self._refused(granted)
        app = parse_csp(app_csp)
        policies: list[CspPolicy] = []
        own: list[bool] = []  # which policies cookiegate authored
        if app:
            leaks: list[CspLeak] = []
            for policy in app:
                trimmed = self._remove(policy, refused)
                leaks.extend(self._leaks_of(trimmed, refused))
                policies.append(trimmed)
                own.append(False)
            if leaks:
                guarded = self.base is not None and self.config.base_for_leaks
                log.warning(
                    "cookiegate: the app's CSP still admits refused trackers (%s)%s",
                    "; ".join(
                        f"{lk.directive} {lk.source or '(unrestricted)'} -> {lk.tracker}"
                        for lk in leaks[:5]
                    ),
                    ", adding the base policy" if guarded else "; set CspConfig.base_policy",
                )
                if guarded and self.base is not None:
                    for base in self.base:
                        policies.append(self._remove(self._with_granted(base, granted), refused))
                        own.append(True)
        elif self.base is not None:
            for base in self.base:
                policies.append(self._remove(self._with_granted(base, granted), refused))
                own.append(True)
        else:
            return None
        for policy, mine in zip(policies, own, strict=True):
            if mine or self.config.report_only:
                for name, value in self._report:
                    policy.setdefault(name, [value])
        plain = serialize_csp(policies)
        marked = serialize_csp([self._add_nonce_slot(p) for p in policies])
        return _Plan(self.header_name, tuple(marked.split(_NONCE_MARK)), plain)


def _describe(host: _Host) -> str:
    port = f":{host.port}" if host.port else ""
    scheme = f"{host.scheme}://" if host.scheme else ""
    return f"{scheme}{host.host}{port}{host.path}"
