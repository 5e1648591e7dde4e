"""The cookiegate demo shop on Flask (WSGI).

Run it with ``make demo-flask``, i.e.::

    python -m flask --app examples.flask_app.app:app run

Pages, cookies and texts come from :mod:`examples.common`; this module only
translates between Flask and :class:`examples.common.Shop`. The Starlette twin in
``examples/starlette_app/app.py`` behaves identically.
"""

from __future__ import annotations

from flask import Flask, Response, request

from cookiegate.wsgi import CookieGateMiddleware, consent
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
app = Flask(__name__)
app.wsgi_app = CookieGateMiddleware(app.wsgi_app, gate=shop.gate)  # type: ignore[method-assign]


def _visit() -> Visit:
    header = request.headers.get("Cookie", "")
    return Visit(request.path, parse_cookie_header(header), consent(), header)


def _html(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/html", headers=dict(PAGE_HEADERS))


def _empty(status: int, headers: dict[str, str]) -> Response:
    response = Response(status=status, headers=headers)
    del response.headers["Content-Type"]  # no body, no type (as in Starlette)
    return response


def _redirect(target: Redirect) -> Response:
    return _empty(target.status, {"Location": target.location})


def _set_cookie(response: Response, spec: CookieSpec) -> None:
    response.set_cookie(
        spec.key,
        spec.value,
        max_age=spec.max_age,
        path=spec.path,
        secure=request.is_secure,
        httponly=spec.httponly,
        samesite=spec.samesite,
    )


def _form() -> dict[str, str]:
    # The same parser as the Starlette app, so both accept exactly the same input.
    return parse_form(request.get_data(cache=False))


@app.get("/")
def home() -> Response:
    visit = _visit()
    variant = shop.variant(visit)
    response = _html(shop.home_page(visit, variant))
    # Set unconditionally: cookiegate drops them unless the visitor allowed performance.
    for spec in shop.tracking_cookies(visit, variant):
        _set_cookie(response, spec)
    return response


@app.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        return _html(shop.login_page(_visit()))
    result = shop.login(_form(), _visit())
    if isinstance(result, str):
        return _html(shop.login_page(_visit(), result), status=400)
    cookie, target = result
    response = _redirect(target)
    _set_cookie(response, cookie)
    return response


@app.post("/logout")
def logout() -> Response:
    name, target = shop.logout(_visit())
    response = _redirect(target)
    response.delete_cookie(name, path="/")
    return response


@app.post("/theme")
def theme() -> Response:
    result = shop.set_theme(_form())
    if isinstance(result, str):
        return Response(
            result + "\n", status=400, mimetype="text/plain", headers=dict(PAGE_HEADERS)
        )
    cookie, target = result
    response = _redirect(target)
    _set_cookie(response, cookie)
    return response


@app.route("/track", methods=["GET", "POST"])
def track() -> Response:
    # Server-side telemetry: no cookie involved, so the app must ask itself.
    if consent().allows("performance"):
        shop.count_hit()
    return _empty(204, {"Cache-Control": "no-store"})


@app.errorhandler(404)
def not_found(error: Exception) -> Response:
    return _html(shop.not_found_page(_visit()), 404)


@app.get("/whoami")
def whoami() -> Response:
    return _html(shop.whoami_page(_visit()))


@app.get("/whoami.json")
def whoami_json() -> Response:
    body = to_json(shop.whoami_json(_visit()))
    return Response(body, mimetype="application/json", headers=dict(PAGE_HEADERS))
