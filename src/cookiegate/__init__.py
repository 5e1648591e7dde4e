"""cookiegate: cookie-consent and tracking-gate middleware for ASGI and WSGI apps.

The public surface::

    from cookiegate import Policy, Gate, Category, CookieRule
    from cookiegate.asgi import CookieGateMiddleware   # Starlette, FastAPI, any ASGI app
    from cookiegate.wsgi import CookieGateMiddleware   # Flask, any WSGI app
"""

from __future__ import annotations

from .consent import ConsentState, RequestConsent
from .errors import BadRequest, ConfigError, CookieGateError, TokenError
from .gate import ConsentChange, Decision, Gate, PlainResponse, RequestInfo
from .policy import Category, CookieRule, Policy

__all__ = [
    "BadRequest",
    "Category",
    "ConfigError",
    "ConsentChange",
    "ConsentState",
    "CookieGateError",
    "CookieRule",
    "Decision",
    "Gate",
    "PlainResponse",
    "Policy",
    "RequestConsent",
    "RequestInfo",
    "TokenError",
    "consent_of",
]

__version__ = "0.1.0"

SCOPE_KEY = "cookiegate"


def consent_of(obj: object) -> RequestConsent:
    """The consent of the visitor behind a request.

    Accepts a Starlette/FastAPI ``Request`` (or anything with ``.scope``), a
    Flask/Werkzeug request (anything with ``.environ``), an ASGI scope or a WSGI
    environ. Raises :class:`LookupError` if the request did not pass through a
    cookiegate middleware.
    """
    container = getattr(obj, "scope", None)
    if container is None:
        container = getattr(obj, "environ", None)
    if container is None:
        container = obj
    try:
        found = container[SCOPE_KEY]  # type: ignore[index]
    except (KeyError, TypeError):
        raise LookupError("this request did not pass through cookiegate's middleware") from None
    if not isinstance(found, RequestConsent):
        raise LookupError("this request did not pass through cookiegate's middleware")
    return found
