"""The site's consent policy: categories, cookie rules and a version.

A :class:`Policy` is frozen once built. Everything is validated at construction
and any problem raises :class:`~cookiegate.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

NECESSARY = "strictly_necessary"
PERFORMANCE = "performance"

MatchKind = Literal["exact", "glob", "regex"]
_MATCH_KINDS = ("exact", "glob", "regex")
_CATEGORY_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265 token characters
#: a host name (labels of letters, digits, '-' and '_', dot-separated; no scheme,
#: port or path), as a cookie's Domain attribute names one
_HOST_NAME = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?"
)
#: Cookie Max-Age is capped by browsers at 400 days (rfc6265bis).
MAX_COOKIE_AGE = 400 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Category:
    """A consent category shown to visitors.

    :param name: identifier used in forms, JSON and the consent token
        (lower case, digits and ``_``).
    :param label: short human name.
    :param description: what cookies of this category are used for.
    :param necessary: always on and cannot be refused. Only
        ``strictly_necessary`` may be necessary.
    """

    name: str
    label: str = ""
    description: str = ""
    necessary: bool = False


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        NECESSARY,
        "Strictly necessary",
        "Needed for the site to work: login, forms, security and routing. Always on.",
        necessary=True,
    ),
    Category(
        PERFORMANCE,
        "Performance",
        "Web analysis, affiliate tracing, error measurement and design testing. "
        "Collected only with your consent and processed anonymously.",
    ),
)


@dataclass(frozen=True, slots=True)
class CookieRule:
    """Classifies cookies by name (exact, glob or regex), optionally narrowed to a
    domain and a path.

    ``domain`` and ``path`` narrow the rule to cookies set on that domain (or a
    subdomain) and under that path; for a cookie a browser sends, the request's
    host and path stand in. They are also the declared attributes used to expire
    the cookie when a visitor refuses or withdraws.
    """

    name: str
    category: str
    match: MatchKind = "exact"
    domain: str | None = None
    path: str | None = None
    vendor: str = ""
    purpose: str = ""
    lifetime: str = ""
    lifetime_seconds: int | None = None
    source: str = ""
    justification: str = ""
    origin: str = "site"  # "site" or "catalog"
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches_name(self, name: str) -> bool:
        if self.match == "exact":
            return name == self.name
        if self._regex is None:  # pragma: no cover - set by _compile()
            return False
        if len(name) > MAX_PATTERN_NAME:
            return False  # a pattern never meets an absurd name (bounded work)
        return self._regex.fullmatch(name) is not None

    def fits(self, domain: str | None, path: str | None) -> bool:
        """Whether the cookie's effective domain and path fall under this rule."""
        if self.domain is not None:
            if domain is None:
                return False
            d = domain.lower().lstrip(".")
            if d != self.domain and not d.endswith("." + self.domain):
                return False
        if self.path is not None:
            p = path or "/"
            base = self.path.rstrip("/")
            if p != self.path and p != base and not p.startswith(base + "/"):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Beacon:
    """A first-party beacon or telemetry route (``/track``, a proxied tag-manager
    path...). While the visitor has not consented to ``category``, requests to it
    are answered ``204 No Content`` by cookiegate and never reach the app.

    :param path: an exact path (``/track``), or a prefix ending in ``*``
        (``/gtm/*`` matches ``/gtm``, ``/gtm/`` and everything under it;
        ``/collect*`` matches ``/collect`` and ``/collect.js``). Paths are
        compared as frameworks that merge slashes or ignore a trailing one route
        them: ``/track/`` and ``//track`` are ``/track``.
    :param category: the consent category the route needs.
    """

    path: str
    category: str
    vendor: str = ""
    purpose: str = ""

    def matches(self, path: str) -> bool:
        """Whether a request to ``path`` is this beacon (as the gate decides)."""
        key = route_key(path)
        if self.path.endswith("*"):
            prefix = self.path[:-1]
            return path.startswith(prefix) or (key + "/").startswith(prefix)
        return key == route_key(self.path)


_SLASH_RUNS = re.compile(r"/{2,}")


def route_key(path: str) -> str:
    """``path`` with runs of slashes merged and no trailing one (``/`` stays):
    the route a framework that merges slashes or ignores a trailing one serves."""
    return _SLASH_RUNS.sub("/", path).rstrip("/") or "/"


#: longest cookie name a glob or regex rule is tried on (longer: no pattern
#: matches it, so it is undeclared, non-necessary): the work per name is bounded
MAX_PATTERN_NAME = 256
#: a repeat up to more than this many times counts as unbounded
_MANY = 16


def _backtracks(pattern: str) -> bool:
    """Whether ``pattern`` can take exponential time on a crafted name: a
    repetition of varying count inside an unbounded one (``(a+)+``,
    ``(a{1,3})*``), or an unbounded one of alternatives that may begin alike
    (``(x|y|xy)+``); or cubic time or worse (:func:`_chained`). Possessive
    repetitions and atomic groups never backtrack into themselves, so they are
    fine (``(a++_?)++``)."""
    parser = importlib.import_module("re._parser")
    try:
        tree = parser.parse(pattern)
    except Exception:  # re.compile has accepted it: be safe, not sorry
        return False

    def firsts(items: Any) -> set[object] | None:
        """Literal first characters of a sequence (None: not all literal)."""
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                return {av}
            if name == "SUBPATTERN":
                return firsts(av[3])
            return None
        return None

    def risky(items: Any, in_repeat: bool) -> bool:
        for op, av in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT"):
                lo, hi, sub = av
                many = hi == parser.MAXREPEAT or hi > _MANY
                if lo != hi and in_repeat:
                    return True  # (a+)+, (a{1,3})+: exponentially many ways to split
                if risky(sub, in_repeat or many):
                    return True
                if many and branches_overlap(sub):
                    return True
            elif (
                (name == "SUBPATTERN" and risky(av[3], in_repeat))
                or (name == "BRANCH" and any(risky(b, in_repeat) for b in av[1]))
                or (name in ("ASSERT", "ASSERT_NOT") and risky(av[1], False))
            ):
                return True
            # POSSESSIVE_REPEAT, ATOMIC_GROUP: no backtracking into them
        return False

    def branches_overlap(items: Any) -> bool:
        for op, av in items:
            name = str(op)
            if name == "SUBPATTERN":
                return branches_overlap(av[3])
            if name == "BRANCH":
                seen: set[object] = set()
                for b in av[1]:
                    first = firsts(b)
                    if first is None or first & seen:
                        return True
                    seen |= first
            return False
        return False

    return risky(tree, False) or _chained(tree, parser)


#: the characters a cookie name may hold (RFC 6265 token: printable ASCII)
_NAME_CHARS = frozenset(range(0x21, 0x7F))


def _chained(tree: Any, parser: Any) -> bool:
    """Whether ``tree`` has three or more unbounded repetitions in a row that can
    trade characters (``.*_.*_.*x``, ``a*a*a*b``, ``\\w+_\\w+_\\w+``): each
    may end anywhere the next may begin, so a name of n characters is split in
    about n**3 ways (a second of CPU per request at 256 characters). Two in a row
    stay quadratic (fine); a separator the previous one cannot match ends the
    chain (``[A-Z0-9]+\\.[0-9]+\\.[0-9]+`` is linear)."""
    sre = importlib.import_module("re._constants")
    categories = {
        str(sre.CATEGORY_DIGIT): frozenset(range(0x30, 0x3A)),
        str(sre.CATEGORY_WORD): frozenset(c for c in _NAME_CHARS if chr(c).isalnum() or c == 0x5F),
        str(sre.CATEGORY_SPACE): frozenset(),
    }

    def one(op: Any, av: Any) -> frozenset[int] | None:
        """The name characters one item matches (None: not a one-character item)."""
        name = str(op)
        if name == "LITERAL":
            return frozenset({av}) & _NAME_CHARS
        if name == "NOT_LITERAL":
            return _NAME_CHARS - {av}
        if name == "ANY":
            return _NAME_CHARS
        if name == "CATEGORY":
            base = categories.get(str(av).replace("NOT_", ""))
            if base is None:
                return _NAME_CHARS
            return _NAME_CHARS - base if "NOT_" in str(av) else base
        if name == "IN":
            chars: set[int] = set()
            negate = False
            for sub_op, sub_av in av:
                sub = str(sub_op)
                if sub == "NEGATE":
                    negate = True
                elif sub == "RANGE":
                    chars.update(range(sub_av[0], sub_av[1] + 1))
                else:
                    chars.update(one(sub_op, sub_av) or _NAME_CHARS)
            found = frozenset(chars) & _NAME_CHARS
            return _NAME_CHARS - found if negate else found
        return None

    def walk(items: Any) -> bool:
        chain = 0
        last: frozenset[int] | None = None  # the set of the chain's last repetition
        for op, av in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT"):
                lo, hi, sub = av
                if walk(sub):
                    return True
                body = one(*sub[0]) if len(sub) == 1 else None
                unbounded = hi == parser.MAXREPEAT or hi > _MANY
                if body is None or not unbounded:
                    # a bounded part that is not optional: can the repetition take it?
                    fits = body is not None and (lo == 0 or last is None or body <= last)
                    if last is not None and not fits:
                        chain, last = 0, None
                    continue
                if last is not None and body & last:
                    chain += 1
                else:
                    chain = 1
                last = body
                if chain >= 3:
                    return True
                continue
            if name == "SUBPATTERN":
                if walk(av[3]):
                    return True
                chain, last = 0, None
                continue
            if name == "BRANCH":
                if any(walk(b) for b in av[1]):
                    return True
                chain, last = 0, None
                continue
            if name in ("ASSERT", "ASSERT_NOT"):
                if walk(av[1]):
                    return True
                continue  # takes no characters
            if name == "AT":
                continue
            body = one(op, av)
            if last is not None and (body is None or not body <= last):
                chain, last = 0, None  # a separator the repetition cannot take
            # POSSESSIVE_REPEAT, ATOMIC_GROUP: no backtracking into them
            if name in ("POSSESSIVE_REPEAT", "ATOMIC_GROUP"):
                chain, last = 0, None
        return False

    return walk(tree)


def _compile(rule: CookieRule, where: str) -> CookieRule:
    if rule.match not in _MATCH_KINDS:
        raise ConfigError(f"{where}.match", f"must be one of {', '.join(_MATCH_KINDS)}")
    if not isinstance(rule.name, str) or not rule.name:
        raise ConfigError(f"{where}.name", "must be a non-empty string")
    if rule.match == "exact":
        regex = None
    elif rule.match == "glob":
        regex = re.compile(fnmatch.translate(rule.name))
    else:
        try:
            regex = re.compile(rule.name)
        except re.error as exc:
            raise ConfigError(f"{where}.name", f"invalid regular expression: {exc}") from None
        if _backtracks(rule.name):
            raise ConfigError(
                f"{where}.name",
                "this regular expression can take exponential (or cubic) time on a "
                "crafted cookie name (a repetition inside a repetition, of alternatives "
                "that begin alike, or three in a row that can trade characters, as in "
                ".*_.*_.*); it runs on every visitor's cookie names: use a possessive "
                "quantifier (++, *+) or an atomic group (?>...)",
            )
    if rule.match == "exact" and not _COOKIE_NAME.fullmatch(rule.name):
        raise ConfigError(f"{where}.name", "is not a cookie name (RFC 6265 token characters only)")
    if rule.match == "exact" and "*" in rule.name:
        # a legal name character, but a site writing "ab_*" means a glob: as an
        # exact name it would never match, and ab_x would stay undeclared
        raise ConfigError(
            f"{where}.name", f'{rule.name!r} is an exact name; for a pattern set match = "glob"'
        )
    domain = rule.domain
    if domain is not None:
        if not isinstance(domain, str) or not _HOST_NAME.fullmatch(domain.strip().lstrip(".")):
            raise ConfigError(f"{where}.domain", "must be a host name such as 'example.com'")
        domain = domain.strip().lstrip(".").lower()
    if rule.path is not None and (not isinstance(rule.path, str) or not rule.path.startswith("/")):
        raise ConfigError(f"{where}.path", "must start with '/'")
    if rule.lifetime_seconds is not None and (
        isinstance(rule.lifetime_seconds, bool)
        or not isinstance(rule.lifetime_seconds, int)
        or rule.lifetime_seconds < 0
    ):
        raise ConfigError(f"{where}.lifetime_seconds", "must be a non-negative integer")
    object.__setattr__(rule, "_regex", regex)
    object.__setattr__(rule, "domain", domain)
    return rule


_RULE_KEYS = {
    "name",
    "category",
    "match",
    "domain",
    "path",
    "vendor",
    "purpose",
    "lifetime",
    "lifetime_seconds",
    "source",
    "justification",
}


def _rule_from_mapping(data: Mapping[str, Any], where: str, origin: str) -> CookieRule:
    if not isinstance(data, Mapping):
        raise ConfigError(where, "must be a table/mapping")
    unknown = set(data) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    for key in ("name", "category"):
        if key not in data:
            raise ConfigError(f"{where}.{key}", "is required")
    for key in sorted(_RULE_KEYS - {"lifetime_seconds"}):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{where}.{key}", "must be a string")
    return CookieRule(origin=origin, **dict(data))


def load_catalog() -> tuple[CookieRule, ...]:
    """Load the built-in catalogue of well-known cookies (``catalog/cookies.toml``)."""
    try:
        text = resources.files("cookiegate.catalog").joinpath("cookies.toml").read_text("utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            "use_catalog", f"the built-in catalogue cannot be read ({exc}); reinstall cookiegate"
        ) from None
    rules = []
    for i, entry in enumerate(data.get("cookie", [])):
        rules.append(
            _compile(_rule_from_mapping(entry, f"catalog[{i}]", "catalog"), f"catalog[{i}]")
        )
    return tuple(rules)


_CATALOG: tuple[CookieRule, ...] | None = None


def catalog() -> tuple[CookieRule, ...]:
    """The built-in catalogue, loaded once per process."""
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = load_catalog()
    return _CATALOG


def _beacon(raw: Beacon | Mapping[str, Any], where: str, cats: Mapping[str, Category]) -> Beacon:
    if isinstance(raw, Mapping):
        extra = set(raw) - {"path", "category", "vendor", "purpose"}
        if extra:
            raise ConfigError(f"{where}.{sorted(extra)[0]}", "unknown key")
        for key in ("path", "category", "vendor", "purpose"):
            if key in raw and not isinstance(raw[key], str):
                raise ConfigError(f"{where}.{key}", "must be a string")
        if "path" not in raw or "category" not in raw:
            missing = "path" if "path" not in raw else "category"
            raise ConfigError(f"{where}.{missing}", "is required")
        raw = Beacon(raw["path"], raw["category"], raw.get("vendor", ""), raw.get("purpose", ""))
    elif not isinstance(raw, Beacon):
        raise ConfigError(where, "must be a cookiegate.Beacon or a table")
    if not isinstance(raw.path, str) or not raw.path.startswith("/") or "*" in raw.path[:-1]:
        raise ConfigError(
            f"{where}.path", "must be a path starting with '/', optionally ending in '*'"
        )
    if any(c in raw.path for c in "?#") or not raw.path.isprintable() or " " in raw.path:
        # a request's path never holds its query: such a route would never match
        raise ConfigError(f"{where}.path", "must be a path only (no query, fragment or spaces)")
    if not isinstance(raw.category, str) or raw.category not in cats:
        raise ConfigError(
            f"{where}.category", f"unknown category {raw.category!r} (known: {', '.join(cats)})"
        )
    if cats[raw.category].necessary:
        raise ConfigError(f"{where}.category", "a beacon cannot be strictly necessary")
    return raw


# Where catalogue categories go when the site has no category of that name.
_CATALOG_FALLBACK = {"marketing": PERFORMANCE, "functional": PERFORMANCE}


class Policy:
    """What the site declares: consent categories, cookie rules and a version.

    :param version: the policy version; changing it asks every visitor again.
    :param categories: the consent categories. ``strictly_necessary`` is always
        present (added if missing) and always on. Defaults to
        ``strictly_necessary`` and ``performance``.
    :param cookies: the site's own cookie rules (:class:`CookieRule` or mappings
        with the same keys). They win over the built-in catalogue.
    :param use_catalog: classify well-known cookies with the built-in catalogue.
    :param catalog_categories: map a catalogue category (``performance``,
        ``marketing``, ``functional``, ``strictly_necessary``) to one of the site's
        categories. By default ``marketing`` and ``functional`` map to a category of
        the same name if the site has one, else to ``performance``.
    :param unknown_category: which category an undeclared cookie belongs to. The
        default ``None`` means such cookies pass only when the visitor granted
        *every* non-necessary category.
    :param expire_domains: extra ``Domain`` values to expire refused cookies on,
        e.g. ``["example.com"]`` for analytics cookies set on the registrable
        domain.
    :param texts: the site's texts per locale, e.g. ``{"en": {"policy_text": ...,
        "changes_text": ..., "changes_date": "2026-11-01", "privacy_url": "/privacy"}}``.
    :param beacons: first-party beacon routes (:class:`Beacon` or mappings with
        ``path`` and ``category``) answered ``204`` without calling the app while
        the visitor has not consented to their category.
    """

    __slots__ = (
        "_candidates_cache",
        "_exact",
        "_fast",
        "_patterns",
        "beacons",
        "catalog_categories",
        "categories",
        "expire_domains",
        "optional",
        "rules",
        "texts",
        "unknown_category",
        "version",
    )

    def __init__(
        self,
        *,
        version: str | int = "1",
        categories: Sequence[Category] | None = None,
        cookies: Iterable[CookieRule | Mapping[str, Any]] = (),
        use_catalog: bool = True,
        catalog_categories: Mapping[str, str] | None = None,
        unknown_category: str | None = None,
        expire_domains: Sequence[str] = (),
        texts: Mapping[str, Mapping[str, str]] | None = None,
        beacons: Iterable[Beacon | Mapping[str, Any]] = (),
    ) -> None:
        if isinstance(version, bool) or not isinstance(version, str | int):
            raise ConfigError("version", "must be a string or an integer")
        version = str(version).strip()
        if not version or len(version) > 64:
            raise ConfigError("version", "must be 1 to 64 characters")
        self.version: str = version

        cats: dict[str, Category] = {}
        for i, cat in enumerate(DEFAULT_CATEGORIES if categories is None else categories):
            where = f"categories[{i}]"
            if not isinstance(cat, Category):
                raise ConfigError(where, "must be a cookiegate.Category")
            if not isinstance(cat.name, str) or not _CATEGORY_NAME.fullmatch(cat.name):
                raise ConfigError(
                    f"{where}.name", "must be lower case letters, digits or '_' (max 40)"
                )
            if cat.name in cats:
                raise ConfigError(f"{where}.name", f"duplicate category {cat.name!r}")
            if cat.necessary != (cat.name == NECESSARY):
                raise ConfigError(
                    f"{where}.necessary", f"only {NECESSARY!r} is necessary, and it always is"
                )
            cats[cat.name] = cat
        if NECESSARY not in cats:
            cats = {NECESSARY: DEFAULT_CATEGORIES[0], **cats}
        self.categories: Mapping[str, Category] = cats
        #: non-necessary category names, in declaration order
        self.optional: tuple[str, ...] = tuple(n for n, c in cats.items() if not c.necessary)

        mapping: dict[str, str] = {NECESSARY: NECESSARY, PERFORMANCE: PERFORMANCE}
        for name, fallback in _CATALOG_FALLBACK.items():
            mapping[name] = name if name in cats else fallback
        if catalog_categories is not None and not isinstance(catalog_categories, Mapping):
            raise ConfigError("catalog_categories", "must map a catalogue category to a site one")
        for key, target in (catalog_categories or {}).items():
            where = f"catalog_categories.{key}"
            if key not in mapping:
                raise ConfigError(
                    where, f"not a catalogue category (they are: {', '.join(sorted(mapping))})"
                )
            if not isinstance(target, str) or target not in cats:
                raise ConfigError(where, f"unknown category {target!r}")
            if key != NECESSARY and target == NECESSARY:
                # the catalogue's tracking cookies would pass without consent
                raise ConfigError(where, f"catalogue {key} cookies cannot be strictly necessary")
            mapping[key] = target
        if mapping[PERFORMANCE] not in cats:
            # A site without "performance" must say where analytics cookies go.
            raise ConfigError(
                "catalog_categories.performance",
                "the site has no 'performance' category; map the catalogue's "
                "'performance' (and 'marketing', 'functional') to one of its categories",
            )
        self.catalog_categories: Mapping[str, str] = mapping

        if unknown_category is not None and (
            not isinstance(unknown_category, str) or unknown_category not in cats
        ):
            raise ConfigError("unknown_category", f"unknown category {unknown_category!r}")
        if unknown_category == NECESSARY:
            raise ConfigError(
                "unknown_category",
                "undeclared cookies cannot be strictly necessary (they would pass without "
                "consent): declare the necessary ones by name",
            )
        self.unknown_category = unknown_category

        domains = []
        if isinstance(expire_domains, str):
            raise ConfigError("expire_domains", "must be a list of host names")
        for i, d in enumerate(expire_domains):
            if not isinstance(d, str) or not _HOST_NAME.fullmatch(d.strip().lstrip(".")):
                raise ConfigError(
                    f"expire_domains[{i}]", "must be a host name such as 'example.com'"
                )
            domains.append(d.strip().lstrip(".").lower())
        self.expire_domains: tuple[str, ...] = tuple(domains)
        if texts is not None and not isinstance(texts, Mapping):
            raise ConfigError("texts", "must map a locale to a table of texts")
        #: the site's texts per locale (banner policy text, "what changed" notice,
        #: category labels...); checked against the UI's keys when the UI is built
        self.texts: Mapping[str, Mapping[str, str]] = dict(texts or {})

        self.beacons: tuple[Beacon, ...] = tuple(
            _beacon(raw, f"beacons[{i}]", cats) for i, raw in enumerate(beacons)
        )

        site: list[CookieRule] = []
        for i, raw in enumerate(cookies):
            where = f"cookies[{i}]"
            rule = raw if isinstance(raw, CookieRule) else _rule_from_mapping(raw, where, "site")
            rule = _compile(rule, where)
            if rule.category not in cats:
                known = ", ".join(cats)
                raise ConfigError(
                    f"{where}.category", f"unknown category {rule.category!r} (known: {known})"
                )
            site.append(rule)
        cat_rules: list[CookieRule] = []
        if use_catalog:
            for rule in catalog():
                target = mapping.get(rule.category, PERFORMANCE)
                if target != rule.category:
                    rule = _compile(
                        CookieRule(
                            name=rule.name,
                            category=target,
                            match=rule.match,
                            domain=rule.domain,
                            path=rule.path,
                            vendor=rule.vendor,
                            purpose=rule.purpose,
                            lifetime=rule.lifetime,
                            lifetime_seconds=rule.lifetime_seconds,
                            source=rule.source,
                            justification=rule.justification,
                            origin="catalog",
                        ),
                        "catalog",
                    )
                cat_rules.append(rule)
        self.rules: tuple[CookieRule, ...] = (*site, *cat_rules)

        # Priority: site exact, site patterns, catalogue exact, catalogue patterns.
        exact: dict[str, list[tuple[int, CookieRule]]] = {}
        patterns: list[tuple[int, CookieRule]] = []
        for group, rules in enumerate((site, cat_rules)):
            for rule in rules:
                if rule.match == "exact":
                    exact.setdefault(rule.name, []).append((group * 2, rule))
                else:
                    patterns.append((group * 2 + 1, rule))
        self._exact = exact
        self._patterns = tuple(patterns)
        self._candidates_cache: dict[str, tuple[CookieRule, ...]] = {}
        # name -> category for names whose best rule has no domain/path constraint
        self._fast: dict[str, str | None] = {}

    # -- classification -------------------------------------------------

    def candidates(self, name: str) -> tuple[CookieRule, ...]:
        """All rules whose name pattern matches ``name``, best first."""
        found = self._candidates_cache.get(name)
        if found is not None:
            return found
        ranked = list(self._exact.get(name, ()))
        ranked.extend(p for p in self._patterns if p[1].matches_name(name))
        ranked.sort(key=lambda item: item[0])  # stable: keeps declaration order
        result = tuple(rule for _, rule in ranked)
        if len(name) <= MAX_PATTERN_NAME:  # long random names would fill memory
            if len(self._candidates_cache) >= 8192:
                self._candidates_cache.clear()  # bounded: random names cannot grow memory
            self._candidates_cache[name] = result
        return result

    def rule_for(
        self, name: str, domain: str | None = None, path: str | None = None
    ) -> CookieRule | None:
        """The rule that classifies a cookie, or ``None`` if it is unknown."""
        for rule in self.candidates(name):
            if rule.fits(domain, path):
                return rule
        return None

    def category_of(
        self, name: str, domain: str | None = None, path: str | None = None
    ) -> str | None:
        """The category of a cookie, or ``None`` if it is unknown.

        Fast for the common case (a name whose best rule has no domain/path
        constraint): one dictionary lookup after the first call.
        """
        fast = self._fast
        if name in fast:
            return fast[name]
        cands = self.candidates(name)
        if not cands or (cands[0].domain is None and cands[0].path is None):
            cat = cands[0].category if cands else None
            if len(name) <= MAX_PATTERN_NAME:  # bounded in entries and in bytes
                if len(fast) >= 8192:
                    fast.clear()
                fast[name] = cat
            return cat
        rule = self.rule_for(name, domain, path)
        return rule.category if rule else None

    # -- loading --------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Build a policy from the structure of ``cookiegate.toml``::

        version = "2026-11-01"
        unknown_category = "performance"   # optional
        use_catalog = true                 # optional
        expire_domains = ["example.com"]   # optional

        [categories.performance]
        label = "Performance"
        description = "..."

        [[cookies]]
        name = "ab_variant"
        category = "performance"
        vendor = "Shop"
        purpose = "Design testing"
        lifetime = "30 days"
        """
        if not isinstance(data, Mapping):
            raise ConfigError("<root>", "must be a table/mapping")
        section = data.get("policy", data)
        if section is not data:
            if not isinstance(section, Mapping):
                raise ConfigError("policy", "must be a table ([policy])")
            others = sorted(str(k) for k in data if k != "policy")
            if others:
                # in TOML, [[cookies]] after [policy] is a top-level table: it
                # would be dropped without a word
                raise ConfigError(
                    others[0],
                    "the file has a [policy] table: put every key under it "
                    f"([policy.{others[0]}] / [[policy.{others[0]}]]) or drop [policy]",
                )
        allowed = {
            "version",
            "categories",
            "cookies",
            "use_catalog",
            "catalog_categories",
            "unknown_category",
            "expire_domains",
            "texts",
            "beacons",
        }
        for key in section:
            if key == "gate":
                raise ConfigError(
                    "gate", "the file holds the policy only: give Gate options to Gate(...)"
                )
            if key not in allowed:
                raise ConfigError(str(key), "unknown key")
        categories: list[Category] | None = None
        if "categories" in section:
            raw = section["categories"]
            if not isinstance(raw, Mapping):
                raise ConfigError("categories", "must be a table of tables")
            categories = []
            for name, spec in raw.items():
                where = f"categories.{name}"
                if not isinstance(spec, Mapping):
                    raise ConfigError(where, "must be a table")
                extra = set(spec) - {"label", "description"}
                if extra:
                    raise ConfigError(f"{where}.{sorted(extra)[0]}", "unknown key")
                for key in ("label", "description"):
                    if key in spec and not isinstance(spec[key], str):
                        raise ConfigError(f"{where}.{key}", "must be a string")
                categories.append(
                    Category(
                        str(name),
                        spec.get("label", ""),
                        spec.get("description", ""),
                        necessary=name == NECESSARY,
                    )
                )
        cookies = section.get("cookies", [])
        if not isinstance(cookies, list):
            raise ConfigError("cookies", "must be an array of tables ([[cookies]])")
        use_catalog = section.get("use_catalog", True)
        if not isinstance(use_catalog, bool):
            raise ConfigError("use_catalog", "must be true or false")
        expire = section.get("expire_domains", [])
        if not isinstance(expire, list):
            raise ConfigError("expire_domains", "must be an array of strings")
        beacons = section.get("beacons", [])
        if not isinstance(beacons, list):
            raise ConfigError("beacons", "must be an array of tables ([[beacons]])")
        cat_map = section.get("catalog_categories")
        if cat_map is not None and not isinstance(cat_map, Mapping):
            raise ConfigError("catalog_categories", "must be a table")
        return cls(
            version=section.get("version", "1"),
            categories=categories,
            cookies=cookies,
            use_catalog=use_catalog,
            catalog_categories=cat_map,
            unknown_category=section.get("unknown_category"),
            expire_domains=expire,
            texts=section.get("texts"),
            beacons=beacons,
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Load a policy from a ``cookiegate.toml`` file."""
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise ConfigError(str(path), "file not found") from None
        except OSError as exc:  # a directory, no permission, a name too long...
            raise ConfigError(str(path), exc.strerror or type(exc).__name__) from None
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte-order mark (some editors write one)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(str(path), f"not UTF-8 (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"invalid TOML: {exc}") from None
        return cls.from_dict(data)

    def __repr__(self) -> str:
        return f"Policy(version={self.version!r}, categories={list(self.categories)!r})"
