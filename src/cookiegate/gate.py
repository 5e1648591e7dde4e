"""The sans-IO engine: ``Gate.begin(RequestInfo) -> Decision``.

No I/O and no framework here. The adapters (``asgi.py``, ``wsgi.py``) turn a
request into a :class:`RequestInfo`, call :meth:`Gate.begin`, and either send the
:class:`PlainResponse` it produced (cookiegate's own endpoints) or call the app
with the filtered Cookie header and pass the app's response headers through
:meth:`Decision.response_headers`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .consent import (
    EMPTY_MY_DATA,
    METHODS,
    UNDECIDED,
    ConsentState,
    RequestConsent,
    new_consent_id,
)
from .consent_mode import ConsentMode, ConsentModeConfig
from .cookies import (
    cookie_values,
    deletion_verdict,
    expire_cookie,
    parse_cookie_header,
    parse_set_cookie,
    serialize_set_cookie,
)
from .csp import (
    CspBuilder,
    CspConfig,
    allows_inline_script,
    new_nonce,
    script_nonce,
    style_nonce,
)
from .errors import BadRequest, ConfigError, TokenError
from .inject import BodyFilter, Chain, HeadInserter, HtmlInjector, even, is_injectable
from .policy import (
    MAX_COOKIE_AGE,
    MAX_PATTERN_NAME,
    NECESSARY,
    CookieRule,
    Policy,
    route_key,
)
from .rewrite import (
    LOAD_FORM_ID,
    EncodedHtmlRewriter,
    HtmlRewriter,
    RewriterProfile,
    is_ascii_compatible,
)
from .signals import LANGUAGE_TAG, gpc_enabled, is_bot
from .token import ConsentCodec, FlashCodec
from .trackers import TrackerMatcher, load_trackers

if TYPE_CHECKING:
    from .ui import UI

log = logging.getLogger("cookiegate")

SIX_MONTHS = 182 * 24 * 3600
#: At most this many refused cookies are expired per response (bounded headers).
MAX_EXPIRE = 50
#: the largest declared body length of a rewritten (or re-encoded) page that an
#: adapter holds to send it with its exact Content-Length; a longer page, or
#: one without a length, streams (chunked, or as the server frames it)
FRAME_LIMIT = 256 * 1024
#: while holding such a page, the most edited bytes held (a re-encoded body may
#: grow); past it, the page streams from there on
FRAME_HOLD_MAX = 4 * FRAME_LIMIT
#: Cookie headers up to this size have their verification and filtering cached.
CACHEABLE_COOKIE = 2048
#: Sec-GPC values (all headers joined) up to this size are part of a quick key.
_QUICK_GPC = 16
#: Clock skew tolerated for a decision time in the future (seconds).
MAX_SKEW = 300
_SECURE_SCHEMES = frozenset(("https", "wss"))
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SENTINEL: Any = object()
#: a request's consent state, the Cookie header to give the app (``None``:
#: unchanged), the cookie names withheld, the Set-Cookie values expiring them
Plan = tuple[ConsentState, str | None, tuple[str, ...], tuple[bytes, ...]]
#: what an adapter keeps of a request decided by :meth:`Gate.quick` (its
#: :class:`RequestInfo` is built from it only when needed): the raw headers
#: (lower-case names, as they came), method, path, scheme, query string (raw),
#: server address
QuickSource = tuple[Sequence[tuple[bytes, bytes]], str, str, str, bytes, Any]
#: the request headers a page's banner / settings control depends on (the
#: User-Agent only when bots are spared it)
_FRAGMENT_HEADERS = frozenset((b"accept-language",))
_FRAGMENT_HEADERS_BOTS = frozenset((b"accept-language", b"user-agent"))
#: lower-case response header names that need nothing from a visitor who granted
#: everything (so no ``islower`` call is spent on them)
_PLAIN_HEADERS = frozenset(
    (
        b"content-length",
        b"date",
        b"server",
        b"cache-control",
        b"expires",
        b"etag",
        b"last-modified",
        b"location",
        b"content-encoding",
        b"content-language",
        b"content-disposition",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"access-control-allow-origin",
        b"x-content-type-options",
        b"x-frame-options",
        b"strict-transport-security",
        b"referrer-policy",
    )
)
#: ``json.dumps(doc, separators=(",", ":"))`` without building an encoder per call
_compact = json.JSONEncoder(separators=(",", ":")).encode
#: request headers read for cookiegate's own endpoints only -> RequestInfo field
_OWN_HEADERS = {
    b"origin": "origin",
    b"sec-fetch-site": "sec_fetch_site",
    b"content-type": "content_type",
    b"accept": "accept",
    b"if-none-match": "if_none_match",
}


@dataclass(slots=True)
class RequestInfo:
    """The plain values of a request that the gate needs. Header values are
    ``str`` (latin-1 decoded); ``None`` means the header was absent."""

    method: str
    path: str
    scheme: str = "http"
    host: str = ""
    query: str = ""
    cookie: str | None = None
    #: every ``Sec-GPC`` value received (several headers are possible)
    sec_gpc: list[str] | None = None
    origin: str | None = None
    sec_fetch_site: str | None = None
    content_type: str | None = None
    accept: str | None = None
    #: a WebSocket handshake (never routed to cookiegate's own endpoints)
    websocket: bool = False
    #: ``Accept-Language`` (read only when a page is rendered or injected into)
    accept_language: str | None = None
    #: ``User-Agent`` (read only when deciding whether to spare a bot the banner)
    user_agent: str | None = None
    #: ``If-None-Match`` (own static assets only)
    if_none_match: str | None = None
    #: the raw ASGI header list, for headers read only on rare paths
    raw_headers: Sequence[tuple[bytes, bytes]] | None = None
    #: the client address (read only when a consent record is written with an IP)
    client: str | None = None

    def read_own_headers(self) -> None:
        """Fill the headers only cookiegate's own endpoints read (Origin,
        Sec-Fetch-Site, Content-Type, Accept, If-None-Match) from
        :attr:`raw_headers` (lower-case names, as ASGI gives them; the last one wins)."""
        for name, value in self.raw_headers or ():
            field = _OWN_HEADERS.get(name)
            if field is not None:
                setattr(self, field, value.decode("latin-1"))


@dataclass(slots=True)
class PlainResponse:
    """A complete response produced by cookiegate itself."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """Handed to ``on_consent`` listeners when a visitor decides or withdraws."""

    previous: ConsentState
    current: ConsentState
    source: str
    expired_cookies: tuple[str, ...] = ()


class ConsentRecorder(Protocol):
    """What ``Gate(records=...)`` needs (:class:`cookiegate.records.Recorder`).

    ``consent_changed`` runs on the request path and must only queue;
    ``my_data`` and ``withdrawn`` do I/O and run in a worker thread under ASGI.
    An optional ``start()`` is called once, by the middleware's first call
    (ASGI lifespan start-up or the first request)."""

    def consent_changed(
        self,
        change: ConsentChange,
        *,
        event: str,
        locale: str | None,
        notice_hash: str | None,
        categories: tuple[str, ...],
        user_agent: str | None = None,
        client: str | None = None,
    ) -> None: ...

    def my_data(self, consent_id: str | None) -> dict[str, Any]: ...

    def withdrawn(self, consent_id: str | None) -> dict[str, int]: ...


class Decision(RequestConsent):
    """What the gate decided for one request. Per-request, never shared.

    It is also the :class:`~cookiegate.RequestConsent` handed to the app.
    """

    __slots__ = (
        "_info",
        "_negotiated",
        "_quick_key",
        "_reader",
        "_source",
        "blocking",
        "body_length",
        "cookie_header",
        "deferred",
        "expire",
        "gate",
        "gpc_recorded",
        "injector",
        "needs_body",
        "removed",
        "response",
    )

    def __init__(
        self,
        gate: Gate,
        info: RequestInfo | None,
        state: ConsentState,
        source: Any = None,
        reader: Callable[[Any], RequestInfo] | None = None,
        quick_key: tuple[bytes | None, str, bytes | None] | None = None,
    ) -> None:
        self._state = state
        self.queried = False
        self.locale = None
        self.gate = gate
        #: the request; ``None`` until :attr:`info` reads it from ``source``
        self._info = info
        #: what an adapter kept of the request and the function turning it into a
        #: :class:`RequestInfo`, for a decision made from :meth:`Gate.quick`
        self._source = source
        self._reader = reader
        #: the :meth:`Gate.quick` key this decision was made from; then ``source``
        #: is a :data:`QuickSource`
        self._quick_key = quick_key
        #: (the app's locale, the banner's locale negotiated for it), see Gate._locale
        self._negotiated: tuple[str | None, str] | None = None
        #: a complete response to send instead of calling the app
        self.response: PlainResponse | None = None
        #: the adapter must read the request body and call :meth:`Gate.respond`
        self.needs_body = False
        #: the Cookie header to give the app; ``None`` means "unchanged"
        self.cookie_header: str | None = None
        #: names of request cookies withheld from the app
        self.removed: tuple[str, ...] = ()
        #: Set-Cookie values (latin-1) expiring refused cookies the browser still sends
        self.expire: tuple[bytes, ...] = ()
        #: set by :meth:`response_headers` when the banner goes into this HTML body
        self.injector: BodyFilter | None = None
        #: set with :attr:`injector` when the edit changes the body's length in a
        #: way only the edited body tells (a rewrite, a re-encoding) and the app
        #: declared a length of at most :data:`FRAME_LIMIT`: the adapter may hold
        #: the edited body and send it with its exact ``Content-Length``
        self.body_length: int | None = None
        #: the GPC session flag's Set-Cookie, once the refusal was recorded
        self.gpc_recorded: bytes = b""
        #: a response that needs blocking I/O: the adapter calls it (ASGI: in a
        #: worker thread) and sends what it returns
        self.deferred: Callable[[], PlainResponse] | None = None
        #: :meth:`Gate.respond` does blocking I/O for this request (ASGI: run it
        #: in a worker thread)
        self.blocking = False

    def _complete_headers(
        self, headers: Sequence[tuple[bytes, bytes]], status: int
    ) -> list[tuple[bytes, bytes]] | None:
        """:meth:`response_headers` for a visitor who granted everything: every
        header passes, ``Vary`` is added when the response depends on consent
        (it sets cookies, the app read the consent, or it is a page that gets the
        settings control), and an uncompressed HTML page gets the settings control
        (:attr:`injector`, ``Content-Length`` grown by it, no validators).
        ``None``: anything else (a CSP, a compressed or non-200 page, Consent
        Mode, a header name not in lower case...) takes the general path, which
        gives the same answer for the cases answered here."""
        depends = self.queried or bool(self.removed)
        coded = False
        vary_at = -1  # the first Vary
        ctype: bytes | None = None
        # where the one Content-Length is (-1: none, -2: several or a validator
        # to drop: the page's headers then take _edited_body_headers)
        length_at = -1
        at = 0
        for name, value in headers:
            if name == b"set-cookie":
                depends = True
            elif name == b"content-type":
                ctype = value  # the last one counts, as in the general path
            elif name == b"content-length":
                length_at = at if length_at == -1 else -2
            elif name == b"vary":
                if vary_at < 0:
                    vary_at = at
            elif name == b"content-encoding":
                coded = True
            elif name == b"etag" or name == b"last-modified":
                length_at = -2
            elif name not in _PLAIN_HEADERS and (
                name == b"content-security-policy" or not name.islower()
            ):
                return None
            at += 1  # noqa: SIM113 (a counter: cheaper than enumerate on every response)
        if ctype is not None:
            kind = _CONTENT_KINDS.get(ctype) or _content_kind(ctype)
            if kind[0]:
                page = self._complete_page_headers(
                    headers, kind[1], status, coded, length_at, vary_at
                )
                if page is not _UNEDITED:
                    return page
                depends = True  # the page of a visitor who granted everything, sent as written
        out = list(headers)
        if depends:
            if vary_at < 0:
                out.append((b"vary", self.gate.vary_value))
            else:  # the last Vary (as the general path does)
                at = max(i for i, item in enumerate(out) if item[0] == b"vary")
                out[at] = (out[at][0], self.gate.merge_vary(out[at][1]))
        return out

    def _complete_page_headers(
        self,
        headers: Sequence[tuple[bytes, bytes]],
        text_type: str | None,
        status: int,
        coded: bool,
        length_at: int = -2,
        vary_at: int = -1,
    ) -> list[tuple[bytes, bytes]] | None:
        """:meth:`_complete_headers` for an HTML response: the settings control
        goes into an uncompressed 200 page (a pure insertion: ``Content-Length``
        stays exact). :data:`_UNEDITED` when the gate puts no control there
        (``settings_control=False``); ``None`` for every other case (general path).

        ``length_at``: where the headers' one ``Content-Length`` is, when there
        is no ``ETag`` / ``Last-Modified`` (``-1``: no length; ``-2``: anything
        else, for :func:`_edited_body_headers`); ``vary_at``: where the first
        ``Vary`` is then."""
        gate = self.gate
        if (
            status != 200
            or coded
            or gate._page_work
            or not gate.may_inject
            or (self._state.method == "gpc" and gate.records is not None)
        ):
            return None
        if text_type is None:
            return None
        if not gate.settings_control:
            # no control for a visitor who granted everything, nothing to block:
            # the page goes as written, and varies (others get a banner)
            return _UNEDITED
        fragment = gate.page_fragment(self, text_type, None)
        if fragment is None:
            return None
        length = _content_length(headers[length_at][1]) if length_at >= 0 else None
        if length_at == -1 or length is not None:
            # the usual page: nothing to drop, the length grows (one pass, above)
            out = list(headers)
            if length is not None:
                out[length_at] = (b"content-length", str(length + len(fragment)).encode())
        else:
            out, vary_at, _ = _edited_body_headers(headers, len(fragment))
        if self._method() != "HEAD":  # HEAD: GET's headers, no body to edit
            self.injector = HtmlInjector(fragment)
        vary = gate.page_vary_value  # the control speaks the visitor's language
        if vary_at < 0:
            out.append((b"vary", vary))
        else:
            out[vary_at] = (out[vary_at][0], gate.merge_vary(out[vary_at][1], vary))
        return out

    @property
    def info(self) -> RequestInfo:
        """The request's plain values (built on first use for a quick decision)."""
        info = self._info
        if info is None:
            if self._reader is None:
                raise RuntimeError("a Decision needs a RequestInfo or a reader")
            info = self._info = self._reader(self._source)
        return info

    def _method(self) -> str:
        """The request method, without building :attr:`info` for a quick decision."""
        if self._info is None and self._quick_key is not None:
            method: str = self._source[1]
            return method
        return self.info.method

    def response_headers(
        self, headers: Iterable[tuple[bytes, bytes]], status: int = 200
    ) -> list[tuple[bytes, bytes]]:
        """Filter the app's response headers: drop Set-Cookie headers of
        non-consented categories (deletions always pass), append expiry and
        re-issued consent cookies, and add ``Vary`` when the response depends on
        consent. Header names may come in any letter case.

        When the gate has a UI and this is an HTML page, sets :attr:`injector`:
        the adapter must then pass every body chunk through it (``Content-Length``
        grows by the inserted bytes, or is dropped when the body is rewritten or
        re-encoded: then :attr:`body_length` tells the adapter to hold the body
        for its exact length; ``ETag`` / ``Last-Modified`` are dropped). A HEAD response
        gets the same headers, and no injector."""
        gate = self.gate
        state = self._state
        self.injector = None  # a WSGI app may start over (exc_info): decide anew
        self.body_length = None
        if state.complete and not self.expire and not state.needs_reissue:
            if not isinstance(headers, (list, tuple)):
                headers = list(headers)  # any iterable (ASGI): read twice below
            quick = self._complete_headers(headers, status)
            if quick is not None:
                return quick
        check = not state.complete
        page_work = gate._page_work
        # the tracking gate and Consent Mode edit every HTML response with a body
        # (an error page carries the site's tags as much as any page); the banner
        # and the settings control go into 200 pages only
        html = gate.may_inject and status >= 200 and status not in _BODYLESS
        # a GPC-derived refusal applied to a page is recorded once per session
        gpc_record = (
            state.method == "gpc" and gate.records is not None and status == 200
            and self.info.method == "GET" and gate.gpc_unrecorded(self.info)
        )  # fmt: skip
        scan = html or page_work or gpc_record
        ctype: bytes | None = None
        cenc: bytes | None = None
        app_csp: list[bytes] | None = None
        own_csp: list[bytes] | None = None  # the app's CSP, when cookiegate leaves it be
        out: list[tuple[bytes, bytes]] = []
        depends = bool(self.removed) or self.queried
        vary = gate.vary_value
        vary_at = -1
        for item in headers:
            name = item[0]
            if not name.islower():  # ASGI asks for lower case; Django sends Set-Cookie
                name = name.lower()
            if name == b"set-cookie":
                # A response that sets cookies is per-visitor: it always varies.
                depends = True
                if check and not gate.set_cookie_allowed(state, item[1], self):
                    continue
            elif name == b"vary":
                vary_at = len(out)
            elif scan:
                if name == b"content-type":
                    ctype = item[1]
                elif name == b"content-encoding":
                    # several lines are one list of codings (RFC 9110 5.3)
                    cenc = item[1] if cenc is None else cenc + b", " + item[1]
                elif name == b"content-security-policy":
                    if page_work:
                        (app_csp := app_csp or []).append(item[1])
                        continue  # sent back below, narrowed (or as it was)
                    (own_csp := own_csp or []).append(item[1])  # passes as it is
            out.append(item)
        kind = (
            _NO_CONTENT_TYPE if ctype is None else _CONTENT_KINDS.get(ctype) or _content_kind(ctype)
        )
        is_page = kind[0]
        nonce = enforced = None
        if page_work and is_page:
            depends = True  # the CSP and Consent Mode state follow the consent
            nonce = None
            if app_csp and (gate.csp is None or gate.csp.config.report_only):
                # the enforced policy stays the app's, without cookiegate's nonce:
                # its scripts (Consent Mode's default first) carry the app's own
                # nonce when its strict policy needs one
                nonce = script_nonce(b", ".join(app_csp).decode("latin-1"))
            nonce = nonce or new_nonce()
            enforced = gate._page_csp(state, app_csp, nonce, out)
        elif app_csp:
            out.extend((b"content-security-policy", v) for v in app_csp)
        if html and is_page:
            text_type = kind[1]
            if nonce is None and own_csp:
                # the app's strict policy: cookiegate's scripts carry its nonce
                nonce = script_nonce(b", ".join(own_csp).decode("latin-1"))
            coding = cenc.decode("latin-1").strip().lower() if cenc is not None else ""
            plain = coding in ("", "identity")
            if text_type is not None:
                fragment = gate.page_fragment(self, text_type, nonce) if status == 200 else None
                if fragment is not None and (app_csp or own_csp):
                    # the banner's stylesheet under a policy that allows styles
                    # by the app's nonce (the app's policy keeps it)
                    style = style_nonce(b", ".join(app_csp or own_csp or ()).decode("latin-1"))
                    if style is not None:
                        fragment = fragment.replace(
                            b'<link rel="stylesheet" href="',
                            b'<link rel="stylesheet" nonce="' + style.encode() + b'" href="',
                            1,
                        )
                injector: BodyFilter | None = gate.rewriter(self, fragment, text_type)
                if gate.ui is not None:
                    if fragment is not None or (
                        # no banner for a bot: a person's copy has one
                        status == 200
                        and gate.hide_from_bots
                        and (gate.settings_control or not state.complete)
                    ):
                        vary = gate.page_vary_value  # the banner's or control's language
                    elif injector is not None:
                        vary = gate.lang_vary_value  # the placeholders' language
                # a page cookiegate edits for some visitors (banner, control,
                # tracking gate) varies with the consent, also when this
                # visitor's copy goes as written (settings_control=False, ui=None
                # with the tracking gate on, a bot spared the banner): a shared
                # cache must not hand it to a visitor whose trackers are blocked
                depends = True
                #: bytes a pure insertion adds (then Content-Length stays known)
                added: int | None = None
                if injector is None and fragment is not None:
                    injector = HtmlInjector(fragment)
                    added = len(injector.fragment)
                if gate.consent_mode is not None:
                    granted = state.granted if state.decided else None
                    inline = allows_inline_script(enforced, nonce)
                    head = even(gate.consent_mode.head_fragment(granted, nonce, inline=inline))
                    if injector is None:
                        added = 0
                    injector = Chain(HeadInserter(head), injector or HtmlInjector(b""))
                    if added is not None:
                        added += len(head)
                if injector is not None and not plain:
                    # gzip/deflate (br with the brotli module): decode, edit, re-encode
                    injector = EncodedHtmlRewriter(injector, coding)
                    added = None
                if injector is not None:
                    # HEAD: the headers the GET would get (same length, no
                    # validators), without a body to edit
                    if self._method() != "HEAD":
                        self.injector = injector
                    depends = True
                    out, vary_at, declared = _edited_body_headers(out, added)
                    if (
                        added is None
                        and declared is not None
                        and declared <= FRAME_LIMIT
                        and self.injector is not None
                    ):
                        self.body_length = declared
        if gpc_record and is_page:
            depends = True
            if not self.gpc_recorded:  # once, even if a WSGI app starts over
                self.gpc_recorded = gate.record_gpc_refusal(self).encode("latin-1")
            out.append((b"set-cookie", self.gpc_recorded))
        if self.expire:
            depends = True
            out.extend((b"set-cookie", v) for v in self.expire)
        if state.needs_reissue and state.decided and state.method != "gpc":
            depends = True
            out.append((b"set-cookie", gate.consent_cookie(state, self.info).encode("latin-1")))
        if depends:
            if vary_at < 0:
                out.append((b"vary", vary))
            else:
                out[vary_at] = (out[vary_at][0], gate.merge_vary(out[vary_at][1], vary))
        return out


def safe_next(value: object) -> str | None:
    """A same-origin path to redirect to, or ``None`` if ``value`` is not one
    (anything but a string, e.g. a JSON number or list, is not one)."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 2048
        or not value.startswith("/")
        or value.startswith("//")
    ):
        return None
    # printable ASCII only: no CR/LF, no backslash (browsers read it as '/'), and
    # nothing a Location header cannot carry (non-ASCII must arrive percent-encoded)
    if _NOT_PRINTABLE_ASCII.search(value) is not None:
        return None
    return value


#: per page path (pages repeat); called only for paths up to 2 KiB, the most
#: :func:`safe_next` accepts, so the cache holds at most ~2 MiB
_safe_next_cached = lru_cache(maxsize=1024)(safe_next)


@lru_cache(maxsize=1024)
def _path_target(path: str) -> str:
    """A request's (percent-decoded) path as a URL path again, to come back to:
    ``/caf\u00e9`` -> ``/caf%C3%A9``, ``/a%3Fb`` (decoded ``/a?b``) -> ``/a%3Fb``.
    (An encoded ``/``, ``%2F``, comes back as ``/``: the decoded path cannot tell.)"""
    return quote(path, safe="/!$&'()*+,;=:@~", errors="replace")


#: most bytes of finished fragments each fragment cache keeps (then it starts again)
_FRAGMENT_BUDGET = 8 * 1024 * 1024

#: statuses whose responses have no body to edit (206: a byte range of the
#: page, which must stay the bytes its Content-Range names)
_BODYLESS = frozenset({204, 205, 206, 304})


_NOT_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]|\\")


class Gate:
    """The consent gate: verifies consent, serves cookiegate's own endpoints and
    filters cookies in both directions.

    :param policy: the site's :class:`~cookiegate.Policy`.
    :param secret_keys: signing keys for the consent cookie, oldest first.
    :param prefix: URL prefix of cookiegate's endpoints.
    :param cookie_name: consent cookie name; on https it gets the ``__Host-``
        prefix.
    :param max_age: how long a decision is valid, in seconds (default about 6
        months; must be under 400 days).
    :param secure: force the https cookie form on (``True``) or off (``False``);
        ``None`` follows the request scheme.
    :param gpc: honour ``Sec-GPC: 1`` as a refusal of every non-necessary category
        until the visitor makes an explicit choice.
    :param gpc_json: serve ``/.well-known/gpc.json`` (``None``, the default: when
        ``gpc`` is on; it tells the world the site honours GPC, so ``True`` with
        ``gpc=False`` is a :class:`ConfigError`).
    :param gpc_last_update: ``lastUpdate`` of gpc.json (``YYYY-MM-DD``), optional.
    :param clear_site_data: values for a ``Clear-Site-Data`` header sent on
        withdrawal over https, e.g. ``('"storage"',)``. Empty = not sent.
        ``"cookies"`` also logs visitors out (it clears every cookie of the site).
    :param trusted_origins: extra origins (``https://shop.example``) allowed to
        POST to the consent endpoints; the scheme counts (``http://shop.example``
        is another origin). The site's own host may post over any scheme but
        plain http to a request that came over https.
    :param on_consent: called with a :class:`ConsentChange` after each decision;
        must not block (it runs on the request path).
    :param max_body: largest accepted body for the consent endpoints, in bytes.
    :param token_cache_size: how many verified tokens to keep (LRU).
    :param ui: the banner and pages (:class:`cookiegate.ui.UI`); ``"auto"`` builds
        the default one, ``None`` turns injection and pages off.
    :param settings_control: put the small "Cookie settings" control into the
        pages of visitors who decided (default). ``False``: a visitor who granted
        every category gets the app's pages as written (no control; their
        ``Content-Length``, ``ETag`` and ``Last-Modified`` kept, so conditional
        requests still work), and the site must link to ``{prefix}preferences``
        on every page itself (e.g. in its footer): withdrawing must stay as easy
        as consenting (GDPR Art. 7(3)). A visitor who refused something still
        gets the control: its script runs the "Load after consent" buttons of
        blocked content.
    :param hide_from_bots: spare crawlers and tools (user-agents' bot detection,
        curl, python-requests, HeadlessChrome, Lighthouse, ...) the banner. Off by
        default: a false positive would hide the choice from a person.
    :param csp: a :class:`cookiegate.csp.CspConfig`: HTML responses get a
        Content-Security-Policy without the hosts of trackers the visitor did not
        consent to (the app's own policy is only ever narrowed), and a nonce for
        cookiegate's own scripts. ``None`` (default): CSP headers are untouched.
    :param block_trackers: the tracking gate: in HTML pages, neutralise the
        scripts, pixels, iframes, pings and resource hints of trackers whose
        category the visitor has not granted (re-activated in the page after
        consent). On by default.
    :param trackers: the tracker catalogue: a :class:`cookiegate.trackers.TrackerMatcher`
        or the path of a TOML file shaped like the built-in ``catalog/trackers.toml``
        (the default).
    :param consent_mode: Google Consent Mode v2: ``True`` or a
        :class:`cookiegate.consent_mode.ConsentModeConfig`. The ``default``
        command (and ``update`` for a visitor who decided) goes right after
        ``<head>`` of every HTML page, before any tag; decisions in the page send
        ``update``.
    :param records: a :class:`cookiegate.records.Recorder`: every consent event
        is recorded (queued, never written on the request path), ``my-data``
        serves the visitor's history and withdrawal erases their telemetry.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        secret_keys: Sequence[str | bytes],
        prefix: str = "/_cookiegate/",
        cookie_name: str = "cookiegate",
        max_age: int = SIX_MONTHS,
        secure: bool | None = None,
        gpc: bool = True,
        gpc_json: bool | None = None,
        gpc_last_update: str | None = None,
        clear_site_data: Sequence[str] = (),
        trusted_origins: Sequence[str] = (),
        on_consent: Callable[[ConsentChange], None] | None = None,
        max_body: int = 16 * 1024,
        token_cache_size: int = 4096,
        ui: UI | Literal["auto"] | None = "auto",
        hide_from_bots: bool = False,
        settings_control: bool = True,
        csp: CspConfig | None = None,
        consent_mode: ConsentModeConfig | bool = False,
        block_trackers: bool = True,
        trackers: TrackerMatcher | str | Path | None = None,
        records: ConsentRecorder | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise ConfigError("policy", "must be a cookiegate.Policy")
        self.policy = policy
        self.codec = ConsentCodec(secret_keys)
        #: the signed destroyed counts a no-JS withdrawal carries to the page it lands on
        self._flash = FlashCodec(secret_keys, salt="cookiegate.withdrawn.v1")
        if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.endswith("/"):
            raise ConfigError("prefix", "must start and end with '/', e.g. '/_cookiegate/'")
        if prefix == "/":
            raise ConfigError("prefix", "must not be '/' (it would shadow the whole site)")
        self.prefix = prefix
        if not isinstance(cookie_name, str) or not re.fullmatch(
            r"[A-Za-z0-9_\-.]{1,64}", cookie_name
        ):
            raise ConfigError("cookie_name", "must be 1-64 letters, digits, '_', '-' or '.'")
        if cookie_name.startswith("__"):
            raise ConfigError("cookie_name", "must not carry a prefix; __Host- is added on https")
        self.cookie_name = cookie_name
        self.secure_cookie_name = "__Host-" + cookie_name
        if (
            isinstance(max_age, bool)
            or not isinstance(max_age, int)
            or not 60 <= max_age < MAX_COOKIE_AGE
        ):
            raise ConfigError(
                "max_age", f"must be an integer from 60 to {MAX_COOKIE_AGE - 1} seconds"
            )
        self.max_age = max_age
        if secure is not None and not isinstance(secure, bool):
            raise ConfigError("secure", "must be True, False or None")
        self.secure = secure
        self.gpc = bool(gpc)
        if gpc_json is None:
            gpc_json = self.gpc
        elif gpc_json and not self.gpc:
            raise ConfigError("gpc_json", "gpc.json says the site honours GPC: it needs gpc=True")
        self.gpc_json = bool(gpc_json)
        self._gpc_path = "/.well-known/gpc.json" if self.gpc_json else None
        self._static_prefix = prefix + "static/"
        # beacon routes: exact paths in a dict (as frameworks that merge slashes
        # or ignore a trailing one route them: /collect/ and /collect alike),
        # prefixes longest first
        self._beacon_exact = {
            route_key(b.path): b.category for b in policy.beacons if b.path[-1:] != "*"
        }
        self._beacon_prefixes = tuple(
            sorted(
                ((b.path[:-1], b.category) for b in policy.beacons if b.path[-1:] == "*"),
                key=lambda item: -len(item[0]),
            )
        )
        self._has_beacons = bool(policy.beacons)
        #: paths :meth:`quick` leaves to :meth:`begin`: cookiegate's endpoints and
        #: anything that may be a beacon (a superset: ``begin`` is always right)
        self._not_quick = (
            prefix,
            *((self._gpc_path,) if self._gpc_path else ()),
            *self._beacon_exact,
            *(p.rstrip("/") or "/" for p, _ in self._beacon_prefixes),
        )
        for i, beacon in enumerate(policy.beacons):
            if beacon.path.startswith(prefix) or prefix.startswith(beacon.path.rstrip("*")):
                raise ConfigError(
                    f"beacons[{i}].path", f"overlaps cookiegate's own endpoints under {prefix!r}"
                )
        if gpc_last_update is not None and not (
            isinstance(gpc_last_update, str) and _DATE.fullmatch(gpc_last_update)
        ):
            raise ConfigError("gpc_last_update", "must be a date like '2026-11-01'")
        self.gpc_last_update = gpc_last_update
        for i, v in enumerate(clear_site_data):
            if v not in ('"cookies"', '"storage"', '"cache"', '"*"'):
                raise ConfigError(
                    f"clear_site_data[{i}]",
                    'must be one of "cookies", "storage", "cache", "*" (quoted)',
                )
        self.clear_site_data = ", ".join(clear_site_data)
        origins = set()
        for i, o in enumerate(trusted_origins):
            parts = urlsplit(o) if isinstance(o, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"trusted_origins[{i}]", "must look like 'https://example.com'")
            origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
        #: the trusted origins as ``scheme://host[:port]`` (the scheme counts: a
        #: page served over plain http can be altered on the way)
        self.trusted_origins = frozenset(origins)
        if on_consent is not None and not callable(on_consent):
            raise ConfigError("on_consent", "must be callable")
        self.on_consent = on_consent
        if not isinstance(max_body, int) or max_body < 256:
            raise ConfigError("max_body", "must be an integer >= 256")
        self.max_body = max_body
        if not isinstance(token_cache_size, int) or token_cache_size < 1:
            raise ConfigError("token_cache_size", "must be a positive integer")
        self._state_cached = lru_cache(maxsize=token_cache_size)(self._verify)
        self._set_cookie_fast: dict[bytes, str | None] = {}
        #: Set-Cookie values of blocked cookies: (name, category, is a deletion);
        #: only name-classified values whose deletion reading needs no clock
        self._set_cookie_raw: dict[bytes, tuple[bytes, str | None, bool]] = {}
        self._expiry_cached = lru_cache(maxsize=1024)(self._expiry_uncached)
        # With no domain/path-constrained rule, classification depends on the name
        # alone, so whole request-cookie filterings can be cached per header.
        self._location_free = not any(
            r.domain is not None or r.path is not None for r in policy.rules
        )
        self._plan_cached = lru_cache(maxsize=token_cache_size)(
            lambda cookie, secure, gpc: self._plan(cookie, secure, gpc, "", "/")
        )
        #: (raw Cookie, scheme, raw Sec-GPC) -> the plan begin made for them (see
        #: :meth:`quick`); bounded like the token cache
        self._quick: dict[tuple[bytes | None, str, bytes | None], Plan] = {}
        self._quick_size = token_cache_size
        self.vary_value = b"Cookie, Sec-GPC" if self.gpc else b"Cookie"
        self._n_optional = len(policy.optional)
        self._unknown_seen: set[str] = set()
        self._routes = {
            prefix + "consent": self._route_consent,
            prefix + "withdraw": self._route_withdraw,
            prefix + "preferences": self._route_page,
            prefix + "cookies": self._route_page,
            prefix + "theme": self._route_withdraw,  # POST only, same checks
        }
        #: strictly-necessary UI preference cookie (light/dark), set by ``theme``
        self.theme_cookie = cookie_name + "_theme"
        #: session flag "this browser's GPC refusal was recorded" (value ``1`` for
        #: everyone: not an identifier), only with ``records=``
        self.gpc_cookie = cookie_name + "_gpc"
        self.records = records
        self._own_cookies = frozenset(
            (self.cookie_name, self.secure_cookie_name, self.theme_cookie, self.gpc_cookie)
        )
        if ui == "auto":
            from .ui import UI

            ui = UI(policy, prefix=prefix, own_cookies=self.own_cookie_rules())
        elif ui is not None and getattr(ui, "prefix", prefix) != prefix:
            # its forms would post where the gate does not answer: no choice saved
            raise ConfigError(
                "ui",
                f"the UI's prefix {ui.prefix!r} is not the gate's {prefix!r}: "
                f"build it with UI(policy, prefix={prefix!r}, ...)",
            )
        self.ui: UI | None = ui
        self.hide_from_bots = bool(hide_from_bots)
        if not isinstance(settings_control, bool):
            raise ConfigError("settings_control", "must be True or False")
        self.settings_control = settings_control
        if csp is not None and not isinstance(csp, CspConfig):
            raise ConfigError("csp", "must be a cookiegate.csp.CspConfig or None")
        self.csp = CspBuilder(csp, categories=policy.categories) if csp is not None else None
        self.consent_mode: ConsentMode | None = None
        if consent_mode is True:
            consent_mode = ConsentModeConfig()
        if isinstance(consent_mode, ConsentModeConfig):
            default_url = ConsentModeConfig().script_url
            if consent_mode.script_url == default_url and ui is not None:
                # the content-hashed URL, cached forever, under the gate's prefix
                url = ui.asset_url("cookiegate-consent-mode.js")
                consent_mode = dataclasses.replace(consent_mode, script_url=url)
            self.consent_mode = ConsentMode(
                consent_mode, categories=policy.categories, folded=policy.catalog_categories
            )
        elif consent_mode is not False:
            raise ConfigError("consent_mode", "must be True, False or a ConsentModeConfig")
        #: response headers need the HTML checks even for non-200 responses
        self._page_work = self.csp is not None or self.consent_mode is not None
        if not isinstance(block_trackers, bool):
            raise ConfigError("block_trackers", "must be True or False")
        self.trackers: TrackerMatcher | None = None
        if block_trackers:
            if isinstance(trackers, TrackerMatcher):
                self.trackers = trackers
            elif trackers is None or isinstance(trackers, str | Path):
                rows = load_trackers(trackers) if trackers is not None else None
                self.trackers = TrackerMatcher(rows, category_map=policy.catalog_categories)
            else:
                raise ConfigError("trackers", "must be a TrackerMatcher, a TOML path or None")
        elif trackers is not None:
            raise ConfigError("trackers", "given, but block_trackers is False")
        self._unblock_tag: str | None = None
        self._fragment_bytes: dict[tuple[Any, ...], bytes] = {}
        self._fragment_size = 0
        self._quick_fragment_size = 0
        #: page_fragment of quick decisions, by the raw values it depends on
        self._quick_fragments: dict[
            tuple[Any, ...], tuple[bytes | None, tuple[str | None, str] | None]
        ] = {}
        #: (granted, locale) -> the tracking gate's prepared configuration
        self._rewriter_options: dict[tuple[Any, ...], RewriterProfile] = {}
        if self.trackers is not None and self.ui is not None:
            url = self.ui.asset_url("cookiegate-unblock.js")
            # an enforced CSP narrowed per consent still refuses, on this page,
            # the hosts a visitor grants: re-activation then reloads the page
            reload = (
                " data-cg-reload"
                if self.csp is not None and not self.csp.config.report_only
                else ""
            )
            self._unblock_tag = (
                f'<script src="{url}" defer data-cg-endpoint="{prefix}consent"{reload}></script>'
            )
        #: Vary of a page whose inserted bytes speak the visitor's language (the
        #: banner, the control, the tracking gate's placeholders), and of a 200
        #: page that spares bots the banner (the copy depends on User-Agent)
        self.lang_vary_value = self.vary_value + b", Accept-Language"
        self.page_vary_value = self.lang_vary_value + (
            b", User-Agent" if self.hide_from_bots else b""
        )
        #: HTML bodies may be rewritten (banner, Consent Mode, tracking gate)
        self.may_inject = (
            self.ui is not None or self.consent_mode is not None or self.trackers is not None
        )
        if records is not None and not all(
            callable(getattr(records, m, None)) for m in ("consent_changed", "my_data", "withdrawn")
        ):
            raise ConfigError(
                "records", "must be a cookiegate.records.Recorder (or have its three methods)"
            )
        retention = getattr(records, "retention", None)
        days = getattr(retention, "records_days", None)
        if isinstance(days, int) and days * 86400 < max_age:
            # the proof of a consent still in use would be purged
            raise ConfigError(
                "records.retention.records_days",
                f"keeps records {days} days, less than a decision is valid "
                f"(max_age {max_age} s, {-(-max_age // 86400)} days)",
            )
        self._routes[prefix + "my-data"] = self._route_my_data
        self._notice_hash = lru_cache(maxsize=64)(self._notice_hash_uncached)

    # -- consent ----------------------------------------------------------

    def _verify(self, token: str | None, gpc: bool) -> ConsentState:
        if token is None:
            state = UNDECIDED
        else:
            try:
                payload, newest = self.codec.loads(token)
                state = self._state_from_payload(payload, newest)
            except TokenError:
                state = ConsentState(False, reason="invalid")
        if gpc:
            return self._with_gpc(state)
        return state

    def _state_from_payload(self, p: dict[str, Any], newest: bool) -> ConsentState:
        cid, granted, version, at, method = (
            p.get("id"),
            p.get("g"),
            p.get("p"),
            p.get("t"),
            p.get("m"),
        )
        if (
            not isinstance(cid, str)
            or not 8 <= len(cid) <= 64
            or not isinstance(granted, list)
            or not all(isinstance(g, str) for g in granted)
            or not isinstance(version, str)
            or isinstance(at, bool)
            or not isinstance(at, int)
            or method not in METHODS
        ):
            raise TokenError("payload does not have the consent shape")
        if at > time.time() + MAX_SKEW:
            raise TokenError("decision time is in the future")
        if version != self.policy.version:
            return ConsentState(False, consent_id=cid, policy_version=version, reason="stale")
        optional = self.policy.optional
        granted_set = frozenset(g for g in granted if g in optional)
        return ConsentState(
            True,
            granted=granted_set,
            complete=len(granted_set) == len(optional),
            policy_version=version,
            consent_id=cid,
            decided_at=at,
            expires_at=at + self.max_age,
            method=method,
            reason="ok",
            needs_reissue=not newest,
        )

    def _with_gpc(self, state: ConsentState) -> ConsentState:
        if state.decided:  # an explicit choice wins over the signal
            return replace(state, gpc=True)
        return ConsentState(
            True,
            policy_version=self.policy.version,
            consent_id=state.consent_id,
            method="gpc",
            gpc=True,
            reason="gpc",
        )

    def state_for(
        self, token: str | None, gpc: bool = False, now: float | None = None
    ) -> ConsentState:
        """The verified consent state for a consent-cookie value (cached; the expiry
        is checked on every call)."""
        if token is not None and len(token) > 1024:
            token = ""  # oversized: never cached, always invalid
        state = self._state_cached(token, gpc)
        if state.expires_at is not None and state.expires_at <= (
            time.time() if now is None else now
        ):
            state = ConsentState(False, consent_id=state.consent_id, reason="expired")
            if gpc:
                state = self._with_gpc(state)
        return state

    def make_token(
        self,
        categories: Sequence[str] = (),
        *,
        method: str = "api",
        consent_id: str | None = None,
        decided_at: int | None = None,
        policy_version: str | None = None,
    ) -> str:
        """Sign a consent token granting ``categories`` (for tests, benchmarks and
        server-side integrations)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        payload = {
            "v": 1,
            "id": consent_id or new_consent_id(),
            "g": sorted(c for c in set(categories) if c in self.policy.optional),
            "p": policy_version or self.policy.version,
            "t": int(time.time()) if decided_at is None else decided_at,
            "m": method,
        }
        return self.codec.dumps(payload)

    @property
    def trusted_hosts(self) -> frozenset[str]:
        """The ``host[:port]`` of :attr:`trusted_origins` (kept for code that read
        it before the scheme counted)."""
        return frozenset(o.split("://", 1)[1] for o in self.trusted_origins)

    def is_secure(self, info: RequestInfo) -> bool:
        return info.scheme in _SECURE_SCHEMES if self.secure is None else self.secure

    def consent_cookie_name(self, info: RequestInfo) -> str:
        return self.secure_cookie_name if self.is_secure(info) else self.cookie_name

    def consent_cookie(self, state: ConsentState, info: RequestInfo) -> str:
        """The Set-Cookie value that stores ``state`` (signed with the newest key)."""
        token = self.make_token(
            sorted(state.granted),
            method=state.method or "api",
            consent_id=state.consent_id,
            decided_at=state.decided_at,
        )
        remaining = self.max_age
        if state.decided_at is not None:
            remaining = min(
                self.max_age, max(1, state.decided_at + self.max_age - int(time.time()))
            )
        secure = self.is_secure(info)
        return serialize_set_cookie(
            self.consent_cookie_name(info),
            token,
            max_age=remaining,
            secure=secure,
            httponly=True,
            samesite="Lax",
        )

    # -- classification ---------------------------------------------------

    def allowed(self, state: ConsentState, category: str | None) -> bool:
        """Whether a cookie of ``category`` (``None`` = unknown) may pass."""
        if category == NECESSARY:
            return True
        if category is None:
            unknown = self.policy.unknown_category
            if unknown is None:
                return len(state.granted) == self._n_optional
            category = unknown
        return category in state.granted

    def set_cookie_allowed(
        self, state: ConsentState, raw: bytes, info: RequestInfo | Decision
    ) -> bool:
        """Whether a ``Set-Cookie`` value (raw bytes) may reach the browser.
        ``info``: the request (or its decision: its request is read only when the
        cookie's name is seen for the first time)."""
        known = self._set_cookie_raw.get(raw)
        if known is not None:  # this exact value was seen: (name, category, deletion)
            key, category, deletion = known
            if category == NECESSARY or self.allowed(state, category):
                return True
        else:
            eq = raw.find(b"=")
            semi = raw.find(b";")
            key = raw[:eq].strip() if eq >= 0 and (semi < 0 or eq < semi) else b""
            category = self._set_cookie_fast.get(key, _SENTINEL)
            by_name = True  # classified by the name alone (not by Domain/Path rules)
            if category is _SENTINEL:
                category = self._classify_set_cookie(key, raw, info)
                by_name = key in self._set_cookie_fast
            if category == NECESSARY or self.allowed(state, category):
                return True
            deletion, timeless = deletion_verdict(raw)
            if by_name and timeless and len(raw) <= 512:
                # a value a refused visitor's pages send again and again (bounded)
                if len(self._set_cookie_raw) >= 4096:
                    self._set_cookie_raw.clear()
                self._set_cookie_raw[raw] = (key, category, deletion)
        if deletion:
            return True  # deletions always pass
        if category is None:
            self.note_unknown(key.decode("latin-1"), None)
        return False

    def _classify_set_cookie(
        self, key: bytes, raw: bytes, request: RequestInfo | Decision
    ) -> str | None:
        name = key.decode("latin-1")
        if name in self._own_cookies:
            category: str | None = NECESSARY
        else:
            policy = self.policy
            cands = policy.candidates(name)
            if cands and (cands[0].domain is not None or cands[0].path is not None):
                # depends on the cookie's Domain/Path: classify this header, do not cache
                info = request.info if isinstance(request, Decision) else request
                sc = parse_set_cookie(raw.decode("latin-1"))
                return policy.category_of(
                    name, sc.domain or _host_only(info.host), sc.path or info.path
                )
            category = cands[0].category if cands else None
        if len(self._set_cookie_fast) >= 8192:
            self._set_cookie_fast.clear()  # bounded: random names cannot grow memory
        self._set_cookie_fast[key] = category
        return category

    def note_unknown(self, name: str, category: str | None) -> None:
        """Log an undeclared cookie once per name (bounded, so random names cannot
        flood the log)."""
        name = name[:MAX_PATTERN_NAME]  # what is remembered stays small
        if category is not None or name in self._unknown_seen:
            return
        if len(self._unknown_seen) < 1000:
            self._unknown_seen.add(name)
            log.warning(
                "cookiegate: undeclared cookie %r treated as non-necessary; "
                "declare it in the policy to classify it",
                name[:100],
            )

    def _expiry_for(self, name: str, info: RequestInfo) -> tuple[bytes, ...]:
        """Set-Cookie values (latin-1 bytes) expiring ``name`` on its declared
        Path and Domain(s), cached: refused visitors pay for this on every request."""
        if any(r.domain is not None or r.path is not None for r in self.policy.candidates(name)):
            return self._expiry_uncached(
                name, _host_only(info.host), info.path, self.is_secure(info)
            )
        if len(name) > MAX_PATTERN_NAME:  # not cached: long random names would fill memory
            return self._expiry_uncached(name, "", "/", self.is_secure(info))
        return self._expiry_cached(name, "", "/", self.is_secure(info))

    def _expiry_uncached(self, name: str, host: str, path: str, secure: bool) -> tuple[bytes, ...]:
        rule = self.policy.rule_for(name, host or None, path)
        cookie_path = rule.path if rule and rule.path else "/"
        domains: list[str | None] = [None]
        if rule and rule.domain:
            domains.append(rule.domain)
        domains.extend(d for d in self.policy.expire_domains if d not in domains)
        return tuple(
            expire_cookie(name, path=cookie_path, domain=d, secure=secure).encode("latin-1")
            for d in domains
        )

    # -- the request ------------------------------------------------------

    def quick(self, key: tuple[bytes | None, str, bytes | None], path: str) -> Plan | None:
        """What :meth:`begin` would decide for an HTTP request to an app page,
        known from an earlier request with the same raw headers, or ``None``
        (then call :meth:`begin`).

        ``key`` is ``(Cookie, scheme, Sec-GPC)`` as raw bytes, several headers
        joined (Cookie with ``b"; "``, Sec-GPC with ``b"\\n"``). A key is known
        here once :meth:`begin` was given it (``quick_key``); ``path`` must not be
        one of cookiegate's endpoints or a beacon route, and the consent must not
        have expired since. The answer is a :data:`Plan`: the consent state, the
        Cookie header to give the app (``None``: unchanged), the names withheld
        and the Set-Cookie values expiring them."""
        plan = self._quick.get(key)
        if plan is None or path.startswith(self._not_quick):
            return None
        if self._has_beacons and "//" in path:
            return None  # may be a beacon once slashes are merged
        expires = plan[0].expires_at
        if expires is not None and expires <= time.time():
            return None
        return plan

    def begin(
        self,
        info: RequestInfo,
        quick_key: tuple[bytes | None, str, bytes | None] | None = None,
    ) -> Decision:
        """Decide what happens to one request. Never raises on request input.

        ``quick_key``: the request's key for :meth:`quick` (HTTP requests only);
        later requests with the same key to an app page are answered by
        :meth:`quick` (when the decision depends on the Cookie header alone)."""
        cookie = info.cookie or None
        sec_gpc = info.sec_gpc
        gpc = sec_gpc is not None and self.gpc and gpc_enabled(sec_gpc)
        secure = info.scheme in _SECURE_SCHEMES if self.secure is None else self.secure
        # with no Domain/Path-constrained rule the plan depends on the header alone
        cacheable = self._location_free and (cookie is None or len(cookie) <= CACHEABLE_COOKIE)
        if cacheable:
            plan = self._plan_cached(cookie, secure, gpc)
            expires = plan[0].expires_at
            if expires is not None and expires <= time.time():
                plan = self._plan(cookie, secure, gpc, "", "/")  # expired since cached
        else:
            plan = self._plan(cookie, secure, gpc, _host_only(info.host), info.path)
        decision = Decision(self, info, plan[0])
        path = info.path
        if (path.startswith(self.prefix) or path == self._gpc_path) and not info.websocket:
            self._own_route(decision)
            if decision.response is not None or decision.needs_body or decision.deferred:
                return decision
        if self._has_beacons and not info.websocket:
            category = self.beacon_category(path)
            if category is not None and category not in plan[0].granted:
                decision.response = self._beacon_blocked(category, plan[3])
                return decision
        if plan[1] is not None:
            decision.cookie_header = plan[1]
            decision.removed = plan[2]
            decision.expire = plan[3]
        if (
            cacheable
            and quick_key is not None
            and (quick_key[2] is None or len(quick_key[2]) <= _QUICK_GPC)
            and not info.websocket
        ):
            quick = self._quick
            if len(quick) >= self._quick_size:
                quick.clear()  # bounded: many visitors cannot grow memory
            quick[quick_key] = plan
        return decision

    def beacon_category(self, path: str) -> str | None:
        """The consent category a beacon route needs, or ``None`` if ``path`` is
        not a configured beacon."""
        category = self._beacon_exact.get(path)
        if category is not None:
            return category
        key = path
        if "//" in path or (path[-1:] == "/" and len(path) > 1):
            # /track/ and //track reach /track in frameworks that merge slashes
            # or ignore a trailing one (Flask strict_slashes=False, werkzeug),
            # and /collect a route declared /collect/
            key = route_key(path)
            category = self._beacon_exact.get(key)
            if category is not None:
                return category
        # a prefix (/gtm/*) covers its directory as those frameworks route it:
        # /gtm/, /gtm//, /gtm and //gtm/x (the key with a slash after it)
        dir_key = key + "/"
        for prefix, cat in self._beacon_prefixes:
            if path.startswith(prefix) or dir_key.startswith(prefix):
                return cat
        return None

    def _beacon_blocked(self, category: str, expire: tuple[bytes, ...]) -> PlainResponse:
        """``204`` for a beacon the visitor did not consent to: the app is not
        called. Refused cookies the browser still sends are expired here too."""
        headers = [
            ("cache-control", "no-store"),
            ("vary", self.vary_value.decode()),
            ("x-cookiegate-blocked", category),
        ]
        headers.extend(("set-cookie", v.decode("latin-1")) for v in expire)
        return PlainResponse(204, headers)

    def may_be_own(self, path: str) -> bool:
        """Whether ``path`` is one of cookiegate's own endpoints (or under its prefix)."""
        return path.startswith(self.prefix) or path == self._gpc_path

    def _plan(
        self, cookie: str | None, secure: bool, gpc: bool, host: str, path: str
    ) -> tuple[ConsentState, str | None, tuple[str, ...], tuple[bytes, ...]]:
        """Verify the consent cookie and filter the request's cookies. Pure: with
        no domain/path-constrained rule it is cached per (Cookie header, scheme,
        GPC); the consent expiry is re-checked on every hit."""
        if not cookie:
            return self.state_for(None, gpc), None, (), ()
        name = self.secure_cookie_name if secure else self.cookie_name
        token, pairs = self._split_cookie(cookie, name)
        state = self.state_for(token, gpc)
        if state.complete:
            return state, None, (), ()
        header, removed, expire = self._filter(
            pairs, state.granted, state.decided, host, path, secure
        )
        return state, header, removed, expire

    @staticmethod
    def _split_cookie(
        header: str, consent_name: str
    ) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        pairs = parse_cookie_header(header)
        for name, segment in pairs:
            if name == consent_name:
                return segment.partition("=")[2].strip().strip('"'), pairs
        return None, pairs

    def _filter(
        self,
        pairs: tuple[tuple[str, str], ...],
        granted: frozenset[str],
        decided: bool,
        host: str,
        path: str,
        secure: bool,
    ) -> tuple[str | None, tuple[str, ...], tuple[bytes, ...]]:
        """Split request cookies into kept and removed; for a decided visitor, the
        Set-Cookie values expiring the removed ones. Pure (cacheable)."""
        policy = self.policy
        state = ConsentState(decided, granted=granted)
        kept: list[str] = []
        removed: list[str] = []
        for name, segment in pairs:
            if name in self._own_cookies:
                kept.append(segment)
                continue
            category = policy.category_of(name, host or None, path)
            allowed = self.allowed(state, category)
            if allowed and not name:
                # no "=": a browser's nameless cookie, but werkzeug, PHP and
                # others read "_ga" as a cookie named _ga: both readings must pass
                alias = segment.strip(" \t")
                allowed = self.allowed(state, policy.category_of(alias, host or None, path))
            if allowed:
                kept.append(segment)
            else:
                removed.append(name)
                self.note_unknown(name, category)
        if not removed:
            return None, (), ()
        expire: list[bytes] = []
        if decided:
            names = [n for n in dict.fromkeys(removed) if n]
            if len(names) > MAX_EXPIRE:
                log.warning(
                    "cookiegate: %d refused cookies sent; expiring the first %d",
                    len(names),
                    MAX_EXPIRE,
                )
                names = names[:MAX_EXPIRE]
            for name in names:
                if name:
                    if self._location_free and len(name) <= MAX_PATTERN_NAME:
                        expire.extend(self._expiry_cached(name, "", "/", secure))
                    else:
                        expire.extend(self._expiry_uncached(name, host, path, secure))
        return "; ".join(kept), tuple(removed), tuple(expire)

    # -- own endpoints ----------------------------------------------------

    def _own_route(self, decision: Decision) -> None:
        info = decision.info
        if info.path == "/.well-known/gpc.json":
            if info.method not in ("GET", "HEAD"):
                decision.response = _method_not_allowed("GET, HEAD")
                return
            doc: dict[str, Any] = {"gpc": True}
            if self.gpc_last_update:
                doc["lastUpdate"] = self.gpc_last_update
            decision.response = _json(200, doc, cache="public, max-age=86400", vary=None)
            return
        route = self._routes.get(info.path)
        if route is None and info.path.startswith(self._static_prefix) and self.ui is not None:
            route = self._route_static
        if route is None:
            decision.response = _json(404, {"error": f"no cookiegate endpoint at {info.path}"})
            return
        route(decision)

    def _route_consent(self, decision: Decision) -> None:
        info = decision.info
        if info.method in ("GET", "HEAD"):
            state = decision._state
            decision.response = _json(
                200, state.as_json(self.policy.optional), vary=self.vary_value
            )
            if state.needs_reissue and state.decided and state.method != "gpc":
                decision.response.headers.append(("set-cookie", self.consent_cookie(state, info)))
        elif info.method == "POST":
            self._check_same_origin(decision)
        else:
            decision.response = _method_not_allowed("GET, HEAD, POST")

    def own_cookie_rules(self) -> tuple[CookieRule, ...]:
        """cookiegate's own cookies, for the cookie declaration."""
        months = self.max_age // (30 * 24 * 3600)
        consent = CookieRule(
            f"{self.cookie_name} / {self.secure_cookie_name}",
            NECESSARY,
            vendor="cookiegate (this site)",
            purpose="Stores your cookie choice, signed so that it cannot be forged.",
            lifetime=f"{months} months" if months else f"{self.max_age} seconds",
            lifetime_seconds=self.max_age,
            justification="CNIL: trackers storing the user's choice are exempt",
        )
        theme = CookieRule(
            self.theme_cookie,
            NECESSARY,
            vendor="cookiegate (this site)",
            purpose="Remembers the light/dark theme you chose for the cookie banner.",
            lifetime="1 year",
            lifetime_seconds=365 * 24 * 3600,
            justification="WP194 #6: user-interface customisation cookie",
        )
        if self.records is None:
            return (consent, theme)
        gpc = CookieRule(
            self.gpc_cookie,
            NECESSARY,
            vendor="cookiegate (this site)",
            purpose="Notes that the refusal your browser signals (Global Privacy Control) "
            "was recorded as proof, so that it is recorded once per visit. Holds only '1'.",
            lifetime="session",
            justification="Art. 7(1) GDPR: proof of the refusal; same value for everyone",
        )
        return (consent, theme, gpc)

    def _route_page(self, decision: Decision) -> None:
        info = decision.info
        ui = self.ui
        if ui is None:
            decision.response = _json(404, {"error": "cookiegate's pages are turned off (ui=None)"})
            return
        if info.method not in ("GET", "HEAD"):
            decision.response = _method_not_allowed("GET, HEAD")
            return
        locale = ui.negotiate(self._accept_language(info), _query_value(info.query, "lang"))
        theme = self._theme(info)
        if info.path.endswith("preferences"):
            target = safe_next(_query_value(info.query, "next")) or "/"
            flash = _query_value(info.query, "withdrawn")
            counts = self._flash.loads(flash, max_age=600) if flash else None
            withdrawn: tuple[int | None, int] | None = None
            if (
                isinstance(counts, list)
                and len(counts) == 3
                and all(type(n) is int and n >= -1 for n in counts[:2])
                # the notice is this visitor's: a link to another's withdrawal
                # (or an old one) says nothing
                and decision._state.consent_id is not None
                and counts[2] == decision._state.consent_id
            ):
                withdrawn = (counts[0] if counts[0] >= 0 else None, max(counts[1], 0))
            html = ui.preferences_page(
                locale=locale,
                state=decision._state,
                next_path=target,
                theme=theme,
                withdrawn=withdrawn,
            )
        else:
            target = safe_next(_query_value(info.query, "next")) or "/"
            html = ui.declaration_page(locale=locale, theme=theme, next_path=target)
        decision.response = PlainResponse(
            200,
            [
                ("content-type", "text/html; charset=utf-8"),
                ("cache-control", "no-store"),
                ("vary", self.vary_value.decode()),
            ],
            html.encode("utf-8"),
        )

    def _route_static(self, decision: Decision) -> None:
        info = decision.info
        if info.method not in ("GET", "HEAD"):
            decision.response = _method_not_allowed("GET, HEAD")
            return
        found = self.ui.static_file(info.path[len(self._static_prefix) :]) if self.ui else None
        if found is None:
            decision.response = _json(404, {"error": "no such cookiegate asset"})
            return
        content, content_type, etag = found
        headers = [
            ("content-type", content_type),
            ("cache-control", "public, max-age=31536000, immutable"),
            ("etag", etag),
        ]
        if info.if_none_match is not None and etag in info.if_none_match:
            decision.response = PlainResponse(304, headers)
        else:
            decision.response = PlainResponse(200, headers, content)

    def _page_csp(
        self,
        state: ConsentState,
        app_csp: list[bytes] | None,
        nonce: str,
        out: list[tuple[bytes, bytes]],
    ) -> str | None:
        """Append the page's Content-Security-Policy header(s) to ``out``; return
        the enforced policy (for choosing inline or static Consent Mode)."""
        joined = ", ".join(v.decode("latin-1") for v in app_csp) if app_csp else None
        csp = self.csp
        made = None if csp is None else csp.header_for(state.granted, joined, nonce)
        if made is None:
            if app_csp:
                out.extend((b"content-security-policy", v) for v in app_csp)
            return joined
        name, value = made
        if name.lower() == "content-security-policy":
            out.append((b"content-security-policy", value.encode("latin-1")))
            return value
        # report-only: the app's enforced policy stays as it was
        if app_csp:
            out.extend((b"content-security-policy", v) for v in app_csp)
        out.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return joined

    def page_fragment(
        self, decision: Decision, content_type: str | None = None, nonce: str | None = None
    ) -> bytes | None:
        """The HTML to insert into an app's page: the banner for an undecided
        visitor, the small "Cookie settings" control for one who decided."""
        if self.ui is None or (not self.settings_control and decision._state.complete):
            return None
        quick_key = decision._quick_key
        if quick_key is None or nonce is not None:
            return self._page_fragment(decision, content_type, nonce)
        # A known visitor (Gate.quick): the fragment by the raw values it depends
        # on (the Cookie bytes of the key: consent and theme; the app's locale,
        # Accept-Language, User-Agent for bots, path and query, Content-Type),
        # without building the request's RequestInfo.
        # Keys stay small (a quick key's Cookie is <= 2 KiB; path and query and
        # each header value are bounded here): a few MiB for the whole cache.
        source: QuickSource = decision._source
        if len(source[2]) + len(source[4]) > 2048:
            return self._page_fragment(decision, content_type, None)
        # the state by what the fragment depends on (as _page_fragment's shape):
        # a ConsentState's own hash is a Python-level dataclass __hash__
        state = decision._state
        key: list[Any] = [quick_key, state.decided, state.granted, state.gpc, state.reason]
        key += decision.locale, content_type, source[2], source[4]
        names = _FRAGMENT_HEADERS_BOTS if self.hide_from_bots else _FRAGMENT_HEADERS
        for item in source[0]:
            if item[0] in names:
                if len(item[1]) > 512:
                    return self._page_fragment(decision, content_type, None)
                key.append(item)
        frozen = tuple(key)
        done = self._quick_fragments.get(frozen)
        if done is None:
            fragment = self._page_fragment(decision, content_type, None)
            self._quick_fragment_size += len(fragment or b"")
            if len(self._quick_fragments) >= 1024 or self._quick_fragment_size > _FRAGMENT_BUDGET:
                self._quick_fragments.clear()  # bounded, in entries and in bytes
                self._quick_fragment_size = len(fragment or b"")
            # with the banner's locale: the tracking gate asks for it next (_locale)
            self._quick_fragments[frozen] = (fragment, decision._negotiated)
            return fragment
        if done[1] is not None:
            decision._negotiated = done[1]
        return done[0]

    def _page_fragment(
        self, decision: Decision, content_type: str | None, nonce: str | None
    ) -> bytes | None:
        ui = self.ui
        if ui is None:
            return None
        info = decision.info
        state = decision._state
        if self.hide_from_bots and is_bot(self._header(info, b"user-agent", "user_agent")):
            return None
        locale = self._locale(decision)
        pinned = decision.locale is not None and locale == ui.negotiate(None, decision.locale)
        theme = self._theme(info)
        target = _path_target(info.path) + ("?" + info.query if info.query else "")
        next_path = (_safe_next_cached(target) if len(target) <= 2048 else None) or "/"
        changed = state.reason == "stale"
        key = None
        if nonce is None:
            # the finished bytes, per page and consent shape (bounded)
            shape = (state.decided, state.granted, state.gpc, changed)
            key = (shape, locale, pinned, theme, next_path, content_type)
            done = self._fragment_bytes.get(key)
            if done is not None:
                return done
        if state.decided:
            html = ui.settings_control(
                locale=locale,
                next_path=next_path,
                theme=theme,
                state=state,
                pin_locale=pinned,
                nonce=nonce,
            )
        else:
            html = ui.banner(
                locale=locale,
                state=state,
                next_path=next_path,
                changed=changed,
                theme=theme,
                pin_locale=pinned,
                nonce=nonce,
            )
        if self._unblock_tag is not None:
            if not state.complete:
                # what a placeholder's button submits without JavaScript
                html += self.load_form(next_path)
            # re-activates what the tracking gate neutralised, after consent
            nonce_attr = f' nonce="{nonce}"' if nonce else ""
            html += self._unblock_tag.replace("></script>", nonce_attr + "></script>")
        # an even length: a UTF-16 page gets as many bytes of spaces (inject.even)
        encoded = even(html.encode(_charset(content_type), "xmlcharrefreplace"))
        if key is not None:
            # bounded in entries and in bytes (each holds the page's path)
            self._fragment_size += len(encoded)
            if len(self._fragment_bytes) >= 4096 or self._fragment_size > _FRAGMENT_BUDGET:
                self._fragment_bytes.clear()
                self._fragment_size = len(encoded)
            self._fragment_bytes[key] = encoded
        return encoded

    def load_form(self, next_path: str) -> str:
        """The (empty, hidden) form a tracking gate placeholder's button submits
        without JavaScript: ``action=grant`` adds the button's category to the
        visitor's choice, and the 303 brings them back to ``next_path``."""
        return (
            f'<form id="{LOAD_FORM_ID}" method="post" '
            f'action="{html_escape(self.prefix)}consent" hidden>'
            '<input type="hidden" name="action" value="grant">'
            f'<input type="hidden" name="next" value="{html_escape(next_path)}"></form>'
        )

    def _locale(self, decision: Decision) -> str:
        ui = self.ui
        if ui is None:
            return "en"
        done = decision._negotiated
        if done is not None and done[0] == decision.locale:
            return done[1]  # the banner and the tracking gate ask for it in turn
        locale = ui.negotiate(self._accept_language(decision.info), decision.locale)
        decision._negotiated = (decision.locale, locale)
        return locale

    def rewriter(
        self, decision: Decision, fragment: bytes | None, content_type: str
    ) -> HtmlRewriter | None:
        """The tracking gate for one HTML body: an :class:`HtmlRewriter` that
        neutralises trackers of the categories the visitor has not granted and
        inserts ``fragment``; ``None`` when nothing is blocked (or it is off)."""
        trackers = self.trackers
        state = decision._state
        if trackers is None or state.complete:
            return None
        granted = state.granted
        locale = self._locale(decision) if self.ui is not None else None
        found = self._rewriter_options.get((granted, locale))
        if found is None or not found.current() or found.trackers is not trackers:
            blocked = frozenset(c for c in self.policy.optional if c not in granted)
            options: dict[str, Any] = {}
            if self.ui is not None and locale is not None:
                t = self.ui.strings(locale)
                options["placeholder_lang"] = locale
                options["placeholder_text"] = t["placeholder_text"]
                options["placeholder_button"] = t["placeholder_button"]
                options["category_labels"] = {  # as the preference centre names them
                    c: self.ui.category_label(locale, t, c) or c for c in blocked
                }
            if len(self._rewriter_options) >= 256:
                self._rewriter_options.clear()
            profile = RewriterProfile(
                blocked, trackers=trackers, known=tuple(self.policy.categories), **options
            )
            found = self._rewriter_options[(granted, locale)] = profile
        return HtmlRewriter(
            found.blocked, fragment, charset=_declared_charset(content_type), profile=found
        )

    def _accept_language(self, info: RequestInfo) -> str | None:
        return self._header(info, b"accept-language", "accept_language")

    @staticmethod
    def _header(info: RequestInfo, name: bytes, field: str) -> str | None:
        """A header read only on rare paths: from ``info`` (WSGI fills it), else
        looked up once in the raw ASGI headers."""
        value: str | None = getattr(info, field)
        if value is None and info.raw_headers is not None:
            for key, raw in info.raw_headers:
                if key == name:
                    value = raw.decode("latin-1")
                    setattr(info, field, value)
                    break
        return value

    def _theme(self, info: RequestInfo) -> str | None:
        if not info.cookie or self.theme_cookie not in info.cookie:
            return None
        value = cookie_values(info.cookie).get(self.theme_cookie)
        return value if value in ("light", "dark") else None

    def _route_withdraw(self, decision: Decision) -> None:
        if decision.info.method == "POST":
            self._check_same_origin(decision)
            decision.blocking = self.records is not None and decision.info.path.endswith("withdraw")
        else:
            decision.response = _method_not_allowed("POST")

    def _check_same_origin(self, decision: Decision) -> None:
        """Refuse cross-site posts (403). ``Sec-Fetch-Site`` decides when present
        (``same-origin``/``none`` pass, whatever ``Origin`` says: browsers send
        ``Origin: null`` under ``Referrer-Policy: no-referrer``); ``same-site`` and
        ``cross-site`` pass only from a trusted origin. Without it, ``Origin`` must
        name this host or a trusted one. Without either (non-browser clients) the
        post is accepted."""
        info = decision.info
        scheme, netloc = _origin_parts(info.origin)
        trusted = bool(netloc) and f"{scheme}://{netloc}" in self.trusted_origins
        if info.sec_fetch_site is not None:
            site = info.sec_fetch_site.strip().lower()
            if site in ("same-origin", "none") or (site in ("same-site", "cross-site") and trusted):
                decision.needs_body = True
                return
            decision.response = _error(
                403, f"cross-site request refused (Sec-Fetch-Site: {site[:40] or 'empty'})", info
            )
            return
        if info.origin is not None:
            host = info.host.strip().lower()
            # this host: any scheme but http for a request that came over https
            # (behind a TLS proxy the request may say http, the browser https)
            own = netloc == host and not (scheme == "http" and self.is_secure(info))
            if not (own or trusted):
                decision.response = _error(
                    403,
                    f"cross-site request refused (Origin {info.origin.strip()[:100]!r} "
                    "is not this site)",
                    info,
                )
                return
        decision.needs_body = True

    def respond(self, decision: Decision, body: bytes | None) -> PlainResponse:
        """Answer a POST to a consent endpoint once the adapter has read its body
        (``None``: the body was larger than ``max_body``).

        Malformed input gets a 4xx that says what is wrong; never raises.
        """
        info = decision.info
        wants_json = _is_json(info.content_type)
        try:
            if body is None or len(body) > self.max_body:
                raise BadRequest(413, f"request body is larger than {self.max_body} bytes")
            fields = self._parse_body(info.content_type, body)
            if info.path == self.prefix + "theme":
                return self._respond_theme(info, fields)
            if info.path == self.prefix + "withdraw":
                granted: frozenset[str] = frozenset()
                method = "withdraw"
            else:
                granted, method = self._parse_choice(fields, wants_json, decision._state)
        except BadRequest as exc:
            return _error(exc.status, exc.message, info)

        previous = decision._state
        now = int(time.time())
        current = ConsentState(
            True,
            granted=granted,
            complete=len(granted) == self._n_optional,
            policy_version=self.policy.version,
            consent_id=previous.consent_id or new_consent_id(),
            decided_at=now,
            expires_at=now + self.max_age,
            method=method,
            gpc=previous.gpc,
            reason="ok",
        )
        headers = [
            ("set-cookie", self.consent_cookie(current, info)),
            ("cache-control", "no-store"),
            ("vary", self.vary_value.decode()),
        ]
        expired: list[str] = []
        if info.cookie:
            seen: set[str] = set()
            for name, _segment in parse_cookie_header(info.cookie):
                if not name or name in seen or name in self._own_cookies:
                    continue
                seen.add(name)
                category = self.policy.category_of(name, _host_only(info.host), info.path)
                if not self.allowed(current, category):
                    if len(expired) == MAX_EXPIRE:  # bounded headers, as on app responses
                        log.warning(
                            "cookiegate: more than %d refused cookies sent; expiring the first %d",
                            MAX_EXPIRE,
                            MAX_EXPIRE,
                        )
                        break
                    expired.append(name)
                    headers.extend(
                        ("set-cookie", v.decode("latin-1")) for v in self._expiry_for(name, info)
                    )
        if method == "withdraw" and self.clear_site_data and self.is_secure(info):
            headers.append(("clear-site-data", self.clear_site_data))

        change = ConsentChange(previous, current, method, tuple(expired))
        if self.on_consent is not None:
            try:
                self.on_consent(change)
            except Exception:  # a listener must never cost the visitor their choice
                log.exception("cookiegate: on_consent listener failed")
        destroyed: dict[str, int | None] | None = None
        if method == "withdraw":
            destroyed = {"telemetry": 0, "cookies": len(expired)}
        if self.records is not None:
            destroyed = self._record(decision, change, fields, destroyed)

        if wants_json:
            doc = current.as_json(self.policy.optional)
            if method == "withdraw":
                doc["withdrawn"] = True
                doc["destroyed"] = destroyed
                if destroyed is not None and destroyed["telemetry"] is None:
                    doc["error"] = (
                        "your telemetry could not be erased just now: withdraw again in a moment"
                    )
            doc["expired_cookies"] = expired
            return PlainResponse(200, [("content-type", "application/json"), *headers], _dumps(doc))
        target = safe_next(_first(fields, "next"))
        if target is None:
            if _first(fields, "next"):
                log.warning("cookiegate: refused off-site or malformed 'next'; redirecting to '/'")
            target = "/"
        if destroyed is not None and self.ui is not None:
            # no JavaScript: land on the preferences page, which says what was
            # destroyed (signed, 10 minutes) and links back to ``next``
            # bound to the visitor's consent id (kept by the withdrawal); a
            # telemetry erasure that failed travels as -1
            telemetry = destroyed["telemetry"]
            flash = self._flash.dumps(
                [-1 if telemetry is None else telemetry, destroyed["cookies"], current.consent_id]
            )
            query = urlencode({"next": target, "withdrawn": flash}, safe="/")
            target = f"{self.prefix}preferences?{query}"
        headers.append(("location", target))
        headers.append(("content-type", "text/plain; charset=utf-8"))
        text = "Your choice was saved.\n"
        if destroyed is not None and destroyed["telemetry"] is None:
            text = (
                f"Your consent was withdrawn and {destroyed['cookies']} cookie(s) expired, "
                "but your telemetry could not be erased just now: withdraw again in a moment.\n"
            )
        elif destroyed is not None:
            text = (
                f"Your consent was withdrawn. Destroyed: {destroyed['telemetry']} telemetry "
                f"event(s); {destroyed['cookies']} cookie(s) expired.\n"
            )
        return PlainResponse(303, headers, text.encode())

    # -- proof of consent (records=) ----------------------------------------

    def _record(
        self,
        decision: Decision,
        change: ConsentChange,
        fields: dict[str, list[Any]],
        destroyed: dict[str, int | None] | None,
    ) -> dict[str, int | None] | None:
        """Queue the record of a consent event; on withdrawal also erase the
        visitor's telemetry (I/O: :attr:`Decision.blocking` is set for it).
        ``destroyed["telemetry"]`` is ``None`` when that erasure failed: the
        visitor is told, never shown a count of nothing destroyed."""
        records = self.records
        if records is None:
            return destroyed
        info = decision.info
        previous, current = change.previous, change.current
        if change.source == "withdraw":
            event = "withdrawn"
        elif change.source == "gpc":
            event = "gpc_refusal"
        elif (not previous.decided and previous.reason in ("stale", "expired")) or (
            # a GPC refusal standing in for a stale or expired consent (its id
            # is that consent's: a state from no cookie or a bad one has none)
            previous.method == "gpc" and previous.consent_id is not None
        ):
            event = "reconsent"
        elif previous.decided and previous.method not in (None, "gpc"):
            event = "updated"
        else:
            event = "given" if current.granted else "refused"
        lang = _first(fields, "lang")
        override = lang if isinstance(lang, str) else None
        accept = self._accept_language(info)
        if self.ui is not None:
            locale: str | None = self.ui.negotiate(accept, override)
        else:
            # no UI to negotiate with: a language tag the client sent, or none
            # (never free text: it is stored with the record)
            locale = _language_tag(override) or (
                _language_tag(accept.split(",", 1)[0].split(";", 1)[0].strip()) if accept else None
            )
        try:
            records.consent_changed(
                change,
                event=event,
                locale=locale,
                notice_hash=self._notice_hash(locale),
                categories=self.policy.optional,
                user_agent=self._header(info, b"user-agent", "user_agent"),
                client=info.client,
            )
        except Exception:  # recording must never cost the visitor their choice
            log.exception("cookiegate: recording the consent event failed")
        if destroyed is not None:
            try:
                destroyed = {**destroyed, **records.withdrawn(current.consent_id)}
            except Exception:
                log.exception("cookiegate: erasing the telemetry of a withdrawn consent failed")
                destroyed = {**destroyed, "telemetry": None}
        return destroyed

    def gpc_unrecorded(self, info: RequestInfo) -> bool:
        """Whether this GPC visitor's refusal was not recorded in this browser
        session yet (no ``<cookie_name>_gpc`` flag)."""
        return not info.cookie or cookie_values(info.cookie).get(self.gpc_cookie) != "1"

    def record_gpc_refusal(self, decision: Decision) -> str:
        """Queue a ``gpc_refusal`` record for a page served under a GPC-derived
        refusal and return the session flag's Set-Cookie value. The record's
        consent id is the visitor's existing one (a stale or expired consent
        cookie) or a fresh random id that is never sent to the browser: the
        record proves the refusal was applied without creating an identifier."""
        state = decision._state
        current = replace(
            state,
            consent_id=state.consent_id or "gpc-" + new_consent_id(),
            granted=frozenset(),
            decided_at=int(time.time()),
        )
        self._record(decision, ConsentChange(state, current, "gpc"), {}, None)
        return serialize_set_cookie(
            self.gpc_cookie, "1", secure=self.is_secure(decision.info), httponly=True,
            samesite="Lax",
        )  # fmt: skip

    def _notice_hash_uncached(self, locale: str | None) -> str:
        """SHA-256 of the notice shown: policy version, categories and, with a UI,
        every string of the banner and pages in ``locale``."""
        import hashlib

        doc = {
            "policy_version": self.policy.version,
            "categories": [
                [c.name, c.label, c.description, c.necessary]
                for c in self.policy.categories.values()
            ],
            "locale": locale,
            "strings": dict(self.ui.strings(locale)) if self.ui and locale else None,
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _route_my_data(self, decision: Decision) -> None:
        if decision.info.method not in ("GET", "HEAD"):
            decision.response = _method_not_allowed("GET, HEAD")
            return
        decision.deferred = lambda: self.my_data(decision)

    def my_data(self, decision: Decision) -> PlainResponse:
        """``GET /_cookiegate/my-data``: the visitor's consent state and history and
        the telemetry held about them, as a JSON download. Does blocking I/O (a
        database read) when records are on."""
        state = decision._state
        doc: dict[str, Any] = {
            "generated_at": int(time.time()),
            "consent": state.as_json(self.policy.optional),
            "recording": self.records is not None,
            **EMPTY_MY_DATA,
            "records": [],  # a list of this document's own
        }
        if self.records is not None:
            try:
                doc.update(self.records.my_data(state.consent_id))
            except Exception:
                log.exception("cookiegate: reading consent records failed")
                return _json(503, {"error": "consent records are unavailable", "status": 503})
        resp = _json(200, doc, vary=self.vary_value)
        resp.headers.append(
            ("content-disposition", 'attachment; filename="cookiegate-my-data.json"')
        )
        return resp

    def _respond_theme(self, info: RequestInfo, fields: dict[str, list[Any]]) -> PlainResponse:
        theme = _first(fields, "theme")
        if theme not in ("light", "dark", "auto"):
            raise BadRequest(400, "'theme' must be light, dark or auto")
        secure = self.is_secure(info)
        if theme == "auto":
            cookie = expire_cookie(self.theme_cookie, secure=secure)
        else:
            cookie = serialize_set_cookie(
                self.theme_cookie,
                theme,
                max_age=365 * 24 * 3600,
                secure=secure,
                httponly=True,
                samesite="Lax",
            )
        target = safe_next(_first(fields, "next")) or "/"
        headers = [
            ("set-cookie", cookie),
            ("cache-control", "no-store"),
            ("location", target),
            ("content-type", "text/plain; charset=utf-8"),
        ]
        return PlainResponse(303, headers, b"Theme saved.\n")

    def _parse_body(self, content_type: str | None, body: bytes) -> dict[str, list[Any]]:
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        if _is_json(content_type):
            try:
                data = json.loads(body.decode("utf-8")) if body.strip() else {}
            except (UnicodeDecodeError, ValueError) as exc:
                raise BadRequest(400, f"malformed JSON body: {exc}") from None
            except RecursionError:
                raise BadRequest(400, "malformed JSON body: nested too deeply") from None
            if not isinstance(data, dict):
                raise BadRequest(400, "JSON body must be an object")
            return {k: [v] for k, v in data.items()}
        if ctype in ("application/x-www-form-urlencoded", ""):
            try:
                text = body.decode("utf-8")
                pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=64)
            except UnicodeDecodeError:
                raise BadRequest(400, "form body is not valid UTF-8") from None
            except ValueError:
                raise BadRequest(400, "form body has too many fields (max 64)") from None
            fields: dict[str, list[Any]] = {}
            for k, v in pairs:
                fields.setdefault(k, []).append(v)
            return fields
        raise BadRequest(
            415,
            f"unsupported Content-Type {ctype!r}; "
            "use application/x-www-form-urlencoded or application/json",
        )

    def _parse_choice(
        self, fields: dict[str, list[Any]], is_json: bool, previous: ConsentState
    ) -> tuple[frozenset[str], str]:
        optional = self.policy.optional
        action = _first(fields, "action")
        if is_json and "categories" in fields:
            cats = fields["categories"][0]
            if not isinstance(cats, dict):
                raise BadRequest(400, '"categories" must be an object like {"performance": true}')
            granted = set()
            for name, value in cats.items():
                if name == NECESSARY:
                    continue  # always on; a request to refuse it is ignored
                if name not in optional:
                    raise BadRequest(
                        400, f"unknown category {name!r} (known: {', '.join(optional)})"
                    )
                if not isinstance(value, bool):
                    raise BadRequest(400, f"category {name!r} must be true or false")
                if value:
                    granted.add(name)
            return frozenset(granted), "api"
        if action is None:
            raise BadRequest(400, "missing 'action' (accept_all, reject_all, save or grant)")
        if not isinstance(action, str):
            raise BadRequest(400, "'action' must be a string")
        source = "api" if is_json else "banner"
        if action == "accept_all":
            return frozenset(optional), source
        if action == "reject_all":
            return frozenset(), source
        if action in ("save", "grant"):
            values = fields.get("category", [])
            if is_json and len(values) == 1 and isinstance(values[0], list):
                values = values[0]  # {"action": "grant", "category": ["a", "b"]}
            granted = set()
            for value in values:
                if not isinstance(value, str):
                    raise BadRequest(400, "'category' values must be strings")
                # a placeholder's button names every category its element waits for
                for name in value.split() if action == "grant" else (value,):
                    if name == NECESSARY:
                        continue
                    if name not in optional:
                        raise BadRequest(
                            400, f"unknown category {name[:60]!r} (known: {', '.join(optional)})"
                        )
                    granted.add(name)
            if action == "save":
                return frozenset(granted), "api" if is_json else "preferences"
            if not granted:
                raise BadRequest(400, "'grant' needs at least one 'category'")
            # added to the visitor's current choice (contextual consent, on the page)
            if previous.decided:
                granted |= previous.granted
            return frozenset(granted), "api" if is_json else "banner"
        raise BadRequest(
            400, f"unknown action {action[:60]!r} (use accept_all, reject_all, save or grant)"
        )

    def merge_vary(self, existing: bytes, value: bytes | None = None) -> bytes:
        """The app's ``Vary`` with ``value``'s tokens (default: :attr:`vary_value`)."""
        text = existing.decode("latin-1")
        tokens = {t.strip().lower() for t in text.split(",")}
        if "*" in tokens:
            return existing
        mine = (self.vary_value if value is None else value).decode()
        add = [t for t in mine.split(", ") if t.lower() not in tokens]
        if not add:
            return existing
        return (text + ", " + ", ".join(add) if text.strip() else ", ".join(add)).encode("latin-1")


def _query_value(query: str, key: str) -> str | None:
    try:
        for k, v in parse_qsl(query, max_num_fields=32):
            if k == key:
                return v
    except ValueError:
        return None
    return None


_VALIDATORS = frozenset((b"content-length", b"etag", b"last-modified"))
#: :meth:`Decision._complete_page_headers`: "a page sent as written" (by identity)
_UNEDITED: list[tuple[bytes, bytes]] = []


def _edited_body_headers(
    headers: Sequence[tuple[bytes, bytes]], added: int | None
) -> tuple[list[tuple[bytes, bytes]], int, int | None]:
    """The headers of a body cookiegate edits, where ``Vary`` is in them, and
    the app's declared length (``None`` unless exactly one valid Content-Length).

    ``ETag`` and ``Last-Modified`` go: the app's validators describe the page it
    wrote, not the one this visitor gets (a 304 would hand a refused visitor the
    accepted visitor's page). ``Content-Length`` becomes the app's plus ``added``
    for a pure insertion into a body with one valid length, else it goes (the
    server then frames the body itself)."""
    out: list[tuple[bytes, bytes]] = []
    vary_at = -1
    lengths = 0
    length_value = b""
    length_at = 0  # where the length was (a grown one goes back there)
    for item in headers:  # one pass: this runs on every page
        name = item[0]
        if not name.islower():
            name = name.lower()
        if name in _VALIDATORS:
            if name == b"content-length":
                lengths += 1
                length_value = item[1]
                length_at = len(out)
            continue
        if name == b"vary" and vary_at < 0:
            vary_at = len(out)
        out.append(item)
    length = _content_length(length_value) if lengths == 1 else None
    if added is not None and length is not None:
        out.insert(length_at, (b"content-length", str(length + added).encode()))
        if 0 <= length_at <= vary_at:
            vary_at += 1
    return out, vary_at, length


def _content_length(value: bytes) -> int | None:
    """A Content-Length value as an integer, or ``None`` if it is not one."""
    if value.isdigit() and len(value) <= 15:
        return int(value)  # the usual value, as written
    value = value.strip()
    if not value.isdigit() or len(value) > 15:
        return None
    return int(value)


#: raw Content-Type -> (:func:`_content_kind`), filled as values are seen
_CONTENT_KINDS: dict[bytes, tuple[bool, str | None]] = {}
#: the kind of a response without a Content-Type: not a page
_NO_CONTENT_TYPE: tuple[bool, str | None] = (False, None)


def _content_kind(content_type: bytes) -> tuple[bool, str | None]:
    """Whether a response's raw Content-Type names an HTML-like type (``htm`` in
    any letter case: such a page gets the CSP and Consent Mode), and the type
    decoded when it is HTML cookiegate may edit, else ``None``.

    Memoised in :data:`_CONTENT_KINDS` (bounded: a site sends a handful of
    Content-Types); callers look there first (one dict lookup per response: a
    ``bytes in bytes`` test costs ten times more, as CPython first tries the
    operand as an integer and clears the error)."""
    kind = _CONTENT_KINDS.get(content_type)
    if kind is None:
        page = content_type.lower().find(b"htm") >= 0
        text = content_type.decode("latin-1") if page else None
        editable = (
            page
            and is_injectable(text, None)
            # a UTF-16 page (or any charset ASCII bytes are not text in) is sent
            # as written: inserted ASCII would be garbage to the browser
            and is_ascii_compatible(_declared_charset(text))
        )
        if page and not editable and text is not None and is_injectable(text, None):
            log.warning(
                "cookiegate: pages of Content-Type %r are sent as written, without the"
                " banner or the tracking gate: their charset is not ASCII-compatible",
                text,
            )
        kind = (page, text if editable else None)
        if len(_CONTENT_KINDS) >= 256:
            _CONTENT_KINDS.clear()
        _CONTENT_KINDS[content_type] = kind
    return kind


@lru_cache(maxsize=256)
def _declared_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type as written, or ``None``."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


@lru_cache(maxsize=256)
def _charset(content_type: str | None) -> str:
    """The charset of a Content-Type, if Python knows it; else UTF-8."""
    import codecs

    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def _origin_parts(origin: str | None) -> tuple[str, str]:
    """The scheme and lower-cased ``host[:port]`` of an http(s) ``Origin``, or
    ``("", "")``."""
    if origin is None:
        return "", ""
    origin = origin.strip()
    if origin == "null":
        return "", ""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return "", ""
    if parts.scheme not in ("http", "https"):
        return "", ""
    return parts.scheme, parts.netloc.lower()


def _host_only(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def _language_tag(value: str | None) -> str | None:
    """``value`` if it has the shape of a language tag (:data:`LANGUAGE_TAG`,
    at most 35 characters), else ``None``."""
    if value and len(value) <= 35 and LANGUAGE_TAG.fullmatch(value) is not None:
        return value
    return None


def _first(fields: dict[str, list[Any]], key: str) -> Any:
    values = fields.get(key)
    return values[0] if values else None


def _dumps(doc: Any) -> bytes:
    return _compact(doc).encode("utf-8")


def _json(
    status: int, doc: Any, *, cache: str = "no-store", vary: bytes | None = b"Cookie"
) -> PlainResponse:
    headers = [("content-type", "application/json"), ("cache-control", cache)]
    if vary:
        headers.append(("vary", vary.decode()))
    return PlainResponse(status, headers, _dumps(doc))


def _error(status: int, message: str, info: RequestInfo) -> PlainResponse:
    if _is_json(info.content_type) or "application/json" in (info.accept or ""):
        return _json(status, {"error": message, "status": status})
    return PlainResponse(
        status,
        [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")],
        f"{status} {message}\n".encode(),
    )


def _method_not_allowed(allow: str) -> PlainResponse:
    resp = _json(405, {"error": f"method not allowed; use {allow}", "status": 405})
    resp.headers.append(("allow", allow))
    return resp
