"""Streaming insertion of an HTML fragment before ``</body>`` (sans-IO).

The fragment goes before the *last* ``</body>`` of the document that starts
within its last ``max_hold`` bytes (64 KiB: where every real page has it), or
at the end when there is none. Only the last ``max_hold`` bytes (rounded up to
whole chunks) are held back; everything before them is sent as it comes, without
being looked at: the search runs once, backwards from the end, when the body is
complete. Memory stays constant whatever the size of the page, the cost hardly
depends on it, and the output does not depend on how the body is cut into chunks.
"""

from __future__ import annotations

import re
from collections import deque
from functools import lru_cache
from typing import Protocol


class BodyFilter(Protocol):
    """A streaming body stage: ``feed`` each chunk, then ``close`` once."""

    def feed(self, chunk: bytes) -> bytes: ...

    def close(self) -> bytes: ...

    def finish(self, chunk: bytes) -> bytes:
        """The last chunk: ``feed(chunk) + close()`` (a body sent in one piece)."""
        ...


#: a UTF-16 byte-order mark -> a space in that byte order. Such a page (which
#: browsers read as UTF-16 whatever its Content-Type says) is not edited: where a
#: fragment would go, as many bytes of spaces go at its end instead, so that a
#: Content-Length grown by the fragment stays exact (the gate's fragments have an
#: even length, :func:`even`; an odd one ends the padding with a newline byte)
_BOM_SPACE = {b"\xff\xfe": b" \x00", b"\xfe\xff": b"\x00 "}


def even(fragment: bytes) -> bytes:
    """``fragment`` with a newline added when its length is odd (see
    :data:`_BOM_SPACE`)."""
    return fragment + b"\n" if len(fragment) % 2 else fragment


def _spaces(lead: bytes, size: int) -> bytes | None:
    """The padding a page starting with ``lead`` gets instead of a ``size``-byte
    fragment, or ``None`` when the page is edited as usual."""
    unit = _BOM_SPACE.get(lead[:2])
    return None if unit is None else unit * (size // 2) + b"\n" * (size % 2)


#: ``</body`` followed by a character that ends the tag name, or the end
_BODY_END_AT_EOF = re.compile(rb"</body(?=[\t\n\f\r />]|$)", re.IGNORECASE)
_TAG_NAME_END = frozenset(b"\t\n\f\r />")


class HtmlInjector:
    """Insert ``fragment`` into a streamed HTML body.

    :param fragment: the bytes to insert (already encoded in the page's charset).
        A body starting with a UTF-16 byte-order mark gets as many bytes of
        UTF-16 spaces at its end instead (give an even-length fragment,
        :func:`even`, for the padding to be whole characters).
    :param max_hold: how many bytes at the end of the body are held back and
        searched for ``</body>``.
    """

    __slots__ = ("_done", "_held", "_held_len", "_lead", "fragment", "max_hold")

    def __init__(self, fragment: bytes, *, max_hold: int = 64 * 1024) -> None:
        self.fragment = fragment
        self.max_hold = max_hold
        self._held: deque[bytes] | None = None  # made on the first feed (finish needs none)
        self._held_len = 0
        self._done = False
        self._lead = b""  # the body's first two bytes (a byte-order mark?)

    def feed(self, chunk: bytes) -> bytes:
        """Take the next body chunk; return what may be sent now."""
        if self._done:
            return chunk
        if not chunk:
            return b""
        if len(self._lead) < 2:
            self._lead = (self._lead + chunk)[:2]
        held = self._held
        if held is None:
            held = self._held = deque()
        held.append(chunk)
        size = self._held_len + len(chunk)
        out: list[bytes] = []
        # send the oldest chunks while what stays still covers the last max_hold bytes
        while size - len(held[0]) >= self.max_hold:
            first = held.popleft()
            size -= len(first)
            out.append(first)
        self._held_len = size
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def close(self) -> bytes:
        """End of body: return the rest, with the fragment inserted."""
        if self._done:
            return b""
        self._done = True
        held = self._held
        data = b"".join(held) if held else b""
        self._held = None
        self._held_len = 0
        spaces = _spaces(self._lead, len(self.fragment))
        if spaces is not None:
            return data + spaces
        return self._insert(data)

    def finish(self, chunk: bytes) -> bytes:
        """``feed(chunk) + close()``; for a body in one piece (most pages) without
        holding it back first."""
        if self._done or self._held:
            return self.feed(chunk) + self.close()
        self._done = True
        if type(chunk) is not bytes:
            chunk = bytes(chunk)  # a bytearray or memoryview body
        # the usual page, inline (this runs on every decided visitor's page): its
        # last "</body" is a lower-case tag in the last max_hold bytes, with no
        # other letter case after it; anything else is _insert's
        at = chunk.rfind(b"</body")
        end = at + 6
        n = len(chunk)
        if chunk[:2] in _BOM_SPACE:
            return chunk + (_spaces(chunk, len(self.fragment)) or b"")
        if (
            at >= 0
            and n - at <= self.max_hold
            and (end == n or chunk[end] in _TAG_NAME_END)
            and chunk[end:].lower().find(b"</body") < 0
            and _raw_around(chunk, at) < 0
        ):
            view = memoryview(chunk)
            return b"".join((view[:at], self.fragment, view[at:]))
        return self._insert(chunk)

    def _insert(self, data: bytes) -> bytes:
        """The end of the body with the fragment before its last ``</body>``."""
        start = max(0, len(data) - self.max_hold)
        at = _last_body_end(data, start)
        while at >= 0:
            # a "</body>" in a script's text or a comment ends nothing: the one
            # before that script or comment, if any
            around = _raw_around(data, at)
            if around < 0:
                break
            at = _last_body_end(data, start, around)
        if at < 0:
            return data + self.fragment
        view = memoryview(data)  # one copy of the page, not three
        return b"".join((view[:at], self.fragment, view[at:]))


def _raw_around(data: bytes, at: int) -> int:
    """Where the ``<script`` or ``<!--`` that position ``at`` is inside of
    starts (its end is not before ``at``), or -1. Lower- and upper-case
    ``script`` (as pages write it); a ``<script`` inside a comment or a
    ``<!--`` inside a script is not told apart (reads as inside: the fragment
    goes earlier, still in the body). A script or comment left open to the end
    of the body is not looked for."""
    # the usual page: nothing after its "</body>" closes a script or comment
    # (a few bytes, "</html>"), so it is in neither; only then the look back
    if data.find(b"-->", at) < 0 and data[at:].lower().find(b"</script") < 0:
        return -1
    find = data.rfind
    found = -1
    opened = max(find(b"<script", 0, at), find(b"<SCRIPT", 0, at))
    if opened >= 0 and max(find(b"</script", opened, at), find(b"</SCRIPT", opened, at)) < 0:
        found = opened
    comment = find(b"<!--", 0, at)
    if comment >= 0 and find(b"-->", comment + 2, at) < 0:
        found = max(found, comment)
    return found


def _last_body_end(data: bytes, start: int, stop: int | None = None) -> int:
    """Where the last ``</body`` tag of ``data[:stop]`` at or after ``start``
    begins, or -1.

    Pages write it in lower case: find that from the end (``rfind`` stops near the
    end), then look for another letter case only after it; the full
    case-insensitive scan of the window runs only when there is no lower-case one.
    """
    n = len(data) if stop is None else stop
    end = n
    found = -1
    while True:
        p = data.rfind(b"</body", start, end)
        if p < 0:
            break
        if p + 6 == len(data) or data[p + 6] in _TAG_NAME_END:
            found = p
            break
        end = p + 5  # "</bodyguard": keep looking before it
    # (find, not ``in``: ``bytes in bytes`` first tries the operand as an integer)
    if found >= 0 and data[found + 6 : n].lower().find(b"</body") < 0:
        return found  # no other letter case after it (the usual page)
    last = None
    ends = _BODY_END_AT_EOF.finditer(
        data, found + 1 if found >= 0 else start, min(len(data), n + 1)
    )
    for last in ends:  # noqa: B007
        pass
    return last.start() if last is not None else found


@lru_cache(maxsize=256)  # a site sends a handful of Content-Types
def is_injectable(content_type: str | None, content_encoding: str | None) -> bool:
    """Whether a response body is uncompressed HTML we can insert into."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in ("text/html", "application/xhtml+xml"):
        return False
    return not content_encoding or content_encoding.strip().lower() == "identity"


#: the ``<head>`` start tag (attributes may hold quoted ``>``), or a tag that
#: belongs in the head or body when the document omits ``<head>``
#: a ``<head>`` start tag, matched from its ``<`` (within ``_HEAD_HOLD`` bytes:
#: a candidate costs at most that much, however many there are)
_HEAD_TAG = re.compile(rb"<head(?:\s(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)?/?>", re.IGNORECASE)
#: where the fragment may go: a ``<head`` (a start tag when ``_HEAD_TAG``
#: matches there) or the first of the tags that only come after it
_HEAD_START = re.compile(
    rb"<(?:head|body|script|link|meta|style|title|base|noscript)(?=[\s/>])",
    re.IGNORECASE,
)
#: at most this many bytes are held back while a ``<head ...>`` tag is incomplete
_HEAD_HOLD = 1024
_HEAD_NAMES = (
    b"head",
    b"body",
    b"script",
    b"link",
    b"meta",
    b"style",
    b"title",
    b"base",
    b"noscript",
)


def _head_hold_from(buf: bytes, start: int = 0) -> int:
    """Where a possibly incomplete candidate tag (or ``<!--``) starts in
    ``buf[start:]`` (searched in the last ``_HEAD_HOLD`` bytes), or -1."""
    lt = buf.find(b"<", max(start, len(buf) - _HEAD_HOLD))
    while lt >= 0:
        name = buf[lt + 1 : lt + 9].lower()
        if any(n.startswith(name) or name.startswith(n) for n in _HEAD_NAMES) or (
            b"!--".startswith(name[:3]) and len(name) < 3
        ):
            return lt
        lt = buf.find(b"<", lt + 1)
    return -1


#: how many bytes of a page browsers read for its ``<meta charset>`` (HTML's
#: encoding sniffing "prescan")
_PRESCAN = 1024
#: a ``<meta>`` that declares the charset (``charset=`` or ``http-equiv``)
_META_CHARSET = re.compile(
    rb"<meta[\s/](?:[^>\"']|\"[^\"]*\"|'[^']*')*?(?:charset|http-equiv)"
    rb"(?:[^>\"']|\"[^\"]*\"|'[^']*')*>",
    re.IGNORECASE,
)
_SCRIPT_OR_COMMENT = re.compile(rb"<script|<!--", re.IGNORECASE)

#: a candidate, or the start of a comment (whose tags are text to the browser)
_HEAD_OR_COMMENT = re.compile(b"<!--|" + _HEAD_START.pattern, re.IGNORECASE)
_COMMENT_CLOSE = re.compile(rb"--!?>")


class HeadInserter:
    """Insert ``fragment`` right after the ``<head>`` start tag, so that it runs
    before any of the page's scripts (Google Consent Mode's ``default``). When
    the page omits ``<head>`` it goes before the first ``<script>``, ``<meta>``,
    ``<link>``, ``<body>``... tag; when there is none of those, at the end.
    Tags inside comments (``<!-- <head> -->``) do not count. A ``<head ...>``
    start tag longer than 1 KiB counts as none (each ``<head`` is looked at
    within 1 KiB: linear time, however many a page holds).

    Streaming, constant memory: bytes are held back only from a ``<`` that may
    start such a tag (at most 1 KiB: past that the bytes are sent and the search
    goes on), and the last bytes of an unfinished comment. After the insertion
    every chunk passes through untouched.

    A ``<meta charset>`` (or ``http-equiv``) that the fragment would push out
    of the page's first 1024 bytes, where browsers look for it, keeps its
    place: the fragment goes right after it, unless a script or comment comes
    between (the meta must then be in the same chunk as the ``<head>``).

    A body starting with a UTF-16 byte-order mark is not edited: it gets as
    many bytes of UTF-16 spaces at its end as the fragment has (see
    :class:`HtmlInjector`).
    """

    __slots__ = ("_buf", "_comment", "_done", "_offset", "_padding", "_sniffed", "fragment")

    def __init__(self, fragment: bytes) -> None:
        self.fragment = fragment
        self._buf = b""
        self._offset = 0  # bytes of the body sent before ``_buf``
        self._done = False
        self._comment = False  # inside a comment that started in an earlier chunk
        self._sniffed = False  # the body's first two bytes were looked at
        self._padding = b""  # what a UTF-16 body gets at its end

    def feed(self, chunk: bytes) -> bytes:
        if self._done:
            return chunk
        buf = self._buf + chunk if self._buf else chunk
        if not self._sniffed:
            if len(buf) < 2:
                self._buf = buf
                return b""
            self._sniffed = True
            spaces = _spaces(buf, len(self.fragment))
            if spaces is not None:  # UTF-16: sent as written
                self._done = True
                self._buf = b""
                self._padding = spaces
                return buf
        return self._scan(buf, False)

    def close(self) -> bytes:
        if self._done:
            padding, self._padding = self._padding, b""
            return padding
        buf, self._buf = self._buf, b""
        out = self._scan(buf, True)
        if self._done:
            return out
        self._done = True
        return out + self._buf + self.fragment

    def finish(self, chunk: bytes) -> bytes:
        return self.feed(chunk) + self.close()

    def _scan(self, buf: bytes, final: bool) -> bytes:
        """What of ``buf`` may go now (the fragment inserted, if its place is
        found); the rest stays in ``_buf``."""
        pos = 0
        while True:
            if self._comment:
                end = _COMMENT_CLOSE.search(buf, pos)
                if end is None:
                    keep = len(buf) if final else max(pos, len(buf) - 3)  # "--!>" may be cut
                    self._buf = buf[keep:]
                    self._offset += keep
                    return buf[:keep]
                self._comment = False
                pos = end.end()
                continue
            m = _HEAD_OR_COMMENT.search(buf, pos)
            if m is None:
                lt = -1 if final else _head_hold_from(buf, pos)
                if lt < 0:
                    self._buf = b""
                    self._offset += len(buf)
                    return buf
                self._buf = buf[lt:]
                self._offset += lt
                return buf[:lt]
            if m.group(0) == b"<!--":
                after = buf[m.end() : m.end() + 2]
                if after[:1] == b">":  # "<!-->": an empty comment, closed
                    pos = m.end() + 1
                elif after == b"->":  # "<!--->"
                    pos = m.end() + 2
                elif len(after) < 2 and not final:
                    self._buf = buf[m.start() :]  # "<!-->" may be cut
                    self._offset += m.start()
                    return buf[: m.start()]
                else:
                    self._comment = True
                    pos = m.end()
                continue
            at = m.start()
            if m.group(0)[1:5].lower() == b"head":
                tag = _HEAD_TAG.match(buf, at, at + _HEAD_HOLD)
                if tag is None:
                    if not final and len(buf) - at < _HEAD_HOLD:
                        self._buf = buf[at:]  # its ">" may be in the next chunk
                        self._offset += at
                        return buf[:at]
                    # no start tag (or one longer than _HEAD_HOLD): read on
                    pos = at + 1
                    continue
                at = tag.end()
            self._done = True
            self._buf = b""
            # a <meta charset> the fragment would push out of the first 1024
            # bytes (where browsers look for it): the fragment goes after it,
            # when no script (nor comment) comes between
            limit = _PRESCAN - self._offset
            if at < limit:
                meta = _META_CHARSET.search(buf, at, limit)
                if (
                    meta is not None
                    and meta.end() + len(self.fragment) > limit
                    and _SCRIPT_OR_COMMENT.search(buf, at, meta.start()) is None
                ):
                    at = meta.end()
            return buf[:at] + self.fragment + buf[at:]


class Chain:
    """Two streaming stages one after the other (``first`` feeds ``second``)."""

    __slots__ = ("first", "second")

    def __init__(self, first: BodyFilter, second: BodyFilter) -> None:
        self.first = first
        self.second = second

    def feed(self, chunk: bytes) -> bytes:
        return self.second.feed(self.first.feed(chunk))

    def close(self) -> bytes:
        second = self.second
        return second.feed(self.first.close()) + second.close()

    def finish(self, chunk: bytes) -> bytes:
        return self.second.finish(self.first.finish(chunk))
