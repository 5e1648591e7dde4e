"""Real FastAPI and Django (WSGI and ASGI) apps behind cookiegate's adapters.

Each scenario is a browser-like client against the framework's own request,
response and middleware stack: an undecided visitor's tracking cookie never
reaches the app nor the browser while the necessary ones do, the page gets the
banner with an exact length, the no-JS consent form answers 303 with the consent
cookie, after which the tracking cookie passes both ways, and the app reads the
consent through the framework's request object.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]
from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from starlette.testclient import TestClient
from werkzeug.test import Client as WerkzeugClient
from werkzeug.test import TestResponse

from cookiegate import Gate, RequestConsent
from cookiegate.asgi import CookieGateMiddleware as AsgiGate
from cookiegate.asgi import consent
from cookiegate.wsgi import CookieGateMiddleware as WsgiGate

from ..conftest import make_gate
from . import django_site  # configures Django (once per process)

BANNER = 'id="cookiegate-banner"'
SETTINGS = 'id="cookiegate-settings"'
ACCEPT = {"action": "accept_all", "next": "/"}
#: how httpx's cookie jar stores TestClient's host (testserver)
HOST = "testserver.local"


def names(set_cookies: list[str]) -> set[str]:
    """The cookie names of Set-Cookie values that set (not expire) a cookie."""
    out = set()
    for value in set_cookies:
        if re.search(r";\s*max-age=0\b", value, re.I):
            continue
        out.add(value.split("=", 1)[0].strip())
    return out


def of(set_cookies: list[str], name: str) -> list[str]:
    """The Set-Cookie values for ``name`` (Django's WSGI handler writes them with a
    leading space)."""
    return [v for v in set_cookies if v.lstrip().startswith(name + "=")]


# -- FastAPI -----------------------------------------------------------------


#: ``cookiegate.asgi.consent`` is a FastAPI dependency as it is (its parameter
#: is a Starlette ``HTTPConnection``, which FastAPI injects)
Consent = Annotated[RequestConsent, Depends(consent)]


def fastapi_app(gate: Gate) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AsgiGate, gate=gate)

    @app.get("/")
    def home(request: Request, response: Response) -> dict[str, Any]:
        response.set_cookie("_ga", "GA1.1.123.456", max_age=63072000)
        response.set_cookie("session", "s1", httponly=True)
        return {
            "cookies": sorted(request.cookies),
            "performance": consent(request).allows("performance"),
        }

    @app.get("/dep")
    def dep(visitor: Consent) -> dict[str, bool]:
        return {"performance": visitor.allows("performance"), "decided": visitor.decided}

    @app.get("/page", response_class=HTMLResponse)
    def page() -> str:
        return django_site.PAGE

    return app


def test_fastapi_undecided_then_accept_all() -> None:
    client = TestClient(fastapi_app(make_gate()))
    # _ga left from before, or written by a script: the app never sees it
    resp = client.get("/", headers={"cookie": "_ga=GA1.1.old; session=s0"})
    assert resp.status_code == 200
    assert resp.json() == {"cookies": ["session"], "performance": False}

    resp = client.get("/")
    sent = resp.headers.get_list("set-cookie")
    assert "session" in names(sent)
    # the app's Set-Cookie was removed (and an undecided visitor's is not expired)
    assert not of(sent, "_ga")
    assert "cookie" in resp.headers["vary"].lower()
    assert client.cookies.get("_ga") is None
    assert client.cookies.get("session") == "s1"

    assert client.get("/dep").json() == {"performance": False, "decided": False}
    state = client.get("/_cookiegate/consent").json()
    assert state["decided"] is False
    assert state["categories"] == {"performance": False}

    page = client.get("/page")
    assert page.status_code == 200
    assert BANNER in page.text
    assert page.text.startswith(django_site.PAGE[: -len("</body></html>")])
    assert int(page.headers["content-length"]) == len(page.content)

    posted = client.post(
        "/_cookiegate/consent",
        data=ACCEPT,
        headers={"origin": "http://testserver"},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == "/"
    assert "cookiegate" in names(posted.headers.get_list("set-cookie"))
    assert client.cookies.get("cookiegate")

    client.cookies.set("_ga", "GA1.1.old", domain=HOST)
    resp = client.get("/")
    assert resp.json() == {"cookies": ["_ga", "cookiegate", "session"], "performance": True}
    assert {"_ga", "session"} <= names(resp.headers.get_list("set-cookie"))
    assert client.cookies.get("_ga") == "GA1.1.123.456"

    assert client.get("/dep").json() == {"performance": True, "decided": True}
    state = client.get("/_cookiegate/consent").json()
    assert state["decided"] is True
    assert state["categories"] == {"performance": True}
    assert state["method"] == "banner"

    page = client.get("/page")
    assert BANNER not in page.text
    assert SETTINGS in page.text
    assert int(page.headers["content-length"]) == len(page.content)


def test_fastapi_cross_site_post_is_refused() -> None:
    client = TestClient(fastapi_app(make_gate()))
    resp = client.post(
        "/_cookiegate/consent",
        data=ACCEPT,
        headers={"origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert resp.status_code == 403
    assert "cookiegate" not in names(resp.headers.get_list("set-cookie"))


def test_fastapi_with_a_token() -> None:
    gate = make_gate()
    client = TestClient(fastapi_app(gate))
    client.cookies.set("cookiegate", gate.make_token(["performance"]), domain=HOST)
    client.cookies.set("_ga", "GA1.1.old", domain=HOST)
    assert client.get("/").json()["cookies"] == ["_ga", "cookiegate"]
    client.cookies.set("cookiegate", gate.make_token([]), domain=HOST)  # refused
    resp = client.get("/")
    assert resp.json() == {"cookies": ["cookiegate", "session"], "performance": False}
    sent = resp.headers.get_list("set-cookie")
    assert "_ga" not in names(sent)
    # the refused cookie the browser still held is expired
    assert any(re.search("max-age=0", v, re.I) for v in of(sent, "_ga"))
    assert client.cookies.get("_ga") is None


# -- Django WSGI -------------------------------------------------------------


def wsgi_client(gate: Gate) -> tuple[WerkzeugClient, list[list[tuple[str, str]]]]:
    """A browser-like client of Django behind the gate, and the header lists
    Django itself passed to start_response, request by request."""
    django = get_wsgi_application()
    seen: list[list[tuple[str, str]]] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen.append(list(headers))
            return start_response(status, headers, *exc)

        return django(environ, start)

    return WerkzeugClient(WsgiGate(recording, gate=gate)), seen


def wsgi_set_cookies(resp: TestResponse) -> list[str]:
    return resp.headers.getlist("Set-Cookie")


def test_django_wsgi_undecided_then_accept_all() -> None:
    gate = make_gate()
    # _ga left from before, or written by a script: Django never sees it, and its
    # view reads the consent through its WSGIRequest
    once = WerkzeugClient(WsgiGate(get_wsgi_application(), gate=gate), use_cookies=False)
    body = once.get("/", headers={"Cookie": "_ga=GA1.1.old; session=s0"}).get_json()
    assert body["cookies"] == ["session"]
    assert body["performance"] is False

    client, django_headers = wsgi_client(gate)
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.get_json()["performance"] is False
    # Django wrote capitalised header names (Set-Cookie, Content-Type) ...
    assert {"Set-Cookie", "Content-Type"} <= {k for k, _ in django_headers[-1]}
    sent = wsgi_set_cookies(resp)
    # ... and still: Django's own cookies are necessary through the built-in catalogue,
    assert {"session", "sessionid", "csrftoken"} <= names(sent)
    assert not of(sent, "_ga")
    assert client.get_cookie("_ga") is None
    for name in ("session", "sessionid", "csrftoken"):
        assert client.get_cookie(name) is not None, name
    vary = resp.headers["Vary"].lower()
    assert "cookie" in vary and "sec-gpc" in vary

    # the csrftoken cookie reaches Django: its CSRF check passes, and fails without it
    token = client.get_cookie("csrftoken")
    assert token is not None
    ok = client.post("/form", data={"csrfmiddlewaretoken": token.value, "x": "1"})
    assert ok.status_code == 200, ok.get_data(as_text=True)[:300]
    assert ok.get_data(as_text=True) == '{"posted": "1"}'
    assert client.post("/form", data={"x": "1"}).status_code == 403

    # the session cookie reaches Django: the counter goes on
    assert client.get("/").get_json()["cookies"] == ["csrftoken", "session", "sessionid"]

    state = client.get("/_cookiegate/consent").get_json()
    assert state["decided"] is False

    page = client.get("/page")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert BANNER in text
    # Django declared the page's length; the banner's bytes are added to it
    assert "Content-Length" in {k for k, _ in django_headers[-1]}
    assert page.headers.getlist("Content-Length") == [str(len(page.get_data()))]

    posted = client.post(
        "/_cookiegate/consent", data=ACCEPT, headers={"Origin": "http://localhost"}
    )
    assert posted.status_code == 303
    assert posted.headers["Location"] == "/"
    assert "cookiegate" in names(wsgi_set_cookies(posted))
    assert client.get_cookie("cookiegate") is not None

    client.set_cookie("_ga", "GA1.1.old")
    body = client.get("/").get_json()
    assert "_ga" in body["cookies"]
    assert body["performance"] is True
    ga = client.get_cookie("_ga")
    assert ga is not None and ga.value == "GA1.1.123.456"

    state = client.get("/_cookiegate/consent").get_json()
    assert state["decided"] is True
    assert state["categories"] == {"performance": True}

    page = client.get("/page")
    text = page.get_data(as_text=True)
    assert BANNER not in text and SETTINGS in text
    assert page.headers["Content-Length"] == str(len(page.get_data()))


def test_django_wsgi_cross_site_post_is_refused() -> None:
    client, _ = wsgi_client(make_gate())
    resp = client.post(
        "/_cookiegate/consent", data=ACCEPT, headers={"Origin": "http://evil.example"}
    )
    assert resp.status_code == 403
    assert client.get_cookie("cookiegate") is None


# -- Django ASGI -------------------------------------------------------------


def asgi_client(gate: Gate) -> tuple[TestClient, list[list[tuple[bytes, bytes]]]]:
    """A browser-like client of Django's ASGI handler behind the gate, and the
    header lists Django itself sent, response by response."""
    django = get_asgi_application()
    seen: list[list[tuple[bytes, bytes]]] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.append(list(message["headers"]))
            await send(message)

        await django(scope, receive, record)

    # no `with`: Django's ASGI handler does not speak the lifespan protocol
    return TestClient(AsgiGate(recording, gate=gate)), seen


def test_django_asgi_undecided_then_accept_all() -> None:
    client, django_headers = asgi_client(make_gate())
    resp = client.get("/", headers={"cookie": "_ga=GA1.1.old; session=s0"})
    assert resp.status_code == 200
    body = resp.json()
    # consent_of() read it from the ASGIRequest's scope
    assert body == {"cookies": ["session"], "performance": False, "csrf": body["csrf"]}

    resp = client.get("/")
    # Django sent capitalised header names (b"Set-Cookie", not b"set-cookie") ...
    assert {b"Set-Cookie", b"Content-Type"} <= {k for k, _ in django_headers[-1]}
    sent = resp.headers.get_list("set-cookie")
    # ... and still: Django's own cookies pass, _ga is removed
    assert {"session", "sessionid", "csrftoken"} <= names(sent)
    assert not of(sent, "_ga")
    assert client.cookies.get("_ga") is None
    assert client.get("/").json()["cookies"] == ["csrftoken", "session", "sessionid"]

    page = client.get("/page")
    assert page.status_code == 200
    assert BANNER in page.text
    assert "<h1>Django shop</h1>" in page.text
    assert b"Content-Length" in {k for k, _ in django_headers[-1]}
    assert page.headers.get_list("content-length") == [str(len(page.content))]
    assert page.headers.get("transfer-encoding") is None

    posted = client.post(
        "/_cookiegate/consent",
        data=ACCEPT,
        headers={"origin": "http://testserver"},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    assert "cookiegate" in names(posted.headers.get_list("set-cookie"))

    client.cookies.set("_ga", "GA1.1.old", domain=HOST)
    body = client.get("/").json()
    assert "_ga" in body["cookies"] and body["performance"] is True
    assert client.cookies.get("_ga") == "GA1.1.123.456"
    assert client.get("/_cookiegate/consent").json()["categories"] == {"performance": True}

    page = client.get("/page")
    assert BANNER not in page.text and SETTINGS in page.text
    assert int(page.headers["content-length"]) == len(page.content)
