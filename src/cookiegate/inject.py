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
