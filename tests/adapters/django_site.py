"""A minimal Django project for tests/adapters/test_frameworks.py: settings, views
and URLs in one module (``ROOT_URLCONF`` is this module).

Django can be configured once per process, so this is done at import, guarded.
Sessions are signed cookies (no database); ``CommonMiddleware`` gives every
response an exact ``Content-Length``, as a real deployment's would have.
"""

from __future__ import annotations

import json

from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse, JsonResponse  # type: ignore[import-untyped]
from django.middleware.csrf import get_token  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

import cookiegate

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="django-test-secret-key-0123456789abcdef",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["localhost", "testserver"],
        INSTALLED_APPS=[],
        DATABASES={},
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )

PAGE = (
    "<!doctype html><html><head><title>Shop</title></head><body><h1>Django shop</h1></body></html>"
)


def home(request: HttpRequest) -> HttpResponse:
    """Sets a performance cookie (``_ga``), the site's necessary ``session``, and
    Django's own ``sessionid`` and ``csrftoken``; tells what it received."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    token = get_token(request)
    resp = JsonResponse(
        {
            "cookies": sorted(request.COOKIES),
            "performance": cookiegate.consent_of(request).allows("performance"),
            "csrf": token,
        }
    )
    resp.set_cookie("_ga", "GA1.1.123.456", max_age=63072000)
    resp.set_cookie("session", "s1", httponly=True)
    return resp


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE, content_type="text/html; charset=utf-8")


def form(request: HttpRequest) -> HttpResponse:
    """A POST guarded by Django's CSRF middleware (the csrftoken cookie must
    reach Django for it to pass)."""
    return HttpResponse(json.dumps({"posted": request.POST.get("x")}), content_type="text/plain")


urlpatterns = [
    path("", home),
    path("page", page),
    path("form", form),
]
