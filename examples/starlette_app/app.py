"""The cookiegate demo shop on Starlette (ASGI).

Run it with ``make demo``, i.e.::

    python -m uvicorn examples.starlette_app.app:app

Pages, cookies and texts come from :mod:`examples.common`; this module only
translates between Starlette and :class:`examples.common.Shop`. The Flask twin in
``examples/flask_app/app.py`` behaves identically.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from cookiegate.asgi import CookieGateMiddleware, consent
from examples.common import (
    PAGE_HEADERS,
    CookieSpec,
    Redirect,
    Shop,
    Visit,
    parse_cookie_header,
    parse_form,
    to_json,
)

shop = Shop()


def _visit(request: Request) -> Visit:
    header = request.headers.get("cookie", "")
    return Visit(request.url.path, parse_cookie_header(header), consent(request), header)


def _html(body: str, status: int = 200) -> Response:
    return HTMLResponse(body, status_code=status, headers=dict(PAGE_HEADERS))


def _redirect(target: Redirect) -> Response:
    return Response(status_code=target.status, headers={"location": target.location})


def _set_cookie(response: Response, spec: CookieSpec, request: Request) -> None:
    response.set_cookie(
        spec.key,
        spec.value,
        max_age=spec.max_age,
        path=spec.path,
        secure=request.url.scheme == "https",
        httponly=spec.httponly,
        samesite=spec.samesite,
    )


async def _form(request: Request) -> dict[str, str]:
    # request.form() would need python-multipart; the shop's forms are urlencoded.
    return parse_form(await request.body())


async def home(request: Request) -> Response:
    visit = _visit(request)
    variant = shop.variant(visit)
    response = _html(shop.home_page(visit, variant))
    # Set unconditionally: cookiegate drops them unless the visitor allowed performance.
    for spec in shop.tracking_cookies(visit, variant):
        _set_cookie(response, spec, request)
    return response


async def login(request: Request) -> Response:
    if request.method == "GET":
        return _html(shop.login_page(_visit(request)))
    result = shop.login(await _form(request), _visit(request))
    if isinstance(result, str):
        return _html(shop.login_page(_visit(request), result), status=400)
    cookie, target = result
    response = _redirect(target)
    _set_cookie(response, cookie, request)
    return response


async def logout(request: Request) -> Response:
    name, target = shop.logout(_visit(request))
    response = _redirect(target)
    response.delete_cookie(name, path="/")
    return response


async def theme(request: Request) -> Response:
    result = shop.set_theme(await _form(request))
    if isinstance(result, str):
        return PlainTextResponse(result + "\n", status_code=400, headers=dict(PAGE_HEADERS))
    cookie, target = result
    response = _redirect(target)
    _set_cookie(response, cookie, request)
    return response


async def track(request: Request) -> Response:
    # Server-side telemetry: no cookie involved, so the app must ask itself.
    if consent(request).allows("performance"):
        shop.count_hit()
    return Response(status_code=204, headers={"cache-control": "no-store"})


async def whoami(request: Request) -> Response:
    return _html(shop.whoami_page(_visit(request)))


async def whoami_json(request: Request) -> Response:
    body = to_json(shop.whoami_json(_visit(request)))
    return Response(body, media_type="application/json", headers=dict(PAGE_HEADERS))


async def not_found(request: Request, exc: Exception) -> Response:
    return _html(shop.not_found_page(_visit(request)), 404)


app = Starlette(
    exception_handlers={404: not_found},
    routes=[
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/theme", theme, methods=["POST"]),
        Route("/track", track, methods=["GET", "POST"]),
        Route("/whoami", whoami),
        Route("/whoami.json", whoami_json),
    ],
)
app.add_middleware(CookieGateMiddleware, gate=shop.gate)
