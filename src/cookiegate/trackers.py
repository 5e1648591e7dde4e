"""The tracker catalogue (``catalog/trackers.toml``) and its compiled matcher.

:func:`load_trackers` reads and validates the data file (or any file of the same
shape); :class:`TrackerMatcher` answers "which tracker is this URL / this inline
script?" for the rewriter. Everything here is stdlib only.

URL matching follows what a browser would request: the attribute value is HTML
entity-decoded by the caller, then :func:`url_host_path` strips the whitespace
and tab/newline characters the URL parser drops, treats ``\\`` as ``/``,
accepts protocol-relative ``//host/...``, removes userinfo (everything up to the
last ``@`` of the authority: ``https://google-analytics.com@evil.example/`` is
``evil.example``), the port and trailing dots, percent-decodes and lower-cases
the host. Hosts match on label boundaries: the host itself or any subdomain.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .errors import ConfigError

#: catalogue categories a tracker entry may have
TRACKER_CATEGORIES = ("performance", "marketing", "functional")
#: default mapping of catalogue categories to a site's categories (the default
#: policy has only ``performance``; pass ``Policy.catalog_categories`` instead)
DEFAULT_CATEGORY_MAP: Mapping[str, str] = {
    "performance": "performance",
    "marketing": "performance",
    "functional": "performance",
}

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_KEYS = {
    "id",
    "vendor",
    "category",
    "hosts",
    "beacons",
    "paths",
    "signatures",
    "patterns",
    "embed",
    "source",
}
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:")
_STRIP = "".join(map(chr, range(33)))  # C0 controls and space, stripped by URL parsers


@dataclass(frozen=True, slots=True)
class Tracker:
    """One catalogue entry. See ``catalog/trackers.toml`` for the fields."""

    id: str
    vendor: str
    category: str
    hosts: tuple[str, ...] = ()
    beacons: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    embed: bool = False
    source: str = ""


def _strings(entry: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key}", "must be an array of non-empty strings")
    return tuple(value)


def _tracker_from_mapping(entry: Any, where: str) -> Tracker:
    if not isinstance(entry, Mapping):
        raise ConfigError(where, "must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    for key in ("id", "vendor", "category", "source"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError(f"{where}.{key}", "is required and must be a non-empty string")
    if not _ID.fullmatch(entry["id"]):
        raise ConfigError(f"{where}.id", "must be lower case letters, digits, '-' or '_'")
    if entry["category"] not in TRACKER_CATEGORIES:
        raise ConfigError(f"{where}.category", f"must be one of {', '.join(TRACKER_CATEGORIES)}")
    hosts = _strings(entry, "hosts", where)
    for i, host in enumerate(hosts):
        if not _HOST.fullmatch(host):
            raise ConfigError(f"{where}.hosts[{i}]", f"{host!r} is not a lower-case host name")
    beacons = _strings(entry, "beacons", where)
    for i, beacon in enumerate(beacons):
        host, slash, path = beacon.partition("/")
        if not slash or not _HOST.fullmatch(host) or path != path.lower():
            raise ConfigError(f"{where}.beacons[{i}]", "must be 'host/path' in lower case")
    paths = _strings(entry, "paths", where)
    for i, path in enumerate(paths):
        if not path.startswith("/") or path != path.lower() or len(path) < 2:
            raise ConfigError(f"{where}.paths[{i}]", "must be a lower-case path starting with '/'")
    patterns = _strings(entry, "patterns", where)
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern.encode())
        except re.error as exc:
            raise ConfigError(
                f"{where}.patterns[{i}]", f"invalid regular expression: {exc}"
            ) from None
    embed = entry.get("embed", False)
    if not isinstance(embed, bool):
        raise ConfigError(f"{where}.embed", "must be true or false")
    if not (hosts or beacons or paths):
        raise ConfigError(f"{where}.hosts", "an entry needs at least one host, beacon or path")
    return Tracker(
        id=entry["id"],
        vendor=entry["vendor"],
        category=entry["category"],
        hosts=hosts,
        beacons=beacons,
        paths=paths,
        signatures=_strings(entry, "signatures", where),
        patterns=patterns,
        embed=embed,
        source=entry["source"],
    )


def parse_trackers(data: Mapping[str, Any]) -> tuple[Tracker, ...]:
    """Validate a parsed catalogue (``{"schema": 1, "tracker": [...]}``).

    :raises ConfigError: naming the offending entry field, e.g. ``tracker[3].hosts[0]``.
    """
    if data.get("schema") != 1:
        raise ConfigError("schema", "must be 1")
    entries = data.get("tracker")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("tracker", "must be a non-empty array of tables ([[tracker]])")
    out = [_tracker_from_mapping(e, f"tracker[{i}]") for i, e in enumerate(entries)]
    seen: set[str] = set()
    for i, t in enumerate(out):
        if t.id in seen:
            raise ConfigError(f"tracker[{i}].id", f"duplicate id {t.id!r}")
        seen.add(t.id)
    return tuple(out)


def load_trackers(path: str | Path | None = None) -> tuple[Tracker, ...]:
    """Load the built-in tracker catalogue, or the file at ``path``."""
    where = str(path) if path is not None else "trackers"
    try:
        if path is None:
            text = (
                resources.files("cookiegate.catalog").joinpath("trackers.toml").read_text("utf-8")
            )
        else:
            text = Path(path).read_text("utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(where, f"the tracker catalogue cannot be read ({exc})") from None
    return parse_trackers(data)


def url_host_path(url: str) -> tuple[str | None, str]:
    """``(host, path)`` a browser would request for ``url`` (already entity-decoded).

    ``host`` is ``None`` for a relative URL (the page's own host) and for
    non-network schemes (``data:``, ``javascript:``, ...; their path is ``""``).
    The path is lower-cased and excludes query and fragment.
    """
    url = url.strip(_STRIP)
    # drop tab/newline, read "\\" as "/" (replace only what is there: cheaper
    # than str.translate for the URLs that have none)
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    if "\\" in url:
        url = url.replace("\\", "/")
    rest: str | None = None
    if url.startswith("//"):
        rest = url[2:]
    else:
        m = _SCHEME.match(url)
        if m is not None:
            if m.group()[:-1].lower() not in _SPECIAL_SCHEMES:
                return None, ""
            rest = url[m.end() :].lstrip("/")
    if rest is None:
        return None, _path_of(url)
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1 and i < end:
            end = i
    authority, remainder = rest[:end], rest[end:]
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host = authority.partition("]")[0] + "]"
    else:
        host = authority.partition(":")[0]
    host = unquote(host).lower()
    if not host.isascii():
        # what the browser fetches (UTS #46 / IDNA mapping): fullwidth letters,
        # ideographic full stops, soft hyphens... map to the ASCII host. Python's
        # "idna" codec is IDNA 2003 (Unicode 3.2): NFKC with today's Unicode
        # first maps what browsers map and it does not know (U+1D62 "ᵢ" is "i")
        # (not a valid IDN: compared as it is, it matches no tracker)
        host = unicodedata.normalize("NFKC", host.replace("\u3002", ".")).casefold()
        if not host.isascii():
            with contextlib.suppress(UnicodeError):
                host = host.encode("idna").decode("ascii").lower()
    return host.rstrip("."), _path_of(remainder)


def _path_of(rest: str) -> str:
    for ch in "?#":
        rest = rest.partition(ch)[0]
    path = unquote(rest).lower()
    if "." in path and path.startswith("/"):
        path = _without_dot_segments(path)
    return path


def _without_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 / WHATWG URL: ``/a/./b/../c`` is ``/a/c`` (``%2e`` already
    decoded): the path the browser requests."""
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "." or seg == "..":
            if seg == ".." and out:
                out.pop()
            if i == last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def host_matches(host: str, domain: str) -> bool:
    """Whether ``host`` is ``domain`` or one of its subdomains (label boundary)."""
    return host == domain or host.endswith("." + domain)


class TrackerMatcher:
    """The catalogue compiled for fast lookups, with its categories mapped to the
    site's.

    :param trackers: the entries (default: the built-in catalogue).
    :param category_map: catalogue category -> site category; pass
        ``Policy.catalog_categories``. Default :data:`DEFAULT_CATEGORY_MAP`.
    """

    __slots__ = (
        "_beacons",
        "_cache",
        "_hosts",
        "_lit_implied",
        "_lit_re",
        "_order",
        "_own_sig",
        "_paths",
        "_sig",
        "_sig_ids",
        "category_map",
        "generation",
        "memo",
        "trackers",
    )

    def __init__(
        self,
        trackers: Iterable[Tracker] | None = None,
        *,
        category_map: Mapping[str, str] | None = None,
    ) -> None:
        self.trackers: tuple[Tracker, ...] = (
            tuple(trackers) if trackers is not None else builtin_trackers()
        )
        cmap = dict(DEFAULT_CATEGORY_MAP)
        cmap.update(category_map or {})
        self.category_map: Mapping[str, str] = cmap
        self._hosts: dict[str, Tracker] = {}
        self._cache: dict[str, Tracker | None] = {}
        #: per-configuration memo of the rewriters using this matcher (decisions
        #: per tag text; each dict is bounded by its user)
        self.memo: dict[object, dict[Any, Any]] = {}
        #: incremented by :meth:`clear_caches`
        self.generation = 0
        self._beacons: dict[str, list[tuple[str, Tracker]]] = {}
        self._paths: list[tuple[str, Tracker]] = []
        alternatives: list[bytes] = []
        self._sig_ids: dict[str, Tracker] = {}
        #: each tracker's own signature regex (for :meth:`match_scripts`)
        self._own_sig: list[tuple[re.Pattern[bytes], Tracker]] = []
        #: every literal in one trie-shaped pattern (for :meth:`match_scripts`:
        #: one scan finds them all), and per literal the trackers of every
        #: literal that is a prefix of it (itself included): the pattern
        #: matches the longest literal starting at a place, and the shorter
        #: ones there are its prefixes
        self._order: dict[Tracker, int] = {}
        for t in self.trackers:
            self._order.setdefault(t, len(self._order))
        owners: dict[bytes, list[Tracker]] = {}
        for t in self.trackers:
            for sig in t.signatures:
                sig_b = sig.encode()
                if sig_b and t not in owners.setdefault(sig_b, []):
                    owners[sig_b].append(t)
        self._lit_implied: dict[bytes, tuple[Tracker, ...]] = {
            lit: tuple(
                dict.fromkeys(
                    t for other, ts in owners.items() if lit.startswith(other) for t in ts
                )
            )
            for lit in owners
        }
        self._lit_re: re.Pattern[bytes] | None = (
            re.compile(_trie_pattern(list(owners))) if owners else None
        )
        for n, t in enumerate(self.trackers):
            for host in t.hosts:
                self._hosts.setdefault(host, t)
            for beacon in t.beacons:
                host, _, path = beacon.partition("/")
                self._beacons.setdefault(host, []).append(("/" + path, t))
            for path in t.paths:
                self._paths.append((path, t))
            parts = [b"(?:" + p.encode() + b")" for p in t.patterns]
            if parts:
                group = f"t{n}"
                self._sig_ids[group] = t
                alternatives.append(b"(?P<" + group.encode() + b">" + b"|".join(parts) + b")")
                self._own_sig.append((re.compile(b"|".join(parts)), t))
        self._sig: re.Pattern[bytes] | None = (
            re.compile(b"|".join(alternatives)) if alternatives else None
        )

    def clear_caches(self) -> None:
        """Forget cached URL answers and the rewriters' memoised decisions."""
        self._cache.clear()
        self.memo.clear()
        self.generation += 1  # rewriter profiles holding the old memos rebuild

    def category(self, tracker: Tracker) -> str:
        """The site category ``tracker`` belongs to."""
        return self.category_map.get(tracker.category, tracker.category)

    def match_host(self, host: str) -> Tracker | None:
        """The tracker owning ``host`` (or a parent domain of it)."""
        hosts = self._hosts
        while True:
            found = hosts.get(host)
            if found is not None:
                return found
            dot = host.find(".")
            if dot == -1:
                return None
            host = host[dot + 1 :]

    def match_base(self, url: str) -> tuple[Tracker, ...]:
        """The trackers a page's relative URLs could reach if ``url`` (a
        ``<base href>``, entity-decoded) were their base: those owning its
        host or a parent domain of it, or with a beacon path there. None for a
        URL without a host (a relative base stays on the page's own host)."""
        host, _ = url_host_path(url)
        found: list[Tracker] = []
        while host:
            owner = self._hosts.get(host)
            if owner is not None and owner not in found:
                found.append(owner)
            for _, t in self._beacons.get(host, ()):
                if t not in found:
                    found.append(t)
            host = host.partition(".")[2]
        return tuple(found)

    def match_url(self, url: str) -> Tracker | None:
        """The tracker a request to ``url`` (entity-decoded) would reach, if any."""
        cache = self._cache
        try:
            return cache[url]
        except KeyError:
            pass
        found = self._match_url(url)
        if len(url) <= 512:  # bounded (~1 MB): pages repeat their URLs, bots do not
            if len(cache) >= 2048:
                cache.clear()
            cache[url] = found
        return found

    def _match_url(self, url: str) -> Tracker | None:
        host, path = url_host_path(url)
        if host is None and not path:
            return None
        if host:
            h = host
            while True:
                for prefix, t in self._beacons.get(h, ()):
                    if path == prefix or (
                        path.startswith(prefix)
                        and (prefix.endswith("/") or path[len(prefix)] == "/")
                    ):
                        return t
                dot = h.find(".")
                if dot == -1:
                    break
                h = h[dot + 1 :]
            found = self.match_host(host)
            if found is not None:
                return found
        for suffix, t in self._paths:
            if path.endswith(suffix) or path == suffix[1:]:
                return t
        return None

    def match_script(self, text: bytes) -> Tracker | None:
        """The first tracker (in catalogue order) whose inline-loader signature
        occurs in ``text``."""
        found = self.match_scripts(text)
        return found[0] if found else None

    def match_scripts(self, text: bytes) -> tuple[Tracker, ...]:
        """Every tracker whose inline-loader signature occurs in ``text``, in
        catalogue order, each once (one script may load several vendors: a tag
        bundle with gtag and fbq is Google's and Meta's)."""
        found: list[Tracker] = []
        lit_re = self._lit_re
        if lit_re is not None:
            implied = self._lit_implied
            search = lit_re.search
            m = search(text)
            while m is not None:
                for tracker in implied[m.group()]:
                    if tracker not in found:
                        found.append(tracker)
                m = search(text, m.start() + 1)  # literals may overlap
        if self._sig is not None and self._sig.search(text) is not None:
            # a match: the rare case, so each tracker's patterns are tried on
            # their own (the alternation's leftmost match may hide another's)
            for own, tracker in self._own_sig:
                if tracker not in found and own.search(text) is not None:
                    found.append(tracker)
        if len(found) > 1:
            found.sort(key=self._order.__getitem__)
        return tuple(found)


def _trie_pattern(words: list[bytes]) -> bytes:
    """A regular expression matching any of ``words`` (non-empty), shaped as
    their trie: at a place in the text it matches the longest word starting
    there, and ``re`` tries one branch per next byte instead of every word
    (~6x faster than testing each word with ``in`` on a 400-byte script)."""
    trie: dict[int, Any] = {}
    for word in words:
        node = trie
        for c in word:
            node = node.setdefault(c, {})
        node[-1] = {}  # a word ends here

    def emit(node: dict[int, Any]) -> bytes:
        alts = [re.escape(bytes((c,))) + emit(node[c]) for c in sorted(node) if c != -1]
        if not alts:
            return b""
        body = alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"
        return b"(?:" + body + b")?" if -1 in node else body

    return emit(trie)


_BUILTIN: tuple[Tracker, ...] | None = None
_DEFAULT_MATCHER: TrackerMatcher | None = None


def builtin_trackers() -> tuple[Tracker, ...]:
    """The built-in catalogue, loaded once per process."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = load_trackers()
    return _BUILTIN


def default_matcher() -> TrackerMatcher:
    """A matcher of the built-in catalogue with :data:`DEFAULT_CATEGORY_MAP`."""
    global _DEFAULT_MATCHER
    if _DEFAULT_MATCHER is None:
        _DEFAULT_MATCHER = TrackerMatcher()
    return _DEFAULT_MATCHER
