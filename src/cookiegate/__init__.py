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
from .policy import Beacon, Category, CookieRule, Policy

__all__ = [
    "BadRequest",
    "Beacon",
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

#: where the request's :class:`RequestConsent` lives in an ASGI scope
SCOPE_KEY = "cookiegate"
#: ... and in a WSGI environ (PEP 3333: middleware keys carry a dot)
ENVIRON_KEY = "cookiegate.consent"


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
    found = None
    for key in (SCOPE_KEY, ENVIRON_KEY):
        try:
            found = container[key]  # type: ignore[index]
            break
        except (KeyError, TypeError):
            continue
    if not isinstance(found, RequestConsent):
        raise LookupError("this request did not pass through cookiegate's middleware")
    return found
