"""Buffered random bytes: shape, no value handed out twice, fork safety."""

from __future__ import annotations

import base64
import os
import string
import threading

from cookiegate import entropy


def test_token_urlsafe_has_the_shape_of_secrets_token_urlsafe() -> None:
    for n in (1, 12, 16, 32):
        token = entropy.token_urlsafe(n)
        assert set(token) <= set(string.ascii_letters + string.digits + "-_")
        assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).__len__() == n


def test_no_bytes_are_handed_out_twice_across_buffers_and_threads() -> None:
    seen: list[bytes] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [entropy.random_bytes(16) for _ in range(2000)]  # ~8 buffers each
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8000 and len(set(seen)) == 8000
    assert all(len(b) == 16 for b in seen)
    big = entropy.random_bytes(10_000)  # larger than the buffer: drawn directly
    assert len(big) == 10_000 and big != entropy.random_bytes(10_000)


def test_a_forked_child_never_gets_the_parents_next_bytes() -> None:
    entropy.random_bytes(1)  # the parent's buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next 32 bytes
        os.close(read)
        os.write(write, entropy.random_bytes(32))
        os._exit(0)
    os.close(write)
    child = b""
    while len(child) < 32:
        part = os.read(read, 32)
        if not part:
            break
        child += part
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != entropy.random_bytes(32)  # the parent's next bytes differ


def test_bad_sizes_are_refused_and_move_nothing() -> None:
    import pytest

    first = entropy.random_bytes(8)
    for bad in (-1, -4096):
        with pytest.raises(ValueError):
            entropy.random_bytes(bad)
        with pytest.raises(ValueError):
            entropy.token_urlsafe(bad)
    with pytest.raises(TypeError):
        entropy.random_bytes(1.5)  # type: ignore[arg-type]
    # the read position did not move back: nothing handed out again
    drawn = [entropy.random_bytes(8) for _ in range(600)]  # past a refill
    assert first not in drawn and len(set(drawn)) == 600
    assert entropy.random_bytes(0) == b"" and len(entropy.token_urlsafe()) == 43
