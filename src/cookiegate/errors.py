"""The one error tree of cookiegate.

Every exception cookiegate raises on purpose derives from :class:`CookieGateError`,
so callers can catch the base class.
"""

from __future__ import annotations

import string


class CookieGateError(Exception):
    """Base class of every error cookiegate raises on purpose."""


class ConfigError(CookieGateError, ValueError):
    """Invalid configuration, raised when a :class:`~cookiegate.Policy` or
    :class:`~cookiegate.Gate` is built.

    :param field: dotted path of the offending field, e.g. ``cookies[3].category``.
    :param message: what is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def check_format_fields(field: str, value: str, allowed: set[str]) -> None:
    """Raise :class:`ConfigError` unless ``value``, a text filled in with
    ``str.format``, parses and uses only the ``{name}`` fields in ``allowed``
    (a stray brace would otherwise fail on every page that shows the text)."""
    try:
        found = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError:
        raise ConfigError(field, "has an unmatched brace (write {{ or }} for one)") from None
    unknown = found - allowed
    if unknown:
        known = ", ".join("{" + f + "}" for f in sorted(allowed))
        names = ", ".join("{" + f + "}" for f in sorted(unknown))
        raise ConfigError(field, f"unknown placeholder {names} (known: {known})")


class TokenError(CookieGateError):
    """A consent token could not be accepted (bad signature, malformed, expired,
    oversized or for another policy version). The gate turns it into "undecided";
    it never reaches the app as an exception."""


class BadRequest(CookieGateError):
    """A request to one of cookiegate's own endpoints was malformed.

    :param status: the HTTP status to answer with (400, 403, 405, 413, 415).
    :param message: a human-readable explanation sent back to the client.
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")
