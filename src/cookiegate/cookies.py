"""The one Cookie / Set-Cookie parser and serializer.

Nothing here raises on input from the network: malformed headers are read the
way browsers read them (RFC 6265 section 5) or skipped.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

EPOCH_EXPIRES = "Thu, 01 Jan 1970 00:00:00 GMT"


def parse_cookie_header(header: str) -> tuple[tuple[str, str], ...]:
    """Split a ``Cookie`` request header into ``(name, "name=value")`` pairs.

    A segment without ``=`` is a nameless cookie (name ``""``), as browsers treat
    it. Never raises.
    """
    out = []
    for segment in header.split(";"):
        segment = segment.strip()
        if not segment:
            continue
        eq = segment.find("=")
        name = segment[:eq].strip() if eq >= 0 else ""
        out.append((name, segment))
    return tuple(out)


def cookie_values(header: str) -> dict[str, str]:
    """``{name: value}`` of a Cookie header; the first occurrence of a name wins."""
    out: dict[str, str] = {}
    for name, segment in parse_cookie_header(header):
        if name and name not in out:
            value = segment.partition("=")[2].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            out[name] = value
    return out


def set_cookie_name(header_value: str) -> str:
    """The cookie name of a ``Set-Cookie`` value (``""`` for a nameless cookie)."""
    head = header_value.split(";", 1)[0]
    eq = head.find("=")
    return head[:eq].strip() if eq >= 0 else ""


@dataclass(slots=True)
class SetCookie:
    """A parsed ``Set-Cookie`` header value."""

    name: str
    value: str
    attrs: dict[str, str] = field(default_factory=dict)
    #: some ``Max-Age`` attribute (not only the last, which ``attrs`` keeps) is
    #: not an optional minus and digits: then the header is no deletion
    odd_max_age: bool = False

    @property
    def domain(self) -> str | None:
        d = self.attrs.get("domain")
        return d.lstrip(".").lower() if d else None

    @property
    def path(self) -> str | None:
        p = self.attrs.get("path")
        return p if p and p.startswith("/") else None

    def is_deletion(self, now: float | None = None) -> bool:
        """Whether this header deletes the cookie (Max-Age <= 0 or Expires in the
        past), as :func:`is_deletion_header` decides."""
        ma = self.attrs.get("max-age")
        if self.odd_max_age:
            return False  # "+N", "Ns", "forever": browsers may keep the cookie
        if ma is not None:
            # no int(): thousands of digits must not raise
            return ma[0] == "-" or not ma.lstrip("0")
        expires = self.attrs.get("expires")
        if expires is not None:
            ts = parse_cookie_date(expires)
            if ts is not None:
                return ts <= (time.time() if now is None else now)
        return False


#: what a browser trims around a cookie's name, value and attributes (RFC 6265
#: 5.2: WSP, space and tab; Chromium's kWhitespace): not ``\v``, ``\f`` or CR
_WSP = " \t"
_WSP_B = b" \t"
#: a valid ``Max-Age`` attribute (after a ``;``, trimmed of WSP only): optional
#: minus sign, ASCII digits
_MAX_AGE = re.compile(rb";[ \t]*max-age[ \t]*=[ \t]*(-?[0-9]+)[ \t]*(?=;|\Z)")
_MAX_AGE_VALUE = re.compile(r"-?[0-9]+")
#: any ``Max-Age`` attribute, whatever its value
_ANY_MAX_AGE = re.compile(rb";[ \t]*max-age[ \t]*(?:=|(?=;|\Z))")


def is_deletion_header(raw: bytes, now: float | None = None) -> bool:
    """Whether a raw ``Set-Cookie`` value deletes its cookie: ``Max-Age <= 0``
    (the last Max-Age wins over Expires) or an ``Expires`` in the past.
    A ``Max-Age`` that is not an optional minus and digits (``+N``, ``Ns``,
    ``forever``) makes it no deletion, whatever else it says: Chromium reads
    ``+N`` as N, Firefox ``Ns`` as N and ``forever`` as a session cookie.
    Never raises; cheaper than :func:`parse_set_cookie` (hot path)."""
    return deletion_verdict(raw, now)[0]


def deletion_verdict(raw: bytes, now: float | None = None) -> tuple[bool, bool]:
    """:func:`is_deletion_header`, and whether that answer holds at any time
    (``False`` when it rests on an ``Expires`` date, which the clock may pass)."""
    low = raw.lower()
    semi = low.find(b";")
    if semi < 0:
        return False, True
    if low.find(b"max-age") >= 0:  # find, not ``in``: see gate._content_kind
        found = _MAX_AGE.findall(low, semi)  # every valid one; the last wins
        if len(found) != len(_ANY_MAX_AGE.findall(low, semi)):
            # a Max-Age cookiegate does not read as browsers all do (Chromium
            # takes "+N", Firefox "Ns" and makes "forever" a session cookie,
            # whatever Expires says): it may set the cookie, so it is no deletion
            return False, True
        if found:
            value = found[-1]
            # no int(): thousands of digits must not raise
            return value[:1] == b"-" or not value.lstrip(b"0"), True
    if low.find(b"expires") < 0:
        return False, True
    attrs = low[semi + 1 :].split(b";")
    for part in reversed(attrs):
        key, _, value = part.partition(b"=")
        if key.strip(_WSP_B) == b"expires":
            # the last Expires counts, as in Chromium and Firefox: an invalid
            # one makes a session cookie, whatever an earlier one said
            ts = parse_cookie_date(value.strip(_WSP_B).decode("latin-1"))
            if ts is None:
                return False, True
            return ts <= (time.time() if now is None else now), False
    return False, False


def parse_set_cookie(header_value: str) -> SetCookie:
    """Parse a ``Set-Cookie`` value (RFC 6265 section 5.2). Never raises.

    Attribute names are lower-cased; the last occurrence of an attribute wins.
    Commas are not separators: ``Expires=Wed, 21 Oct 2015 07:28:00 GMT`` stays whole.
    """
    parts = header_value.split(";")
    head = parts[0]
    eq = head.find("=")
    if eq >= 0:
        name, value = head[:eq].strip(_WSP), head[eq + 1 :].strip(_WSP)
    else:
        name, value = "", head.strip(_WSP)
    attrs: dict[str, str] = {}
    odd = False
    for part in parts[1:]:
        key, _, val = part.partition("=")
        key = key.strip(_WSP).lower()
        if key:
            attrs[key] = val = val.strip(_WSP)
            if key == "max-age" and not _MAX_AGE_VALUE.fullmatch(val):
                odd = True
    return SetCookie(name, value, attrs, odd)


_DELIM = re.compile(r"[\x09\x20-\x2F\x3B-\x40\x5B-\x60\x7B-\x7E]+")
_TIME = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:[^\d]|$)")
_DAY = re.compile(r"(\d{1,2})(?:[^\d]|$)")
_YEAR = re.compile(r"(\d{2,4})(?:[^\d]|$)")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def parse_cookie_date(text: str) -> float | None:
    """Parse a cookie date with the RFC 6265 section 5.1.1 algorithm.

    Returns a POSIX timestamp, or ``None`` if the date is invalid. Never raises.
    """
    if len(text) > 200:
        return None
    hms = day = month = year = None
    for token in _DELIM.split(text):
        if not token:
            continue
        if hms is None:
            m = _TIME.match(token)
            if m:
                hms = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
                continue
        if day is None:
            m = _DAY.match(token)
            if m:
                day = int(m.group(1))
                continue
        if month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS.index(token[:3].lower()) + 1
            continue
        if year is None:
            m = _YEAR.match(token)
            if m:
                year = int(m.group(1))
                continue
    if hms is None or day is None or month is None or year is None:
        return None
    if 70 <= year <= 99:
        year += 1900
    elif 0 <= year <= 69:
        year += 2000
    h, mi, s = hms
    if not (1 <= day <= 31) or year < 1601 or h > 23 or mi > 59 or s > 59:
        return None
    try:
        ts = calendar.timegm((year, month, day, h, mi, s, 0, 0, 0))
        # RFC 6265 5.1.1 step 6: a date that does not exist (31 Feb) fails.
        if time.gmtime(ts)[:6] != (year, month, day, h, mi, s):
            return None
        return float(ts)
    except (OverflowError, ValueError, OSError):
        return None


def serialize_set_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    path: str = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: str | None = None,
) -> str:
    """Build a ``Set-Cookie`` header value."""
    parts = [f"{name}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
        if max_age <= 0:
            parts.append(f"Expires={EPOCH_EXPIRES}")
    if domain:
        parts.append(f"Domain={domain}")
    parts.append(f"Path={path}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite:
        parts.append(f"SameSite={samesite}")
    return "; ".join(parts)


def expire_cookie(
    name: str, *, path: str = "/", domain: str | None = None, secure: bool = False
) -> str:
    """A ``Set-Cookie`` value that deletes ``name`` at ``path``/``domain``.

    ``__Secure-`` and ``__Host-`` cookies are always expired with ``Secure``, as
    browsers require.
    """
    if name.startswith(("__Secure-", "__Host-")):
        secure = True
        if name.startswith("__Host-"):
            domain, path = None, "/"
    return serialize_set_cookie(name, "", max_age=0, path=path, domain=domain, secure=secure)
