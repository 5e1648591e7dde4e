"""The benchmark's reference middlewares measure the same output as cookiegate.

``benchmarks/apps.py``'s floor gate stands for "the least any implementation of
the feature must do"; if its page differed from the one cookiegate sends (no
settings control, a wrong length), its ratio would not be a floor of anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import apps


def _get(app: object, path: str, cookie: str) -> tuple[int, dict[str, str], bytes]:
    with TestClient(app) as client:  # type: ignore[arg-type]
        r = client.get(path, headers={"cookie": cookie})
        return r.status_code, dict(r.headers), r.content


def test_floor_page_is_cookiegates_accepted_page() -> None:
    cookie = apps.request_cookie(list(apps.GATE.policy.optional))
    status, headers, body = _get(apps.floor_app(), "/page", cookie)
    want_status, want_headers, want = _get(apps.cookiegate_app(), "/page", cookie)
    assert status == want_status == 200
    assert b'id="cookiegate-settings"' in body
    assert body == want  # same control, same place
    assert len(body) > len(apps.PAGE)
    assert headers["content-length"] == want_headers["content-length"] == str(len(body))
    assert "cookie" in headers["vary"].lower()


def test_floor_cookie_route_keeps_the_three_cookies() -> None:
    cookie = apps.request_cookie(list(apps.GATE.policy.optional))
    status, headers, body = _get(apps.floor_app(), "/", cookie)
    assert (status, body) == (200, b"ok")
    assert "cookie" in headers["vary"].lower()


def test_own_link_page_is_the_apps_page() -> None:
    """The ``settings_control=False`` row measures a page sent as written."""
    cookie = apps.request_cookie(list(apps.GATE.policy.optional))
    status, headers, body = _get(apps.gated_own_link, "/page", cookie)
    assert status == 200 and body == apps.PAGE
    assert headers["content-length"] == str(len(apps.PAGE))
    assert "cookie" in headers["vary"].lower()


def test_micro_cold_mode_times_every_request() -> None:
    """``micro.py --cold`` still drives each case through the app (a broken
    option would print figures of nothing)."""
    import asyncio
    import itertools

    import micro

    calls: list[str] = []

    async def app(scope: apps.Scope, receive: apps.Receive, send: apps.Send) -> None:
        calls.append(str(scope["path"]))

    cookies = itertools.cycle(["a=1"])
    seconds = asyncio.run(micro._drive(app, cookies, 3, "/x", cold=True))
    assert calls == ["/x"] * 3
    assert seconds > 0
    assert micro.main(["--cold", "--only", "raw", "-n", "5", "--repeat", "1"]) == 0
