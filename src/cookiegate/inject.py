"""Streaming insertion of an HTML fragment before ``</body>`` (sans-IO).

The fragment goes before the *last* ``</body>`` of the document, or at the end
when there is none. Bytes are held back only from a ``</body>`` candidate onwards
(normally just ``</body></html>``), never more than ``max_hold`` bytes: past that
the candidate is given up and the fragment lands at the next candidate or at the
end. Memory stays constant whatever the size of the page, and the output does not
depend on how the body is cut into chunks (while the hold limit is not reached).
"""

from __future__ import annotations

import re
from typing import Protocol


class BodyFilter(Protocol):
    """A streaming body stage: ``feed`` each chunk, then ``close`` once."""

    def feed(self, chunk: bytes) -> bytes: ...

    def close(self) -> bytes: ...


#: ``</body`` followed by a character that ends the tag name
_BODY_END = re.compile(rb"</body(?=[\s/>])", re.IGNORECASE)
#: ... or by the end of the document
_BODY_END_AT_EOF = re.compile(rb"</body(?=[\s/>]|$)", re.IGNORECASE)
#: a ``</body`` split across chunks needs this many bytes kept back to be confirmed
_KEEP = len(b"</body")


class HtmlInjector:
    """Insert ``fragment`` into a streamed HTML body.

    :param fragment: the bytes to insert (already encoded in the page's charset).
    :param max_hold: most bytes held back after a ``</body>`` candidate.
    """

    __slots__ = ("_buf", "_done", "fragment", "max_hold")

    def __init__(self, fragment: bytes, *, max_hold: int = 64 * 1024) -> None:
        self.fragment = fragment
        self.max_hold = max_hold
        self._buf = b""
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        """Take the next body chunk; return what may be sent now."""
        if self._done:
            return chunk
        buf = self._buf + chunk if self._buf else chunk
        last = _last_match(_BODY_END, buf)
        if last is not None:
            at = last.start()
            out, held = buf[:at], buf[at:]
            if len(held) > self.max_hold:
                # too much after this candidate: give it up, keep looking
                out, held = buf[: len(buf) - _KEEP], buf[len(buf) - _KEEP :]
            self._buf = held
            return out
        cut = max(0, len(buf) - _KEEP)
        self._buf = buf[cut:]
        return buf[:cut]

    def close(self) -> bytes:
        """End of body: return the rest, with the fragment inserted."""
        if self._done:
            return b""
        self._done = True
        buf, self._buf = self._buf, b""
        last = _last_match(_BODY_END_AT_EOF, buf)
        if last is not None:
            return buf[: last.start()] + self.fragment + buf[last.start() :]
        return buf + self.fragment


def _last_match(pattern: re.Pattern[bytes], data: bytes) -> re.Match[bytes] | None:
    found = None
    for found in pattern.finditer(data):  # noqa: B007 - keep the last one
        pass
    return found


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
_HEAD_START = re.compile(
    rb"<head(?:\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*)?/?>"
    rb"|<(?:body|script|link|meta|style|title|base|noscript)(?=[\s/>])",
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


def _head_hold_from(buf: bytes) -> int:
    """Where a possibly incomplete candidate tag starts in ``buf`` (searched in
    the last ``_HEAD_HOLD`` bytes), or -1."""
    lt = buf.find(b"<", max(0, len(buf) - _HEAD_HOLD))
    while lt >= 0:
        name = buf[lt + 1 : lt + 9].lower()
        if any(n.startswith(name) or name.startswith(n) for n in _HEAD_NAMES):
            return lt
        lt = buf.find(b"<", lt + 1)
    return -1


class HeadInserter:
    """Insert ``fragment`` right after the ``<head>`` start tag, so that it runs
    before any of the page's scripts (Google Consent Mode's ``default``). When
    the page omits ``<head>`` it goes before the first ``<script>``, ``<meta>``,
    ``<link>``, ``<body>``... tag; when there is none of those, at the end.

    Streaming, constant memory: bytes are held back only from a ``<`` that may
    start such a tag (at most 1 KiB: past that the bytes are sent and the search
    goes on). After the insertion every chunk passes through untouched.
    """

    __slots__ = ("_buf", "_done", "fragment")

    def __init__(self, fragment: bytes) -> None:
        self.fragment = fragment
        self._buf = b""
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        if self._done:
            return chunk
        buf = self._buf + chunk if self._buf else chunk
        inserted = self._insert(buf)
        if inserted is not None:
            return inserted
        # keep a possibly incomplete candidate tag
        lt = _head_hold_from(buf)
        if lt < 0:
            self._buf = b""
            return buf
        self._buf = buf[lt:]
        return buf[:lt]

    def close(self) -> bytes:
        if self._done:
            return b""
        buf, self._buf = self._buf, b""
        inserted = self._insert(buf)
        self._done = True
        return buf + self.fragment if inserted is None else inserted

    def _insert(self, buf: bytes) -> bytes | None:
        """``buf`` with the fragment at its place, or ``None`` if none is found."""
        m = _HEAD_START.search(buf)
        if m is None:
            return None
        self._done = True
        self._buf = b""
        at = m.end() if m.group(0)[1:5].lower() == b"head" else m.start()
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
