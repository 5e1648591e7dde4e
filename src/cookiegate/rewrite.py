"""Streaming HTML tracking rewriter (sans-IO, stdlib only).

:class:`HtmlRewriter` takes an HTML body chunk by chunk (``feed(bytes) -> bytes``,
``close() -> bytes``) and, for the categories the visitor has **not** consented
to, neutralises the elements that would contact a tracker. It also inserts the
banner ``fragment`` before the last ``</body>`` (or at the end), so it replaces
:class:`cookiegate.inject.HtmlInjector`. Everything it does not rewrite passes
through byte for byte, and the output does not depend on how the body is cut
into chunks (while no hold limit below is reached).

Neutralised format (``static/cookiegate-unblock.js`` relies on it)
------------------------------------------------------------------
Attributes are inserted right after the tag name; renamed attributes keep
their original value bytes and quoting; all other attributes are untouched.
``<category>`` is the *site* category (catalogue categories go through
:attr:`TrackerMatcher.category_map`), ``<id>`` the catalogue entry id (absent
when the element was blocked because of a site marker).

* ``<script src=X ...>`` -> ``<script type="text/plain" data-cg-blocked="<category>"
  data-cg-tracker="<id>" data-cg-src=X ...>``; an original ``type`` attribute is
  renamed ``data-cg-type``. Inline scripts get the same ``type="text/plain"
  data-cg-blocked=... data-cg-tracker=...`` (content untouched).
* ``<img>``: ``data-cg-blocked`` / ``data-cg-tracker`` inserted, ``src`` ->
  ``data-cg-src``, ``srcset`` -> ``data-cg-srcset``. The same for the other
  elements that load a URL without script, by their URL attributes: SVG's
  ``<image>`` (``href``, ``xlink:href``), ``<source>`` (``src``, ``srcset``),
  ``<input type=image>``, ``<video>`` (``src``, ``poster``), ``<audio>``,
  ``<track>``, ``<embed>`` (``src``) and ``<object>`` (``data``); no
  placeholder for them.
* ``<iframe>``: ``data-cg-blocked`` / ``data-cg-tracker`` inserted, ``src`` ->
  ``data-cg-src``, ``srcdoc`` -> ``data-cg-srcdoc``. Outside ``<noscript>`` it
  also gets ``hidden data-cg-unhide`` (unless it already had ``hidden``) and is
  preceded by a placeholder (phrasing content only, so it is valid anywhere)::

      <span class="cg-placeholder" data-cg-placeholder="<category>" data-cg-tracker="<id>">
      <span class="cg-placeholder-text">TEXT</span> <button type="submit"
      form="cookiegate-load" name="category" value="<category>"
      class="cg-placeholder-button" data-cg-load="<category>">BUTTON</button></span>

  (on one line). With JavaScript, ``cookiegate-unblock.js`` handles the click
  (consent for that category, merged with the current state, posted as JSON; the
  iframe is restored in place). Without it, the button submits the form
  ``id="cookiegate-load"`` that the gate inserts with the banner or the settings
  control (``action=grant``: the category is added to the visitor's choice) and
  the page comes back with the iframe. Inside ``<noscript>`` no placeholder is
  added: with JavaScript a browser never shows noscript content, and without it
  such iframes are trackers' hidden fallbacks (GTM's 0x0 frame), nothing a
  visitor would choose to load.
* ``<a ping>`` / ``<area ping>`` whose ping URL is a tracker: ``data-cg-blocked``
  inserted, ``ping`` -> ``data-cg-ping``.
* ``<link rel=preconnect|dns-prefetch|preload|prefetch|modulepreload|prerender
  href=tracker>``: ``data-cg-blocked`` inserted, ``href`` -> ``data-cg-href``.

Site markers (on ``<script>`` and ``<iframe>``): ``data-category="X"`` or
``data-cookiecategory="X"`` (``marker_attrs``). An element marked with a
category the visitor refused is neutralised as above (without
``data-cg-tracker``), even if the catalogue does not know it; one marked with a
granted category is left alone even if the catalogue knows it (the site's word
wins). A marker's value is read case-insensitively (``Performance`` is
``performance``); with ``known`` (the policy's categories: the gate passes
them), a marker naming a category the policy does not have (``analytics`` on a
site with ``performance`` only) fails closed: the element waits for every
non-necessary category of the policy (``data-cg-blocked`` lists them all; a
visitor who granted them all gets the page as written anyway), and a warning
names the marker once. A script already written as ``type="text/plain"`` with a marker (the
convention of other consent tools) is always passed through unchanged; the
re-activation script runs it once its category is granted.

What is recognised
------------------
Scripts by ``src`` (catalogue host, beacon or first-party path) or, inline, by
the catalogue's loader signatures (only scripts whose ``type`` is a JavaScript
type are looked at: no ``type``, ``text/javascript``, ``module``, ...). Images,
iframes, links and pings by URL. URLs are entity-decoded, protocol-relative and
backslash forms are understood (see :mod:`cookiegate.trackers`). For speed, an
``<img>`` / ``<a>`` / ``<area>`` tag is looked at only if its text contains
``//`` once ``\\``, ``&`` and ``;`` are read as ``/`` - true of URLs with a
host as they are written, in any encoding (``https:&#x2F;&#x2F;``,
``\\\\host``, ...). Images and pings with a relative, first-party URL
(``/matomo.php`` on the page's own host) are therefore not recognised; scripts,
iframes and links are, by path. Nor are two spellings a browser also reads as a
URL with a host, which no vendor snippet uses: a scheme without its slashes
(``https:www.facebook.com/tr`` on an ``http:`` page) and a tab or newline
between the two slashes; looking for them costs ~9% of the rewriter's time on
the benchmark page. The CSP (:mod:`cookiegate.csp`, when on) blocks such a
request whatever its spelling.

Tokenizer states tracked: comments (``<!-- -->``, ``--!>``, ``<!-->``), raw
text of ``<script>`` (with the HTML *script data escaped* states, so ``<!--
<script></script> -->`` inside a script does not end it), ``<style>``,
``<textarea>``, ``<title>``, ``<xmp>``, ``<iframe>``, ``<noembed>``,
``<noframes>``, ``<plaintext>``; quoted attribute values (``>`` inside them);
upper-case tags. ``<noscript>`` content is read as markup (what a browser
without JavaScript loads), and as a browser with JavaScript reads it (raw text
up to ``</noscript``): a ``</noscript`` there ends a comment, script, style,
... or attribute value that seems to run past it (``_NS_RAW_END``). Whether a
token lies *inside an attribute value* of an earlier tag is decided exactly:
the bytes since the last token the rewriter read are read as the HTML tokenizer
reads them (an ``=`` opens a value only after an attribute name; a quote opens
nothing in an unquoted value), so ``<img alt="<a><b><c>" src=...>`` is an image
and ``<p title="<b></body>">`` is no end of the body, at any depth. SVG/MathML
foreign content is read as HTML.

Limits (memory stays constant): a tag is held until its ``>`` arrives, at most
``max_tag`` bytes; an inline script is held until its end tag, at most
``max_script`` bytes, and decided on its first ``max_script`` bytes; output
after a ``</body>`` is held for the banner at most ``max_hold`` bytes (then the
banner goes to the next ``</body>`` or the end, like ``HtmlInjector``). A tag
longer than ``max_tag`` is passed through as text, unexamined, and a warning is
logged (logger ``cookiegate.rewrite``). Held bytes are examined again with each
new chunk that may end them (cost proportional to what is held, per such
chunk; see ``HtmlRewriter._wait``).

Speed
-----
Per chunk: one ``bytes.translate`` (lower case; ``\\``, ``&``, ``;`` read as
``/``), one ``re`` search for the structural tokens (the pattern starts with a
literal ``<``, so sre tries it only at each ``<``; a comment's end is part of
the match), one for ``//``; each search is repeated only once the scan has
passed its hit. Everything decided is memoised on the :class:`TrackerMatcher`
(each table bounded; :meth:`TrackerMatcher.clear_caches` forgets them), so a
token seen before costs no attribute parsing and no look-back:

* a tag's decision, by its text. A memoised text is a complete tag (its end
  was matched when it was stored, and that match depends only on the bytes it
  spans), so the text up to the first ``>`` is tried first; the attribute
  match runs only on a miss (a new tag, or a ``>`` inside a quoted value);
* an inline script's decision, by ``(tag, content)``;
* the bytes between two tokens, when they put no tag around the second (the
  exact reading of them, above, is then a dict lookup: that answer depends on
  those bytes only, as they start in the data state);
* the bytes from the last token to the end of a chunk: where unfinished markup
  in them starts (the bytes held for the next chunk);
* a ``//`` in an ``<img>``/``<a>``/``<area>``: when the nearest ``<`` starts a
  memoised tag reaching past it (and its name is not ended by a folded byte)
  and the bytes before it are memoised as ending in the data state, the tag is
  not matched again.

Charsets: the rewriter works on bytes and is correct for every ASCII-compatible
encoding in which the bytes ``<``, ``>``, ``"``, ``'``, ``=``, ``/`` only stand
for themselves: UTF-8 (a BOM passes through), ISO-8859-*, Windows-125x,
Shift_JIS, EUC-*, GBK/GB18030, Big5. A body starting with a UTF-16 BOM, or
declared (``charset=``) as UTF-16 (by any WHATWG label: ``unicode``, ``ucs-2``,
``csunicode``, ``unicodefffe``, ...), ISO-2022-JP, an encoding WHATWG decodes as
"replacement" (ISO-2022-KR/CN, HZ), UTF-32, UTF-7 or EBCDIC (see
:func:`is_ascii_compatible`), is passed through untouched *without* the
banner, with a warning: the caller must then send the banner another way.
Compressed bodies: see :class:`EncodedHtmlRewriter`.
"""

from __future__ import annotations

import codecs
import html
import importlib
import logging
import re
import zlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .errors import check_format_fields
from .inject import BodyFilter
from .policy import NECESSARY
from .trackers import Tracker, TrackerMatcher, default_matcher

log = logging.getLogger("cookiegate.rewrite")
_WARNED: set[str] = set()


def _warn_once(stage: object, msg: str) -> None:
    """Note ``msg`` on the body's stage, and log it once per process (it would
    repeat on every response otherwise)."""
    warnings = getattr(stage, "warnings", None)
    if isinstance(warnings, list):
        warnings.append(msg)
    if msg not in _WARNED and len(_WARNED) < 256:
        _WARNED.add(msg)
        log.warning("cookiegate rewriter: %s", msg)


__all__ = ["EncodedHtmlRewriter", "HtmlRewriter", "is_ascii_compatible"]

_WS = rb"\t\n\f\r "
_W = rb"[" + _WS + rb"]"
_E = rb"[" + _WS + rb"/>]"  # what ends a tag name
_NAME = rb"[^" + _WS + rb"/>]*+"
_VALUE = rb"(?:\"[^\"]*+\"|'[^']*+'|[^" + _WS + rb">\"'][^" + _WS + rb">]*+|(?=>))"
_ATTR = (
    rb"(?:=|[^"
    + _WS
    + rb"/>=])[^"
    + _WS
    + rb"/>=]*+(?:"
    + _W
    + rb"*+="
    + _W
    + rb"*+"
    + _VALUE
    + rb"|(?!"
    + _W
    + rb"*+=))"
)
_ATTRS = rb"(?:[" + _WS + rb"/]++|" + _ATTR + rb")*+"
#: the rest of a start/end tag after its name, up to and including ``>``
_TAG_REST = re.compile(_ATTRS + rb">")
#: whether the markup at a ``<`` is complete (else more bytes are needed)
_COMPLETE = re.compile(
    rb"<(?:/?[a-zA-Z]" + _NAME + _ATTRS + rb">|[!?][^>]*+>|/>|/[^a-zA-Z>][^>]*+>|(?=[^a-zA-Z/!?]))"
)
#: markup at a ``<``, read exactly as the HTML tokenizer does from the data state
#: (a comment ends at ``-->``; other ``<!`` / ``<?`` and ``</`` + non-letter are
#: bogus comments ending at the first ``>``; a ``<`` before anything else is text)
_MARKUP = (
    rb"<(?:/?[a-zA-Z]"
    + _NAME
    + _ATTRS
    + rb">|!--(?:>|->|(?:[^-]++|-(?!-!?>))*+--!?>)|(?:!(?!--)|\?)[^>]*+>|/>|/[^a-zA-Z>][^>]*+>"
    + rb"|(?=[^a-zA-Z/!?]))"
)
_MARKUP_AT = re.compile(_MARKUP)
#: text and complete markup from a position in the data state: where it stops
#: (with ``endpos``) is the first ``<`` whose markup is unfinished there
_DATA_RUN = re.compile(rb"(?:[^<]++|" + _MARKUP + rb")*+")
#: the same for the common case, faster: text, plain tags whose attribute values
#: are quoted or simple (an ``=`` only right after an attribute name), bogus
#: comments. It stops (leaving the rest to ``_DATA_RUN``) wherever the HTML
#: tokenizer could read the bytes another way; what it consumes it reads exactly.
#: The usual tag, a lower-case name and `` name="value"`` attributes, has a branch
#: of its own (tried first), and so has the usual attribute in other tags: on a
#: page of product cards it reads ~2.3x as fast as one general branch.
#: ``tests/core/test_data_state.py`` checks what it consumes against the tokenizer.
_FAST_RUN = re.compile(
    rb"(?:[^<]++"
    rb"|</?[a-z]++(?: [a-z-]++=\"[^\"]*+\")*+>"
    rb"|</?[a-zA-Z][^\t\n\f\r /<>\"'=]*+"
    rb"(?: [a-z-]++=\"[^\"]*+\""
    rb"|[\t\n\f\r /]++[^\t\n\f\r /<>\"'=]++"
    rb"(?:=(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r <>\"'=`]++))?"
    rb")*+[\t\n\f\r /]*+>"
    rb"|<(?=[^a-zA-Z/!?])"
    rb"|</>"
    rb"|</[^a-zA-Z>][^>]*+>"
    rb"|<[!?](?!-)[^>]*+>"
    rb")*+"
)
#: tags whose URLs with a host the "//" look-back examines (a browser builds an
#: ``<img>`` from ``<image>``)
#: the attributes by which each element loads a URL with no script (a, area:
#: ping, looked at apart); renamed ``data-cg-<name>`` when one is a refused
#: tracker's
_URL_ATTRS: dict[bytes, tuple[str, ...]] = {
    b"img": ("src", "srcset"),
    b"image": ("src", "srcset", "href", "xlink:href"),  # <img> in HTML, SVG's <image>
    b"source": ("src", "srcset"),  # in <picture>, <video>, <audio>
    b"input": ("src",),  # type=image
    b"video": ("src", "poster"),
    b"audio": ("src",),
    b"track": ("src",),
    b"embed": ("src",),
    b"object": ("data",),
}
#: (``<base href>`` is looked at too: the host every relative URL after it
#: goes to)
_URL_TAGS = frozenset({*_URL_ATTRS, b"a", b"area", b"base"})
_TAG_NAME = re.compile(rb"<([a-z][^" + _WS + rb"/>]*+)")
_ATTR_ITER = re.compile(
    rb"(?P<n>(?:=|[^"
    + _WS
    + rb"/>=])[^"
    + _WS
    + rb"/>=]*+)(?:"
    + _W
    + rb"*+="
    + _W
    + rb"*+(?P<v>\"[^\"]*+\"|'[^']*+'|[^"
    + _WS
    + rb">\"'][^"
    + _WS
    + rb">]*+|(?=>|\Z))|(?!"
    + _W
    + rb"*+=))"
)
_ATTR_ITER_STR = re.compile(_ATTR_ITER.pattern.decode("latin-1"))
#: structural tokens, searched in the lower-cased (and slash-folded) copy
_STRUCT = re.compile(
    rb"<(?:s(?:cript|tyle|vg)"
    + _E
    + rb"|math"
    + _E
    + rb"|t(?:extarea|itle)"
    + _E
    + rb"|xmp"
    + _E
    + rb"|iframe"
    + _E
    + rb"|no(?:script|embed|frames)"
    + _E
    + rb"|plaintext"
    + _E
    + rb"|link"
    + _E
    + rb"|/(?:body|noscript|svg|math)"
    + _E
    # a comment, with its end when it is in the buffer (the first "--!?>" from
    # after "<!--", or the abrupt "<!-->" / "<!--->")
    + rb"|!--(?:>|->|(?:[^-]++|-(?!-!?>))*+--!?>)?)"
)
_COMMENT_END = re.compile(rb"--!?>")
#: Foreign content (inside ``<svg>`` / ``<math>``): what the tokens of
#: :data:`_STRUCT` miss there. The start tags that break out of it to HTML
#: (WHATWG "parsing tokens in foreign content": ``<p>``, ``<div>``, ``<img>``...;
#: ``<font>`` with ``color`` / ``face`` / ``size``) and the end tags ``</p>``,
#: ``</br>``; the HTML integration points (SVG ``foreignObject``, ``desc``,
#: ``title``; MathML ``mi``, ``mo``, ``mn``, ``ms``, ``mtext``: their content is
#: HTML again, raw text included) and their end tags; the end tags of HTML raw
#: text and scripts (a safety net, see :data:`_FOREIGN_RESETS`); CDATA sections.
#: Searched instead of :data:`_STRUCT` only while in foreign content or in an
#: integration point, so an ordinary page pays nothing for them.
_BREAKOUT: frozenset[bytes] = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr "
    b"i img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup "
    b"table tt u ul var font".split()
)
_IP_SVG: frozenset[bytes] = frozenset((b"foreignobject", b"desc", b"title"))
_IP_MATH: frozenset[bytes] = frozenset((b"mi", b"mo", b"mn", b"ms", b"mtext"))
#: end tags that, in foreign content, are read as the end of whatever seems to
#: run past them (an attribute value, a comment): where the rewriter's model of
#: the tree and a browser's differ (an end tag that closes what the rewriter
#: still counts open), the browser may read the bytes before them as HTML raw
#: text or script, ended there. Reading markup after them only neutralises more.
_FOREIGN_RESETS: frozenset[bytes] = frozenset(
    b"/" + n
    for n in (
        *(b"style", b"title", b"textarea", b"xmp", b"iframe", b"noembed", b"noframes"),
        *(b"script", b"noscript"),
    )
)


def _longest_first(name: bytes) -> tuple[int, bytes]:
    return (-len(name), name)


_FOREIGN_STARTS: list[bytes] = sorted(_BREAKOUT | _IP_SVG | _IP_MATH, key=_longest_first)
_FOREIGN_ENDS: list[bytes] = sorted(
    {b"p", b"br"} | _IP_SVG | _IP_MATH | {r[1:] for r in _FOREIGN_RESETS}, key=_longest_first
)
_STRUCT_FOREIGN = re.compile(
    _STRUCT.pattern
    + rb"|<(?:"
    + b"|".join(_FOREIGN_STARTS)
    + rb")"
    + _E
    + rb"|</(?:"
    + b"|".join(_FOREIGN_ENDS)
    + rb")"
    + _E
    + rb"|<!\[cdata\["
)
#: a comment in foreign content ends at its end or at one of _FOREIGN_RESETS
_FOREIGN_COMMENT_STOP = re.compile(
    rb"</(?:" + b"|".join(sorted(r[1:] for r in _FOREIGN_RESETS)) + rb")" + _E
)
_FOREIGN_COMMENT_END = re.compile(rb"--!?>|" + _FOREIGN_COMMENT_STOP.pattern)
#: most integration points held open at once (more: read as foreign content)
_MAX_IPS = 16
_SLASHES = re.compile(rb"//")
_SCRIPT_END = re.compile(rb"</script" + _E)
_SCRIPT_TOKEN = re.compile(rb"<!--|-->|<(/?)script" + _E)
_RAW_END = {
    name: re.compile(rb"</" + name + _E)
    for name in (b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes")
}
#: Inside ``<noscript>`` a browser running scripts reads everything as raw text
#: up to ``</noscript``: a comment, script, style, ... that seems to run past it
#: ends there too (what follows is markup to that browser). To the one without
#: scripts it is text still (inert): reading it as markup only neutralises more.
#: The ends there: the element's own (the first, escapes ignored: never later
#: than a browser's) or ``</noscript``.
_NS_RAW_END = {
    name: re.compile(rb"</(?:noscript|" + name + rb")" + _E) for name in (*_RAW_END, b"script")
}
_NS_PLAINTEXT_END = re.compile(rb"</noscript" + _E)
_NS_COMMENT_END = re.compile(rb"--!?>|</noscript" + _E)
_NS_HOLD = 10  # len(b"</noscript"): held at a chunk's end, so none is cut
#: lower-case A-Z; read ``\``, ``&`` and ``;`` as ``/`` (for the ``//`` trigger)
#: the bytes the fold reads as "/" (after a tag name: no end of the name)
_FOLDED = b"\\&;"
_FOLD = bytes((c + 32 if 65 <= c <= 90 else 47 if c in (92, 38, 59) else c) for c in range(256))


def _fold(buf: bytes) -> bytes:
    """``buf.translate(_FOLD)``, faster: ``bytes.lower`` (ASCII A-Z only, as the
    table) and three replaces of one byte by another take ~12 µs on the 28.7 KB
    benchmark page where ``translate`` takes ~16 (a replace of an absent byte is
    a search that returns ``buf`` itself). Property-tested equal.

    Then a numeric reference to ``/`` (``&#47``, ``&#x2F``, with leading zeros,
    and without the ``;`` that browsers do not need in attribute values) becomes
    as many ``/``: ``https:&#47&#47host`` must trigger the ``//`` look like
    ``https://host``. Same length, so positions in the fold are positions in
    ``buf``."""
    fold = buf.lower().replace(b"\\", b"/").replace(b"&", b"/").replace(b";", b"/")
    if b"#" in fold:  # one byte: memchr (``b"/#" in`` takes ~26 µs on the page)
        fold = _SLASH_REF.sub(_as_slashes, fold)
    return fold


#: a numeric character reference to "/" in the fold ("&" read as "/")
_SLASH_REF = re.compile(rb"/#(?:0*+47(?![0-9])|x0*+2f(?![0-9a-f]))")


def _as_slashes(m: re.Match[bytes]) -> bytes:
    return b"/" * (m.end() - m.start())


_JS_TYPES = frozenset(
    {
        "",
        "module",
        "text/javascript",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/x-ecmascript",
        "text/ecmascript",
        "text/jscript",
        "text/livescript",
        "text/x-javascript",
        "text/x-ecmascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
    }
)
_HINT_RELS = frozenset(
    {"preconnect", "dns-prefetch", "preload", "prefetch", "modulepreload", "prerender"}
)
#: WHATWG Encoding labels (what a browser decodes a ``charset=`` with) of the
#: encodings that are not ASCII-compatible: UTF-16LE, UTF-16BE, ISO-2022-JP, and
#: "replacement" (ISO-2022-KR/CN, HZ: the whole body decodes to one U+FFFD).
#: Every other WHATWG label names an ASCII-compatible encoding.
_WHATWG_NON_ASCII = frozenset(
    {
        # UTF-16LE
        "csunicode",
        "iso-10646-ucs-2",
        "ucs-2",
        "unicode",
        "unicodefeff",
        "utf-16",
        "utf-16le",
        # UTF-16BE
        "unicodefffe",
        "utf-16be",
        # ISO-2022-JP
        "csiso2022jp",
        "iso-2022-jp",
        # replacement
        "csiso2022kr",
        "hz-gb-2312",
        "iso-2022-cn",
        "iso-2022-cn-ext",
        "iso-2022-kr",
        "replacement",
    }
)
#: the WHATWG labels of UTF-8 (never mistaken for another encoding below)
_WHATWG_UTF8 = frozenset(
    {"unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"}
)
#: other names of such encodings (browsers ignore a label they do not know;
#: passing the page through is the safe reading of what the app meant)
_NON_ASCII_CHARSETS = (
    "utf-16",
    "utf_16",
    "utf16",
    "utf-32",
    "utf_32",
    "utf32",
    "utf-7",
    "utf_7",
    "utf7",
    "ucs-2",
    "ucs2",
    "ucs-4",
    "ucs4",
    "iso-2022",
    "iso_2022",
    "iso2022",
    "csiso2022",
)
#: Python codecs (canonical names) whose ASCII bytes are not always ASCII text:
#: stateful encodings that shift into other character sets
_NON_ASCII_CODECS = frozenset(
    {
        "utf-7",
        "hz",
        "iso2022_jp",
        "iso2022_jp_1",
        "iso2022_jp_2",
        "iso2022_jp_2004",
        "iso2022_jp_3",
        "iso2022_jp_ext",
        "iso2022_kr",
    }
)
#: the bytes the rewriter reads and writes: in an ASCII-compatible codec they
#: encode and decode as themselves
_ASCII_PROBE = "<>\"'=/ \t\n\r!#&;-?azAZ09"

_MISSING: Any = object()
#: most memoised decisions per configuration (then the memo starts again)
_MEMO_MAX = 512
#: largest tag / inline script with its tag (bytes) memoised: each memo stays
#: under ~2 MB
_MEMO_ITEM = 4096
#: the ``plain`` and ``tails`` memos (shared by all configurations) remember runs
#: of bytes up to _REGION_ITEM long, at most _REGION_BUDGET bytes of keys each
#: (then the memo starts again)
_REGION_ITEM = 32 * 1024
_REGION_BUDGET = 1024 * 1024
#: a held tag or inline script this long (bytes) is not examined again with
#: every chunk, only with one that may end it (see ``HtmlRewriter._wait``); at
#: least 8: shorter holds include a "<" or "<!--x" waiting for the bytes that
#: tell what it starts
_WAIT_MIN = 512
#: what may follow ``<script`` in a script start tag
_SCRIPT_NAME_END = frozenset(b"\t\n\f\r />")


class _RegionMemo(dict[bytes, int]):
    """Runs of bytes that start in the data state -> where unfinished markup in
    them starts (-1: none, the run ends in the data state). Bounded by the
    bytes it holds."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def put(self, region: bytes, value: int) -> None:
        if len(region) > _REGION_ITEM:
            return
        if self.size + len(region) > _REGION_BUDGET:
            self.clear()
            self.size = 0
        self[region] = value
        self.size += len(region)


_DATA, _COMMENT, _RAW, _SCRIPT, _PLAINTEXT, _PASS, _CDATA = range(7)

DEFAULT_PLACEHOLDER_TEXT = (
    "This content from {vendor} is blocked until you allow {category} cookies."
)
DEFAULT_PLACEHOLDER_BUTTON = "Load after consent"
#: id of the form a placeholder's button submits without JavaScript (the gate
#: inserts it with the banner or the settings control: ``Gate.load_form``)
LOAD_FORM_ID = "cookiegate-load"

#: a BCP 47-looking language tag (what a placeholder's ``lang`` may carry)
_LANG_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def is_ascii_compatible(charset: str | None) -> bool:
    """Whether the rewriter can work on a body in ``charset`` (``None``: assume yes).

    Not for a WHATWG label of UTF-16LE/BE (``utf-16``, ``unicode``, ``ucs-2``,
    ``csunicode``, ``unicodefffe``, ...), ISO-2022-JP or the replacement
    encoding (``iso-2022-kr``, ``hz-gb-2312``, ...); other WHATWG labels are
    ASCII-compatible. A name browsers do not know is not ASCII-compatible when it
    names UTF-16/UTF-32/UTF-7/UCS-2/UCS-4/ISO-2022/HZ, or a Python codec in which
    ASCII is not itself (EBCDIC, ...)."""
    if not charset:
        return True
    return _ascii_compatible(charset.strip(" \t\n\f\r\"'").lower())


@lru_cache(maxsize=256)
def _ascii_compatible(label: str) -> bool:
    if label in _WHATWG_NON_ASCII:
        return False
    if label in _WHATWG_UTF8:
        return True
    if label.startswith(_NON_ASCII_CHARSETS):
        return False
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, UnicodeError):  # NUL or a lone surrogate in it
        return True  # unknown: a browser ignores the label
    if name in _NON_ASCII_CODECS:
        return False
    try:
        ascii = _ASCII_PROBE.encode("ascii")
        encoded = _ASCII_PROBE.encode(name)
        if encoded.startswith(codecs.BOM_UTF8):  # utf-8-sig
            encoded = encoded[len(codecs.BOM_UTF8) :]
        return encoded == ascii and ascii.decode(name) == _ASCII_PROBE
    except (LookupError, UnicodeError, ValueError):
        return True  # not a text codec (base64, rot13, ...): no charset to a browser


class _Attrs:
    """Attributes of one complete tag, parsed lazily."""

    __slots__ = ("first", "spans")

    def __init__(self, tag: bytes, start: int, end: int) -> None:
        #: lower-case name -> decoded value of its first occurrence (None: no value)
        first: dict[str, str | None] = {}
        self.first = first
        #: (lower-case name, name start, name end) for every attribute, in order
        spans: list[tuple[str, int, int]] = []
        self.spans = spans
        # latin-1 maps bytes to the code points 0-255 one to one: the str
        # pattern finds the same attributes at the same offsets
        for m in _ATTR_ITER_STR.finditer(tag.decode("latin-1"), start, end):
            raw_name, raw = m.group(1, 2)
            name = raw_name.lower()
            spans.append((name, *m.span(1)))
            if name in first:
                continue
            if raw is None:
                first[name] = None
                continue
            if raw[:1] in ('"', "'"):
                raw = raw[1:-1]
            first[name] = html.unescape(raw) if "&" in raw else raw


class RewriterProfile:
    """What :class:`HtmlRewriter` derives from its configuration (the categories
    to block, markers, placeholder wording), prepared once and shared by every
    body rewritten with it: ``HtmlRewriter(blocked, fragment, profile=p)``. Its
    arguments are those of :class:`HtmlRewriter`; with a profile, the rewriter
    ignores its own. A profile made before :meth:`TrackerMatcher.clear_caches`
    is rebuilt (``current()`` is false)."""

    __slots__ = (
        "_args",
        "blocked",
        "generation",
        "known",
        "marker_attrs",
        "memo",
        "placeholder",
        "plain",
        "tails",
        "trackers",
    )

    def __init__(
        self,
        blocked: frozenset[str],
        *,
        trackers: TrackerMatcher | None = None,
        marker_attrs: tuple[str, ...] = ("data-category", "data-cookiecategory"),
        placeholder_text: str = DEFAULT_PLACEHOLDER_TEXT,
        placeholder_button: str = DEFAULT_PLACEHOLDER_BUTTON,
        category_labels: dict[str, str] | None = None,
        placeholder_lang: str | None = None,
        known: tuple[str, ...] | None = None,
    ) -> None:
        labels = dict(category_labels or {})  # a copy: later edits by the caller do not count
        if placeholder_lang is not None and not _LANG_TAG.fullmatch(placeholder_lang):
            raise ValueError(f"not a language tag: {placeholder_lang!r}")
        self._args: dict[str, Any] = {
            "blocked": blocked,
            "trackers": trackers,
            "marker_attrs": marker_attrs,
            "placeholder_text": placeholder_text,
            "placeholder_button": placeholder_button,
            "category_labels": labels,
            "placeholder_lang": placeholder_lang,
            "known": known,
        }
        self.blocked = frozenset(blocked)
        #: every category of the policy, in its order (None: not known, markers
        #: of categories outside ``blocked`` are taken as granted)
        self.known = None if known is None else tuple(known)
        self.trackers = trackers if trackers is not None else default_matcher()
        self.generation = self.trackers.generation
        self.marker_attrs = tuple([a.lower() for a in marker_attrs])
        check_format_fields("placeholder_text", placeholder_text, {"vendor", "category"})
        text_tpl, button = placeholder_text, placeholder_button
        # the wording's language, when it may differ from the page's (WCAG 3.1.2)
        lang_attr = f' lang="{placeholder_lang}"' if placeholder_lang else ""

        def placeholder(category: str, tracker: Tracker | None) -> bytes:
            vendor = tracker.vendor if tracker is not None else "another site"
            text = text_tpl.format(vendor=vendor, category=labels.get(category, category))
            tid = f' data-cg-tracker="{tracker.id}"' if tracker is not None else ""
            cat = html.escape(category)  # a site marker's value may be anything
            return (
                f'<span class="cg-placeholder" data-cg-placeholder="{cat}"{tid}{lang_attr}>'
                f'<span class="cg-placeholder-text">{html.escape(text)}</span> '
                f'<button type="submit" form="{LOAD_FORM_ID}" name="category" value="{cat}" '
                f'class="cg-placeholder-button" data-cg-load="{cat}">'
                f"{html.escape(button)}</button></span>"
            ).encode("ascii", "xmlcharrefreplace")

        self.placeholder: Callable[[str, Tracker | None], bytes] = placeholder
        # decisions depend only on the tag text and this configuration: memoise
        # them across bodies (pages repeat their tags)
        key = (
            self.blocked,
            self.marker_attrs,
            text_tpl,
            button,
            tuple(sorted(labels.items())) if labels else (),
            placeholder_lang,
            self.known,
        )
        memos = self.trackers.memo
        memo = memos.get(key)
        if memo is None:
            memo = memos[key] = {}
        self.memo: dict[Any, Any] = memo
        # bytes found between two tokens with no tag enclosing the second
        # (configuration-independent)
        plain = memos.get("plain")
        if not isinstance(plain, _RegionMemo):
            plain = memos["plain"] = _RegionMemo()
        self.plain: _RegionMemo = plain
        # bytes from the last token to the end of a chunk -> offset of the
        # unfinished markup in them (-1: none); configuration-independent
        tails = memos.get("tails")
        if not isinstance(tails, _RegionMemo):
            tails = memos["tails"] = _RegionMemo()
        self.tails: _RegionMemo = tails

    def marked(self, value: str) -> str | None:
        """The category to block an element marked ``value`` under, or None
        when the visitor has granted it."""
        cat = value.strip().lower()
        if cat in self.blocked:
            return cat
        known = self.known
        if known is not None and cat not in known:
            _warn_once(
                None,
                f"an element is marked with category {cat!r}, which the policy does "
                "not have: it waits for every category (declare it or fix the marker)",
            )
            if not self.blocked:
                return None  # every category is granted: so is this one
            return " ".join(c for c in known if c != NECESSARY)
        return None

    def current(self) -> bool:
        """Whether the matcher's memos are still the ones this profile holds."""
        return self.generation == self.trackers.generation

    def renewed(self) -> RewriterProfile:
        """The same configuration, with the matcher's current memos."""
        return RewriterProfile(**self._args)


class HtmlRewriter:
    """Neutralise trackers of the ``blocked`` categories in a streamed HTML body
    and insert ``fragment``.

    :param blocked: site categories the visitor has *not* consented to.
    :param fragment: bytes to insert before the last ``</body>`` (or at the end);
        ``None`` inserts nothing.
    :param trackers: the compiled catalogue (default: built-in, default mapping).
    :param marker_attrs: attributes by which the site marks an element's category.
    :param placeholder_text: text of an iframe placeholder; ``{vendor}`` and
        ``{category}`` are replaced.
    :param placeholder_button: label of its button.
    :param category_labels: display names of categories for the placeholder text.
    :param placeholder_lang: the language tag of that text (the placeholder's
        ``lang``, for when it differs from the page's).
    :param known: every category of the policy; an element marked with any
        other is blocked (fail closed). None: markers outside ``blocked`` are
        taken as granted.
    :param charset: the body's declared charset, if known.
    :param max_tag: most bytes held for one incomplete tag.
    :param max_script: most bytes of an inline script held to recognise it.
    :param max_hold: most output bytes held after a ``</body>`` candidate.
    :param profile: a :class:`RewriterProfile` prepared once for many bodies; it
        then decides ``blocked``, ``trackers``, ``marker_attrs`` and the placeholder
        wording, and those arguments are ignored.
    """

    __slots__ = (
        "_after",
        "_after_len",
        "_buf",
        "_closed",
        "_esc",
        "_foreign",
        "_ips",
        "_memo",
        "_noscript",
        "_ns",
        "_pend",
        "_plain",
        "_raw_end",
        "_sniffed",
        "_state",
        "_tails",
        "_wait_limit",
        "_wait_noscript",
        "_wait_script",
        "blocked",
        "fragment",
        "marked",
        "marker_attrs",
        "max_hold",
        "max_script",
        "max_tag",
        "placeholder",
        "trackers",
        "warnings",
    )

    def __init__(
        self,
        blocked: frozenset[str],
        fragment: bytes | None = None,
        *,
        trackers: TrackerMatcher | None = None,
        marker_attrs: tuple[str, ...] = ("data-category", "data-cookiecategory"),
        placeholder_text: str = DEFAULT_PLACEHOLDER_TEXT,
        placeholder_button: str = DEFAULT_PLACEHOLDER_BUTTON,
        category_labels: dict[str, str] | None = None,
        placeholder_lang: str | None = None,
        known: tuple[str, ...] | None = None,
        charset: str | None = None,
        max_tag: int = 64 * 1024,
        max_script: int = 64 * 1024,
        max_hold: int = 64 * 1024,
        profile: RewriterProfile | None = None,
    ) -> None:
        if profile is not None:
            if not profile.current():
                profile = profile.renewed()
        else:
            profile = RewriterProfile(
                blocked,
                trackers=trackers,
                marker_attrs=marker_attrs,
                placeholder_text=placeholder_text,
                placeholder_button=placeholder_button,
                category_labels=category_labels,
                placeholder_lang=placeholder_lang,
                known=known,
            )
        self.blocked = profile.blocked
        self.fragment = fragment
        self.trackers = profile.trackers
        self.marker_attrs = profile.marker_attrs
        self.marked: Callable[[str], str | None] = profile.marked
        self.placeholder: Callable[[str, Tracker | None], bytes] = profile.placeholder
        self._memo: dict[Any, Any] = profile.memo
        self._plain: _RegionMemo = profile.plain
        self._tails: _RegionMemo = profile.tails
        self.max_tag = max_tag
        self.max_script = max_script
        self.max_hold = max_hold
        #: warnings logged for this body (also sent to the ``cookiegate.rewrite`` logger)
        self.warnings: list[str] = []
        self._buf = b""
        self._state = _DATA
        self._raw_end: re.Pattern[bytes] | None = None
        self._esc = 0
        self._noscript = 0
        #: depth of open <svg> / <math> elements (foreign content: no raw text)
        self._foreign = 0
        #: the namespace of the foreign content: b"svg" or b"math" (its root's)
        self._ns = b""
        #: the HTML integration points open (``<foreignObject>`` in ``<svg>``...),
        #: innermost last: (the foreign depth and namespace to return to, the
        #: point's end tag); in one, ``_foreign`` counts from 0 again
        self._ips: tuple[tuple[int, bytes, bytes], ...] = ()
        self._after: list[bytes] | None = None
        self._after_len = 0
        self._closed = False
        self._sniffed = False
        #: while a long tag or inline script is held (``_buf``) and waits for
        #: a chunk that may end it: the most bytes it may reach before it is
        #: examined again (0: not waiting), and the chunks since, not examined
        self._wait_limit = 0
        self._wait_script = False
        self._wait_noscript = False
        self._pend: bytearray | None = None
        if charset and not is_ascii_compatible(charset):
            self._passthrough(f"charset {charset!r} is not ASCII-compatible")

    # -- public -------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Take the next body chunk; return what may be sent now."""
        if self._state == _PASS:
            return bytes(chunk)
        if self._wait_limit:
            # a long tag or inline script is held: examine it again only once a
            # chunk may end it, or a hold limit is reached (a chunk as long as
            # what is held costs as much as a look: it gets one)
            buf = self._buf
            pend = self._pend
            size = len(buf) + len(chunk) + (len(pend) if pend is not None else 0)
            if len(chunk) < len(buf) and size <= self._wait_limit:
                if type(chunk) is not bytes:
                    chunk = bytes(chunk)  # ">" in a memoryview is never true
                if self._wait_script:
                    tail = buf[-16:] + pend[-16:] if pend is not None else buf[-16:]
                    ends = b"/script" in _fold(bytes(tail[-16:]) + chunk)
                else:
                    ends = b">" in chunk
                    if not ends and self._wait_noscript:
                        # in <noscript> a "</noscript" ends the tag as well
                        tail = buf[-16:] + pend[-16:] if pend is not None else buf[-16:]
                        folded = _fold(bytes(tail[-16:]) + chunk)
                        # in foreign content, _FOREIGN_RESETS end it as well
                        ends = b"</" in folded if self._foreign else b"</noscript" in folded
                if not ends:
                    if pend is None:
                        self._pend = bytearray(chunk)
                    else:
                        pend += chunk
                    return b""
            self._wait_limit = 0
            self._pend = None
            buf = b"".join((buf, pend, chunk)) if pend is not None else buf + chunk
        else:
            buf = self._buf + chunk if self._buf else bytes(chunk)
        if not self._sniffed:
            if len(buf) < 2:
                self._buf = buf
                return b""
            self._sniffed = True
            if buf[:2] in (b"\xff\xfe", b"\xfe\xff"):
                self._passthrough("the body starts with a UTF-16 byte-order mark")
                self._buf = b""
                return buf
        out = b"".join(self._run(buf, False))
        if len(self._buf) >= _WAIT_MIN and self._state == _DATA:
            self._wait()
        return out

    def close(self) -> bytes:
        """End of body: return the rest, with the fragment inserted."""
        if self._closed:
            return b""
        self._closed = True
        if self._wait_limit:
            self._wait_limit = 0
            if self._pend is not None:
                self._buf += self._pend
                self._pend = None
        if self._state == _PASS:
            rest, self._buf = self._buf, b""
            return rest
        parts = self._run(self._buf, True)  # joined once, with what follows
        # Markup the body leaves unfinished (``<img src=https://tracker/p.gif``
        # with no ">"): a browser drops it at the end of the document, but the
        # fragment after it would finish it (its first ">" ends that tag, which
        # then loads). It stays last, after the fragment: dropped, as written.
        unfinished, self._buf = self._buf, b""
        if self.fragment is not None:
            parts.append(self.fragment)
            if self._after is not None:
                parts.extend(self._after)
                self._after = None
        parts.append(unfinished)
        return b"".join(parts)

    def finish(self, chunk: bytes) -> bytes:
        """The last chunk: ``feed(chunk) + close()``. A body in one piece (most
        pages) is read in one pass, as the end of the body."""
        if (
            self._sniffed  # after a feed
            or self._buf
            or self._closed
            or self._state == _PASS
            or len(chunk) < 2
            or chunk[:2] in (b"\xff\xfe", b"\xfe\xff")
        ):
            return self.feed(chunk) + self.close()
        self._sniffed = True
        self._buf = bytes(chunk)
        return self.close()

    # -- internals ----------------------------------------------------------

    def _wait(self) -> None:
        """Let the held bytes wait for a chunk that may end them, when that
        changes nothing.

        Examining them again costs their length, with every chunk: a 64 KB
        inline script in 1-byte chunks took 19 s. Until a limit is reached
        (the held bytes stay within ``max_tag`` / ``max_script``), another
        look at them with more bytes gives nothing and the same hold, unless
        the new bytes hold what can end them. A tag (or ``<!x`` / ``</x``
        markup; not a ``<!--`` comment, ``<plaintext`` nor ``<![CDATA[``,
        which are streamed once read from their ``<``) held at its ``<`` ends only at a ``>``:
        without one in the new bytes it is still unfinished, and what lies in
        it is read as its attributes (in ``<noscript>`` a ``</noscript`` in
        the new bytes or the 16 before them ends it as well). An inline script ends at a
        ``</script`` (``/script`` in the fold) starting 9 bytes before the
        end of the buffer: in the new bytes or the 16 before them. So every
        feed returns what it would have returned after a look: the output
        does not change, chunk by chunk."""
        held = self._buf
        if held[0] != 60:  # "<"
            return
        if (
            held[:7].lower() == b"<script"
            and held[7] in _SCRIPT_NAME_END
            and (m := _TAG_REST.match(held, 7)) is not None
        ):
            # a complete script start tag held at its "<": an inline script
            # waiting for its end tag (held while n - end < max_script; also
            # in SVG / MathML, where it is decided before its content is read)
            self._wait_script = True
            self._wait_limit = m.end() + self.max_script - 1
        elif held[:10].lower().startswith((b"<!--", b"<plaintext")) or held.startswith(b"<!["):
            # held as unfinished markup around a later token; read from its own
            # "<", a comment is streamed and <plaintext> switches state; in
            # foreign content a "<![CDATA[" (complete or not yet) is streamed
            # too, not held to a ">"
            return
        else:
            self._wait_script = False
            # in <noscript>, a "</noscript" inside a tag counts as well
            self._wait_noscript = bool(self._noscript or self._foreign)
            self._wait_limit = self.max_tag

    def _enter_ip(self, end: bytes) -> None:
        """An HTML integration point opens (its end tag ``end``): its content is
        HTML until then (at most :data:`_MAX_IPS` held: deeper ones are read
        as foreign content, which only neutralises more)."""
        if len(self._ips) < _MAX_IPS:
            self._ips = (*self._ips, (self._foreign, self._ns, end))
            self._foreign = 0

    def _foreign_token(self, kind: bytes, buf: bytes, p: int, end: int, nl: int) -> bool:
        """Act on a token only :data:`_STRUCT_FOREIGN` finds (``buf[p:end]``,
        its name ``nl`` bytes). ``True``: it is read (an end tag, an
        integration point's start tag); ``False``: a start tag the caller
        still reads as any other tag (an ``<img>`` that breaks out is examined)."""
        if kind[0] == 47:  # "/": an end tag
            if self._foreign:
                if kind == b"/p" or kind == b"/br":
                    self._foreign = 0  # they break out of foreign content
            elif self._ips and kind == self._ips[-1][2]:
                # the integration point ends: back to its foreign content
                self._foreign, self._ns, _ = self._ips[-1]
                self._ips = self._ips[:-1]
            return True
        if not self._foreign:
            return False  # HTML (in an integration point): an ordinary tag
        if kind in (_IP_SVG if self._ns == b"svg" else _IP_MATH):
            if not _self_closing(buf[p:end], nl):
                self._enter_ip(b"/" + kind)
            return True
        if kind in _BREAKOUT and (
            kind != b"font"
            or not {"color", "face", "size"}.isdisjoint(_Attrs(buf[p:end], nl, end - p - 1).first)
        ):
            # the tree builder pops the foreign elements, to HTML (or to the
            # integration point they are in)
            self._foreign = 0
        return False

    def _inner_end(self, buf: bytes, fold: bytes, start: int, stop: int) -> int:
        """In ``<noscript>`` or foreign content: where the first end tag that
        counts even inside an attribute value there (``</noscript``; in foreign
        content :data:`_FOREIGN_RESETS`) starts in ``fold[start:stop]``; -1:
        none, or elsewhere."""
        if not (self._noscript or self._foreign):
            return -1
        m = _ns_end(
            _FOREIGN_COMMENT_STOP if self._foreign else _NS_PLAINTEXT_END, buf, fold, start, stop
        )
        return -1 if m is None else m.start()

    def _past_end_tag(self, buf: bytes, fold: bytes, at: int, name_len: int) -> tuple[int, int]:
        """:func:`_after_end_tag`, but in ``<noscript>`` or foreign content not
        past an end tag that counts inside its attributes there (``</script
        </noscript>``: a browser running scripts ends the ``<noscript>``)."""
        scan, safe = _after_end_tag(buf, at, name_len)
        if scan == safe:
            inner = self._inner_end(buf, fold, at + 2, scan)
            if inner != -1:
                return inner, inner
        return scan, safe

    def _remember(self, key: object, value: object, size: int) -> None:
        if size <= _MEMO_ITEM:
            memo = self._memo
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = value

    def _passthrough(self, why: str) -> None:
        self._warn(f"{why}: body passed through untouched, without the banner")
        self._state = _PASS

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("cookiegate rewriter: %s", message)

    def _run(
        self,
        buf: bytes,
        final: bool,
        struct_search: Callable[[bytes, int], re.Match[bytes] | None] = _STRUCT.search,
        slashes: Callable[[bytes, int], re.Match[bytes] | None] = _SLASHES.search,
    ) -> list[bytes]:
        out: list[bytes] = []
        sink = out if self._after is None else self._after
        n = len(buf)
        fold = _fold(buf)
        emit = scan = safe = 0  # written out up to / next look from / end of the last token
        hold = n  # buf[hold:] is kept for the next call
        state = self._state
        # the next structural token: fold[s:tok_end] (s = n: none), and the next
        # "//" (t = n: none); each searched again only once the scan has passed
        # it (scan never moves back)
        s = tok_end = t = -1
        rfind = buf.rfind
        find = buf.find
        memo = self._memo
        plain = self._plain
        tails = self._tails
        while True:
            if state == _DATA:
                if s < scan:
                    struct = (
                        struct_search
                        if not (self._foreign or self._ips)
                        else _STRUCT_FOREIGN.search  # (see there)
                    )(fold, scan)
                    if struct is None:
                        s = tok_end = n
                    else:
                        s, tok_end = struct.span()
                if t < scan:
                    tm = slashes(fold, scan)  # re beats bytes.find for "//" here
                    t = tm.start() if tm is not None else n
                if t < s:
                    # a URL with a host: is it in an <img>/<a>/<area> tag?
                    scan = t + 2
                    # warm path: the nearest "<" starts a memoised img/a/area tag
                    # that reaches past the "//" (its text ends at its first ">"),
                    # and the two "<" before it (since the last token) start
                    # complete markup: what _enclosing finds, without matching the
                    # tag's own markup and attributes
                    q = rfind(b"<", safe, t)
                    end = find(b">", q) + 1 if q != -1 else 0
                    new = _MISSING
                    if end > t:
                        tag = buf[q:end]
                        new = memo.get(tag, _MISSING)
                        if new is not _MISSING:
                            name_m = _TAG_NAME.match(fold, q)
                            if (
                                name_m is None
                                or name_m.group(1) not in _URL_TAGS
                                # a name ended by a backslash, "&" or ";" (folded): the
                                # look-back's match may end elsewhere than the memo's
                                or buf[name_m.end()] != fold[name_m.end()]
                            ):
                                new = _MISSING
                            elif rfind(b"<", safe, q) != -1 and buf[safe:q] not in plain:
                                new = _MISSING  # let _enclosing say whether q is a tag
                    if new is _MISSING:
                        q, incomplete = _enclosing(buf, safe, t)
                        if incomplete != -1:
                            if n - incomplete <= self.max_tag:
                                # at the end (final): markup left unfinished, see
                                # close()
                                hold = incomplete
                                break
                            # longer than max_tag: that "<" is read as text from
                            # here on (linear, not re-read)
                            safe = incomplete + 1
                            continue
                        if q == -1:
                            safe = t + 2  # the "//" is text: the data state after it
                            continue
                        plain.put(buf[safe:q], -1)  # q is in the data state
                        name_m = _TAG_NAME.match(fold, q)
                        if (
                            name_m is None
                            or name_m.group(1) not in _URL_TAGS
                            # "<img\" / "<img&" / "<img;": another tag name to a browser
                            or buf[name_m.end()] != fold[name_m.end()]
                        ):
                            other = _MARKUP_AT.match(buf, q)  # complete: it encloses t
                            if other is not None:
                                inner = self._inner_end(buf, fold, t, other.end())
                                if inner != -1:
                                    scan = inner  # that end tag counts: read it
                                else:
                                    scan = safe = other.end()
                            continue
                        end_m = _TAG_REST.match(buf, name_m.end())
                        if end_m is None:
                            if final:
                                continue
                            if n - q > self.max_tag:
                                self._warn("tag longer than max_tag passed through unexamined")
                                continue
                            hold = q
                            break
                        end = end_m.end()
                        if end <= t:
                            continue  # the "//" was in text after the tag
                        tag = buf[q:end]
                        new = memo.get(tag, _MISSING)
                        if new is _MISSING:
                            new = self._inspect_small(tag, name_m.end() - q, name_m.group(1))
                            self._remember(tag, new, len(tag))
                    inner = self._inner_end(buf, fold, t, end)
                    if inner != -1 and (new is None or new.endswith(buf[inner:end])):
                        # an end tag inside the tag counts (<noscript>, foreign
                        # content): the tag is neutralised up to it (its URL
                        # comes before it), and what follows is read as markup
                        if new is not None:
                            sink.append(buf[emit:q])
                            sink.append(new[: len(new) - (end - inner)])
                            emit = inner
                        scan = inner
                        continue
                    if new is not None:
                        sink.append(buf[emit:q])
                        sink.append(new)
                        emit = end
                    scan = safe = end
                    continue
                if s == n:
                    if not final:
                        # keep a trailing incomplete tag (and any incomplete tag it
                        # may be inside) for the next chunk
                        start = -1
                        if rfind(b"<", safe) != -1:
                            # where unfinished markup starts (exact, memoised by the
                            # bytes since the last token: a page served again is cut
                            # into the same chunks)
                            region = buf[safe:]
                            at = tails.get(region)
                            if at is None:
                                at = _enclosing(buf, safe, n)[1]
                                at = at - safe if at != -1 else -1
                                tails.put(region, at)
                            start = safe + at if at != -1 else -1
                        if start != -1:
                            if n - start <= self.max_tag:
                                hold = start
                            else:
                                self._warn("tag longer than max_tag passed through unexamined")
                    elif fold.endswith(b"</body") and n - 6 >= scan and self.fragment is not None:
                        # "</body" at the very end counts, as for HtmlInjector
                        sink.append(buf[emit : n - 6])
                        emit = n - 6
                        if self._after is not None:
                            out.extend(self._after)
                        self._after = []
                        sink = self._after
                    elif rfind(b"<", safe) != -1:
                        # markup the body leaves unfinished: held (see close())
                        region = buf[safe:]
                        at = tails.get(region)
                        if at is None:
                            at = _enclosing(buf, safe, n)[1]
                            at = at - safe if at != -1 else -1
                            tails.put(region, at)
                        if at != -1 and n - safe - at <= self.max_tag:
                            hold = safe + at
                    break
                p = s
                # is this token inside the attributes of an earlier tag?
                # (not when no "<" lies between the last token and this one, nor
                # when the bytes since it were seen before with no tag around p:
                # that answer depends on those bytes only)
                if (
                    rfind(b"<", safe, p) != -1
                    # a browser running scripts reads <noscript> as raw text: its
                    # end tag counts even inside what looks like an attribute value
                    and not (self._noscript and fold.startswith(b"</noscript", p))
                    # in foreign content, the end tag of HTML raw text or of a
                    # script counts there too (_FOREIGN_RESETS)
                    and not (
                        self._foreign
                        and fold[p + 1] == 47
                        and fold[p + 1 : tok_end - 1] in _FOREIGN_RESETS
                    )
                    and (between := buf[safe:p]) not in plain
                ):
                    q, incomplete = _enclosing(buf, safe, p)
                    if incomplete != -1:
                        inner = self._inner_end(buf, fold, p + 1, n)
                        if inner != -1 and (final or t >= inner):
                            # the unfinished tag around p ends, to a browser
                            # running scripts, at a </noscript (in foreign
                            # content a raw-text end tag) ahead: read on there
                            # (unless a "//" comes first: the tag may still
                            # be finished by a later chunk, so it is held)
                            scan = inner
                            continue
                        if n - incomplete <= self.max_tag:
                            hold = incomplete  # (final: unfinished, see close())
                            break
                        # inside a tag longer than max_tag: its "<" is read as
                        # text from here on
                        safe = incomplete + 1
                        scan = p + 1
                        continue
                    if q != -1:
                        # p, and every token up to the end of the tag at q, is
                        # inside that tag: read on after it (linear, however
                        # many tokens a long attribute value holds), or from a
                        # "//" in it, for the look-back to examine. Not past an
                        # end tag that counts inside an attribute value there
                        # (_inner_end: </noscript in <noscript>, the raw-text
                        # end tags in foreign content)
                        other = _MARKUP_AT.match(buf, q)
                        if other is not None and other.end() > p:
                            end = other.end()
                            inner = self._inner_end(buf, fold, p + 1, end)
                            stop = end if inner == -1 else inner
                            if t < stop:
                                scan = t
                            elif inner != -1:
                                scan = inner
                            else:
                                scan = safe = end
                            continue
                        scan = p + 1
                        continue
                    plain.put(between, -1)
                c = fold[p + 1]
                if c == 33 and fold[p + 2] == 91:  # "<![cdata[" (foreign content)
                    if self._foreign and buf[p + 3 : p + 9] == b"CDATA[":
                        # text up to "]]>" (a CDATA section: case-sensitive)
                        e = find(b"]]>", p + 9)
                        if e != -1:
                            scan = safe = e + 3
                        elif final:
                            scan = safe = n  # the rest is text (no unfinished markup)
                        else:
                            scan = p + 9
                            state = _CDATA
                        continue
                    scan = p + 1  # a bogus comment, read so between tokens
                    continue
                if c == 33:  # "<!--"
                    if p + 6 > n and not final:
                        hold = p  # "<!-" + "->" may be cut
                        break
                    if tok_end > p + 4:
                        scan = safe = tok_end  # the whole comment matched
                        if self._foreign:  # it ends at _FOREIGN_RESETS too
                            m = _ns_end(_FOREIGN_COMMENT_STOP, buf, fold, p + 4, tok_end)
                            if m is not None:
                                scan = safe = m.start()
                        elif self._noscript:
                            m = _ns_end(_NS_PLAINTEXT_END, buf, fold, p + 4, tok_end)
                            if m is not None:
                                scan = safe = m.start()  # no comment to scripts on
                    else:
                        scan = p + 4  # its end is not in the buffer
                        state = _COMMENT
                    continue
                if (c == 47 and buf[p + 1] != 47) or buf[tok_end - 1] != fold[tok_end - 1]:
                    # "<\body" or "<script\" / "<iframe&" ...: the fold made it look
                    # like a token; to a browser it is another tag (read as such later)
                    scan = p + 1
                    continue
                kind = fold[p + 1 : tok_end - 1]
                if c == 47 or kind in _DEPTH_KINDS:  # </body, </noscript, <noscript, <svg, <p...
                    # act only once the whole tag is here (it may be held back)
                    if buf[tok_end - 1] == 62:
                        end = tok_end  # ">" right after the name
                    elif (end_m := _TAG_REST.match(buf, tok_end - 1)) is not None:
                        end = end_m.end()
                    elif final or n - p > self.max_tag:
                        end = n
                    else:
                        end = -1  # unfinished: held, unless an end tag in it counts
                    inner = self._inner_end(buf, fold, tok_end, n if end == -1 else end)
                    if inner != -1:
                        # an end tag inside it counts (</noscript in <noscript>,
                        # the raw-text end tags in foreign content): to a browser
                        # running scripts this tag is text; read on there
                        scan = safe = inner
                        continue
                    if end == -1:
                        hold = p
                        break
                    if kind == b"noscript":
                        self._noscript += 1
                    elif kind == b"/noscript":
                        if self._noscript:
                            self._noscript -= 1
                    elif kind == b"svg" or kind == b"math":
                        if not _self_closing(buf[p:end], tok_end - 1 - p):
                            if not self._foreign:
                                self._ns = kind  # the namespace of what it holds
                            self._foreign += 1
                            s = -1  # search again, for foreign content's tokens
                    elif kind == b"/svg" or kind == b"/math":
                        if self._foreign:
                            self._foreign -= 1
                            s = -1
                    elif kind != b"/body":
                        # a token of foreign content (_STRUCT_FOREIGN)
                        if not self._foreign_token(kind, buf, p, end, tok_end - 1 - p):
                            # a start tag, left to be read as any (its URLs)
                            s = -1
                            scan, safe = p + 1, p
                            continue
                        s = -1
                    elif self.fragment is not None:
                        # </body: the banner goes before the last one
                        sink.append(buf[emit:p])
                        emit = p
                        if self._after is not None:
                            out.extend(self._after)
                        self._after = []
                        self._after_len = 0
                        sink = self._after
                    scan = safe = end
                    continue
                if kind == b"plaintext":
                    if self._foreign:  # in SVG / MathML: an element like any other
                        scan = safe = tok_end
                        continue
                    if self._noscript:  # to a browser running scripts: up to </noscript
                        self._raw_end = _NS_PLAINTEXT_END
                        state = _RAW
                        scan = tok_end
                        continue
                    state = _PLAINTEXT
                    scan = n
                    continue
                name_end = tok_end - 1
                # warm path: a memoised tag text is a complete tag (the end the
                # full match below found when it was stored), so the first ">"
                # gives the key to try; on a miss, match the attributes
                end = find(b">", name_end) + 1
                tag = buf[p:end]
                mkey: object = (tag, self._noscript > 0) if kind == b"iframe" else tag
                hit = memo.get(mkey, _MISSING) if end else _MISSING
                if hit is _MISSING and end != name_end + 1:
                    end_m = _TAG_REST.match(buf, name_end)
                    if end_m is None:
                        if final:
                            scan = n
                            continue
                        if n - p > self.max_tag:
                            self._warn("tag longer than max_tag passed through unexamined")
                            scan = p + 1
                            continue
                        hold = p
                        break
                    if end_m.end() != end:
                        end = end_m.end()
                        tag = buf[p:end]
                        mkey = (tag, self._noscript > 0) if kind == b"iframe" else tag
                        hit = memo.get(mkey, _MISSING)
                nl = name_end - p
                if kind == b"script":
                    if hit is _MISSING:
                        attrs = _Attrs(tag, nl, len(tag) - 1)
                        decided, inline = self._script_decision(attrs)
                        new = self._neutral_script(tag, nl, attrs, decided) if decided else None
                        hit = (new, inline, attrs)
                        self._remember(tag, hit, len(tag))
                    new, inline, attrs = hit
                    e = -1
                    if inline and self._noscript:
                        m = _ns_end(_NS_RAW_END[b"script"], buf, fold, end, n)
                        e = m.start() if m is not None else -1
                    elif inline:
                        # _script_end's fast path, inline: no "<!--" before "</script"
                        m = _SCRIPT_END.search(fold, end)
                        if (
                            m is not None
                            and m.start() < (n if final else n - 9)
                            and buf[m.end() - 1] not in _FOLDED
                            and fold.find(b"<!--", end, m.start()) == -1
                        ):
                            e = m.start()
                        else:
                            e = _script_end(buf, fold, end, n, final, 0)[0]
                        if e == -1 and final and n - end < self.max_script:
                            e = n  # unfinished at the end of the body: all of it
                        if e == -1:
                            if n - end < self.max_script:
                                hold = p
                                break
                            e = -2  # too long to hold
                        # decided on its first max_script bytes, wherever the body
                        # is cut (a longer script's end may or may not be here yet)
                        limit = end + self.max_script
                        content = buf[end : e if 0 <= e <= limit else limit]
                        # the decision for this tag and content, memoised
                        ckey = (b"c", tag, content)
                        found_new = memo.get(ckey, _MISSING)
                        if found_new is _MISSING:
                            found_new = new
                            decided = self._inline_decision(content)
                            if decided is not None:
                                found_new = self._neutral_script(tag, nl, attrs, decided)
                            self._remember(ckey, found_new, len(tag) + len(content))
                        new = found_new
                    if new is not None:
                        sink.append(buf[emit:p])
                        sink.append(new)
                        emit = end
                    if self._foreign:
                        # an SVG / MathML script: its content is markup to the
                        # tokenizer (decided above all the same, as it runs)
                        scan = safe = end
                    elif inline and e >= 0 and self._noscript and fold.startswith(b"</no", e):
                        scan = safe = e  # </noscript: the data state reads it
                    elif inline and e >= 0:
                        if e + 8 < n and buf[e + 8] == 62:
                            scan = safe = e + 9  # "</script>"
                        else:
                            scan, safe = self._past_end_tag(buf, fold, e, 8)
                    else:
                        scan = end
                        state = _SCRIPT
                        self._esc = 0
                    continue
                if kind == b"link":
                    new = hit
                    if new is _MISSING:
                        new = self._neutral_link(tag, nl, _Attrs(tag, nl, len(tag) - 1))
                        self._remember(tag, new, len(tag))
                    if new is not None:
                        sink.append(buf[emit:p])
                        sink.append(new)
                        emit = end
                    scan = safe = end
                    continue
                if kind == b"iframe":
                    new = hit
                    if new is _MISSING:
                        attrs = _Attrs(tag, nl, len(tag) - 1)
                        new = self._neutral_iframe(tag, nl, attrs)
                        self._remember(mkey, new, len(tag))
                    if new is not None:
                        sink.append(buf[emit:p])
                        sink.append(new)
                        emit = end
                if self._foreign:
                    # in SVG / MathML <style>, <title>... hold markup, not text;
                    # SVG's <title> is an HTML integration point
                    if kind == b"title" and self._ns == b"svg" and not _self_closing(tag, nl):
                        self._enter_ip(b"/title")
                        s = -1
                    scan = safe = end
                    continue
                # style, textarea, title, xmp, iframe, noembed, noframes: raw text
                self._raw_end = (_NS_RAW_END if self._noscript else _RAW_END)[kind]
                state = _RAW
                scan = end
                continue
            if state == _SCRIPT and self._noscript:
                m = _ns_end(_NS_RAW_END[b"script"], buf, fold, scan, n)
                if m is None:
                    if not final:
                        scan = max(scan, n - _NS_HOLD)
                        hold = scan
                    break
                self._esc = 0
                state = _DATA
                if fold.startswith(b"</no", m.start()):
                    scan = safe = m.start()  # </noscript: the data state reads it
                elif buf[m.end() - 1] == 62:
                    scan = safe = m.end()  # "</script>"
                else:
                    scan, safe = self._past_end_tag(buf, fold, m.start(), 8)
                continue
            if state == _SCRIPT:
                # _script_end's fast path, inline: no "<!--" before "</script"
                m = _SCRIPT_END.search(fold, scan) if self._esc == 0 else None
                if (
                    m is not None
                    and m.start() < (n if final else n - 9)
                    and buf[m.end() - 1] not in _FOLDED
                    and fold.find(b"<!--", scan, m.start()) == -1
                ):
                    e = m.start()
                else:
                    e, self._esc = _script_end(buf, fold, scan, n, final, self._esc)
                if e < 0:
                    if not final:
                        scan = max(scan, n - 9)
                        hold = scan
                    break
                if buf[e + 8] == 62:
                    scan = safe = e + 9  # "</script>"
                else:
                    scan, safe = self._past_end_tag(buf, fold, e, 8)
                state = _DATA
                continue
            if state == _CDATA:
                e = find(b"]]>", scan)
                if e == -1:
                    if final:
                        scan = n
                        break
                    scan = max(scan, n - 2)
                    hold = scan
                    break
                scan = safe = e + 3
                state = _DATA
                continue
            if state == _COMMENT:
                if self._foreign or self._noscript:
                    m = _ns_end(
                        _FOREIGN_COMMENT_END if self._foreign else _NS_COMMENT_END,
                        buf,
                        fold,
                        scan,
                        n,
                    )
                    if m is not None and fold[m.start()] == 60:  # "</noscript"
                        scan = safe = m.start()
                        state = _DATA
                        continue
                else:
                    m = _COMMENT_END.search(fold, scan)
                if m is None:
                    if final:
                        scan = n
                        break
                    scan = max(scan, n - (_NS_HOLD if self._noscript or self._foreign else 3))
                    hold = scan
                    break
                scan = safe = m.end()
                state = _DATA
                continue
            if state == _RAW:
                pattern = self._raw_end
                m = pattern.search(fold, scan) if pattern is not None else None
                while m is not None and buf[m.end() - 1] in _FOLDED:
                    # "</title\" is no end tag: the name runs on to a browser
                    m = pattern.search(fold, m.start() + 2)  # type: ignore[union-attr]
                if m is None:
                    if not final:
                        scan = max(scan, n - 10)  # >= _NS_HOLD
                        hold = scan
                    break
                if self._noscript and fold.startswith(b"</noscript", m.start()):
                    scan = safe = m.start()  # the data state reads it
                elif buf[m.end() - 1] == 62:
                    scan = safe = m.end()  # "</name>"
                else:
                    scan, safe = self._past_end_tag(buf, fold, m.start(), m.end() - m.start() - 1)
                state = _DATA
                continue
            # _PLAINTEXT
            break
        if hold < emit:
            hold = emit
        sink.append(buf[emit:hold])
        self._buf = buf[hold:]
        self._state = state
        if self._after is not None and sink is self._after:
            self._after_len = sum(map(len, self._after))
            if self._after_len > self.max_hold:
                self._warn("more than max_hold bytes after </body>: banner moved on")
                out.extend(self._after)
                self._after = None
        return out

    def _script_decision(self, attrs: _Attrs) -> tuple[tuple[str, Tracker | None] | None, bool]:
        """``(decision, needs_content)`` for a script start tag."""
        first = attrs.first
        stype = (first.get("type") or "").strip().lower()
        for marker in self.marker_attrs:
            value = first.get(marker)
            if value is not None:
                if stype == "text/plain":
                    return None, False
                cat = self.marked(value)
                return (None if cat is None else (cat, None)), False
        if stype not in _JS_TYPES:
            return None, False
        src = first.get("src")
        if src is None:
            # an SVG <script> loads its href (inert on an HTML one: neutralised
            # all the same, the inline content is still examined)
            for name in ("href", "xlink:href"):
                ref = first.get(name)
                if ref is not None:
                    found = self.trackers.match_url(_as_utf8(ref))
                    if found is not None and self.trackers.category(found) in self.blocked:
                        return (self.trackers.category(found), found), False
            return None, True
        if src is not None:
            found = self.trackers.match_url(_as_utf8(src))
            if found is not None:
                cat = self.trackers.category(found)
                if cat in self.blocked:
                    return (cat, found), False
            return None, False
        return None, True

    def _neutral_script(
        self, tag: bytes, nl: int, attrs: _Attrs, decided: tuple[str, Tracker | None]
    ) -> bytes:
        cat, found = decided
        insert = b' type="text/plain"' + _blocked_attrs(cat, found)
        return _edit(tag, nl, attrs, insert, ("src", "type", "href", "xlink:href"))

    def _inline_decision(self, content: bytes) -> tuple[str, Tracker] | None:
        """The refused categories (space-separated) of every vendor whose
        loader is in ``content``, and the first such vendor; None when all of
        them are allowed. A bundle of gtag and fbq waits for both."""
        cats: list[str] = []
        first: Tracker | None = None
        for found in self.trackers.match_scripts(content):
            cat = self.trackers.category(found)
            if cat in self.blocked:
                if first is None:
                    first = found
                if cat not in cats:
                    cats.append(cat)
        return None if first is None else (" ".join(cats), first)

    def _url_decision(self, url: str | None) -> tuple[str, Tracker] | None:
        if not url:
            return None
        found = self.trackers.match_url(_as_utf8(url))
        if found is None:
            return None
        cat = self.trackers.category(found)
        return (cat, found) if cat in self.blocked else None

    def _inspect_small(self, tag: bytes, nl: int, name: bytes) -> bytes | None:
        attrs = _Attrs(tag, nl, len(tag) - 1)
        first = attrs.first
        loads = _URL_ATTRS.get(name)
        if loads is not None:
            decided = None
            for attr in loads:
                value = first.get(attr)
                if not value:
                    continue
                if attr == "srcset":
                    for candidate in value.split(","):
                        decided = self._url_decision(candidate.strip().split(" ")[0])
                        if decided is not None:
                            break
                else:
                    decided = self._url_decision(value)
                if decided is not None:
                    break
            if decided is None:
                return None
            return _edit(tag, nl, attrs, _blocked_attrs(*decided), loads)
        if name == b"base":
            # relative URLs after it load from its host: when a refused
            # tracker is there, the page keeps its own host as their base
            href = first.get("href")
            if not href:
                return None
            for found in self.trackers.match_base(_as_utf8(href)):
                cat = self.trackers.category(found)
                if cat in self.blocked:
                    return _edit(tag, nl, attrs, _blocked_attrs(cat, found), ("href",))
            return None
        ping = first.get("ping")
        if not ping:
            return None
        for url in ping.split():
            decided = self._url_decision(url)
            if decided is not None:
                return _edit(tag, nl, attrs, _blocked_attrs(*decided), ("ping",))
        return None

    def _neutral_link(self, tag: bytes, nl: int, attrs: _Attrs) -> bytes | None:
        rels = set((attrs.first.get("rel") or "").lower().split())
        if not rels & _HINT_RELS:
            return None
        decided = self._url_decision(attrs.first.get("href"))
        if decided is None:
            return None
        return _edit(tag, nl, attrs, _blocked_attrs(*decided), ("href",))

    def _neutral_iframe(self, tag: bytes, nl: int, attrs: _Attrs) -> bytes | None:
        first = attrs.first
        decided: tuple[str, Tracker | None] | None = None
        marked = False
        for marker in self.marker_attrs:
            value = first.get(marker)
            if value is not None:
                marked = True
                cat = self.marked(value)
                if cat is not None:
                    decided = (cat, None)
                break
        if not marked:
            decided = self._url_decision(first.get("src"))
        if decided is None:
            return None
        insert = _blocked_attrs(*decided)
        if self._noscript:
            return _edit(tag, nl, attrs, insert, ("src", "srcdoc"))
        if "hidden" not in first:
            insert += b" hidden data-cg-unhide"
        tag = _edit(tag, nl, attrs, insert, ("src", "srcdoc"))
        return self.placeholder(decided[0], decided[1]) + tag


#: structural tokens acted on once their whole tag is in the buffer
#: the start tokens acted on once the whole tag is here: <noscript>, <svg>,
#: <math>, and in foreign content the breakouts and integration points (SVG's
#: <title> is one, read on the raw text path)
_DEPTH_KINDS = (
    frozenset({b"noscript", b"svg", b"math"}) | _BREAKOUT | _IP_MATH | (_IP_SVG - {b"title"})
)


def _self_closing(tag: bytes, nl: int) -> bool:
    """Whether a complete start tag (its name ``tag[:nl]``) ends in the
    self-closing ``/>``: not when that ``/`` belongs to an unquoted attribute
    value (``<svg a=b/>``)."""
    if not tag.endswith(b"/>"):
        return False
    end = len(tag) - 1
    last = -1
    for m in _ATTR_ITER.finditer(tag, nl, end):
        last = m.end()
    return last != end


def _as_utf8(value: str) -> str:
    """An attribute value read as latin-1 (byte for byte), read as UTF-8 when it
    is: a host such as ``www.googletagmanager\u3002com`` is UTF-8 on the page,
    and the tracker matcher maps it to ASCII as a browser does."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _after_end_tag(buf: bytes, at: int, name_len: int) -> tuple[int, int]:
    """``(scan, safe)`` after the end tag whose ``</name`` (``name_len`` bytes) is
    at ``at``: its end twice, or, while it is unfinished, ``(at + 2, at)`` so that
    what follows is checked against it."""
    m = _TAG_REST.match(buf, at + name_len)
    return (m.end(), m.end()) if m is not None else (at + 2, at)


def _enclosing(
    buf: bytes,
    start: int,
    t: int,
    fast: Callable[[bytes, int, int], re.Match[bytes] | None] = _FAST_RUN.match,
    run: Callable[[bytes, int, int], re.Match[bytes] | None] = _DATA_RUN.match,
    markup: Callable[[bytes, int], re.Match[bytes] | None] = _MARKUP_AT.match,
) -> tuple[int, int]:
    """Which markup contains position ``t``: ``(start, incomplete)``.

    ``start`` must be in the data state (the end of a token the rewriter read,
    or the start of the buffer, which it only ever cuts there). The bytes from
    it are read as the HTML tokenizer reads them - text, tags with quoted or
    unquoted attribute values (``<img alt="<b>" src=...>``), comments, bogus
    comments - up to ``t``. Returns the start of the tag around ``t`` (-1: none,
    ``t`` is in text) and the start of markup that is unfinished in ``buf``
    (-1: none), from which the caller must hold bytes back.
    """
    m = fast(buf, start, t)
    pos = m.end() if m is not None else start
    while pos < t:
        m = run(buf, pos, t)
        if m is not None and m.end() > pos:
            pos = m.end()
            continue
        m = markup(buf, pos)  # the markup at pos does not end before t
        if m is None:
            return -1, pos
        if m.end() > t:
            return pos, -1
        pos = m.end()  # "<" at t - 1: text (the look-ahead needed byte t)
    return -1, -1


def _blocked_attrs(category: str, tracker: Tracker | None) -> bytes:
    cat = html.escape(category).encode("ascii", "xmlcharrefreplace")
    if tracker is None:
        return b' data-cg-blocked="' + cat + b'"'
    return b' data-cg-blocked="' + cat + b'" data-cg-tracker="' + tracker.id.encode() + b'"'


def _edit(tag: bytes, nl: int, attrs: _Attrs, insert: bytes, rename: tuple[str, ...]) -> bytes:
    """``tag`` with ``insert`` after its name (``tag[:nl]``) and the ``rename``
    attributes prefixed with ``data-cg-``."""
    parts = [tag[:nl], insert]
    at = nl
    for name, start, stop in attrs.spans:
        if name in rename:
            parts.append(tag[at:start])
            parts.append(b"data-cg-" + name.encode("latin-1"))
            at = stop
    parts.append(tag[at:])
    return b"".join(parts)


def _ns_end(
    pattern: re.Pattern[bytes], buf: bytes, fold: bytes, pos: int, stop: int
) -> re.Match[bytes] | None:
    """The first match of ``pattern`` (one of the ``_NS_*`` ends) in
    ``fold[pos:stop]`` that is a token to a browser: an end tag's name is not
    followed, in ``buf``, by a byte the fold made ``/``. A match is a whole
    token, so finding it does not depend on where the body is cut (the caller
    holds the last :data:`_NS_HOLD` bytes)."""
    m = pattern.search(fold, pos, stop)
    while m is not None and m.group()[:1] == b"<" and buf[m.end() - 1] in _FOLDED:
        m = pattern.search(fold, m.start() + 2, stop)
    return m


def _script_end(
    buf: bytes, fold: bytes, pos: int, n: int, final: bool, esc: int
) -> tuple[int, int]:
    """Find the ``</script`` that ends script data starting at ``pos``.

    ``fold`` is :func:`_fold` of ``buf``; a ``</script`` or ``<script`` whose
    name is followed, in ``buf``, by a byte the fold made ``/`` (``\\``, ``&``,
    ``;``) is no tag: its name runs on to a browser.

    ``esc`` is the escape state (0 normal, 1 escaped, 2 double escaped). Returns
    ``(index, esc)`` of the end tag, or ``(-1, esc)`` when it is not in the
    buffer. Unless ``final``, only tokens starting before ``n - 9`` are
    consumed (a token is at most 9 bytes), so the caller resumes at
    ``max(pos, n - 9)`` with the returned state.
    """
    limit = n if final else n - 9
    if esc == 0:
        # fast path: no "<!--" before the first "</script": that is the end
        m = _SCRIPT_END.search(fold, pos)
        if (
            m is not None
            and m.start() < limit
            and buf[m.end() - 1] not in _FOLDED
            and fold.find(b"<!--", pos, m.start()) == -1
        ):
            return m.start(), 0
    while True:
        m = _SCRIPT_TOKEN.search(fold, pos)
        if m is None or m.start() >= limit:
            return -1, esc
        tok = m.group()
        i = m.start()
        if tok == b"<!--":
            if esc == 0:
                esc = 1
            pos = i + 2  # the dashes may also close: "<!-->"
            continue
        if tok == b"-->":
            esc = 0
            pos = m.end()
            continue
        if buf[m.end() - 1] in _FOLDED:  # "</script\\": no tag
            pos = m.end() - 1
            continue
        if m.group(1):  # </script
            if esc == 2:
                esc = 1
                pos = m.end() - 1
                continue
            return i, esc
        if esc == 1:  # <script inside an escaped section
            esc = 2
        pos = m.end() - 1
        continue


class EncodedHtmlRewriter:
    """Run an :class:`HtmlRewriter` on a ``Content-Encoding``-ed body.

    ``gzip``/``x-gzip`` and ``deflate`` are decoded with :mod:`zlib`, rewritten
    and encoded again (same coding; the caller must drop ``Content-Length``).
    ``deflate`` is the zlib format (RFC 9110) or, as some servers send it and
    every browser reads it, a raw deflate stream: told apart by the zlib header
    (RFC 1950: CM 8 and a check that divides by 31) and encoded again as it came.
    ``br`` is handled the same way when the ``brotli`` module (>= 1.2) is
    importable (cookiegate does not depend on it); otherwise, and for any other
    coding (``zstd``, ``compress``, several codings, ...), the body is passed
    through untouched - never corrupted - without the banner, and a warning is
    logged; :attr:`passthrough` tells the caller.

    A gzip body may hold several members (RFC 1952): a new one is started only
    where the bytes after a member begin with the gzip magic ``1f 8b``. Other
    bytes after the end of the compressed stream (zero padding, which ``gzip -d``
    and browsers ignore; anything after a deflate stream) are dropped, with a
    warning: the client gets the whole rewritten body, encoded and finished.

    A body that fails to decode (the app sent a corrupt stream) never raises:
    while nothing has been sent yet, the body is passed through as it came from
    there on (the bytes read so far, at most ``max_inflate`` of them, then the
    rest), a stream as broken as the app's; once re-encoded bytes have been
    sent, no raw byte is ever appended to them: the encoded stream is finished
    with what was decoded (the client gets a valid, truncated page) and the
    rest of the body is dropped, with a warning.

    Decompression is bounded: each input chunk is inflated ``max_inflate`` bytes
    at a time (br: about that many, with ``output_buffer_limit``; a ``brotli``
    module older than 1.2 has no such limit, and br bodies are then passed
    through as undecodable), so a compression bomb cannot grow memory.
    """

    __slots__ = (
        "_brotli",
        "_dec",
        "_dropped",
        "_enc",
        "_ended",
        "_errors",
        "_failed",
        "_finished",
        "_head",
        "_magic",
        "_max",
        "_raw",
        "_raw_len",
        "coding",
        "passthrough",
        "rewriter",
    )

    def __init__(
        self,
        rewriter: HtmlRewriter | BodyFilter,
        content_encoding: str | None,
        *,
        max_inflate: int = 256 * 1024,
    ) -> None:
        self.rewriter = rewriter
        self.coding = (content_encoding or "identity").strip().lower()
        self.passthrough = False
        #: the body did not decode before anything was sent: passed through raw
        self._failed = False
        #: the encoded stream was finished early (a decode failure after output)
        self._finished = False
        #: the compressed stream ended; ``_dropped``: what followed it is dropped
        self._ended = False
        self._dropped = False
        #: gzip: the first byte after a member, when it may start the magic
        self._magic = b""
        self._brotli: Any = None
        self._dec: Any = None
        self._enc: Any = None
        self._errors: tuple[type[Exception], ...] = (zlib.error, OSError, ValueError)
        #: deflate: the first bytes, until two tell zlib from raw deflate
        self._head: bytes | None = None
        self._max = max_inflate
        #: the input so far, while no output has been sent (for a raw pass-through)
        self._raw: list[bytes] | None = []
        self._raw_len = 0
        if self.coding in ("identity", ""):
            self._raw = None
        elif self.coding in ("gzip", "x-gzip"):
            self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._enc = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._head = b""  # zlib (RFC 9110) or raw: see _sniff_deflate
        elif self.coding == "br":
            try:
                self._brotli = importlib.import_module("brotli")
            except ImportError:
                self._pass("br body and the brotli module is not installed")
            else:
                self._dec = self._brotli.Decompressor()
                if not hasattr(self._dec, "can_accept_more_data"):
                    # brotli < 1.2 inflates a whole chunk at once: a bomb of a
                    # few hundred bytes would take hundreds of MB
                    self._brotli = self._dec = None
                    self._pass("br body and the brotli module cannot decode in bounded steps")
                    return
                # quality 5, as servers compress dynamic pages: the default 11
                # re-encodes at ~0.7 MB/s (40 ms for a 30 KB page), 5 at ~80
                self._enc = self._brotli.Compressor(quality=5)
                error = getattr(self._brotli, "error", None)
                if isinstance(error, type) and issubclass(error, Exception):
                    self._errors += (error,)  # a corrupt br body
        else:
            self._pass(f"unsupported Content-Encoding {content_encoding!r}")

    def _pass(self, why: str) -> None:
        self.passthrough = True
        self._raw = None
        msg = f"{why}: body passed through untouched, without the banner"
        _warn_once(self.rewriter, msg)

    def feed(self, chunk: bytes) -> bytes:
        """Take the next encoded chunk; return encoded bytes that may be sent now."""
        if self.passthrough or self._failed:
            return bytes(chunk)
        if self._finished or self._dropped:
            return b""
        raw = self._raw
        if raw is not None:
            if self._raw_len + len(chunk) <= self._max:
                raw.append(bytes(chunk))
                self._raw_len += len(chunk)
            else:  # too much to keep: a failure now ends the encoded stream instead
                self._raw = None
        if self._head is not None:
            chunk = self._head + chunk
            if len(chunk) < 2:
                self._head = chunk
                return b""
            self._sniff_deflate(chunk)
        if self._dec is None:
            return self.rewriter.feed(chunk)
        out: list[bytes] = []
        try:
            if self._brotli is not None:
                self._unbrotli(bytes(chunk), out)
            else:
                self._inflate(bytes(chunk), out)
        except self._errors as exc:
            return self._fail(exc, out)
        sent = b"".join(out)
        if sent:
            self._raw = None
        return sent

    def _inflate(self, data: bytes, out: list[bytes]) -> None:
        """Inflate ``data`` at most max_inflate bytes at a time and pass each
        piece on at once: a compression bomb never sits in memory."""
        if self._ended:
            data = self._magic + data
            self._magic = b""
        more = False  # whether zlib may still hold output of the input it read
        while data or more:
            if self._ended:  # the bytes after the end of the compressed stream
                if self.coding == "deflate" or data[:2] != b"\x1f\x8b"[: len(data)]:
                    self._drop()
                    return
                if len(data) < 2:
                    self._magic = data  # "1f": the next chunk tells
                    return
                # another gzip member (RFC 1952): go on
                self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._ended = False
            dec = self._dec
            piece = dec.decompress(data, self._max)
            data = dec.unconsumed_tail
            more = len(piece) == self._max
            if dec.eof:
                self._ended = True
                data = dec.unused_data
                more = False
            out.append(self._compress(self.rewriter.feed(piece)))

    def _unbrotli(self, data: bytes, out: list[bytes]) -> None:
        """Decode br ``data`` about max_inflate bytes at a time (brotli >= 1.2)."""
        dec = self._dec
        if dec.is_finished():
            if data:
                self._drop()
            return
        while True:
            piece = bytes(dec.process(data, output_buffer_limit=self._max))
            data = b""  # the rest of it is inside the decoder
            out.append(self._compress(self.rewriter.feed(piece)))
            if dec.is_finished() or (not piece and dec.can_accept_more_data()):
                return

    def _drop(self) -> None:
        self._dropped = True
        _warn_once(self.rewriter, f"bytes after the end of the {self.coding} stream dropped")

    def close(self) -> bytes:
        """End of body: the rest, encoded and finished."""
        if self.passthrough or self._failed or self._finished:
            return b""
        if self._head is not None:  # a deflate body of less than two bytes
            return self._fail(ValueError("truncated"), [])
        if self._magic:  # one byte after the last gzip member: not a member
            self._drop()
        if self._dec is None:
            return self.rewriter.close()
        self._finished = True
        return self._compress(self.rewriter.close(), final=True)

    def _sniff_deflate(self, start: bytes) -> None:
        self._head = None
        cmf, flg = start[0], start[1]
        zlib_format = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_format else -zlib.MAX_WBITS
        self._dec = zlib.decompressobj(wbits)
        self._enc = zlib.compressobj(6, zlib.DEFLATED, wbits)

    def finish(self, chunk: bytes) -> bytes:
        """The last chunk: ``feed(chunk) + close()``."""
        return self.feed(chunk) + self.close()

    def _compress(self, data: bytes, *, final: bool = False) -> bytes:
        if self._brotli is not None:
            out = bytes(self._enc.process(data)) if data else b""
            return out + bytes(self._enc.finish() if final else self._enc.flush())
        if not data and not final:
            return b""
        packed: bytes = self._enc.compress(data)
        return packed + bytes(self._enc.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH))

    def _fail(self, exc: Exception, out: list[bytes]) -> bytes:
        """The body does not decode: ``out`` is what this call produced before."""
        if self._raw is not None:  # nothing sent yet: the body as it came
            self._failed = True
            raw = b"".join(self._raw)
            self._raw = None
            _warn_once(
                self.rewriter, f"the {self.coding} body does not decode ({exc}); passed through"
            )
            return raw
        # encoded bytes went out: end that stream with what was decoded
        self._finished = True
        _warn_once(
            self.rewriter,
            f"the {self.coding} body does not decode ({exc}); "
            "the encoded body ends there, the rest dropped",
        )
        if self._enc is None:  # a deflate body that never started
            return b"".join(out)
        out.append(self._compress(self.rewriter.close(), final=True))
        return b"".join(out)
