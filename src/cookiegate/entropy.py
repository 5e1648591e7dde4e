"""Random bytes for ids, salts and nonces, without a system call each.

``os.urandom`` releases the GIL. On a thread that shares the GIL with another
(the event loop and the records writer, or the threads of a WSGI server), every
release can cost a wait to get it back, and a context switch when both run on
one CPU: under uvicorn the 12-byte draw for a new consent id took ~15% of the
event loop's samples of a consent POST. So bytes are drawn from ``os.urandom``
4 KiB at a time and handed out once each, in order. They are as unpredictable
as ``os.urandom``'s (they are its output); no byte is ever handed out twice;
a child made by ``os.fork`` (or anything that runs Python's at-fork hooks,
as ``multiprocessing`` does) starts with an empty buffer, so parent and child
never share values; a C extension that calls ``fork()`` itself skips those
hooks, as it skips every other library's. What is left in the buffer (at
most 4 KiB of values not handed out yet) sits in process memory, as any value
made in advance would.
"""

from __future__ import annotations

import base64
import operator
import os
import threading

__all__ = ["random_bytes", "token_urlsafe"]

_BUFFER = 4096


class _Entropy:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._buf, self._at = b"", 0

    def take(self, n: int) -> bytes:
        n = operator.index(n)  # a float or a str is refused before the state moves
        if n < 0:
            raise ValueError("negative argument not allowed")
        if n > _BUFFER:
            return os.urandom(n)
        with self._lock:
            at = self._at
            if at + n <= len(self._buf):
                self._at = at + n
                return self._buf[at : at + n]
        # the refill happens outside the lock: os.urandom releases the GIL, and
        # another thread must not wait on the lock meanwhile
        fresh = os.urandom(_BUFFER)
        with self._lock:
            # whatever another thread refilled meanwhile is dropped, never reused
            self._buf, self._at = fresh, n
        return fresh[:n]


_entropy = _Entropy()

#: ``n`` random bytes (thread-safe, fork-safe)
random_bytes = _entropy.take


def token_urlsafe(nbytes: int = 32) -> str:
    """What ``secrets.token_urlsafe(nbytes)`` gives: ``nbytes`` random bytes in
    URL-safe base64 without padding (``ValueError`` when negative)."""
    return base64.urlsafe_b64encode(_entropy.take(nbytes)).rstrip(b"=").decode("ascii")
